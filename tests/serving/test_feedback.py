"""Request ids in every answer, and ``POST /feedback``: labels for them, authenticated, logged
in their own stream, bad bodies refused with nothing recorded."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.harness import ADMIN_TOKEN, CURL_PASSENGER, FEEDBACK_TOKEN, monitoring_records

pytestmark = [pytest.mark.spark, pytest.mark.integration]

FEEDBACK = {"Authorization": f"Bearer {FEEDBACK_TOKEN}"}


def feedback_records(monitoring_dir: Path) -> list[dict]:
    folder = monitoring_dir / "titanic_feedback" / "data"
    return [
        json.loads(line)
        for path in sorted(folder.glob("data.*.log"))
        for line in path.read_text().splitlines()
    ]


def wait_for(monitoring_dir: Path, ids: set[str], timeout: float = 10) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        found = [r for r in feedback_records(monitoring_dir) if r["prediction_id"] in ids]
        if len(found) >= len(ids) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_a_prediction_carries_its_request_id_in_body_header_and_record(client, monitoring_dir):
    response = client.post("/predict_titanic", json=CURL_PASSENGER)
    assert response.status_code == 200, response.text
    header = response.headers["x-bentoml-request-id"]
    assert response.json()["request_id"] == header and len(header) == 16
    (record,) = monitoring_records(monitoring_dir, header, 1)
    assert record["prediction_id"] == header


def test_each_passenger_of_a_batch_gets_its_own_id(client, monitoring_dir):
    response = client.post("/predict_titanic_batch", json=[CURL_PASSENGER] * 3)
    assert response.status_code == 200, response.text
    header = response.headers["x-bentoml-request-id"]
    ids = [p["request_id"] for p in response.json()["predictions"]]
    assert ids == [f"{header}-{i}" for i in range(3)]
    records = monitoring_records(monitoring_dir, header, 3)
    assert [r["prediction_id"] for r in records] == ids


def test_feedback_is_logged_with_who_sent_it(client, monitoring_dir):
    one = client.post("/predict_titanic", json=CURL_PASSENGER).json()["request_id"]
    batch = client.post("/predict_titanic_batch", json=[CURL_PASSENGER] * 2).json()
    two, three = (p["request_id"] for p in batch["predictions"])

    single = client.post("/feedback", json={"request_id": one, "Survived": 1}, headers=FEEDBACK)
    assert single.status_code == 200, single.text
    assert single.json() == {"accepted": 1}
    many = client.post(
        "/feedback",
        json=[{"request_id": two, "Survived": 0}, {"request_id": three, "Survived": 1}],
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    assert many.status_code == 200 and many.json() == {"accepted": 2}, many.text

    records = {r["prediction_id"]: r for r in wait_for(monitoring_dir, {one, two, three})}
    assert {k: (r["Survived"], r["sender"]) for k, r in records.items()} == {
        one: (1, "feedback"),
        two: (0, "admin"),
        three: (1, "admin"),
    }
    assert all(r["timestamp"] for r in records.values())


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"Authorization": f"Basic {FEEDBACK_TOKEN}"}, 401),
        ({"Authorization": f"bearer {FEEDBACK_TOKEN}x"}, 401),
    ],
)
def test_feedback_needs_its_token(client, monitoring_dir, headers, status):
    before = len(feedback_records(monitoring_dir))
    body = {"request_id": "0123456789abcdef", "Survived": 1}
    response = client.post("/feedback", json=body, headers=headers)
    assert response.status_code == status, response.text
    assert len(feedback_records(monitoring_dir)) == before


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"request_id": "0123456789abcdef"}, "Survived"),
        ({"request_id": "0123456789abcdef", "Survived": 2}, "Survived"),
        ({"request_id": "0123456789abcdef", "Survived": True}, "Survived"),
        ({"request_id": "0123456789abcdef", "Survived": "1"}, "Survived"),
        ({"request_id": "not-an-id", "Survived": 1}, "request_id"),
        ({"request_id": 81985529216486895, "Survived": 1}, "request_id"),
        ({"request_id": "0123456789abcdef", "Survived": 1, "Pclass": 3}, "Pclass"),
        ([], "list[Feedback]"),
        ([{"request_id": "0123456789abcdef", "Survived": 1}] * 1001, "list[Feedback]"),
        ([{"request_id": "0123456789abcdef", "Survived": 1}, {"Survived": 0}], "request_id"),
    ],
)
def test_a_bad_feedback_body_is_a_400_naming_the_field_and_records_nothing(
    client, monitoring_dir, body, named
):
    before = len(feedback_records(monitoring_dir))
    response = client.post("/feedback", json=body, headers=FEEDBACK)
    assert response.status_code == 400, response.text
    assert named in response.text
    assert len(feedback_records(monitoring_dir)) == before


def test_a_huge_feedback_body_gets_a_small_fast_400(client):
    """350k unknown keys in 3.7 MB: the answer names the first few, in a few KB."""
    keys = ",".join(f'"{i}":0' for i in range(350_000))
    body = f'[{{"request_id":"0123456789abcdef","Survived":1,{keys}}}]'.encode()
    assert len(body) < 4 * 1024 * 1024
    started = time.perf_counter()
    response = client.post(
        "/feedback", content=body, headers={**FEEDBACK, "Content-Type": "application/json"}
    )
    elapsed = time.perf_counter() - started
    assert response.status_code == 400
    assert len(response.content) < 16 * 1024 and '"0"' in response.text
    assert elapsed < 5  # behaviour, not a benchmark: seconds before the bound
