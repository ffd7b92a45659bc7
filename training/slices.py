"""Held-out figures for the whole set and by slice of passengers, and the flags on them.

Pure pandas and numpy (with scikit-learn's AUC), so the model card, the promotion gate and their
tests use it without Spark or MLflow. A slice is one value of one dimension (``Sex=female``);
the dimensions are :data:`DIMENSIONS`, computed from the raw passenger columns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from lifeboat.settings import get_settings

# A slice with fewer rows than the setting slice_min_rows (30) is shown but not judged: its
# figures move by more than slice_worse_by (0.10) when one or two passengers change sides; it is
# also the gate's minimum. Both are settings (lifeboat.settings), read when a function is called.
THRESHOLD = 0.5
MISSING = "unknown"  # a missing Age or Embarked is a slice of its own, never dropped
# Upper bounds (exclusive) of the age bands, in years, and their names.
AGE_BANDS = ((13, "0-12"), (18, "13-17"), (30, "18-29"), (45, "30-44"), (60, "45-59"))
OLDEST = "60+"
DIMENSIONS = ("Sex", "Pclass", "age band", "port", "family")


@dataclass(frozen=True)
class Figures:
    """Figures of one set of rows; a figure that is undefined on those rows is None."""

    rows: int
    survival_rate: float
    auc: float | None  # None with one class only
    accuracy: float
    precision: float | None  # None when nobody is predicted to survive
    recall: float | None  # None when nobody survived
    brier: float


@dataclass(frozen=True)
class Slice:
    dimension: str
    value: str
    figures: Figures
    flags: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.dimension}={self.value}"

    def as_dict(self) -> dict[str, Any]:
        """The JSON form a drift summary keeps (:meth:`from_dict` reads it back)."""
        return {
            "slice": self.name,
            "dimension": self.dimension,
            "value": self.value,
            **asdict(self.figures),
            "flags": list(self.flags),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Slice:
        figures_ = Figures(**{f.name: data[f.name] for f in fields(Figures)})
        return cls(data["dimension"], data["value"], figures_, tuple(data["flags"]))

    @property
    def metric_key(self) -> str:
        """The slice as an MLflow metric path (``age band/60 and over``): MLflow refuses ``=``
        and ``+`` in a metric name."""
        return f"{self.dimension}/{self.value.replace('+', ' and over')}"


def figures(y: np.ndarray, p: np.ndarray, threshold: float = THRESHOLD) -> Figures:
    """AUC on probabilities, the rest at ``threshold``; Brier is the mean squared error of p."""
    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    pred = p >= threshold
    tp = int(np.sum(pred & (y == 1)))
    return Figures(
        rows=len(y),
        survival_rate=float(y.mean()),
        auc=float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else None,
        accuracy=float(np.mean(pred == (y == 1))),
        precision=tp / int(pred.sum()) if pred.any() else None,
        recall=tp / int(y.sum()) if y.any() else None,
        brier=float(np.mean((p - y) ** 2)),
    )


def age_band(age: pd.Series) -> pd.Series:
    """The band of each age, :data:`MISSING` for a missing one."""
    age = pd.to_numeric(age, errors="coerce")  # logged rows hold None for a missing Age
    bands = pd.Series(OLDEST, index=age.index, dtype=object)
    for upper, name in reversed(AGE_BANDS):
        bands[age < upper] = name
    bands[age.isna()] = MISSING
    return bands


def slice_labels(passengers: pd.DataFrame) -> dict[str, pd.Series]:
    """Each dimension's value for every passenger (raw columns: Sex, Pclass, Age, ...)."""
    alone = (passengers["SibSp"].fillna(0) + passengers["Parch"].fillna(0)) == 0
    return {
        "Sex": passengers["Sex"].fillna(MISSING).astype(str),
        "Pclass": passengers["Pclass"].astype("Int64").astype(str),
        "age band": age_band(passengers["Age"]),
        "port": passengers["Embarked"].fillna(MISSING).astype(str),
        "family": pd.Series(np.where(alone, "alone", "with family"), index=passengers.index),
    }


def limits(min_rows: int | None = None, worse_by: float | None = None) -> tuple[int, float]:
    """``(min_rows, worse_by)``: the given values, else the settings ``LIFEBOAT_SLICE_MIN_ROWS``
    and ``LIFEBOAT_SLICE_WORSE_BY``."""
    settings = get_settings()
    return (
        settings.slice_min_rows if min_rows is None else min_rows,
        settings.slice_worse_by if worse_by is None else worse_by,
    )


def flags(part: Figures, whole: Figures, min_rows: int, worse_by: float) -> tuple[str, ...]:
    """``too small`` under ``min_rows``; else ``worse`` when AUC or accuracy trails by more
    than ``worse_by``."""
    if part.rows < min_rows:
        return ("too small",)
    worse_auc = part.auc is not None and whole.auc is not None and part.auc < whole.auc - worse_by
    if worse_auc or part.accuracy < whole.accuracy - worse_by:
        return ("worse",)
    return ()


def by_slice(
    passengers: pd.DataFrame,
    y: np.ndarray,
    p: np.ndarray,
    min_rows: int | None = None,
    worse_by: float | None = None,
) -> list[Slice]:
    """Figures and flags of every slice of every dimension, in :data:`DIMENSIONS` order
    (thresholds: :func:`limits`)."""
    min_rows, worse_by = limits(min_rows, worse_by)
    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    whole = figures(y, p)
    out = []
    for dimension, labels in slice_labels(passengers.reset_index(drop=True)).items():
        for value in sorted(labels.unique()):
            mask = (labels == value).to_numpy()
            part = figures(y[mask], p[mask])
            out.append(Slice(dimension, value, part, flags(part, whole, min_rows, worse_by)))
    return out


def reliability(y: np.ndarray, p: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Mean predicted and observed survival per probability bin (empty bins left out)."""
    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    index = np.minimum((p * bins).astype(int), bins - 1)
    frame = pd.DataFrame({"bin": index, "p": p, "y": y})
    table = frame.groupby("bin").agg(
        predicted=("p", "mean"), observed=("y", "mean"), rows=("y", "size")
    )
    return table.reset_index(drop=True)


def _judged(figures_: Figures) -> tuple[str, float]:
    # AUC where both classes are present; accuracy in a slice where everyone shared one fate.
    if figures_.auc is not None:
        return "AUC", figures_.auc
    return "accuracy", figures_.accuracy


def regressions(
    passengers: pd.DataFrame,
    y: np.ndarray,
    challenger: np.ndarray,
    production: np.ndarray,
    max_drop: float,
    min_rows: int | None = None,
) -> list[str]:
    """Slices of at least ``min_rows`` rows (default: the setting) where the challenger trails
    Production by more than ``max_drop`` (AUC, or accuracy in a one-class slice), one sentence
    each."""
    min_rows, _ = limits(min_rows)
    found = []
    ours = by_slice(passengers, y, challenger)
    theirs = by_slice(passengers, y, production)
    for mine, prod in zip(ours, theirs, strict=True):
        if mine.figures.rows < min_rows:
            continue
        (metric, value), (_, before) = _judged(mine.figures), _judged(prod.figures)
        if before - value > max_drop:
            found.append(
                f"{mine.name} ({mine.figures.rows} rows): {metric} {value:.4f} vs "
                f"Production's {before:.4f}"
            )
    return found
