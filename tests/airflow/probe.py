"""Run with Airflow's Python (``.airflow-venv``): what the tests need from Airflow itself.

The tests run in the project's .venv, which has no Airflow, so they call this script:

- ``dags FOLDER``: parse the folder as the DAG processor does (refusing to start any process
  while doing so) and print the DAGs' settings and import errors.
- ``respond DAG_ID TASK_ID OPTION USER``: wait for that task to ask a person, then answer it with
  Airflow's own Core API handler, the one behind ``PATCH .../hitlDetails`` in the UI.
- ``run DAG_ID``: the newest run's state and each task's state and return value.

Each prints one JSON object as its last line.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path


def dags(folder: Path) -> dict:
    from airflow.dag_processing.dagbag import BundleDagBag

    def refuse(*args, **kwargs):
        raise RuntimeError(f"a DAG module started a process at import: {args[:1]}")

    popen, subprocess.Popen = subprocess.Popen, refuse  # no DAG may do work when parsed
    try:
        seconds = {}
        for module in sorted(folder.glob("*.py")):
            started = time.perf_counter()
            BundleDagBag(str(module), bundle_path=folder)
            seconds[module.name] = time.perf_counter() - started
        bag = BundleDagBag(str(folder), bundle_path=folder)
    finally:
        subprocess.Popen = popen
    found = {}
    for dag_id, dag in bag.dags.items():
        found[dag_id] = {
            "file": Path(dag.fileloc).name,
            "schedule": None if dag.schedule is None else str(dag.schedule),
            "catchup": dag.catchup,
            "max_active_runs": dag.max_active_runs,
            "tags": sorted(dag.tags),
            "params": {k: dag.params[k] for k in dag.params},
            "dagrun_timeout": dag.dagrun_timeout.total_seconds() if dag.dagrun_timeout else None,
            "tasks": {t.task_id: _task(t) for t in dag.tasks},
        }
    errors = {Path(k).name: v for k, v in bag.import_errors.items()}
    return {"errors": errors, "import_seconds": seconds, "dags": found}


def _task(t) -> dict:
    def seconds(delta):
        return delta.total_seconds() if delta else None

    return {
        "owner": t.owner,
        "retries": t.retries,
        "execution_timeout": seconds(t.execution_timeout),
        "response_timeout": seconds(getattr(t, "response_timeout", None)),
        "defaults": getattr(t, "defaults", None),
        "trigger_rule": str(getattr(t.trigger_rule, "value", t.trigger_rule)),
        "operator": type(t).__name__,
        "classes": [c.__name__ for c in type(t).__mro__],
        "downstream": sorted(t.downstream_task_ids),
    }


def respond(dag_id: str, task_id: str, option: str, user: str, timeout: float = 1800) -> dict:
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
    from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
    from airflow.models.hitl import HITLDetail
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import TaskInstanceState
    from sqlalchemy import select

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with create_session() as session:
            waiting = session.scalars(
                select(TaskInstance).where(
                    TaskInstance.dag_id == dag_id,
                    TaskInstance.task_id == task_id,
                    TaskInstance.state == TaskInstanceState.AWAITING_INPUT,
                )
            ).first()
            if waiting is not None:
                asked = session.get(HITLDetail, waiting.id)
                answer = update_hitl_detail(
                    dag_id=dag_id,
                    dag_run_id=waiting.run_id,
                    task_id=task_id,
                    update_hitl_detail_payload=UpdateHITLDetailPayload(chosen_options=[option]),
                    user=SimpleAuthManagerUser(username=user, role="admin"),
                    session=session,
                )
                return {
                    "run_id": waiting.run_id,
                    "subject": asked.subject,
                    "body": asked.body,
                    "options": asked.options,
                    "chosen_options": answer.chosen_options,
                    "responded_by": answer.responded_by.name,
                }
        time.sleep(1)
    raise SystemExit(f"{dag_id}.{task_id} never asked for input within {timeout} s")


def run(dag_id: str) -> dict:
    from airflow.models.dagrun import DagRun
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        newest = session.scalars(
            select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.id.desc())
        ).first()
        tasks = {}
        for ti in newest.get_task_instances(session=session):
            value = session.scalar(
                select(XComModel.value).where(
                    XComModel.dag_id == dag_id,
                    XComModel.run_id == newest.run_id,
                    XComModel.task_id == ti.task_id,
                    XComModel.key == "return_value",
                )
            )
            tasks[ti.task_id] = {"state": str(ti.state), "output": value}
        return {"run_id": newest.run_id, "state": str(newest.state), "tasks": tasks}


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "dags":
        result = dags(Path(args[0]).resolve())
    elif command == "respond":
        result = respond(*args)
    else:
        result = run(*args)
    print(json.dumps(result, default=str))
