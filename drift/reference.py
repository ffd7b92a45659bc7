"""The reference sample of the model version that served the logs, and that model's metadata.

First from the BentoML store (the model ``lifeboat.serving.store.import_production`` brought in
carries the served files of ``lifeboat.artifact``), else from the MLflow registry version's
artifacts. A version found in neither is an error: comparing with another model's training
rows would report drift that is not there, or hide drift that is.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import ValidationError

from drift.config import DriftSettings
from lifeboat.artifact import (
    BENTO_MODEL,
    METADATA_FILE,
    REFERENCE_FILE,
    ModelMetadata,
    has_served_files,
    without_credentials,
)
from lifeboat.passenger import FEATURES, LABEL
from lifeboat.serving.store import using

log = logging.getLogger(__name__)


class UnknownModelVersion(LookupError):
    """Neither the BentoML store nor the MLflow registry knows the logged model version."""


@dataclass(frozen=True)
class Reference:
    """A model version's training rows (features and label) and metadata."""

    version: str
    frame: pd.DataFrame
    metadata: ModelMetadata
    source: str  # "bentoml:<tag>" or "mlflow:models:/<name>/<version>"


class BadReference(ValueError):
    """A reference sample that lacks the passenger columns."""


def read_frame(folder: Path) -> pd.DataFrame:
    """A model folder's reference sample (``lifeboat.artifact``): its features and label, in
    schema order.

    Raises:
        BadReference: A feature or the label is missing.
    """
    frame = pd.read_csv(folder / REFERENCE_FILE)
    missing = [c for c in (*FEATURES, LABEL) if c not in frame.columns]
    if missing:
        raise BadReference(f"{REFERENCE_FILE} lacks columns {missing}")
    return frame[[*FEATURES, LABEL]]


def read_reference(folder: Path, version: str, source: str) -> Reference:
    """A reference from a model folder (``lifeboat.artifact``); its metadata gets ``version``
    when it has none (a registry version's own files, not imported)."""
    try:
        frame = read_frame(folder)
        metadata = ModelMetadata.from_folder(folder)
    except (BadReference, ValidationError) as exc:
        raise UnknownModelVersion(f"{source}: {exc}") from exc
    if metadata.version is None:
        metadata = metadata.model_copy(update={"version": version})
    return Reference(version, frame, metadata, source)


def from_store(
    version: str, tracking_uri: str, store: Any | None = None, name: str = BENTO_MODEL
) -> Reference | None:
    """The newest store model imported from registry ``version``, preferring one imported from
    this tracking URI (version numbers repeat across registries).

    Args:
        store: A BentoML ``ModelStore``; None for the configured one (``BENTOML_HOME``).
    """
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        models = bentoml.models.list(name, **using(store))
    except NotFound:
        return None
    matches = []
    for model in models:
        path = Path(model.path)
        if model.info.labels.get("registry_version") != version:
            continue
        if not has_served_files(path):
            continue
        same_registry = ModelMetadata.from_folder(path).tracking_uri
        matches.append(
            (same_registry == without_credentials(tracking_uri), model.creation_time, model)
        )
    if not matches:
        return None
    *_, model = max(matches, key=lambda m: (m[0], m[1]))
    return read_reference(Path(model.path), version, f"bentoml:{model.tag}")


def from_mlflow(version: str, tracking_uri: str, registered_name: str) -> Reference | None:
    """The registry version's own ``reference.csv`` and ``metadata.json``, if it exists."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        client.get_model_version(registered_name, version)
        source = client.get_model_version_download_uri(registered_name, version)
    except MlflowException:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        for file in (REFERENCE_FILE, METADATA_FILE):
            try:
                mlflow.artifacts.download_artifacts(
                    artifact_uri=f"{source.rstrip('/')}/artifacts/{file}",
                    dst_path=tmp,
                    tracking_uri=tracking_uri,
                )
            except (MlflowException, OSError) as exc:  # registered, but its files are gone
                raise UnknownModelVersion(
                    f"{registered_name} v{version}: cannot download {file}: {exc}"
                ) from exc
        reference = read_reference(
            Path(tmp), version, f"mlflow:models:/{registered_name}/{version}"
        )
    return reference


def load_reference(version: str, settings: DriftSettings) -> Reference:
    """The reference of ``version``: BentoML store first, MLflow registry second.

    Raises:
        UnknownModelVersion: Neither has it.
    """
    found = from_store(version, settings.tracking_uri, settings.bento_store()) or from_mlflow(
        version, settings.tracking_uri, settings.model_name
    )
    if found is None:
        raise UnknownModelVersion(
            f"model version {version!r} is in neither the BentoML store nor the MLflow registry "
            f"{settings.model_name!r} at {without_credentials(settings.tracking_uri)}"
        )
    log.info("reference for v%s: %s (%d rows)", version, found.source, len(found.frame))
    return found
