"""Every DAG in dags/ parses in Airflow with no error, no work at import, and its settings."""

from __future__ import annotations

import pytest

from tests.airflow.conftest import probe
from tests.harness import ROOT

pytestmark = pytest.mark.airflow
DAGS = {
    "lifeboat_train": None,  # manual: the training data changes rarely
    "lifeboat_monitor": "@hourly",
    "lifeboat_batch_score": "*/15 * * * *",
}


@pytest.fixture(scope="module")
def parsed(airflow_env) -> dict:
    return probe(airflow_env, "dags", str(ROOT / "dags"))


def test_every_dag_imports_without_errors_or_work(parsed):
    assert parsed["errors"] == {}
    assert set(parsed["dags"]) == set(DAGS)
    # The probe refuses any process a module starts while parsed; parsing stays cheap.
    assert all(seconds < 2 for seconds in parsed["import_seconds"].values()), parsed
    assert {d["file"] for d in parsed["dags"].values()} == {f"{dag}.py" for dag in DAGS}


@pytest.mark.parametrize("dag_id", sorted(DAGS))
def test_schedule_runs_and_tags(parsed, dag_id):
    dag = parsed["dags"][dag_id]
    assert dag["schedule"] == DAGS[dag_id]
    assert dag["catchup"] is False
    assert dag["max_active_runs"] == 1
    assert dag["dagrun_timeout"] and dag["dagrun_timeout"] > 0
    assert "lifeboat" in dag["tags"] and len(dag["tags"]) >= 2


@pytest.mark.parametrize("dag_id", sorted(DAGS))
def test_every_task_has_an_owner_retries_and_a_timeout(parsed, dag_id):
    for task_id, task in parsed["dags"][dag_id]["tasks"].items():
        assert task["owner"] == "lifeboat", task_id
        assert task["execution_timeout"] and task["execution_timeout"] > 0, task_id
        # A person's answer is not retried: the approval alone has no retries.
        assert task["retries"] == (0 if task_id == "approve" else 1), task_id


@pytest.mark.parametrize("dag_id", ["lifeboat_train", "lifeboat_monitor"])
def test_the_approval_gate(parsed, dag_id):
    dag = parsed["dags"][dag_id]
    tasks = dag["tasks"]
    assert dag["params"]["auto_approve"] is False
    approve = tasks["approve"]
    assert "ApprovalOperator" in approve["classes"]  # the standard provider's HITL approval
    assert approve["defaults"] == ["Reject"]  # what an unanswered request becomes
    assert approve["response_timeout"] == 24 * 3600
    assert dag["params"]["approval_timeout_hours"] == 24  # a run may wait less, or more
    assert tasks["decide"]["downstream"] == ["approve", "promote"]  # auto_approve skips a person
    assert approve["downstream"] == ["promote"]
    assert tasks["promote"]["trigger_rule"] == "none_failed_min_one_success"
    assert tasks["promote"]["downstream"] == ["conclude"]


def test_the_monitor_retrains_only_through_its_branch(parsed):
    tasks = parsed["dags"]["lifeboat_monitor"]["tasks"]
    assert tasks["report"]["downstream"] == ["drifted", "retrain"]
    assert tasks["drifted"]["operator"] == "_BranchPythonDecoratedOperator"
    assert tasks["drifted"]["downstream"] == ["retrain"]
    assert tasks["retrain"]["downstream"] == ["conclude", "decide", "promote"]


FORM = """
import json, sys
from datetime import timedelta
sys.path.insert(0, "dags")
from lifeboat_tasks import gate
outcome = json.loads(sys.argv[1])
print(json.dumps(gate.describe(outcome, False, timedelta(hours=24))))
"""


def outcome(shadow: dict | None) -> dict:
    return {
        "model_name": "titanic", "version": "5", "production_version": "4",
        "challenger": "rf", "heldout_auc": 0.87, "production_auc": 0.85, "baseline_auc": 0.78,
        "reason": "better by 0.02", "run_id": "r", "experiment_id": "1", "shadow": shadow,
    }  # fmt: skip


def form(env: dict, shadow: dict | None) -> str:
    import json
    import subprocess

    from tests.airflow.conftest import AIRFLOW_VENV

    done = subprocess.run(
        [str(AIRFLOW_VENV / "bin" / "python"), "-c", FORM, json.dumps(outcome(shadow))],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])["body"]


def test_the_approval_form_shows_the_live_shadow_evidence_beside_the_offline_figures(airflow_env):
    side = {"auc": 0.80, "accuracy": 0.79}
    judged = {
        "verdict": "worse",
        "why": "AUC difference interval [-0.08, -0.02] is below 0",
        "comparison": {
            "labelled_rows": 600, "rows": 900, "agreement": 0.91,
            "shadow_version": "5", "production_version": "4",
            "shadow": side, "production": {"auc": 0.86, "accuracy": 0.83},
            "difference": {"auc": -0.06, "accuracy": -0.04},
        },
    }  # fmt: skip
    body = form(airflow_env, judged)
    assert "| challenger v5 (rf) | 0.8700 |" in body  # the offline figures
    assert "**Live traffic (shadow)**: worse — AUC difference interval" in body
    assert "| shadow v5 | 0.8000 | 0.7900 |" in body
    assert "| Production v4 | 0.8600 | 0.8300 |" in body
    assert "| difference | -0.0600 | -0.0400 |" in body
    assert "Agreement 0.9100 on 900 requests." in body
    assert "no evidence in this outcome" in form(airflow_env, None)
