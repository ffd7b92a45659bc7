"""Population Stability Index per feature, and live AUC and accuracy from labelled log rows.

PSI bins come from the reference alone, so a report's numbers do not depend on the current
window's extremes:

* a categorical feature, or a numeric one with at most ``bins`` distinct reference values
  (Pclass, SibSp, Parch), gets one bin per value, plus one for values the reference never had;
* a continuous one (Age, Fare) gets ``bins`` reference quantile bins, open at both ends;
* missing values are a bin of their own, so a rise in missing Age shows up too.

Empty bins are floored at ``EPSILON`` so the logarithm stays finite. Common reading: below 0.1
stable, 0.1 to 0.2 a moderate shift, above 0.2 a significant one (the default threshold).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from lifeboat.artifact import ModelMetadata
from training.slices import Slice, by_slice

EPSILON = 1e-4
DEFAULT_BINS = 10
_MISSING = "__missing__"
_UNSEEN = "__unseen__"


def _shares(counts: pd.Series, bins: list[object]) -> np.ndarray:
    shares = counts.reindex(bins, fill_value=0).to_numpy(dtype=float)
    total = shares.sum()
    return np.maximum(shares / total if total else shares, EPSILON)


def _discrete(reference: pd.Series, current: pd.Series) -> tuple[pd.Series, pd.Series, list]:
    seen = set(reference.dropna().unique())

    def labelled(values: pd.Series) -> pd.Series:
        out = values.astype(object).where(values.isin(seen), _UNSEEN)
        return out.where(values.notna(), _MISSING)

    bins = [*sorted(seen, key=str), _UNSEEN, _MISSING]
    return labelled(reference), labelled(current), bins


def _quantiles(
    reference: pd.Series, current: pd.Series, bins: int
) -> tuple[pd.Series, pd.Series, list]:
    edges = np.unique(
        np.quantile(reference.dropna().to_numpy(dtype=float), np.linspace(0, 1, bins + 1))
    )
    inner = edges[1:-1]  # open-ended outer bins catch values beyond the reference's range

    def labelled(values: pd.Series) -> pd.Series:
        codes = pd.Series(np.searchsorted(inner, values.to_numpy(dtype=float), side="right"))
        return codes.astype(object).where(values.notna().to_numpy(), _MISSING)

    return labelled(reference), labelled(current), [*range(len(inner) + 1), _MISSING]


def psi(
    reference: pd.Series, current: pd.Series, categorical: bool, bins: int = DEFAULT_BINS
) -> float:
    """Population Stability Index of ``current`` against ``reference`` (0 means identical).

    Args:
        reference: The feature's values in the model's training rows.
        current: The feature's values in the logged rows.
        categorical: Bin by value rather than by quantile.
        bins: Number of quantile bins for a continuous feature.
    """
    if categorical or reference.nunique(dropna=True) <= bins:
        ref_bins, cur_bins, labels = _discrete(reference, current)
    else:
        ref_bins, cur_bins, labels = _quantiles(reference, current, bins)
    ref = _shares(ref_bins.value_counts(), labels)
    cur = _shares(cur_bins.value_counts(), labels)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


@dataclass(frozen=True)
class Performance:
    """Live quality on labelled log rows next to the model's held-out figures."""

    labelled_rows: int
    live_auc: float | None  # None when the labelled rows hold only one class
    live_accuracy: float
    heldout_auc: float | None
    heldout_accuracy: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        def delta(live: float | None, held: float | None) -> float | None:
            return None if live is None or held is None else live - held

        return {
            "labelled_rows": self.labelled_rows,
            "live_auc": self.live_auc,
            "live_accuracy": self.live_accuracy,
            "heldout_auc": self.heldout_auc,
            "heldout_accuracy": self.heldout_accuracy,
            "auc_change": delta(self.live_auc, self.heldout_auc),
            "accuracy_change": delta(self.live_accuracy, self.heldout_accuracy),
        }


def performance(rows: pd.DataFrame, label: str, metadata: ModelMetadata) -> Performance | None:
    """AUC and accuracy of the logged predictions on rows that carry the label, if any."""
    labelled = rows[rows[label].notna()]
    if labelled.empty:
        return None
    y = labelled[label].astype(int).to_numpy()
    auc = (
        float(roc_auc_score(y, labelled["probability"].to_numpy(dtype=float)))
        if len(np.unique(y)) == 2
        else None
    )
    accuracy = float((labelled["prediction"].astype(int).to_numpy() == y).mean())
    return Performance(
        labelled_rows=len(labelled),
        live_auc=auc,
        live_accuracy=accuracy,
        heldout_auc=metadata.heldout_auc,
        heldout_accuracy=metadata.heldout_accuracy,
    )


def performance_by_slice(rows: pd.DataFrame, label: str) -> list[Slice] | None:
    """Live figures by the model card's slices (``training.slices``) on rows with the label,
    flagged against all labelled rows."""
    labelled = rows[rows[label].notna()].reset_index(drop=True)
    if labelled.empty:
        return None
    y = labelled[label].astype(int).to_numpy()
    return by_slice(labelled, y, labelled["probability"].to_numpy(dtype=float))
