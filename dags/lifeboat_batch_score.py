"""lifeboat_batch_score: score a CSV that lands in the inbox folder with the Spark batch scorer.

Waits (rescheduling, without holding a worker slot) for a ``*.csv`` in ``LIFEBOAT_SCORE_INBOX``
(default ``<project>/inbox``) that has no ``<name>.scored.csv`` beside it yet, or takes the
``input_csv`` parameter, and writes ``<name>.scored.csv`` next to it with
``python -m training score``. Every 15 minutes by default (``LIFEBOAT_SCORE_SCHEDULE``); a run
that finds no file within 10 minutes is skipped.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, Param, PokeReturnValue, get_current_context, task
from lifeboat_tasks import project

SCORED = ".scored.csv"

with DAG(
    dag_id="lifeboat_batch_score",
    description="Batch-score a CSV with Spark and the Production model",
    schedule=os.environ.get("LIFEBOAT_SCORE_SCHEDULE") or "*/15 * * * *",
    start_date=datetime(2026, 11, 1),
    catchup=False,
    max_active_runs=1,  # two runs would score the same file
    dagrun_timeout=timedelta(hours=2),
    default_args=project.DEFAULT_ARGS,
    params={
        "input_csv": Param(
            None,
            type=["null", "string"],
            description="A CSV to score now. Empty: the oldest unscored CSV in the inbox.",
        ),
    },  # fmt: skip
    tags=["lifeboat", "scoring"],
) as dag:

    def scored_path(csv: Path) -> Path:
        return csv.with_name(csv.name.removesuffix(".csv") + SCORED)

    @task.sensor(poke_interval=60, timeout=600, mode="reschedule", soft_fail=True)
    def landed() -> PokeReturnValue:
        """The CSV to score: the parameter's, else the oldest unscored one in the inbox."""
        if given := get_current_context()["params"]["input_csv"]:
            return PokeReturnValue(is_done=True, xcom_value=str(Path(given).resolve()))
        inbox = Path(os.environ.get("LIFEBOAT_SCORE_INBOX") or project.project_dir() / "inbox")
        waiting = sorted(
            (p for p in inbox.glob("*.csv")
             if not p.name.endswith(SCORED) and not scored_path(p).exists()),
            key=lambda p: p.stat().st_mtime,
        )  # fmt: skip
        return PokeReturnValue(bool(waiting), str(waiting[0]) if waiting else None)

    @task(execution_timeout=timedelta(hours=1))
    def score(csv: str) -> dict[str, str]:
        """Score it; the output path and the scorer's summary line are the task's output."""
        out = scored_path(Path(csv))
        done = project.run("training", "score", csv, str(out))
        return {"input": csv, "output": str(out), "summary": done.tail(1)}

    score(landed())
