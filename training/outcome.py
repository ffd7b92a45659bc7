"""A training run's outcome as JSON: what a person needs to approve its challenger.

Written by ``python -m training train --outcome FILE`` and ``python -m drift retrain --outcome
FILE``; the Airflow approval task shows it (``dags/``), so it names the figures on both sides of
the promotion gate and where to look at the run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lifeboat.settings import Settings
    from training.pipeline import Outcome


def record(
    outcome: Outcome, settings: Settings, shadow: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The outcome's figures, the gate's verdict and the MLflow run it was logged to; with
    ``shadow``, the live evidence on the version (``drift.shadow.Judgement`` as a dict)."""
    from mlflow import MlflowClient

    gate = outcome.gate
    run = MlflowClient(settings.tracking_uri).get_run(outcome.run_id)
    server = settings.tracking_uri if settings.tracking_uri.startswith("http") else None
    return {
        "model_name": settings.model_name,
        "version": str(outcome.version),
        "challenger": outcome.challenger,
        "heldout_auc": outcome.heldout_auc,
        "baseline_auc": outcome.baseline_auc,
        "production_version": (
            str(gate.production_version) if gate and gate.production_version else None
        ),
        "production_auc": gate.production_auc if gate else None,
        "passed_gate": bool(gate and gate.promote),
        "promoted": outcome.promoted,
        "reason": outcome.reason,
        "run_id": outcome.run_id,
        "experiment_id": run.info.experiment_id,
        # The run's page when MLflow is a server; the embedded store has no address of its own.
        "run_url": (
            f"{server.rstrip('/')}/#/experiments/{run.info.experiment_id}/runs/{outcome.run_id}"
            if server
            else None
        ),
        "families": outcome.families,
        "challenger_alias": settings.challenger_alias if promotable_unpromoted(outcome) else None,
        "shadow": shadow,
    }


def promotable_unpromoted(outcome: Outcome) -> bool:
    """Passed the offline gate, not promoted: training gave it the challenger alias."""
    return bool(outcome.gate and outcome.gate.promote and not outcome.promoted)


def write(
    path: Path, outcome: Outcome, settings: Settings, shadow: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Write :func:`record` to ``path`` as JSON and return it."""
    data = record(outcome, settings, shadow)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True))
    return data
