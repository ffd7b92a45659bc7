"""The prediction path behind ``service.py``: load a model, score passengers, log the records.

A model directory holds ``model.onnx`` (the graph ``lifeboat.scoring`` runs), ``metadata.json``
(:class:`ModelMetadata`) and ``reference.csv`` (the drift report's reference; not read here).
The HTTP bodies live in ``lifeboat.bodies``, the reload machinery in ``lifeboat.reloading``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import bentoml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from lifeboat.bodies import DriftAlert, Prediction, Received
from lifeboat.monitoring import BlockMonitor
from lifeboat.passenger import BY_NAME, EXAMPLE, FEATURES, LABEL
from lifeboat.scoring import OnnxScorer
from lifeboat.settings import get_settings

# A child of BentoML's logger, so INFO reaches the server log (the root logger shows WARNING+).
logger = logging.getLogger("bentoml.lifeboat")

MODEL_FILE = "model.onnx"
METADATA_FILE = "metadata.json"
MONITOR_NAME = "titanic"


class ModelMetadata(BaseModel):
    """``metadata.json`` in the model directory, written by the export stage."""

    model_config = ConfigDict(extra="allow", frozen=True)

    version: str = Field(description="MLflow registered-model version")
    run_id: str
    dataset_sha256: str
    heldout_auc: float
    trained_at: str
    feature_ranges: dict[str, tuple[float, float]] = Field(default_factory=dict)
    threshold: float = Field(0.5, ge=0.0, le=1.0)

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value


class ModelRejected(Exception):
    """A model that cannot serve: not in the store, unreadable, or failing its smoke test."""


@dataclass(frozen=True)
class LoadedModel:
    """Everything a prediction needs, replaced as a whole on reload."""

    tag: str
    metadata: ModelMetadata
    scorer: OnnxScorer
    loaded_at: str


def load_model(path: str | Path, tag: str) -> LoadedModel:
    """Load a model directory and check it scores ``EXAMPLE`` to a probability.

    Raises:
        ModelRejected: A file is missing or invalid, or the smoke prediction is not in [0, 1].
    """
    path = Path(path)
    try:
        metadata = ModelMetadata.model_validate_json((path / METADATA_FILE).read_bytes())
        scorer = OnnxScorer.from_path(path / MODEL_FILE)
        proba = scorer.predict_proba({name: [EXAMPLE.get(name)] for name in FEATURES})
    except Exception as exc:  # whatever a bad artifact raises, reported to the caller
        raise ModelRejected(f"{tag}: {type(exc).__name__}: {exc}") from exc
    if len(proba) != 1 or not 0.0 <= float(proba[0]) <= 1.0:  # NaN fails this too
        raise ModelRejected(f"{tag}: smoke prediction {proba!r} is not one probability")
    return LoadedModel(tag, metadata, scorer, datetime.now(UTC).isoformat(timespec="seconds"))


def drift_alerts(passenger: Any, ranges: dict[str, tuple[float, float]]) -> list[DriftAlert]:
    """The passenger's feature values outside the model's training ranges."""
    return [
        DriftAlert(feature=name, value=value, training_min=low, training_max=high)
        for name, (low, high) in ranges.items()
        if isinstance(value := getattr(passenger, name, None), int | float)
        and not low <= value <= high
    ]


def predict(model: LoadedModel, passengers: Sequence[Any]) -> list[Prediction]:
    """Score passengers with one model snapshot."""
    columns = {name: [getattr(p, name) for p in passengers] for name in FEATURES}
    meta = model.metadata
    return [
        Prediction(
            survived=int(proba >= meta.threshold),
            probability=float(proba),
            model_version=meta.version,
            drift_alerts=drift_alerts(passenger, meta.feature_ranges),
        )
        for passenger, proba in zip(passengers, model.scorer.predict_proba(columns), strict=True)
    ]


def predict_and_log(model: LoadedModel, passengers: Sequence[Any]) -> list[Prediction]:
    """Score one request's passengers and write their monitoring records."""
    predictions = predict(model, passengers)
    log_predictions(passengers, predictions)
    return predictions


def predict_received(model: LoadedModel, batch: Sequence[Received]) -> list[Prediction]:
    """Score an adaptive batch; each record is written under its own request's ids."""
    predictions = predict(model, [item.passenger for item in batch])
    for item, prediction in zip(batch, predictions, strict=True):
        item.run_as_request(partial(log_predictions, [item.passenger], [prediction]))
    return predictions


def log_predictions(passengers: Sequence[Any], predictions: Sequence[Prediction]) -> None:
    """Write one ``bentoml.monitor`` record per passenger: features, label, outputs, version.

    Never Name, Ticket or Cabin. Monitoring must not fail a prediction: errors are logged.
    """
    # BentoML learns the columns in a process's first record block and warns once per
    # repeated value there; a one-passenger first block keeps that quiet.
    for start, stop in ((0, 1), (1, len(passengers))):
        if start < stop:
            _log_block(passengers[start:stop], predictions[start:stop])


def _log_block(passengers: Sequence[Any], predictions: Sequence[Prediction]) -> None:
    log_dir = get_settings().monitoring_dir
    options = {"monitor_options": {"log_path": str(log_dir)}} if log_dir else {}
    try:
        with bentoml.monitor(MONITOR_NAME, monitor_class=BlockMonitor, **options) as mon:
            for name in FEATURES:
                kind = "categorical" if BY_NAME[name].kind == "category" else "numerical"
                mon.log_batch([getattr(p, name) for p in passengers], name, "feature", kind)
            mon.log_batch([getattr(p, LABEL) for p in passengers], LABEL, "target", "categorical")
            # "Survived" is the label, so the predicted class goes in "prediction".
            outputs = (
                ("probability", "probability", "numerical"),
                ("survived", "prediction", "categorical"),
                ("model_version", "model_version", "categorical"),
            )
            for field, column, kind in outputs:
                values = [getattr(p, field) for p in predictions]
                mon.log_batch(values, column, "prediction", kind)
    except Exception:
        logger.exception("monitoring record dropped")
