"""Real DAG runs (``airflow dags test``) against the real embedded stack.

A real ``bentoml serve`` on a private copy of the session's registry and store, real Spark
training and MLflow on SQLite; the monitor DAG is run three times in one Airflow database, each
over the window since the run before it: clean traffic ends it; drifted labelled traffic
retrains and a person (answering through Airflow's own HITL handler) rejects the challenger,
then approves the next one, which the service ends up serving.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from drift import traffic
from tests.airflow.conftest import (
    AIRFLOW_VENV,
    PROBE,
    TOKEN,
    airflow,
    probe,
    serving_versions,
)
from tests.harness import ROOT, predict_then_report, production_version, registry_versions

pytestmark = [pytest.mark.airflow, pytest.mark.spark, pytest.mark.integration]
REVIEWER = "reviewer"
# One grid point per family, two folds: the gate still runs. No Bento build: the reload serves
# the registry's Production version without it (tests/drift covers the build).
CONF = {"retrain_args": ["--quick", "--folds", "2"], "build": False}


@pytest.fixture(scope="module")
def conf() -> dict:
    return dict(CONF)


def send(url: str, passengers: list[dict]) -> None:
    """Predictions, then their outcomes through POST /feedback (the labels retraining trusts)."""
    predict_then_report(url, passengers, TOKEN)


def run_monitor(
    env: dict, conf: dict, home: Path, name: str, answer: str | None = None
) -> tuple[dict, dict]:
    """``airflow dags test lifeboat_monitor`` with ``conf``; ``answer`` the approval if given.

    Returns the run (state, each task's state and output) and what the person was asked.
    """
    log = home / f"dags-test-{name}.log"
    started = time.monotonic()
    with log.open("w") as out:
        dags_test = subprocess.Popen(
            [str(AIRFLOW_VENV / "bin" / "airflow"), "dags", "test", "lifeboat_monitor",
             "-c", json.dumps(conf)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        asked = respond(env, answer, dags_test, log) if answer is not None else {}
        dags_test.wait(1800)
    finally:
        if dags_test.poll() is None:
            os.killpg(dags_test.pid, signal.SIGKILL)
    run = probe(env, "run", "lifeboat_monitor")
    print(f"{name}: {time.monotonic() - started:.0f} s, {run['state']}")
    assert dags_test.returncode == 0, log.read_text()[-6000:]
    return run, asked


def respond(env: dict, answer: str, dags_test: subprocess.Popen, log: Path) -> dict:
    """Answer the run's approval as REVIEWER once it asks; what it asked."""
    responder = subprocess.Popen(
        [str(AIRFLOW_VENV / "bin" / "python"), str(PROBE), "respond", "lifeboat_monitor",
         "approve", answer, REVIEWER],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    while responder.poll() is None and dags_test.poll() is None:
        time.sleep(1)
    if responder.poll() is None:  # the run ended first
        responder.kill()
        pytest.fail(f"the run never asked for approval:\n{log.read_text()[-6000:]}")
    out, err = responder.communicate()
    assert responder.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def states(run: dict) -> dict[str, str]:
    return {task: info["state"] for task, info in run["tasks"].items()}


def output(run: dict, task: str):
    """A task's return value (the probe hands JSON documents over as text)."""
    value = run["tasks"][task]["output"]
    try:
        return json.loads(value) if isinstance(value, str) else value
    except ValueError:  # a plain string
        return value


def test_clean_traffic_ends_the_run_without_retraining(service, env, conf, home):
    before = registry_versions(home)
    send(service.url, traffic.passengers(600, labelled=True, seed=41))

    run, _ = run_monitor(env, conf, home, "clean")

    assert run["state"] == "success"
    verdict = output(run, "report")
    assert verdict["verdict"] == "no drift" and verdict["exit_code"] == 0
    assert verdict["since"] == "24h"  # the first run: no run before it
    assert Path(verdict["report"]).is_file() and Path(verdict["summary"]).is_file()
    assert json.loads(Path(verdict["summary"]).read_text())["drift_detected"] is False
    skipped = {"retrain", "decide", "approve", "promote", "conclude"}
    assert {task: states(run)[task] for task in skipped} == dict.fromkeys(skipped, "skipped")
    assert registry_versions(home) == before


def drifted_labelled(seed: int) -> list[dict]:
    """Drifted passengers, plus every passenger of data/titanic.csv with its label: those
    include the held-out rows, so the challenger beats Production at the gate (as in
    tests/drift/test_drift_loop.py) and there is something to approve."""
    return traffic.passengers(1200, drifted=True, labelled=True, seed=seed) + traffic.load_rows()


def test_a_rejected_challenger_changes_nothing(service, env, conf, home):
    served, champion, before = (
        serving_versions(service.url),
        production_version(home),
        registry_versions(home),
    )
    reloads = service.log.read_text().count("path=/reload")
    models = sorted((home / "bentoml" / "models" / "titanic").iterdir())
    send(service.url, drifted_labelled(seed=51))

    run, asked = run_monitor(env, conf, home, "rejected", answer="Reject")

    assert run["state"] == "success", states(run)  # a rejection is an answer, not a failure
    verdict = output(run, "report")
    assert verdict["verdict"] == "drift" and verdict["exit_code"] == 42
    assert verdict["since"] != "24h"  # the window starts at the clean run
    outcome = output(run, "retrain")
    assert outcome["passed_gate"] is True and outcome["promoted"] is False
    assert registry_versions(home) == [*before, int(outcome["version"])]  # registered, held
    # What the person saw: both sides' held-out figures and the run's MLflow page.
    assert asked["subject"] == f"Promote titanic v{outcome['version']} to Production?"
    assert f"{outcome['heldout_auc']:.4f}" in asked["body"]
    assert f"Production v{champion} | {outcome['production_auc']:.4f}" in asked["body"]
    assert f"/#/experiments/{outcome['experiment_id']}/runs/{outcome['run_id']}" in asked["body"]
    assert states(run)["promote"] == "skipped"
    assert output(run, "conclude") == {
        "promoted": False,
        "verdict": f"v{outcome['version']} rejected by {REVIEWER}; "
        f"Production v{champion} left alone",
    }
    assert production_version(home) == champion
    assert serving_versions(service.url) == served
    assert service.log.read_text().count("path=/reload") == reloads
    assert sorted((home / "bentoml" / "models" / "titanic").iterdir()) == models


def test_drift_retrains_and_an_approved_challenger_is_served(service, env, conf, home):
    (old,) = serving_versions(service.url)
    send(service.url, drifted_labelled(seed=61))

    run, asked = run_monitor(env, conf, home, "approved", answer="Approve")

    assert run["state"] == "success", states(run)
    assert output(run, "report")["verdict"] == "drift"
    outcome = output(run, "retrain")
    new = outcome["version"]
    assert outcome["passed_gate"] is True and outcome["production_version"] == old
    assert asked["chosen_options"] == ["Approve"]
    assert states(run)["promote"] == "success"
    assert output(run, "conclude") == {
        "promoted": True,
        "verdict": f"v{new} approved by {REVIEWER}: promoted, imported and served",
    }
    assert production_version(home) == new != old
    assert serving_versions(service.url) == {new}
    assert service.log.read_text().count("path=/reload") == 1


def test_the_training_dag_asks_no_one_for_a_challenger_that_loses_the_gate(env, home):
    """Trained as the session's first Production version was (same data, seed, grid and folds),
    or on less than a later one that also learned from labelled logs: the challenger cannot beat
    Production, so even with auto_approve nothing is promoted."""
    champion, before = production_version(home), registry_versions(home)
    conf = {"train_args": ["--quick"], "auto_approve": True, "build": False}

    done = airflow(env, "dags", "test", "lifeboat_train", "-c", json.dumps(conf), timeout=1800)
    (home / "dags-test-train.log").write_text(done.stdout)
    run = probe(env, "run", "lifeboat_train")

    assert done.returncode == 0 and run["state"] == "success", done.stdout[-6000:]
    outcome = output(run, "train")
    assert outcome["passed_gate"] is False and outcome["promoted"] is False
    assert outcome["production_version"] == champion
    assert "does not beat" in outcome["reason"]
    assert {t: states(run)[t] for t in ("approve", "promote")} == dict.fromkeys(
        ("approve", "promote"), "skipped"
    )
    assert output(run, "conclude")["verdict"].startswith("not eligible (held-out AUC")
    assert registry_versions(home) == [*before, int(outcome["version"])]
    assert production_version(home) == champion


def test_a_csv_landing_in_the_inbox_is_scored_next_to_it(env, home):
    inbox = home / "inbox"
    inbox.mkdir()
    landed = inbox / "passengers.csv"
    with (ROOT / "data" / "titanic.csv").open() as titanic:  # the header and 40 passengers
        landed.write_text("".join(next(titanic) for _ in range(41)))

    done = airflow(
        {**env, "LIFEBOAT_SCORE_INBOX": str(inbox)}, "dags", "test", "lifeboat_batch_score",
        timeout=900,
    )  # fmt: skip
    run = probe(env, "run", "lifeboat_batch_score")

    assert done.returncode == 0 and run["state"] == "success", done.stdout[-6000:]
    assert output(run, "landed") == str(landed)
    scored = inbox / "passengers.scored.csv"
    assert output(run, "score")["output"] == str(scored)
    frame = pd.read_csv(scored)
    assert len(frame) == 40 and frame["probability"].between(0, 1).all()
    assert set(frame["survived"]) <= {0, 1}
