"""Reload without MLflow: the BentoML store's latest, agreed on through the marker file.

In process, with two holders standing in for two workers of one server; the HTTP side of the
same machinery is in test_reload.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import bentoml
import pytest

from lifeboat.reloading import open_holder, open_store
from lifeboat.settings import Settings
from tests.serving.harness import store_with

pytestmark = [pytest.mark.spark, pytest.mark.integration]


def add_model(store, source: Path, version: str, onnx: bytes | None = None) -> str:
    """A new titanic model in ``store``: ``source``'s files, another version, maybe a bad graph."""
    metadata = json.loads((source / "metadata.json").read_text())
    with bentoml.models.create(
        "titanic", labels={"registry_version": version}, _model_store=store
    ) as model:
        target = Path(model.path)
        shutil.copy(source / "reference.csv", target / "reference.csv")
        (target / "model.onnx").write_bytes(onnx or (source / "model.onnx").read_bytes())
        (target / "metadata.json").write_text(json.dumps({**metadata, "version": version}))
    return str(model.tag)


def test_reload_serves_the_stores_latest_and_the_marker_carries_it(serving_home, tmp_path):
    settings = Settings(
        MLFLOW_TRACKING_URI="",
        LIFEBOAT_MODEL_STORE=str(store_with(serving_home.model_path, tmp_path / "bentoml")),
        LIFEBOAT_RELOAD_MARKER=str(tmp_path / "marker.json"),
    )
    store = open_store(settings)
    first, second = (open_holder(store.get("titanic:latest"), settings) for _ in range(2))
    assert first.source == "BentoML store titanic:latest"
    assert first.model.tag == serving_home.model_tag

    new = add_model(store, serving_home.model_path, "99")
    result = first.reload_latest()
    assert (result.reloaded, result.model_tag, result.model_version) == (True, new, "99")
    assert second.model.tag == serving_home.model_tag  # until it looks at the marker
    second.follow_marker()
    assert second.model.tag == new and second.reload_error is None

    add_model(store, serving_home.model_path, "100", onnx=b"not an onnx graph")
    refused = first.reload_latest()
    assert refused.error and not refused.reloaded and refused.model_tag == new
    # A worker started now (circus restarting one, say) joins the marker's model, not the
    # store's broken latest.
    assert open_holder(store.get("titanic:latest"), settings).model.tag == new
