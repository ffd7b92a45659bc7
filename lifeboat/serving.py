"""The prediction path behind ``service.py``: load a model, score passengers, log the records.

A model directory holds ``model.onnx`` (the graph ``lifeboat.scoring`` runs), ``metadata.json``
(:class:`ModelMetadata`) and ``reference.csv`` (the drift report's reference; not read here).
The HTTP bodies live in ``lifeboat.bodies``, the reload machinery in ``lifeboat.reloading``.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
from bentoml._internal.context import trace_context
from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from lifeboat.bodies import DriftAlert, Prediction, Received, Scored
from lifeboat.monitoring import count_dropped, stream
from lifeboat.passenger import BY_NAME, EXAMPLE, FEATURES, LABEL, NUMERIC_FEATURES
from lifeboat.scoring import OnnxScorer
from lifeboat.streams import PREDICTION_ID, PREDICTIONS, batch_ids, request_hex

# A child of BentoML's logger, so INFO reaches the server log (the root logger shows WARNING+).
logger = logging.getLogger("bentoml.lifeboat")

MODEL_FILE = "model.onnx"
METADATA_FILE = "metadata.json"
LOCAL_REGISTRY = "embedded"  # what /model_info shows for a registry in files of this machine


def public_uri(uri: str) -> str:
    """A tracking URI as the service may publish it: no server-side path, no credentials.

    A registry in local files (a path, ``file:`` or ``sqlite:``) is ``LOCAL_REGISTRY``; a
    server's URI keeps its scheme, host, port and path, and loses userinfo, query and fragment.
    """
    parts = urlsplit(uri)
    host = parts.netloc.rpartition("@")[2]
    if parts.scheme in ("", "file", "sqlite") or not host:
        return LOCAL_REGISTRY
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


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
    tracking_uri: str | None = Field(None, description="The registry the model was imported from")

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @field_serializer("tracking_uri")
    def _published_uri(self, uri: str | None) -> str | None:
        # Dumps of this model are for clients (/model_info); metadata.json keeps the URI as
        # imported, which drift uses to tell registries apart.
        return None if uri is None else public_uri(uri)


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


def freeze_startup_heap() -> None:
    """Keep what a started worker holds (imports, app, model) out of the collector's scans.

    A 1000-passenger request allocates thousands of objects, which sets off full collections
    that walk every object the worker has; frozen, those are skipped (``gc.freeze``, the
    standard remedy for long-lived server heaps). Measured on one worker, sequential requests,
    three runs each: 37 -> 32 ms of CPU per 1000-passenger request. Garbage already unreachable
    is collected first.
    """
    gc.collect()
    gc.freeze()


def drift_alerts(
    columns: Mapping[str, Sequence[Any]], ranges: Mapping[str, tuple[float, float]]
) -> dict[int, list[DriftAlert]]:
    """Each passenger's feature values outside the model's training ranges, by position.

    ``columns`` holds one list of values per feature of validated passengers, in passenger
    order; a missing value (``None``) raises no alert, nor does a column that is absent or not
    numeric in the passenger schema.
    """
    alerts: dict[int, list[DriftAlert]] = {}
    for name, (low, high) in ranges.items():
        values = columns.get(name)
        if values is None or name not in NUMERIC_FEATURES:
            continue
        numbers = np.asarray(values, dtype=np.float64)  # None becomes NaN, never outside
        for i in np.flatnonzero((numbers < low) | (numbers > high)).tolist():
            alert = DriftAlert(feature=name, value=values[i], training_min=low, training_max=high)
            alerts.setdefault(i, []).append(alert)
    return alerts


def predict(model: LoadedModel, passengers: Sequence[Any], ids: Sequence[str]) -> Scored:
    """Score passengers with one model snapshot; ``ids`` are their prediction ids, in order.

    Raises:
        ValueError: The model answered something other than a probability for a passenger.
    """
    columns = {name: [getattr(p, name) for p in passengers] for name in (*FEATURES, LABEL)}
    meta = model.metadata
    probabilities = model.scorer.predict_proba(columns)
    if not np.all((probabilities >= 0.0) & (probabilities <= 1.0)):  # NaN fails this too
        raise ValueError(f"{model.tag} answered probabilities outside [0, 1]")
    return Scored(
        columns,
        list(ids),
        probabilities.tolist(),
        (probabilities >= meta.threshold).astype(np.int64).tolist(),
        meta.version,
        drift_alerts(columns, meta.feature_ranges),
    )


def predict_and_log(model: LoadedModel, passengers: Sequence[Any]) -> Scored:
    """Score one request's passengers and write their monitoring records."""
    scored = predict(model, passengers, batch_ids(trace_context.request_id, len(passengers)))
    log_predictions(scored)
    return scored


def predict_received(model: LoadedModel, batch: Sequence[Received]) -> list[Prediction]:
    """Score an adaptive batch; each record is written under its own request's ids."""
    ids = [request_hex(item.request_id) for item in batch]
    scored = predict(model, [item.passenger for item in batch], ids)
    for i, item in enumerate(batch):
        item.run_as_request(partial(log_predictions, scored.take(i, i + 1)))
    return scored.predictions()


def log_predictions(scored: Scored) -> None:
    """Write one ``bentoml.monitor`` record per passenger: features, claimed label, outputs,
    version and prediction id (``lifeboat.streams``).

    Never Name, Ticket or Cabin. Monitoring must not fail a prediction: errors are logged.
    """
    # BentoML learns the columns in a process's first record block and warns once per
    # repeated value there; a one-passenger first block keeps that quiet.
    for start, stop in ((0, 1), (1, len(scored))):
        if start < stop:
            _log_block(scored.take(start, stop))


def _log_block(scored: Scored) -> None:
    try:
        with stream(PREDICTIONS) as mon:
            for name in FEATURES:
                kind = "categorical" if BY_NAME[name].kind == "category" else "numerical"
                mon.log_batch(scored.columns[name], name, "feature", kind)
            mon.log_batch(scored.columns[LABEL], LABEL, "target", "categorical")
            # "Survived" is the label, so the predicted class goes in "prediction".
            mon.log_batch(scored.probability, "probability", "prediction", "numerical")
            mon.log_batch(scored.survived, "prediction", "prediction", "categorical")
            versions = [scored.model_version] * len(scored)
            mon.log_batch(versions, "model_version", "prediction", "categorical")
            mon.log_batch(scored.prediction_ids, PREDICTION_ID, "prediction", "categorical")
    except Exception as exc:
        count_dropped(len(scored), exc)
