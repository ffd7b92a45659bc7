"""Bring the MLflow Production model into the BentoML model store.

Used by the build step (``python -m training import-model``) and, when ``MLFLOW_TRACKING_URI``
is set, by the service's ``POST /reload``. MLflow is imported inside the function only: the
service imports this module without paying for MLflow unless it really pulls from a registry.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import bentoml

from lifeboat.artifact import (
    BENTO_MODEL,
    CARD_ARTIFACTS,
    CARD_FILES,
    METADATA_FILE,
    MODEL_FILE,
    REFERENCE_FILE,
    SERVED_FILES,
    ModelMetadata,
)
from lifeboat.settings import proxy_artifact_downloads

log = logging.getLogger(__name__)

# The challenger's copies in the store: a model name of its own, so that importing one never
# makes it titanic:latest, which is Production without a registry and what a Bento is built with.
SHADOW_BENTO_MODEL = f"{BENTO_MODEL}_shadow"

# What MLflow answers for an unknown model (RESOURCE_DOES_NOT_EXIST) or alias (INVALID_PARAMETER_
# VALUE, from the SQL store and the REST server alike).
NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


class NoProductionModel(LookupError):
    """The registry has no version behind the production alias."""


def find_imported(
    version: str, run_id: str | None, name: str = BENTO_MODEL, store: Any | None = None
) -> Any | None:
    """The store's model already imported from this registry version and run, if any."""
    from bentoml.exceptions import NotFound

    try:
        models = bentoml.models.list(name, **using(store))
    except NotFound:  # no model of that name yet
        return None
    for model in models:
        labels = model.info.labels
        if labels.get("registry_version") == version and labels.get("run_id") == run_id:
            return model
    return None


def import_production(
    tracking_uri: str,
    registered_name: str = "titanic",
    alias: str = "production",
    bento_name: str = BENTO_MODEL,
    store: Any | None = None,
) -> tuple[Any, bool]:
    """Import ``models:/<registered_name>@<alias>`` into the BentoML store.

    Importing the same registry version twice returns the model imported the first time.
    ``store`` (a BentoML ``ModelStore``) replaces the current one (``BENTOML_HOME``).

    Returns:
        The BentoML model and whether it was created by this call.

    Raises:
        NoProductionModel: No version carries the alias (train one first).
    """
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    proxy_artifact_downloads()
    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        version = client.get_model_version_by_alias(registered_name, alias)
    except MlflowException as exc:
        # Only "no such model or alias" means "train one"; an unreachable or failing registry
        # must surface as itself, not as advice to train.
        if exc.error_code not in NOT_FOUND:
            raise
        raise NoProductionModel(
            f"no {registered_name}@{alias} in the MLflow registry at {tracking_uri}. "
            "Train and promote one first: `make train` (or `python -m training train`)."
        ) from exc
    existing = find_imported(str(version.version), version.run_id, bento_name, store)
    if existing is not None:
        log.info(
            "%s v%s is already in the BentoML store as %s",
            registered_name,
            version.version,
            existing.tag,
        )
        return existing, False

    # The version's own artifact location: resolving "models:/..." inside download_artifacts
    # would consult the global registry URI, not the tracking URI given here.
    source = client.get_model_version_download_uri(registered_name, version.version)
    with tempfile.TemporaryDirectory() as tmp:
        files = {
            name: Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=f"{source.rstrip('/')}/artifacts/{name}",
                    dst_path=tmp,
                    tracking_uri=tracking_uri,
                )
            )
            for name in SERVED_FILES
        }
        card = _download_card(client, version.run_id, Path(tmp) / "card", tracking_uri)
        trained = ModelMetadata.model_validate_json(files[METADATA_FILE].read_bytes())
        metadata = trained.imported(str(version.version), registered_name, alias, tracking_uri)
        labels = {
            "registry_version": str(version.version),
            "run_id": version.run_id,
            "family": metadata.family or "",
            "stage": alias,
        }
        summary = metadata.model_dump(
            include={"version", "run_id", "dataset_sha256", "heldout_auc", "trained_at", "family"},
            exclude_none=True,
        )
        with bentoml.models.create(
            bento_name, labels=labels, metadata=summary, **using(store)
        ) as model:
            target = Path(model.path)
            shutil.copy(files[MODEL_FILE], target / MODEL_FILE)
            shutil.copy(files[REFERENCE_FILE], target / REFERENCE_FILE)
            metadata.to_file(target / METADATA_FILE)
            for path in card:
                shutil.copy(path, target / path.name)
    log.info(
        "imported %s v%s (run %s) into the BentoML store as %s",
        registered_name,
        version.version,
        version.run_id,
        model.tag,
    )
    # The model as the store holds it: the object create() yielded points at its build folder.
    return bentoml.models.get(model.tag, **using(store)), True


def _download_card(client: Any, run_id: str | None, dst: Path, tracking_uri: str) -> list[Path]:
    """The model card files the training run logged, downloaded; none for older versions."""
    import mlflow

    if run_id is None:  # a version registered from a path: no run, so no card
        return []

    logged = {Path(a.path).name for a in client.list_artifacts(run_id, CARD_ARTIFACTS)}
    if not logged:
        log.warning("run %s has no model card: the model is imported without one", run_id)
        return []
    folder = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path=CARD_ARTIFACTS, dst_path=str(dst), tracking_uri=tracking_uri
    )
    return [Path(folder) / name for name in CARD_FILES if name in logged]


def using(store: Any | None) -> dict[str, Any]:
    """Keywords for ``bentoml.models`` calls that should use ``store`` (None: the default)."""
    # BentoML's public calls take the store only through this private keyword.
    return {} if store is None else {"_model_store": store}


def open_store(folder: Path | None) -> Any:
    """The BentoML model store in ``folder`` (``LIFEBOAT_MODEL_STORE``), else the process's own
    (``BENTOML_HOME``)."""
    # No public constructor for a store other than the configured one.
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models import ModelStore

    if folder is None:
        return BentoMLContainer.model_store.get()
    return ModelStore(folder / "models")
