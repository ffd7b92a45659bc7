"""Held-out metrics and the plots logged with every family's run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import (  # noqa: E402
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

from lifeboat.passenger import CATEGORICAL_FEATURES, LABEL, NUMERIC_FEATURES  # noqa: E402

if TYPE_CHECKING:
    import pandas as pd

THRESHOLD = 0.5


def metrics(y: np.ndarray, p: np.ndarray, threshold: float = THRESHOLD) -> dict[str, float]:
    """AUC on probabilities; accuracy, precision, recall and F1 at the decision threshold."""
    pred = (p >= threshold).astype(int)
    return {
        "auc": float(roc_auc_score(y, p)),
        "accuracy": float(accuracy_score(y, pred)),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "f1": float(f1_score(y, pred, zero_division=0)),
    }


def confusion(y: np.ndarray, p: np.ndarray, threshold: float = THRESHOLD) -> dict[str, int]:
    """Confusion counts with their names (rows: truth; columns: prediction)."""
    tn, fp, fn, tp = confusion_matrix(y, (p >= threshold).astype(int), labels=[0, 1]).ravel()
    return {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)}


def plot_confusion(counts: dict[str, int], title: str, out: Path) -> Path:
    grid = np.array([[counts["tn"], counts["fp"]], [counts["fn"], counts["tp"]]])
    fig, ax = plt.subplots(figsize=(4, 3.5))
    ax.imshow(grid, cmap="Blues")
    for (i, j), value in np.ndenumerate(grid):
        ax.text(
            j,
            i,
            str(value),
            ha="center",
            va="center",
            color="white" if value > grid.max() / 2 else "black",
        )
    ax.set(
        xticks=[0, 1],
        yticks=[0, 1],
        xticklabels=["died", "survived"],
        yticklabels=["died", "survived"],
        xlabel="predicted",
        ylabel="actual",
        title=title,
    )
    return save_figure(fig, out)


def plot_roc(y: np.ndarray, p: np.ndarray, title: str, out: Path) -> Path:
    fpr, tpr, _ = roc_curve(y, p)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot(fpr, tpr, label=f"AUC {roc_auc_score(y, p):.3f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    ax.legend(loc="lower right")
    return save_figure(fig, out)


def plot_importances(names: list[str], values: list[float], title: str, out: Path) -> Path:
    order = np.argsort(np.abs(values))
    fig, ax = plt.subplots(figsize=(5, 0.3 * len(names) + 1))
    ax.barh([names[i] for i in order], [values[i] for i in order])
    ax.set(title=title)
    return save_figure(fig, out)


def save_figure(fig, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def sex_only_auc(train: pd.DataFrame, test: pd.DataFrame) -> float:
    """Held-out AUC of the trivial baseline: each sex's survival rate in training."""
    rates = train.groupby("Sex")[LABEL].mean()
    p = test["Sex"].map(rates).fillna(train[LABEL].mean()).to_numpy(dtype=float)
    return float(roc_auc_score(test[LABEL].astype(int), p))


def feature_profile(reference: pd.DataFrame) -> dict[str, Any]:
    """Ranges and categories seen in training: served with the model for per-request alerts."""
    ranges = {c: (float(reference[c].min()), float(reference[c].max())) for c in NUMERIC_FEATURES}
    categories = {c: sorted(reference[c].dropna().unique().tolist()) for c in CATEGORICAL_FEATURES}
    return {"feature_ranges": ranges, "categories": categories}
