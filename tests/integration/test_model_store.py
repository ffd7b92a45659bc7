"""The build step's import: MLflow Production → BentoML store, once per registry version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lifeboat.scoring import OnnxScorer
from lifeboat.serving.store import NoProductionModel, import_production

pytestmark = [pytest.mark.spark, pytest.mark.integration]


def test_import_carries_model_metadata_and_reference(trained, settings):
    model, _ = import_production(settings.tracking_uri)
    folder = Path(model.path)
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["version"] == model.info.labels["registry_version"]
    assert meta["run_id"] == model.info.labels["run_id"]
    for key in ("dataset_sha256", "heldout_auc", "trained_at", "feature_ranges", "categories"):
        assert key in meta
    assert (folder / "reference.csv").read_text().startswith("Pclass,Sex,Age")
    scorer = OnnxScorer.from_path(folder / "model.onnx")
    assert (
        0.0
        <= scorer.predict_proba(
            {
                "Pclass": [1],
                "Sex": ["female"],
                "Age": [30.0],
                "SibSp": [0],
                "Parch": [0],
                "Fare": [80.0],
                "Embarked": ["C"],
            }
        )[0]
        <= 1.0
    )


def test_importing_the_same_version_twice_creates_one_model(trained, settings):
    import bentoml

    first, _ = import_production(settings.tracking_uri)
    again, created = import_production(settings.tracking_uri)
    assert not created and again.tag == first.tag
    versions = [m.info.labels["registry_version"] for m in bentoml.models.list("titanic")]
    assert len(versions) == len(set(versions))


def test_no_production_version_says_how_to_train(trained, settings):
    with pytest.raises(NoProductionModel, match="make train"):
        import_production(settings.tracking_uri, registered_name="nobody")
