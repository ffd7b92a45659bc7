"""The served model's folder: training writes it, the import completes its metadata, serving and
drift read it back (``lifeboat.artifact``)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from drift.reference import BadReference, read_frame
from lifeboat.artifact import (
    METADATA_FILE,
    REFERENCE_FILE,
    ModelMetadata,
    has_served_files,
    write_model_folder,
)
from lifeboat.passenger import EXAMPLE, FEATURES, LABEL
from lifeboat.prediction import ModelRejected, load_model

TRAINED = ModelMetadata(
    run_id="r1",
    dataset_sha256="a" * 64,
    heldout_auc=0.87,
    trained_at="2026-11-25T00:00:00+00:00",
    family="rf",
    feature_ranges={"Fare": (0.0, 512.3)},
    categories={"Sex": ["female", "male"]},
)


def reference() -> pd.DataFrame:
    return pd.DataFrame([{**{n: EXAMPLE.get(n) for n in FEATURES}, LABEL: 1}] * 3)


def test_a_trained_folder_round_trips_and_the_import_adds_the_registry(tmp_path):
    write_model_folder(tmp_path, b"not onnx", TRAINED, reference())
    assert has_served_files(tmp_path)
    assert ModelMetadata.from_folder(tmp_path) == TRAINED
    assert ModelMetadata.from_folder(tmp_path).version is None  # training knows no version

    imported = TRAINED.imported(7, "titanic", "production", "http://ops:s3cret@mlflow:5000")
    imported.to_file(tmp_path / METADATA_FILE)
    stored = json.loads((tmp_path / METADATA_FILE).read_text())
    # The file keeps the registry (drift tells registries apart by it), never its credentials.
    assert stored["tracking_uri"] == "http://mlflow:5000" and stored["version"] == "7"
    assert ModelMetadata.from_folder(tmp_path) == imported
    assert read_frame(tmp_path).columns.tolist() == [*FEATURES, LABEL]


def test_a_reference_without_a_feature_is_refused(tmp_path):
    reference().drop(columns=["Fare"]).to_csv(tmp_path / REFERENCE_FILE, index=False)
    with pytest.raises(BadReference, match="Fare"):
        read_frame(tmp_path)


def test_serving_refuses_a_folder_that_was_never_imported(tmp_path):
    write_model_folder(tmp_path, b"not onnx", TRAINED, reference())
    with pytest.raises(ModelRejected, match="no registry version"):
        load_model(tmp_path, "titanic:x")
    TRAINED.imported("3", "titanic", "production", "sqlite:///m.db").to_file(
        tmp_path / METADATA_FILE
    )
    with pytest.raises(ModelRejected, match="titanic:x: .*(ONNX|onnx|Protobuf)"):
        load_model(tmp_path, "titanic:x")  # imported, so on to the graph, which is garbage
