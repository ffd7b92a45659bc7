"""Scoring passengers with a served model: load a model folder, predict, flag drift alerts.

The prediction path without HTTP or BentoML: ``lifeboat.serving`` wraps it in request bodies
and monitoring records; its HTTP schemas use this module, never the reverse.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from lifeboat.artifact import MODEL_FILE, ModelMetadata
from lifeboat.passenger import EXAMPLE, FEATURES, LABEL, NUMERIC_FEATURES
from lifeboat.scoring import OnnxScorer


class ModelRejected(Exception):
    """A model that cannot serve: not in the store, unreadable, or failing its smoke test."""


@dataclass(frozen=True)
class LoadedModel:
    """Everything a prediction needs, replaced as a whole on reload."""

    tag: str
    metadata: ModelMetadata
    scorer: OnnxScorer
    loaded_at: str

    @property
    def version(self) -> str:
        """The registry version it was imported from (checked present by :func:`load_model`)."""
        return str(self.metadata.version)


def load_model(path: str | Path, tag: str) -> LoadedModel:
    """Load a model folder and check it scores ``EXAMPLE`` to a probability.

    Raises:
        ModelRejected: A file is missing or invalid, it has no registry version, or the smoke
            prediction is not in [0, 1].
    """
    path = Path(path)
    try:
        metadata = ModelMetadata.from_folder(path)
        if metadata.version is None:
            raise ModelRejected(f"{tag}: metadata has no registry version (not imported?)")
        scorer = OnnxScorer.from_path(path / MODEL_FILE)
        proba = scorer.predict_proba({name: [EXAMPLE.get(name)] for name in FEATURES})
    except ModelRejected:
        raise
    except Exception as exc:  # whatever a bad artifact raises, reported to the caller
        raise ModelRejected(f"{tag}: {type(exc).__name__}: {exc}") from exc
    if len(proba) != 1 or not 0.0 <= float(proba[0]) <= 1.0:  # NaN fails this too
        raise ModelRejected(f"{tag}: smoke prediction {proba!r} is not one probability")
    return LoadedModel(tag, metadata, scorer, datetime.now(UTC).isoformat(timespec="seconds"))


class DriftAlert(BaseModel):
    """A feature value outside the range the serving model saw in training."""

    feature: str
    value: float
    training_min: float
    training_max: float


@dataclass(frozen=True)
class Scored:
    """Passengers scored by one model, column by column: the prediction bodies and the
    monitoring records are both read from here.

    A thousand-passenger batch costs a thousand prediction models if built row by row;
    columns cost a few lists, and the batch body is encoded from them in one call.

    The shadow columns say what a second model (the challenger) answered for the same
    passengers: they reach the monitoring records, never the bodies. Both are None when no
    shadow scored the batch; ``shadow_error`` says why a loaded shadow did not.
    """

    columns: dict[str, list[Any]]  # the passengers' logged columns (features and label)
    prediction_ids: list[str]  # what each client gets as request_id (lifeboat.streams)
    probability: list[float]
    survived: list[int]
    model_version: str
    drift_alerts: dict[int, list[DriftAlert]]  # by position; most passengers have none
    shadow_version: str | None = None
    shadow_probability: list[float] | None = None
    shadow_error: str | None = None

    def __len__(self) -> int:
        return len(self.probability)

    def take(self, start: int, stop: int) -> Scored:
        """The passengers ``start`` to ``stop - 1``, renumbered from 0."""
        return Scored(
            {name: values[start:stop] for name, values in self.columns.items()},
            self.prediction_ids[start:stop],
            self.probability[start:stop],
            self.survived[start:stop],
            self.model_version,
            {i - start: a for i, a in self.drift_alerts.items() if start <= i < stop},
            self.shadow_version,
            None if self.shadow_probability is None else self.shadow_probability[start:stop],
            self.shadow_error,
        )

    def shadow_columns(self) -> tuple[list[str | None], list[float | None]]:
        """The shadow's version and probability per passenger: nulls where it did not score."""
        if self.shadow_probability is None:
            return [None] * len(self), [None] * len(self)
        return [self.shadow_version] * len(self), list(self.shadow_probability)

    def rows(self) -> list[dict[str, Any]]:
        """One prediction's fields per passenger, in order (what clients are answered)."""
        return [
            {
                "request_id": request_id,
                "survived": survived,
                "probability": probability,
                "model_version": self.model_version,
                "drift_alerts": self.drift_alerts.get(i, []),
            }
            for i, (request_id, survived, probability) in enumerate(
                zip(self.prediction_ids, self.survived, self.probability, strict=True)
            )
        ]


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


def predict(
    model: LoadedModel,
    passengers: Sequence[Any],
    ids: Sequence[str],
    shadow: LoadedModel | None = None,
) -> Scored:
    """Score passengers with one model snapshot; ``ids`` are their prediction ids, in order.

    ``shadow``, when given, scores the same columns too; whatever goes wrong with it leaves
    its columns None (and ``shadow_error`` set) and never fails the prediction.

    Raises:
        ValueError: The model answered something other than a probability for a passenger.
    """
    columns = {name: [getattr(p, name) for p in passengers] for name in (*FEATURES, LABEL)}
    meta = model.metadata
    probabilities = _probabilities(model, columns)
    shadow_version, shadow_probability, shadow_error = None, None, None
    if shadow is not None:
        try:
            shadow_probability = _probabilities(shadow, columns).tolist()
            shadow_version = shadow.version
        except Exception as exc:  # a shadow's failure is data for its record, not the client's
            shadow_error = f"{shadow.tag}: {type(exc).__name__}: {exc}"
    return Scored(
        columns,
        list(ids),
        probabilities.tolist(),
        (probabilities >= meta.threshold).astype(np.int64).tolist(),
        model.version,
        drift_alerts(columns, meta.feature_ranges),
        shadow_version,
        shadow_probability,
        shadow_error,
    )


def _probabilities(model: LoadedModel, columns: Mapping[str, Sequence[Any]]) -> np.ndarray:
    probabilities = model.scorer.predict_proba(columns)
    if len(probabilities) != len(columns[LABEL]) or not np.all(
        (probabilities >= 0.0) & (probabilities <= 1.0)  # NaN fails this too
    ):
        raise ValueError(f"{model.tag} answered probabilities outside [0, 1] or not one each")
    return probabilities
