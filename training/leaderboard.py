"""A leaderboard of every family run in the experiment: a table and a figure under reports/."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd

from lifeboat.settings import Settings
from training.evaluate import save_figure

COLUMNS = {
    "start_time": "started",
    "tags.mlflow.runName": "family",
    "metrics.cv_auc_mean": "cv_auc",
    "metrics.cv_auc_std": "cv_auc_std",
    "metrics.heldout_auc": "heldout_auc",
    "metrics.heldout_accuracy": "heldout_accuracy",
    "metrics.heldout_f1": "heldout_f1",
    "metrics.cv_seconds": "cv_seconds",
    "metrics.parity_max_abs_diff": "onnx_parity",
    "tags.dataset_sha256": "dataset_sha256",
    "run_id": "run_id",
}


def leaderboard(settings: Settings) -> pd.DataFrame:
    """Every family run of the experiment, best held-out AUC first."""
    mlflow.set_tracking_uri(settings.tracking_uri)
    runs = mlflow.search_runs(
        experiment_names=[settings.experiment],
        filter_string="tags.stage = 'family'",
        output_format="pandas",
    )
    if runs.empty:
        return pd.DataFrame(columns=list(COLUMNS.values()))
    table = runs[[c for c in COLUMNS if c in runs]].rename(columns=COLUMNS)
    table["dataset_sha256"] = table["dataset_sha256"].str[:12]
    return table.sort_values("heldout_auc", ascending=False).reset_index(drop=True)


def markdown(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table; floats to four places."""

    def cell(value: object) -> str:
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(False)]
    return "\n".join(lines) + "\n"


def write(table: pd.DataFrame, out: Path) -> list[Path]:
    """Write CSV, Markdown and a PNG (held-out AUC per run, coloured by family)."""
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "leaderboard.csv", index=False)
    (out / "leaderboard.md").write_text(markdown(table))
    fig, ax = plt.subplots(figsize=(7, 0.35 * max(len(table), 3) + 1))
    labels = [f"{r.family} {r.run_id[:6]}" for r in table.itertuples()]
    ax.barh(labels[::-1], table["heldout_auc"][::-1])
    ax.set(xlabel="held-out AUC", xlim=(0.5, 1.0), title="Lifeboat leaderboard")
    return [
        out / "leaderboard.csv",
        out / "leaderboard.md",
        save_figure(fig, out / "leaderboard.png"),
    ]
