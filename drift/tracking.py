"""Runs in the ``titanic-drift`` MLflow experiment, through the client API only.

The fluent API (``mlflow.start_run``) keeps one active run per process, and the retrain loop
calls the training pipeline, which starts its own runs: a drift run held open through the
fluent API would make those nested by accident, or fail. An explicit client and run id avoid it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from drift.config import EXPERIMENT
from lifeboat.settings import Settings
from training import runs


class DriftRun:
    """One MLflow run in the drift experiment; each call is one batch (one store transaction)."""

    def __init__(
        self,
        settings: Settings,
        run_name: str,
        tags: Mapping[str, str] | None = None,
        parent: DriftRun | None = None,
    ) -> None:
        from mlflow import MlflowClient

        self.client = MlflowClient(tracking_uri=settings.tracking_uri)
        experiment_id = runs.experiment_id(self.client, settings, EXPERIMENT)
        all_tags = {"mlflow.runName": run_name, **(tags or {})}
        if parent is not None:
            all_tags["mlflow.parentRunId"] = parent.run_id
        self.run_id: str = self.client.create_run(experiment_id, tags=all_tags).info.run_id

    def params(self, values: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        params = [Param(k, "" if v is None else str(v)[:6000]) for k, v in values.items()]
        self.client.log_batch(self.run_id, params=params)

    def metrics(self, values: Mapping[str, float | int | None]) -> None:
        from mlflow.entities import Metric
        from mlflow.utils.time import get_current_time_millis

        now = get_current_time_millis()
        batch = [
            Metric(key, float(value), now, 0)
            for key, value in values.items()
            if value is not None and math.isfinite(float(value))
        ]
        if batch:
            self.client.log_batch(self.run_id, metrics=batch)

    def tags(self, values: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        tags = [RunTag(k, str(v)[:5000]) for k, v in values.items()]
        self.client.log_batch(self.run_id, tags=tags)

    def artifact(self, path: Path, folder: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), folder)

    def finish(self, ok: bool = True, killed: bool = False) -> None:
        """End the run FINISHED, FAILED, or KILLED (interrupted); a run that did not finish
        ends its nested runs that are still RUNNING the same way."""
        status = "KILLED" if killed else "FINISHED" if ok else "FAILED"
        if status != "FINISHED":
            experiment_id = self.client.get_run(self.run_id).info.experiment_id
            runs.end_running_children(self.client, experiment_id, self.run_id, status)
        self.client.set_terminated(self.run_id, status)
