"""MLflow plumbing: tracking set-up, logging the served model, registration and promotion."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.types import ColSpec, Schema
from sklearn.metrics import roc_auc_score

from lifeboat.artifact import (
    METADATA_FILE,
    MODEL_FILE,
    REFERENCE_FILE,
    ModelMetadata,
    write_model_folder,
)
from lifeboat.passenger import COLUMNS, EXAMPLE, FEATURES, LABEL, Column
from lifeboat.settings import PROJECT_ROOT, Settings
from training import runs, slices
from training.runs import exclusive
from training.spark import shared_folder, written

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel

    from training.data import Loaded

log = logging.getLogger(__name__)

SERVED_MODEL_CODE = Path(__file__).with_name("served_model.py")
# What the pyfunc needs at load time, pinned to what trained it (no 30 s requirement inference).
# The passenger schema's kinds as MLflow column types.
MLFLOW_TYPES = {"int": "long", "float": "double", "category": "string", "text": "string"}
PYFUNC_PACKAGES = ("mlflow", "onnxruntime", "numpy", "pandas", "pydantic", "pydantic-settings")


def configure(settings: Settings, experiment: str | None = None) -> MlflowClient:
    """Point MLflow at the configured store and make sure the experiment exists."""
    mlflow.set_tracking_uri(settings.tracking_uri)
    client = MlflowClient()
    mlflow.set_experiment(
        experiment_id=runs.experiment_id(client, settings, experiment or settings.experiment)
    )
    return client


def pip_requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in PYFUNC_PACKAGES]


def schema_of(columns: Iterable[Column]) -> Schema:
    """An MLflow schema of passenger columns (``lifeboat.passenger``): types and optionality."""
    return Schema([ColSpec(MLFLOW_TYPES[c.kind], c.name, required=c.required) for c in columns])


def log_dataset(loaded: Loaded, context: str) -> None:
    """Record a training CSV on the active run (``mlflow.log_input``): its file, its schema and
    its fingerprint (the dataset's digest is the sha256's first 32 hex digits; the whole
    hash is the run's ``dataset_sha256`` tag)."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    with warnings.catch_warnings():
        # MLflow registers its local-file source twice ("" and "file:"); either one is right.
        warnings.simplefilter("ignore", UserWarning)
        source = resolve_dataset_source(loaded.path.resolve().as_uri())
    columns = [c for c in COLUMNS if c.role in ("feature", "label")]
    dataset = MetaDataset(
        source,
        name=loaded.path.name,
        digest=loaded.sha256[:32],
        schema=schema_of(columns),
    )
    mlflow.log_input(dataset, context=context, tags={"rows_used": str(loaded.valid_rows)})


def log_served_model(
    onnx_bytes: bytes,
    pipeline: PipelineModel,
    metadata: ModelMetadata,
    reference: pd.DataFrame,
) -> str:
    """Log the ONNX pyfunc with the Spark pipeline, metadata and reference sample; return its URI.

    Runs inside the active MLflow run. Its signature comes from the pyfunc's type hint
    (``training/served_model.py``: a list of :data:`lifeboat.passenger.ModelInput`), its input
    example is :data:`lifeboat.passenger.EXAMPLE`.
    """
    # Spark's executors write the pipeline's files: on a cluster, into a folder the driver sees
    # only when it is shared.
    with shared_folder("served-model-") as folder:
        write_model_folder(folder, onnx_bytes, metadata, reference)
        pipeline.write().overwrite().save(str(folder / "spark_pipeline"))
        written(folder / "spark_pipeline", "metadata/part-*")  # never log a hollow save
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(SERVED_MODEL_CODE),
            artifacts={
                "onnx": str(folder / MODEL_FILE),
                "metadata": str(folder / METADATA_FILE),
                "reference": str(folder / REFERENCE_FILE),
                "spark_pipeline": str(folder / "spark_pipeline"),
            },
            code_paths=[str(PROJECT_ROOT / "lifeboat")],
            input_example=[EXAMPLE],
            pip_requirements=pip_requirements(),
        )
    return info.model_uri


def register(
    client: MlflowClient, name: str, model_uri: str, run_id: str, tags: dict[str, str]
) -> ModelVersion:
    """Register a logged model as a new version of ``name`` and tag it."""
    version = mlflow.register_model(model_uri, name, tags=tags)
    log.info("registered %s version %s (run %s)", name, version.version, run_id)
    return client.get_model_version(name, version.version)


def production_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version the production alias points at, or None before the first promotion."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def production_number(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version number the alias points at, as a string, or None."""
    current = production_version(client, name, alias)
    return None if current is None else str(current.version)


class ProductionMoved(RuntimeError):
    """The alias is no longer where this writer saw it, so it was left as it is."""

    def __init__(self, alias: str, expected: str | None, found: str | None) -> None:
        self.expected, self.found = expected, found
        was, now = (f"v{v}" if v else "no version" for v in (expected, found))
        super().__init__(f"{alias} moved from {was} to {now} during this run; left as it is")


@contextlib.contextmanager
def unmoved(client: MlflowClient, settings: Settings, expected: str | None) -> Iterator[None]:
    """Compare-and-set for the production alias: write it inside this block, or not at all.

    MLflow has no atomic compare-and-set on aliases. The block holds the writers' lock
    (:func:`training.runs.exclusive`) and re-reads the alias under it, so no Lifeboat train or
    retrain sharing this ``LIFEBOAT_HOME`` can move it between the read and the write. A writer
    outside the lock (the MLflow UI, another machine on the same tracking server) moving it in
    those few milliseconds is not excluded.

    Args:
        expected: The version this run saw at its start (None: there was no Production).

    Raises:
        ProductionMoved: The alias points elsewhere now; nothing was written.
        training.runs.Busy: Another process holds the lock.
    """
    with exclusive(settings.state_dir):
        found = production_number(client, settings.model_name, settings.production_alias)
        if found != expected:
            raise ProductionMoved(settings.production_alias, expected, found)
        yield


def score_version(name: str, version: str, passengers: pd.DataFrame) -> np.ndarray:
    """P(survived) from a registered version's served (ONNX) form."""
    return score_uri(f"models:/{name}/{version}", passengers)


def score_uri(model_uri: str, passengers: pd.DataFrame) -> np.ndarray:
    """P(survived) from a logged model's served (ONNX) form."""
    model = mlflow.pyfunc.load_model(model_uri)
    return model.predict(model_input(passengers))["probability"].to_numpy(dtype=float)


def model_input(passengers: pd.DataFrame) -> pd.DataFrame:
    """The features as the registered model's signature takes them: Spark hands the integer
    columns over as doubles, which MLflow refuses for an int (they are required, never NaN)."""
    ints = {c.name: "int64" for c in COLUMNS if c.role == "feature" and c.kind == "int"}
    return passengers[list(FEATURES)].astype(ints)


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    production_version: str | None = None
    production_auc: float | None = None


def gate(
    challenger_auc: float,
    baseline_auc: float,
    production_auc: float | None,
    production_version: str | None,
) -> Decision:
    """Promote only a challenger that beats the Sex-only baseline and the current Production."""
    if challenger_auc <= baseline_auc:
        return Decision(
            False,
            f"held-out AUC {challenger_auc:.4f} does not beat the Sex-only "
            f"baseline's {baseline_auc:.4f}",
            production_version,
            production_auc,
        )
    if production_auc is not None and challenger_auc <= production_auc:
        return Decision(
            False,
            f"held-out AUC {challenger_auc:.4f} does not beat Production "
            f"v{production_version}'s {production_auc:.4f} on the same rows",
            production_version,
            production_auc,
        )
    against = (
        "no Production version yet"
        if production_auc is None
        else f"Production v{production_version} scored {production_auc:.4f}"
    )
    return Decision(
        True,
        f"held-out AUC {challenger_auc:.4f} beats the baseline's {baseline_auc:.4f}; {against}",
        production_version,
        production_auc,
    )


def compare_with_production(
    client: MlflowClient,
    settings: Settings,
    challenger_auc: float,
    baseline_auc: float,
    held_out: pd.DataFrame,
    challenger_p: np.ndarray | None = None,
) -> Decision:
    """Score the current Production version on the held-out rows and apply the gate.

    With the challenger's probabilities on those rows, a challenger that passes is still refused
    when it trails Production on a slice (:func:`training.slices.regressions`) by more than
    ``settings.gate_slice_max_drop``.
    """
    current = production_version(client, settings.model_name, settings.production_alias)
    if current is None:
        return gate(challenger_auc, baseline_auc, None, None)
    try:
        p = score_version(settings.model_name, current.version, held_out)
    except Exception as exc:  # an unloadable champion must not be replaced silently
        return Decision(
            False,
            f"could not score Production v{current.version} on the held-out "
            f"rows ({exc}); Production left alone",
            current.version,
            None,
        )
    production_auc = float(roc_auc_score(held_out[LABEL].astype(int), p))
    decision = gate(challenger_auc, baseline_auc, production_auc, current.version)
    if not decision.promote or challenger_p is None:
        return decision
    y, drop = held_out[LABEL].to_numpy(), settings.gate_slice_max_drop
    worse = slices.regressions(held_out, y, challenger_p, p, drop)
    if not worse:
        return decision
    return Decision(
        False,
        f"{decision.reason}, but the challenger trails Production v{current.version} by more "
        f"than {drop:.2f} on {len(worse)} slice(s): {'; '.join(worse)}",
        current.version,
        production_auc,
    )


def promote(client: MlflowClient, name: str, alias: str, version: str) -> None:
    """Point the alias at ``version`` and, for stage-based clients, move it to Production."""
    client.set_registered_model_alias(name, alias, version)
    with warnings.catch_warnings():
        # Stages are deprecated in MLflow 3 but still work, and stage-based clients rely on them.
        warnings.simplefilter("ignore", FutureWarning)
        client.transition_model_version_stage(
            name, version, "Production", archive_existing_versions=True
        )
    log.info("promoted %s version %s to %s", name, version, alias)


# A version's promotion outcome, as tags on the version (and in its model card and its
# pipeline run's ``decision`` tag): the latest word on it, written by training and by
# ``drift promote``.
PROMOTED, CHALLENGER, REFUSED = "promoted", "challenger", "refused"
OUTCOME_TAG, OUTCOME_REASON_TAG = "promotion", "promotion_reason"
_TAG_LIMIT = 5000  # MLflow's limit on a tag value


def describe_outcome(outcome: str, reason: str, settings: Settings) -> str:
    """The outcome as the model card says it."""
    return {
        PROMOTED: f"Promoted to Production (alias {settings.production_alias}): {reason}",
        CHALLENGER: f"Kept as challenger (alias {settings.challenger_alias}, to be scored in "
        f"shadow beside Production): {reason}",
        REFUSED: f"Refused: {reason}",
    }[outcome]


def record_outcome(
    client: MlflowClient, settings: Settings, version: str, outcome: str, reason: str
) -> None:
    """Write ``outcome`` and its reason on the version's tags, on its pipeline run's
    ``decision`` tag (where the gate writes its reasons) and in its model card."""
    from training import model_card

    name = settings.model_name
    client.set_model_version_tag(name, version, OUTCOME_TAG, outcome)
    client.set_model_version_tag(name, version, OUTCOME_REASON_TAG, reason[:_TAG_LIMIT])
    run_id = client.get_model_version(name, version).run_id
    if not run_id:
        return
    parent = client.get_run(run_id).data.tags.get("mlflow.parentRunId")
    if parent:
        client.set_tag(parent, "decision", reason[:_TAG_LIMIT])
    model_card.set_outcome(run_id, describe_outcome(outcome, reason, settings), client.tracking_uri)


def challenger_number(client: MlflowClient, settings: Settings) -> str | None:
    """The version the challenger alias points at, or None."""
    current = production_version(client, settings.model_name, settings.challenger_alias)
    return None if current is None else str(current.version)


def clear_challenger(client: MlflowClient, settings: Settings, version: str) -> None:
    """Remove the challenger alias if it points at ``version`` (promoted, or refused on live
    evidence: nothing left to shadow); an alias on another version is left alone."""
    if challenger_number(client, settings) == str(version):
        client.delete_registered_model_alias(settings.model_name, settings.challenger_alias)
        log.info("alias %s removed from version %s", settings.challenger_alias, version)


def settle(
    client: MlflowClient,
    settings: Settings,
    version: str,
    passed_gate: bool,
    promoted: bool,
    reason: str,
) -> str:
    """After the gate: the version's outcome, its alias, tags and card.

    Promoted: no longer a challenger. Passed the offline gate but not promoted (held for a
    person with ``--no-promote``, or Production moved meanwhile): the challenger alias moves to
    it, so the service can score it in shadow. Refused by the gate: no alias changes.

    Returns:
        The outcome: :data:`PROMOTED`, :data:`CHALLENGER` or :data:`REFUSED`.
    """
    if promoted:
        outcome = PROMOTED
        clear_challenger(client, settings, version)
    elif passed_gate:
        outcome = CHALLENGER
        client.set_registered_model_alias(settings.model_name, settings.challenger_alias, version)
        log.info("alias %s now on version %s", settings.challenger_alias, version)
    else:
        outcome = REFUSED
    record_outcome(client, settings, version, outcome, reason)
    return outcome


def after_undo(client: MlflowClient, settings: Settings, version: str, reason: str) -> None:
    """A promotion of ``version`` was undone (a later step failed): unless it is Production
    again by now, it waits as the challenger once more, and its outcome says why. Never raises:
    the failure being reported matters more than this record of it."""
    try:
        now = production_number(client, settings.model_name, settings.production_alias)
        if now != str(version):
            settle(client, settings, version, passed_gate=True, promoted=False, reason=reason)
    except Exception as exc:
        log.warning("outcome of version %s not recorded after the undo: %s", version, exc)
