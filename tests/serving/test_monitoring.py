"""Monitoring records: one per passenger, under its own request's id, labels kept, no names."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.harness import monitoring_records

pytestmark = [pytest.mark.spark, pytest.mark.integration]

FEATURES = ["Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"]
PERSONAL = {"PassengerId", "Name", "Ticket", "Cabin"}


def kaggle_row(i: int) -> dict:
    return {
        "PassengerId": 1000 + i,
        "Survived": i % 2,
        "Pclass": 2,
        "Name": f"Doe, Mr. No{i}",
        "Sex": "male",
        "Age": 40.5 + i,
        "SibSp": 0,
        "Parch": 1,
        "Ticket": f"T{i}",
        "Fare": 13.0,
        "Cabin": "E12",
        "Embarked": "S",
    }


def check_record(record: dict, sent: dict, answer: dict) -> None:
    assert not PERSONAL & set(record)
    assert {name: record[name] for name in FEATURES} == {name: sent[name] for name in FEATURES}
    assert record["Survived"] == sent.get("Survived")
    assert record["probability"] == pytest.approx(answer["probability"])
    assert record["prediction"] == answer["survived"]
    assert record["model_version"] == answer["model_version"]


def test_single_prediction_is_logged_with_its_label_and_without_the_name(client, monitoring_dir):
    sent = kaggle_row(1)
    response = client.post("/predict_titanic", json=sent)
    assert response.status_code == 200
    records = monitoring_records(monitoring_dir, response.headers["x-bentoml-request-id"], 1)
    assert len(records) == 1
    check_record(records[0], sent, response.json())
    assert records[0]["Survived"] == 1


def test_batch_logs_one_record_per_passenger_in_order(client, monitoring_dir):
    sent = [kaggle_row(i) for i in range(5)]
    response = client.post("/predict_titanic_batch", json=sent)
    assert response.status_code == 200
    records = monitoring_records(monitoring_dir, response.headers["x-bentoml-request-id"], 5)
    assert len(records) == 5
    for record, passenger, answer in zip(
        records, sent, response.json()["predictions"], strict=True
    ):
        check_record(record, passenger, answer)


def test_adaptively_batched_requests_keep_their_own_request_ids(server, monitoring_dir):
    async def send_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as session:
            return await asyncio.gather(
                *(session.post("/predict_titanic", json=kaggle_row(i)) for i in range(10, 42))
            )

    responses = asyncio.run(send_all())
    for i, response in zip(range(10, 42), responses, strict=True):
        assert response.status_code == 200
        records = monitoring_records(monitoring_dir, response.headers["x-bentoml-request-id"], 1)
        assert len(records) == 1
        check_record(records[0], kaggle_row(i), response.json())
