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
