"""Shadow scoring in a running ``bentoml serve``: the challenger scored beside Production.

A server of this module's own (two workers, a copy of the session registry, a store of its
own), started while the challenger alias names a version whose model.onnx is corrupt: it must
start and serve anyway. The tests then move the alias (versions registered by hand reuse the
trained model's artifacts, a real new registry version each) and ``POST /reload``, in order.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from lifeboat.serving.store import SHADOW_BENTO_MODEL
from lifeboat.streams import SHADOW_PROBABILITY, SHADOW_VERSION
from tests.harness import (
    ADMIN_TOKEN,
    ROOT,
    Server,
    monitoring_records,
    scorer_probabilities,
    server_env,
    serving,
    store_with,
)
from tests.serving.conftest import WORKERS

pytestmark = [pytest.mark.spark, pytest.mark.integration]

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PASSENGERS = [
    {"Pclass": 1, "Sex": "female", "Age": 30, "SibSp": 0, "Parch": 0, "Fare": 80.0},
    {"Pclass": 3, "Sex": "male", "Age": 22, "SibSp": 1, "Parch": 0, "Fare": 7.25},
    {"Pclass": 2, "Sex": "male", "Age": None, "SibSp": 0, "Parch": 2, "Fare": 26.0},
]
BODY_KEYS = {"request_id", "survived", "probability", "model_version", "drift_alerts"}


@dataclass(frozen=True)
class Registry:
    """This module's registry: a client, the model's name, its aliases and versions."""

    client: Any  # mlflow.MlflowClient
    name: str
    challenger: str
    production: str  # the Production version
    model_dir: Path  # its artifacts
    run_id: str
    broken: str  # a version whose model.onnx is not an ONNX graph

    def register(self) -> str:
        """A new version with Production's artifacts."""
        version = self.client.create_model_version(
            self.name, source=self.model_dir.parent.as_uri(), run_id=self.run_id
        )
        return str(version.version)

    def challenge(self, version: str | None) -> None:
        if version is None:
            self.client.delete_registered_model_alias(self.name, self.challenger)
        else:
            self.client.set_registered_model_alias(self.name, self.challenger, version)


@pytest.fixture(scope="module")
def home(serving_home, tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("shadow")
    with (
        sqlite3.connect(serving_home.path / "mlflow.db") as src,
        sqlite3.connect(home / "mlflow.db") as dst,
    ):
        src.backup(dst)
    store_with(serving_home.model_path, home / "bentoml")
    return home


@pytest.fixture(scope="module")
def registry(home, settings) -> Registry:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    name = settings.model_name
    production = client.get_model_version_by_alias(name, settings.production_alias)
    source = client.get_model_version_download_uri(name, production.version)
    model_dir = Path(source.removeprefix("file://")) / "artifacts"
    broken = home / "broken"
    (broken / "artifacts").mkdir(parents=True)
    for file in ("metadata.json", "reference.csv"):
        shutil.copy(model_dir / file, broken / "artifacts" / file)
    (broken / "artifacts" / "model.onnx").write_bytes(b"not an onnx graph")
    bad = client.create_model_version(name, source=broken.as_uri(), run_id=production.run_id)
    found = Registry(
        client,
        name,
        settings.challenger_alias,
        str(production.version),
        model_dir,
        production.run_id,
        str(bad.version),
    )
    found.challenge(found.broken)  # the server starts with a broken challenger
    return found


@pytest.fixture(scope="module")
def shadow_server(home, registry) -> Iterator[Server]:
    env = server_env(
        BENTOML_HOME=str(home / "bentoml"),
        BENTOML_CONFIG_OPTIONS=f"services.TitanicSurvival.workers={WORKERS}",
        MLFLOW_TRACKING_URI=f"sqlite:///{home / 'mlflow.db'}",
        LIFEBOAT_HOME=str(home),
        LIFEBOAT_ADMIN_TOKEN=ADMIN_TOKEN,
        LIFEBOAT_API_TOKEN="",
        LIFEBOAT_MODEL_STORE="",
        LIFEBOAT_MONITORING_DIR=str(home / "monitoring"),
        LIFEBOAT_RELOAD_MARKER=str(home / "reload-marker.json"),
        LIFEBOAT_RELOAD_POLL_SECONDS="0.2",
        LIFEBOAT_REGISTRY_POLL_SECONDS="0",  # here only /reload moves the shadow
    )
    with serving("service:TitanicSurvival", env, ROOT, home / "serve.log") as running:
        assert len(running.worker_pids()) == WORKERS, running.log_tail()
        yield running


def shadows(server: Server, expected: dict, timeout: float = 30) -> dict[int, dict]:
    """Every worker's ``/health`` shadow, once all of them show ``expected`` (or the timeout)."""
    workers, seen = server.worker_pids(), {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for health in server.healths(rounds=10):
            seen[health["worker_pid"]] = health["shadow"]
        matching = [pid for pid in workers if pid in seen and expected.items() <= seen[pid].items()]
        if len(matching) == len(workers):
            break
        time.sleep(0.2)
    return seen


def reload(server: Server) -> dict:
    response = httpx.post(f"{server.url}/reload", headers=ADMIN, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()


def records_of(server: Server, home: Path, response: httpx.Response, expected: int) -> list:
    assert response.status_code == 200, response.text
    request_id = response.headers["x-bentoml-request-id"]
    records = monitoring_records(home / "monitoring", request_id, expected)
    assert len(records) == expected, server.log_tail()
    return records


def shadow_copies(home: Path) -> set[str]:
    """The registry versions the server's store holds as shadows."""
    from bentoml._internal.models import ModelStore
    from bentoml.exceptions import NotFound

    try:
        models = ModelStore(home / "bentoml" / "models").list(SHADOW_BENTO_MODEL)
    except NotFound:
        return set()
    return {m.info.labels["registry_version"] for m in models}


def test_a_broken_challenger_at_start_is_dropped_and_production_serves(
    shadow_server, registry, home
):
    # The server is ready (the fixture waited for /readyz): every worker serves.
    assert httpx.get(f"{shadow_server.url}/readyz", timeout=10).status_code == 200
    seen = shadows(shadow_server, {"loaded": False, "version": registry.broken})
    assert len(seen) == WORKERS
    for shadow in seen.values():
        assert shadow["loaded"] is False and shadow["version"] == registry.broken, seen
        assert "INVALID_PROTOBUF" in shadow["dropped"], seen
    text = httpx.get(f"{shadow_server.url}/health", timeout=10).text
    assert str(home) not in text and "sqlite" not in text
    health = json.loads(text)
    assert health["status"] == "ok" and health["model_version"] == registry.production
    log = shadow_server.log_tail(200_000)
    # One line, from the server's start: the workers read the verdict from the pointer.
    assert log.count("dropped, Production") == 1, log
    assert registry.broken not in shadow_copies(home)  # its import was deleted again

    answer = httpx.post(f"{shadow_server.url}/predict_titanic", json=PASSENGERS[0], timeout=30)
    (record,) = records_of(shadow_server, home, answer, 1)
    assert answer.json()["model_version"] == registry.production
    assert (record[SHADOW_VERSION], record[SHADOW_PROBABILITY]) == (None, None)


def test_a_shadow_is_scored_in_the_same_batch_and_logged_not_answered(
    shadow_server, registry, home
):
    challenger = registry.register()
    registry.challenge(challenger)
    answer = reload(shadow_server)
    assert answer["reloaded"] is False and answer["model_version"] == registry.production
    assert answer["shadow"]["loaded"] is True and answer["shadow"]["version"] == challenger
    seen = shadows(shadow_server, {"loaded": True, "version": challenger})
    assert {s["version"] for s in seen.values()} == {challenger}, seen
    assert len({s["tag"] for s in seen.values()}) == 1  # the same stored model everywhere
    text = httpx.get(f"{shadow_server.url}/model_info", timeout=10).text
    assert str(home) not in text and "sqlite" not in text  # no server paths (test_ops.py)
    info = json.loads(text)
    assert info["shadow"]["source"].endswith("@challenger at embedded")
    assert info["shadow"]["tag"].startswith(f"{SHADOW_BENTO_MODEL}:")
    assert info["shadow_metadata"]["version"] == challenger
    assert info["metadata"]["version"] == registry.production

    expected = scorer_probabilities(registry.model_dir, PASSENGERS)
    batch = httpx.post(f"{shadow_server.url}/predict_titanic_batch", json=PASSENGERS, timeout=30)
    records = records_of(shadow_server, home, batch, len(PASSENGERS))
    body = batch.json()["predictions"]
    assert all(set(p) == BODY_KEYS for p in body), body  # clients see Production only
    assert [p["model_version"] for p in body] == [registry.production] * len(PASSENGERS)
    assert [p["probability"] for p in body] == pytest.approx(expected)
    by_id = {r["prediction_id"]: r for r in records}
    for prediction, probability in zip(body, expected, strict=True):
        record = by_id[prediction["request_id"]]
        assert record["model_version"] == registry.production
        assert record[SHADOW_VERSION] == challenger
        assert record[SHADOW_PROBABILITY] == pytest.approx(probability)

    single = httpx.post(f"{shadow_server.url}/predict_titanic", json=PASSENGERS[1], timeout=30)
    assert set(single.json()) == BODY_KEYS
    (record,) = records_of(shadow_server, home, single, 1)
    assert record[SHADOW_VERSION] == challenger
    assert record[SHADOW_PROBABILITY] == pytest.approx(expected[1])


def test_the_shadow_follows_the_alias_on_reload_in_every_worker(shadow_server, registry, home):
    moved = registry.register()
    registry.challenge(moved)
    assert reload(shadow_server)["shadow"]["version"] == moved
    seen = shadows(shadow_server, {"loaded": True, "version": moved})
    assert {s["version"] for s in seen.values()} == {moved}, seen
    answer = httpx.post(f"{shadow_server.url}/predict_titanic", json=PASSENGERS[2], timeout=30)
    (record,) = records_of(shadow_server, home, answer, 1)
    assert record[SHADOW_VERSION] == moved


def test_a_broken_challenger_on_reload_is_dropped_and_production_unaffected(
    shadow_server, registry, home
):
    registry.challenge(registry.broken)
    answer = reload(shadow_server)  # 200: Production serves; the shadow is what failed
    assert answer["shadow"]["loaded"] is False
    assert "INVALID_PROTOBUF" in answer["shadow"]["dropped"]
    seen = shadows(shadow_server, {"loaded": False, "version": registry.broken})
    assert all(s["loaded"] is False for s in seen.values()), seen
    assert httpx.get(f"{shadow_server.url}/readyz", timeout=10).status_code == 200
    prediction = httpx.post(f"{shadow_server.url}/predict_titanic", json=PASSENGERS[0], timeout=30)
    (record,) = records_of(shadow_server, home, prediction, 1)
    assert prediction.json()["model_version"] == registry.production
    assert (record[SHADOW_VERSION], record[SHADOW_PROBABILITY]) == (None, None)


def test_productions_own_version_is_not_shadowed_nor_imported_again(shadow_server, registry, home):
    registry.challenge(registry.production)
    answer = reload(shadow_server)
    assert answer["shadow"]["loaded"] is False
    assert "not loaded twice" in answer["shadow"]["dropped"]
    assert registry.production not in shadow_copies(home)


def test_no_challenger_no_shadow_and_null_columns(shadow_server, registry, home):
    registry.challenge(None)
    answer = reload(shadow_server)
    assert answer["shadow"]["loaded"] is False and answer["shadow"]["dropped"] is None
    seen = shadows(shadow_server, {"loaded": False, "version": None, "dropped": None})
    assert all(s == answer["shadow"] for s in seen.values()), seen
    prediction = httpx.post(f"{shadow_server.url}/predict_titanic", json=PASSENGERS[1], timeout=30)
    (record,) = records_of(shadow_server, home, prediction, 1)
    assert (record[SHADOW_VERSION], record[SHADOW_PROBABILITY]) == (None, None)


def flipped_version(registry: Registry, home: Path) -> str:
    """A version whose graph swaps the two class probabilities: P(survived) becomes 1 - p, a
    deliberately worse model (AUC 1 - Production's)."""
    import onnx
    from onnx import helper

    folder = home / "flipped"
    (folder / "artifacts").mkdir(parents=True)
    for file in ("metadata.json", "reference.csv"):
        shutil.copy(registry.model_dir / file, folder / "artifacts" / file)
    graph = onnx.load(registry.model_dir / "model.onnx")
    for node in graph.graph.node:
        node.output[:] = ["unflipped" if o == "probability" else o for o in node.output]
    order = helper.make_tensor("swap", onnx.TensorProto.INT64, [2], [1, 0])
    graph.graph.initializer.append(order)
    graph.graph.node.append(
        helper.make_node("Gather", ["unflipped", "swap"], ["probability"], axis=1)
    )
    onnx.checker.check_model(graph)
    onnx.save(graph, folder / "artifacts" / "model.onnx")
    made = registry.client.create_model_version(
        registry.name, source=folder.as_uri(), run_id=registry.run_id
    )
    return str(made.version)


def test_a_worse_shadow_is_recognised_on_live_labels_and_its_promotion_refused(
    shadow_server, registry, home
):
    import subprocess
    import sys

    from loadtest.passengers import load
    from tests.harness import predict_then_report

    worse = flipped_version(registry, home)
    registry.challenge(worse)
    assert reload(shadow_server)["shadow"]["version"] == worse
    shadows(shadow_server, {"loaded": True, "version": worse})
    passengers = list(load(labelled=True))[:400]
    predict_then_report(shadow_server.url, passengers, ADMIN_TOKEN)

    env = server_env(
        MLFLOW_TRACKING_URI=f"sqlite:///{home / 'mlflow.db'}",
        LIFEBOAT_HOME=str(home),
        LIFEBOAT_MONITORING_DIR=str(home / "monitoring"),
        BENTOML_HOME=str(home / "bentoml"),
    )
    out = home / "shadow.json"
    judged = subprocess.run(
        [sys.executable, "-m", "drift", "shadow", "--version", worse, "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert judged.returncode == 4, judged.stdout + judged.stderr
    (comparison,) = json.loads(out.read_text())["comparisons"]
    assert comparison["verdict"] == "worse", comparison
    assert comparison["production_version"] == registry.production

    refused = subprocess.run(
        [sys.executable, "-m", "drift", "promote", worse, "--no-reload", "--no-build"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert refused.returncode == 4, refused.stdout + refused.stderr
    production = registry.client.get_model_version_by_alias(registry.name, "production")
    assert str(production.version) == registry.production
