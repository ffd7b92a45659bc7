"""Training, the build step and serving against the stack's MLflow server (see conftest.py).

The tests share one quick training run and run in file order: the restart comes after the
imports, and the reload after the restart, so it serves artifacts stored before the restart.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import pytest
import requests

from tests.stack.conftest import ADMIN_TOKEN

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from tests.stack.conftest import MlflowServer

pytestmark = [pytest.mark.spark, pytest.mark.integration]

SERVED_FILES = ("model.onnx", "metadata.json", "reference.csv")
PASSENGER = {"Pclass": 1, "Sex": "female", "Age": 30, "SibSp": 0, "Parch": 0, "Fare": 80.0,
             "Embarked": "C"}  # fmt: skip


def client(server: MlflowServer) -> MlflowClient:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=server.uri)


def bucket_key(artifact_uri: str) -> str:
    """Where the server keeps ``mlflow-artifacts:/<path>``: under its --artifacts-destination."""
    assert artifact_uri.startswith("mlflow-artifacts:"), artifact_uri
    return "artifacts/" + urlparse(artifact_uri).path.lstrip("/")


def download(server: MlflowServer, artifact_uri: str, folder: Path) -> bytes:
    import mlflow

    path = mlflow.artifacts.download_artifacts(
        artifact_uri=artifact_uri, dst_path=str(folder), tracking_uri=server.uri
    )
    return Path(path).read_bytes()


def production_files(server: MlflowServer) -> str:
    """The artifact URI of the Production version's served files."""
    mlflow_client = client(server)
    version = mlflow_client.get_model_version_by_alias("titanic", "production")
    source = mlflow_client.get_model_version_download_uri("titanic", version.version)
    return f"{source.rstrip('/')}/artifacts"


def test_training_registers_and_promotes_titanic_on_the_server(stack_trained, mlflow_server):
    mlflow_client = client(mlflow_server)
    by_alias = mlflow_client.get_model_version_by_alias("titanic", "production")
    assert stack_trained.promoted, stack_trained.reason
    assert by_alias.version == stack_trained.version == "1"
    assert by_alias.current_stage == "Production"
    assert by_alias.tags["family"] == stack_trained.challenger
    parent = mlflow_client.get_run(stack_trained.run_id)
    assert parent.data.tags["registered_version"] == "1"
    assert parent.data.tags["promoted"] == "True"
    assert parent.data.params["quick"] == "True"
    assert parent.data.metrics["rows_used"] == 1309
    families = mlflow_client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert {run.data.params["family"] for run in families} == set(stack_trained.families)


def test_artifacts_go_through_the_server_into_the_bucket(
    stack_trained, mlflow_server, s3, tmp_path
):
    import boto3

    # The client logged everything without an S3 endpoint or keys of its own.
    assert boto3.Session().get_credentials() is None
    parent = client(mlflow_server).get_run(stack_trained.run_id)
    assert parent.info.artifact_uri.startswith("mlflow-artifacts:")

    files = production_files(mlflow_server)
    keys = s3.keys(bucket_key(files))
    for name in SERVED_FILES:
        key = f"{bucket_key(files)}/{name}"
        assert key in keys
        assert download(mlflow_server, f"{files}/{name}", tmp_path) == s3.read(key)
    assert any("/spark_pipeline/metadata/part-00000" in k for k in keys)

    version = client(mlflow_server).get_model_version("titanic", stack_trained.version)
    family_run = client(mlflow_server).get_run(version.run_id)
    family_keys = s3.keys(bucket_key(family_run.info.artifact_uri))
    for name in ("roc.png", "confusion_matrix.json", "cv_results.csv", "grid.json"):
        assert f"{bucket_key(family_run.info.artifact_uri)}/{name}" in family_keys


def test_the_build_step_imports_production_from_the_server(
    stack_trained, mlflow_server, s3, bento_store
):
    from lifeboat.serving.store import import_production

    model, _ = import_production(mlflow_server.uri, store=bento_store)
    labels = model.info.labels
    assert labels["registry_version"] == stack_trained.version
    assert labels["run_id"] == client(mlflow_server).get_model_version("titanic", "1").run_id
    folder = Path(model.path)
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["version"] == stack_trained.version
    assert metadata["tracking_uri"] == mlflow_server.uri
    onnx_key = f"{bucket_key(production_files(mlflow_server))}/model.onnx"
    assert (folder / "model.onnx").read_bytes() == s3.read(onnx_key)


def test_a_second_import_does_nothing(stack_trained, mlflow_server, bento_store):
    from lifeboat.serving.store import import_production

    first, _ = import_production(mlflow_server.uri, store=bento_store)
    again, created = import_production(mlflow_server.uri, store=bento_store)
    assert not created and again.tag == first.tag
    versions = [m.info.labels["registry_version"] for m in bento_store.list("titanic")]
    assert versions.count(stack_trained.version) == 1


def snapshot(server: MlflowServer) -> dict[str, Any]:
    """What a restart must keep: registry, alias, stages, runs with their data, artifact lists."""
    mlflow_client = client(server)
    versions = mlflow_client.search_model_versions("name = 'titanic'")
    experiment = mlflow_client.get_experiment_by_name("titanic")
    runs = mlflow_client.search_runs([experiment.experiment_id], max_results=100)
    return {
        "versions": sorted((v.version, v.current_stage, v.run_id, v.source) for v in versions),
        "alias": mlflow_client.get_model_version_by_alias("titanic", "production").version,
        "runs": {
            run.info.run_id: (run.data.params, run.data.metrics, run.data.tags, run.info.status)
            for run in runs
        },
        "artifacts": {
            run.info.run_id: sorted(f.path for f in mlflow_client.list_artifacts(run.info.run_id))
            for run in runs
        },
    }


def test_restarting_the_server_loses_nothing(stack_trained, mlflow_server, tmp_path):
    import mlflow
    import pandas as pd

    before = snapshot(mlflow_server)
    onnx = f"{production_files(mlflow_server)}/model.onnx"
    onnx_before = hashlib.sha256(download(mlflow_server, onnx, tmp_path / "before")).hexdigest()
    old_pid = mlflow_server.pid

    mlflow_server.restart()

    assert mlflow_server.pid != old_pid
    assert snapshot(mlflow_server) == before
    assert len(before["runs"]) == 1 + len(stack_trained.families)
    assert before["alias"] == stack_trained.version
    onnx_after = download(mlflow_server, onnx, tmp_path / "after")
    assert hashlib.sha256(onnx_after).hexdigest() == onnx_before
    # The registered pyfunc still loads through the proxy and scores.
    model = mlflow.pyfunc.load_model("models:/titanic@production")
    scored = model.predict(pd.DataFrame([PASSENGER]))
    assert 0.5 < float(scored["probability"].iloc[0]) <= 1.0


def serving_everywhere(url: str, version: str, timeout: float = 30.0) -> bool:
    """Whether /health names ``version`` five times in a row: the other workers follow the
    one that took ``/reload`` within a poll interval."""
    deadline, agreeing = time.monotonic() + timeout, 0
    while agreeing < 5 and time.monotonic() < deadline:
        answer = requests.get(f"{url}/health", timeout=10).json()["model_version"]
        agreeing = agreeing + 1 if answer == version else 0
        time.sleep(0.1)
    return agreeing == 5


def test_reload_serves_the_new_production_version_from_the_server(
    stack_trained, mlflow_server, bento_store, stack_served
):
    """The running service is told to reload after the build step imported the new version.

    ``/reload`` itself reads only the BentoML store, so the import is the caller's job, as in
    ``drift.deploy.ship``.
    """
    import mlflow

    from lifeboat.serving.store import import_production
    from training import registry

    assert requests.get(f"{stack_served}/health", timeout=10).json()["model_version"] == "1"
    mlflow_client = client(mlflow_server)
    current = mlflow_client.get_model_version_by_alias("titanic", "production")
    # A new version of the same model: what the service serves must follow the registry.
    new = mlflow.register_model(current.source, "titanic", tags=current.tags)
    registry.promote(mlflow_client, "titanic", "production", new.version)

    model, created = import_production(mlflow_server.uri, store=bento_store)
    assert created and model.info.labels["registry_version"] == new.version
    reload = requests.post(
        f"{stack_served}/reload", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=60
    )
    assert reload.status_code == 200, reload.text
    assert reload.json()["model_version"] == new.version
    assert serving_everywhere(stack_served, new.version)
    answer = requests.post(f"{stack_served}/predict_titanic", json=PASSENGER, timeout=30).json()
    assert answer["model_version"] == new.version and answer["survived"] == 1
    assert mlflow_client.get_model_version("titanic", current.version).current_stage == "Archived"
