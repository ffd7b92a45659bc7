"""lifeboat_monitor: the drift report on a schedule; drift goes through retraining and approval.

``python -m drift report`` over the records logged since the last successful run (24 h on the
first): exit 0 ends the run, 42 retrains on the labelled logs (``python -m drift retrain
--no-promote``) and hands a winning challenger to the approval gate, 2 fails the task with the
reason in its log. Hourly by default; ``LIFEBOAT_MONITOR_SCHEDULE`` sets another cron.
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

EXIT_DRIFT = 42
FIRST_WINDOW = "24h"

with DAG(
    dag_id="lifeboat_monitor",
    description="Drift report; on drift retrain, approve, promote, reload",
    schedule=os.environ.get("LIFEBOAT_MONITOR_SCHEDULE") or "@hourly",
    start_date=datetime(2026, 11, 1),
    catchup=False,  # a missed hour is covered by the next run's window, not replayed
    max_active_runs=1,
    dagrun_timeout=timedelta(days=2),
    default_args=project.DEFAULT_ARGS,
    params={
        "since": Param(
            None,
            type=["null", "string"],
            description="Window of the report (30m, 24h, an ISO date/time). Empty: since the "
            f"last successful run, {FIRST_WINDOW} on the first.",
        ),
        "report_args": Param(
            [], type="array", items={"type": "string"},
            description="Extra options of python -m drift report and retrain, e.g. --min-rows.",
        ),
        "retrain_args": Param(
            [], type="array", items={"type": "string"},
            description="Extra options of python -m drift retrain only, e.g. --quick.",
        ),
        **gate.PARAMS,
    },
    tags=["lifeboat", "drift"],
) as dag:  # fmt: skip

    def window(context) -> str:
        if since := context["params"]["since"]:
            return since
        previous = context.get("prev_start_date_success")
        return previous.isoformat() if previous else FIRST_WINDOW

    @task(execution_timeout=timedelta(minutes=20))
    def report() -> dict[str, Any]:
        """The verdict, the report's folder and the window it covered."""
        context = get_current_context()
        since = window(context)
        done = project.run(
            "drift", "report", "--since", since, *context["params"]["report_args"],
            ok=(0, EXIT_DRIFT),
        )  # fmt: skip
        folder = done.last_line("report:")
        return {
            "verdict": "drift" if done.returncode == EXIT_DRIFT else "no drift",
            "exit_code": done.returncode,
            "since": since,
            "report": f"{folder}/report.html",
            "summary": f"{folder}/summary.json",
        }

    @task.branch
    def drifted(verdict: dict[str, Any]) -> str | list[str]:
        """Retrain on drift; otherwise the run ends here."""
        print(f"{verdict['verdict']} since {verdict['since']}: {verdict['report']}")
        return "retrain" if verdict["exit_code"] == EXIT_DRIFT else []

    @task(execution_timeout=timedelta(hours=1))
    def retrain(verdict: dict[str, Any]) -> dict[str, Any]:
        """Retrain on the window's labelled logs, gate the challenger, hold it for approval."""
        params = get_current_context()["params"]
        with tempfile.TemporaryDirectory() as tmp:
            outcome = Path(tmp) / "outcome.json"
            done = project.run(
                "drift", "retrain", "--force", "--no-promote", "--no-reload",
                "--since", verdict["since"], "--outcome", str(outcome),
                *params["report_args"], *params["retrain_args"],
            )  # fmt: skip
            if outcome.exists():
                return json.loads(outcome.read_text())
        # Nothing trained (these rows were trained on before): nothing to approve.
        return {"passed_gate": False, "reason": done.last_line("[done]") or done.tail(3)}

    verdict = report()
    retrained = retrain(verdict)
    drifted(verdict) >> retrained
    gate.approval_gate("retrain")(retrained)
