"""What the service publishes about the registry its model came from: no paths, no secrets."""

from __future__ import annotations

import pytest

from lifeboat.artifact import LOCAL_REGISTRY, ModelMetadata, public_uri


@pytest.mark.parametrize(
    ("uri", "published"),
    [
        ("sqlite:////srv/lifeboat/mlflow.db", LOCAL_REGISTRY),
        ("sqlite:///mlflow.db", LOCAL_REGISTRY),
        ("file:///srv/lifeboat/mlruns", LOCAL_REGISTRY),
        ("/srv/lifeboat/mlruns", LOCAL_REGISTRY),
        ("./mlruns", LOCAL_REGISTRY),
        ("http://mlflow:5000", "http://mlflow:5000"),
        ("https://ops:s3cret@mlflow.example.org/tracking/", "https://mlflow.example.org/tracking/"),
        ("http://token@[::1]:5000?key=s3cret#x", "http://[::1]:5000"),
        ("postgresql://mlflow:s3cret@db:5432/mlflow", "postgresql://db:5432/mlflow"),
    ],
)
def test_public_uri(uri, published):
    assert public_uri(uri) == published


def test_model_info_shows_the_public_uri_and_keeps_the_real_one():
    metadata = ModelMetadata(
        version="3",
        run_id="r",
        dataset_sha256="0" * 64,
        heldout_auc=0.8,
        trained_at="2026-11-25T00:00:00+00:00",
        tracking_uri="sqlite:////srv/lifeboat/mlflow.db",
    )
    assert metadata.tracking_uri == "sqlite:////srv/lifeboat/mlflow.db"
    assert metadata.model_dump(mode="json")["tracking_uri"] == LOCAL_REGISTRY
    assert "/srv" not in metadata.model_dump_json()
