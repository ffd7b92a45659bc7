"""64 concurrent clients: every answer is 200 and its own, and BentoML batches them."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.harness import histogram, scorer_probabilities

pytestmark = [pytest.mark.spark, pytest.mark.integration]

CLIENTS = 64
ROUNDS = 4
BATCH_METRIC = "bentoml_service_adaptive_batch_size"


def passenger(i: int) -> dict:
    # A distinct age per client, so a response that went to the wrong client would show.
    return {
        "Pclass": 1 + i % 3,
        "Sex": ("male", "female")[i % 2],
        "Age": 1.0 + i,
        "SibSp": i % 3,
        "Parch": 0,
        "Fare": 8.0 + i,
        "Embarked": "SCQ"[i % 3],
    }


async def closed_loop(url: str) -> list[tuple[int, int, dict | str]]:
    """Each client sends ROUNDS requests one after another; all clients at once."""
    limits = httpx.Limits(max_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as session:

        async def one(i: int) -> list[tuple[int, int, dict | str]]:
            out = []
            for _ in range(ROUNDS):
                response = await session.post("/predict_titanic", json=passenger(i))
                ok = response.status_code == 200
                out.append((i, response.status_code, response.json() if ok else response.text))
            return out

        results = await asyncio.gather(*(one(i) for i in range(CLIENTS)))
    return [item for client in results for item in client]


def test_concurrent_requests_are_batched_and_answered_in_full(server, client, serving_home):
    labels = {"method_name": "predict_titanic"}
    before = histogram(client.get("/metrics").text, BATCH_METRIC, **labels)
    answers = asyncio.run(closed_loop(server.url))
    after = histogram(client.get("/metrics").text, BATCH_METRIC, **labels)

    assert [status for _, status, _ in answers] == [200] * CLIENTS * ROUNDS, [
        body for _, status, body in answers if status != 200
    ][:3]
    folder = serving_home.model_dir(client.get("/model_info").json()["model_tag"])
    expected = scorer_probabilities(folder, [passenger(i) for i in range(CLIENTS)])
    for i, _, body in answers:
        assert body["probability"] == pytest.approx(expected[i], abs=1e-6)

    batches = after["count"] - before["count"]
    passengers = after["sum"] - before["sum"]
    single = after["le=1.0"] - before["le=1.0"]  # buckets are cumulative: batches of size <= 1
    assert passengers == CLIENTS * ROUNDS  # every request went through the adaptive batcher
    assert batches - single >= 1, f"{batches:.0f} batches, all of size 1"
    assert passengers / batches > 1
