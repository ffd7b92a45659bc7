"""lifeboat_train: train on Spark → register → promotion gate → a person approves → ship.

``python -m training train --no-promote`` registers the challenger and applies the promotion
gate without promoting; a winner waits in the approval task (see ``lifeboat_tasks.gate``).
Manual by default (the training data changes rarely); ``LIFEBOAT_TRAIN_SCHEDULE`` sets a cron.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Param, get_current_context, task
from lifeboat_tasks import gate, project

with DAG(
    dag_id="lifeboat_train",
    description="Train, gate, approve, promote, import, build, reload",
    schedule=os.environ.get("LIFEBOAT_TRAIN_SCHEDULE") or None,
    start_date=datetime(2026, 11, 1),
    catchup=False,  # one run for now, never one per missed interval
    max_active_runs=1,  # two trainings would race for the production alias
    dagrun_timeout=timedelta(days=2),  # covers the approval's wait
    default_args=project.DEFAULT_ARGS,
    params={
        "train_args": Param(
            [],
            type="array",
            items={"type": "string"},
            description="Extra options of python -m training train, e.g. --quick.",
        ),
        **gate.PARAMS,
    },
    tags=["lifeboat", "training"],
) as dag:

    @task(execution_timeout=timedelta(hours=1))
    def train() -> dict[str, Any]:
        """Train, register and gate; the outcome (figures, verdict, run) is the task's output."""
        extra = get_current_context()["params"]["train_args"]
        with tempfile.TemporaryDirectory() as tmp:
            outcome = Path(tmp) / "outcome.json"
            project.run("training", "train", "--no-promote", "--outcome", str(outcome), *extra)
            return json.loads(outcome.read_text())

    gate.approval_gate("train")(train())
