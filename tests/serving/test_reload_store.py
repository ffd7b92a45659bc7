"""Reload without MLflow: the BentoML store's latest, agreed on through the pointer file.

In process, with two holders standing in for two workers of one server; the HTTP side of the
same machinery is in test_reload.py.
"""

from __future__ import annotations

import json
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any

import bentoml
import pytest

from lifeboat.prediction import ModelRejected
from lifeboat.serving.pointer import marker_path, read_pointer
from lifeboat.serving.reloading import (
    ModelHolder,
    open_holder,
    startup_model,
    swap_in_candidate,
)
from lifeboat.serving.sources import Candidate, Production, load_stored
from lifeboat.serving.store import open_store
from lifeboat.settings import Settings
from tests.harness import store_with

pytestmark = [pytest.mark.spark, pytest.mark.integration]


def add_model(
    store, source: Path, version: str, onnx: bytes | None = None, name: str = "titanic"
) -> str:
    """A new model ``name`` in ``store``: ``source``'s files, another version, maybe a bad
    graph."""
    metadata = json.loads((source / "metadata.json").read_text())
    with bentoml.models.create(
        name, labels={"registry_version": version}, _model_store=store
    ) as model:
        target = Path(model.path)
        shutil.copy(source / "reference.csv", target / "reference.csv")
        (target / "model.onnx").write_bytes(onnx or (source / "model.onnx").read_bytes())
        (target / "metadata.json").write_text(json.dumps({**metadata, "version": version}))
    return str(model.tag)


def two_workers(serving_home, tmp_path) -> tuple[Settings, Any, ModelHolder, ModelHolder]:
    """Settings of a server without MLflow, its store, and two workers' holders."""
    settings = Settings(
        MLFLOW_TRACKING_URI="",
        LIFEBOAT_MODEL_STORE=str(store_with(serving_home.model_path, tmp_path / "bentoml")),
        LIFEBOAT_RELOAD_MARKER=str(tmp_path / "pointer.json"),
    )
    store = open_store(settings.model_store)
    first, second = (open_holder(store.get("titanic:latest"), settings) for _ in range(2))
    return settings, store, first, second


def test_reload_serves_the_stores_latest_and_the_pointer_carries_it(serving_home, tmp_path):
    settings, store, first, second = two_workers(serving_home, tmp_path)
    assert first.source == "BentoML store titanic:latest"
    assert first.model.tag == serving_home.model_tag

    new = add_model(store, serving_home.model_path, "99")
    result = first.reload_latest()
    assert (result.reloaded, result.model_tag, result.model_version) == (True, new, "99")
    assert second.model.tag == serving_home.model_tag  # until it looks at the marker
    second.follow_pointer()
    assert second.model.tag == new and second.reload_error is None

    add_model(store, serving_home.model_path, "100", onnx=b"not an onnx graph")
    refused = first.reload_latest()
    assert refused.error and not refused.reloaded and refused.model_tag == new
    # A worker started now (circus restarting one, say) joins the pointer's model, not the
    # store's broken latest.
    assert open_holder(store.get("titanic:latest"), settings).model.tag == new


@pytest.mark.parametrize("garbage", [b"[]", b"{}", b"not json", b'{"tag": 3}', b""])
def test_a_poisoned_pointer_keeps_the_model_shows_in_health_and_the_follower_goes_on(
    serving_home, tmp_path, garbage
):
    settings, store, first, second = two_workers(serving_home, tmp_path)
    pointer = settings.reload_marker
    pointer.write_bytes(garbage)
    second.follow_pointer()  # must not raise: the follower task would die silently
    assert second.model.tag == serving_home.model_tag
    assert second.health().reload_error and "pointer" in second.health().reload_error
    # A worker (re)started while the pointer is bad still comes up, on a validated model.
    assert open_holder(store.get("titanic:latest"), settings).model.tag == serving_home.model_tag

    # The next good reload reaches the worker that saw the garbage: its follower went on.
    new = add_model(store, serving_home.model_path, "7")
    assert first.reload_latest().model_tag == new
    second.follow_pointer()
    assert second.model.tag == new and second.reload_error is None


def test_the_default_pointer_lives_in_a_private_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    path = marker_path(Settings(LIFEBOAT_RELOAD_MARKER=""))
    assert path.parent == tmp_path / "run" / "lifeboat"
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert not str(path).startswith(tempfile.gettempdir() + "/lifeboat-reload")

    # A folder someone else could write is refused, never used.
    path.parent.chmod(0o777)
    with pytest.raises(PermissionError, match="mode 0700"):
        marker_path(Settings(LIFEBOAT_RELOAD_MARKER=""))


def test_a_rejected_imported_candidate_is_deleted_from_the_store(serving_home, tmp_path):
    store = open_store(store_with(serving_home.model_path, tmp_path / "b"))
    good = str(store.get("titanic:latest").tag)
    bad = add_model(store, serving_home.model_path, "8", onnx=b"garbage")

    with pytest.raises(ModelRejected):
        swap_in_candidate(
            lambda: Candidate(bad, imported=True), store, lambda tag: load_stored(store, tag)
        )
    # So the store's latest is the last good model again, for any server started later.
    assert str(store.get("titanic:latest").tag) == good
    with pytest.raises(bentoml.exceptions.NotFound):
        store.get(bad)


def test_the_registry_poll_follows_the_alias_and_skips_only_versions_that_do_not_serve(
    serving_home, tmp_path
):
    """The alias, its import and the registry's reachability are stand-ins (plain functions);
    the store, the models and the loading are real."""
    settings, store, holder, _ = two_workers(serving_home, tmp_path)
    good = add_model(store, serving_home.model_path, "5")
    bad = add_model(store, serving_home.model_path, "6", onnx=b"garbage")
    registry = {"alias": "5", "up": True, "resolved": 0}

    def alias_version() -> str:
        if not registry["up"]:
            raise ConnectionError("registry down")
        return registry["alias"]

    def resolve() -> Candidate:
        registry["resolved"] += 1
        if registry["alias"] == "7":  # found by the alias, but its download fails
            raise ModelRejected("artifact store unreachable")
        return Candidate(good if registry["alias"] == "5" else bad)

    holder.production = Production(resolve, "a stand-in registry", alias_version)
    holder.follow_registry()
    assert holder.model.tag == good and registry["resolved"] == 1
    holder.follow_registry()  # the alias has not moved: nothing to do
    assert registry["resolved"] == 1

    registry["up"] = False
    holder.follow_registry()
    assert holder.model.tag == good and "registry down" in holder.health().registry_error

    registry.update(up=True, alias="6")  # a version that does not load
    holder.follow_registry()
    holder.follow_registry()
    assert holder.model.tag == good and registry["resolved"] == 2  # tried once, not again
    assert holder.health().registry_error is None

    registry["alias"] = "7"  # a failure to fetch is not a verdict on the model: retried
    holder.follow_registry()
    holder.follow_registry()
    assert holder.model.tag == good and registry["resolved"] == 4


def test_a_worker_starts_on_production_else_loudly_on_the_bentos_own_model(
    serving_home, tmp_path, caplog
):
    settings, store, _, _ = two_workers(serving_home, tmp_path)
    baked = store.get("titanic:latest")
    promoted = add_model(store, serving_home.model_path, "12")
    pointer = tmp_path / "fresh-server.json"

    def unreachable() -> Candidate:
        raise ModelRejected("models:/titanic@production: ConnectionError: registry down")

    down = Production(unreachable, "a stand-in registry", lambda: "12")
    assert startup_model(baked, pointer, store, down).model.tag == str(baked.tag)
    assert "serving the Bento's own model" in caplog.text and not pointer.exists()

    up = Production(lambda: Candidate(promoted), "a stand-in registry", lambda: "12")
    assert startup_model(baked, pointer, store, up).model.tag == promoted
    assert read_pointer(pointer).tag == promoted  # the other workers start on it too
