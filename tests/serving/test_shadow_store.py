"""The shadow without a running server: the store's ``titanic_shadow`` (no registry), the
pointer every worker follows, the registry poll on the challenger alias, and
``python -m training import-model --alias``.

In process, with holders standing in for the workers of one server, as in
test_reload_store.py; the HTTP side is test_shadow.py.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pytest

from lifeboat import exits
from lifeboat.prediction import ModelRejected
from lifeboat.serving.pointer import read_pointer
from lifeboat.serving.reloading import open_holder
from lifeboat.serving.sources import Absent, Candidate, Production
from lifeboat.serving.store import SHADOW_BENTO_MODEL, open_store
from lifeboat.settings import Settings
from tests.harness import ROOT, store_with
from tests.serving.test_reload_store import add_model, two_workers

pytestmark = [pytest.mark.spark, pytest.mark.integration]

BROKEN = b"not an onnx graph"


def add_shadow(store, serving_home, version: str, onnx: bytes | None = None) -> str:
    return add_model(store, serving_home.model_path, version, onnx, name=SHADOW_BENTO_MODEL)


def test_without_a_registry_the_stores_shadow_is_scored_and_named_in_the_pointer(
    serving_home, tmp_path, caplog
):
    settings, store, first, second = two_workers(serving_home, tmp_path)
    assert first.shadow is None
    assert first.health().shadow.source == "BentoML store titanic_shadow:latest"
    assert first.health().shadow.dropped is None  # none there: not an error

    shadow = add_shadow(store, serving_home, "50")
    result = first.reload_latest()
    assert result.error is None and result.model_tag == serving_home.model_tag
    assert (result.shadow.loaded, result.shadow.tag, result.shadow.version) == (True, shadow, "50")
    assert read_pointer(settings.reload_marker).shadow_tag == shadow
    assert second.shadow is None  # until it looks at the pointer
    second.follow_pointer()
    assert second.shadow.tag == shadow and second.model.tag == serving_home.model_tag
    # A worker (re)started now scores the same shadow.
    assert open_holder(store.get("titanic:latest"), settings).shadow.tag == shadow
    assert first.info().shadow_metadata.version == "50"

    broken = add_shadow(store, serving_home, "51", onnx=BROKEN)
    caplog.clear()
    result = first.reload_latest()
    assert result.error is None and result.model_tag == serving_home.model_tag
    assert not result.shadow.loaded and "INVALID_PROTOBUF" in result.shadow.dropped
    assert [r.message for r in caplog.records if broken in r.message and "dropped" in r.message]
    assert first.shadow is None and first.model.tag == serving_home.model_tag
    second.follow_pointer()
    assert second.shadow is None and "INVALID_PROTOBUF" in second.health().shadow.dropped


def test_shadow_scoring_off_loads_no_shadow(serving_home, tmp_path):
    home = store_with(serving_home.model_path, tmp_path / "bentoml")
    add_shadow(open_store(home), serving_home, "60")
    settings = Settings(
        MLFLOW_TRACKING_URI="",
        LIFEBOAT_MODEL_STORE=str(home),
        LIFEBOAT_RELOAD_MARKER=str(tmp_path / "pointer.json"),
        LIFEBOAT_SHADOW_SCORING="false",
    )
    holder = open_holder(open_store(home).get("titanic:latest"), settings)
    assert holder.shadow is None and holder.health().shadow.source is None
    assert holder.reload_latest().shadow.loaded is False


def test_the_registry_poll_follows_the_challenger_alias(serving_home, tmp_path):
    """The aliases and imports are stand-ins (plain functions); the store, the models and the
    loading are real."""
    _, store, holder, _ = two_workers(serving_home, tmp_path)
    production = holder.model
    good, other = add_shadow(store, serving_home, "70"), add_shadow(store, serving_home, "71")
    bad = add_shadow(store, serving_home, "72", onnx=BROKEN)
    tags = {"70": good, "71": other, "72": bad}
    alias = {"challenger": None, "resolved": 0}

    def challenger_version() -> str:
        if alias["challenger"] is None:
            raise Absent("no titanic@challenger")
        return alias["challenger"]

    def resolve() -> Candidate:
        alias["resolved"] += 1
        return Candidate(tags[challenger_version()], version=challenger_version())

    holder.production = Production(
        lambda: Candidate(production.tag), "a stand-in registry", lambda: production.version
    )
    holder.challenger = Production(resolve, "a stand-in challenger", challenger_version)

    holder.follow_registry()  # no challenger: nothing to do
    assert holder.shadow is None and alias["resolved"] == 0

    alias["challenger"] = "70"
    holder.follow_registry()
    assert holder.shadow.tag == good and alias["resolved"] == 1
    holder.follow_registry()  # not moved
    assert alias["resolved"] == 1

    alias["challenger"] = "71"
    holder.follow_registry()
    assert holder.shadow.tag == other and holder.model.tag == production.tag

    alias["challenger"] = "72"  # does not load: dropped once, not retried at every poll
    holder.follow_registry()
    holder.follow_registry()
    assert holder.shadow is None and alias["resolved"] == 3
    assert "INVALID_PROTOBUF" in holder.health().shadow.dropped

    alias["challenger"] = production.version  # Production's own: neither resolved nor loaded
    holder.follow_registry()
    assert holder.shadow is None and alias["resolved"] == 3
    assert "not loaded twice" in holder.health().shadow.dropped

    alias["challenger"] = None  # the alias deleted: no shadow, no complaint
    holder.follow_registry()
    assert holder.shadow is None and holder.health().shadow.dropped is None


def test_an_unreachable_challenger_is_dropped_and_retried(serving_home, tmp_path):
    _, store, holder, _ = two_workers(serving_home, tmp_path)

    def unreachable() -> Candidate:
        raise ModelRejected("models:/titanic@challenger: ConnectionError: registry down")

    holder.challenger = Production(unreachable, "a stand-in challenger")
    result = holder.reload_latest()
    assert result.error is None and result.model_tag == serving_home.model_tag
    assert "registry down" in result.shadow.dropped and holder.shadow is None


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "training", "import-model", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_import_model_brings_the_challenger_in_as_the_shadow(serving_home, settings, tmp_path):
    from mlflow import MlflowClient

    with (
        sqlite3.connect(serving_home.path / "mlflow.db") as src,
        sqlite3.connect(tmp_path / "mlflow.db") as dst,
    ):
        src.backup(dst)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    name = settings.model_name
    production = client.get_model_version_by_alias(name, settings.production_alias)
    source = client.get_model_version_download_uri(name, production.version)
    challenger = client.create_model_version(name, source=source, run_id=production.run_id)
    client.set_registered_model_alias(name, settings.challenger_alias, challenger.version)
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "BENTOML_HOME": str(tmp_path / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "true",
    }

    done = _cli("--alias", settings.challenger_alias, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{SHADOW_BENTO_MODEL}:")
    store = open_store(tmp_path / "bentoml")
    (model,) = store.list(SHADOW_BENTO_MODEL)
    assert model.info.labels["registry_version"] == str(challenger.version)
    assert model.info.labels["stage"] == settings.challenger_alias
    assert not list((tmp_path / "bentoml" / "models").glob("titanic/*"))  # not Production

    refused = _cli("--alias", "staging", env=env)
    assert refused.returncode == exits.DATA_ERROR
    assert "staging" in refused.stderr + refused.stdout
