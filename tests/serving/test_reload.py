"""POST /reload: Production re-resolved from the MLflow registry, swapped in every worker.

The server runs with MLFLOW_TRACKING_URI set to this folder's copy of the session registry, so
a reload imports ``models:/titanic@production`` into the store before loading it. New versions
are registered here by hand: one reusing the trained model's artifacts (a real new registry
version, cheaper than a second Spark run) and one whose model.onnx is corrupt.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness import ADMIN_TOKEN

pytestmark = [pytest.mark.spark, pytest.mark.integration]

EXAMPLE = {"Pclass": 1, "Sex": "female", "Age": 30, "SibSp": 0, "Parch": 0, "Fare": 80.0}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def registry(server, serving_home, settings) -> Iterator[tuple]:
    """This folder's MLflow registry: client, model name, alias and the production version.

    Afterwards the alias names the version the service serves again.
    """
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=serving_home.tracking_uri)
    name, alias = settings.model_name, settings.production_alias
    yield client, name, alias, client.get_model_version_by_alias(name, alias)
    served = httpx.get(f"{server.url}/health", timeout=10).json()["model_version"]
    client.set_registered_model_alias(name, alias, served)


def register(client, name: str, source: str, run_id: str) -> str:
    return str(client.create_model_version(name, source=source, run_id=run_id).version)


class Traffic:
    """Predictions sent without pause from a background thread until stopped."""

    def __init__(self, url: str, clients: int = 8) -> None:
        self.url, self.clients = url, clients
        self.statuses: Counter = Counter()
        self.versions: Counter = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()))

    async def _run(self) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as session:

            async def loop() -> None:
                while not self._stop.is_set():
                    try:
                        response = await session.post("/predict_titanic", json=EXAMPLE)
                    except httpx.HTTPError as exc:
                        self.statuses[type(exc).__name__] += 1
                        continue
                    self.statuses[response.status_code] += 1
                    if response.status_code == 200:
                        self.versions[response.json()["model_version"]] += 1

            await asyncio.gather(*(loop() for _ in range(self.clients)))

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def test_reload_needs_the_admin_token(client):
    assert client.post("/reload").status_code == 401
    wrong = client.post("/reload", headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == "Bearer"


def test_reload_under_load_moves_every_worker_to_the_new_registry_version(server, client, registry):
    mlflow, name, alias, current = registry
    old = client.get("/health").json()
    assert old["model_version"] == str(current.version)
    source = mlflow.get_model_version_download_uri(name, current.version)
    new = register(mlflow, name, source, current.run_id)
    mlflow.set_registered_model_alias(name, alias, new)

    with Traffic(server.url) as traffic:
        while sum(traffic.statuses.values()) < 50:  # under way before the reload
            time.sleep(0.05)
        response = client.post("/reload", headers=ADMIN)
        assert response.status_code == 200, response.text
        seen = server.wait_all_workers(new)
    answer = response.json()
    assert answer["reloaded"] is True and answer["model_version"] == new
    assert answer["previous_tag"] == old["model_tag"]
    assert answer["source"].startswith(f"models:/{name}@{alias}")
    assert set(seen.values()) == {new}, seen
    assert set(traffic.statuses) == {200}, traffic.statuses
    assert set(traffic.versions) <= {old["model_version"], new}
    assert traffic.versions[new] > 0

    again = client.post("/reload", headers=ADMIN)  # same version: nothing to do
    assert again.status_code == 200 and again.json()["reloaded"] is False


def test_corrupt_candidate_is_refused_and_the_old_model_keeps_serving(
    server, client, registry, tmp_path
):
    mlflow, name, alias, current = registry
    serving = client.get("/health").json()
    good = Path(
        mlflow.get_model_version_download_uri(name, current.version).removeprefix("file://")
    )
    broken = tmp_path / "broken"
    (broken / "artifacts").mkdir(parents=True)
    for file in ("metadata.json", "reference.csv"):
        shutil.copy(good / "artifacts" / file, broken / "artifacts" / file)
    (broken / "artifacts" / "model.onnx").write_bytes(b"not an onnx graph")
    bad = register(mlflow, name, broken.as_uri(), current.run_id)
    mlflow.set_registered_model_alias(name, alias, bad)

    response = client.post("/reload", headers=ADMIN)
    assert response.status_code == 409, response.text
    answer = response.json()
    assert answer["reloaded"] is False
    assert answer["model_tag"] == serving["model_tag"]
    assert "INVALID_PROTOBUF" in answer["error"]
    assert set(server.wait_all_workers(serving["model_version"], timeout=3).values()) == {
        serving["model_version"]
    }
    prediction = client.post("/predict_titanic", json=EXAMPLE)
    assert prediction.status_code == 200
    assert prediction.json()["model_version"] == serving["model_version"]


def test_registry_without_production_is_refused(client, registry):
    mlflow, name, alias, _ = registry
    serving = client.get("/health").json()
    mlflow.delete_registered_model_alias(name, alias)
    response = client.post("/reload", headers=ADMIN)
    assert response.status_code == 409
    assert f"no {name}@{alias}" in response.json()["error"]
    assert client.get("/health").json()["model_tag"] == serving["model_tag"]
