"""A train or retrain stopped by SIGTERM or Ctrl-C leaves no MLflow run RUNNING (issue 11).

Each test starts the real CLI on a private copy of the session's registry, waits until MLflow
shows its run, signals it, and reads every run that process made.
"""

from __future__ import annotations

import signal
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.integration.registry_home import (
    FAST,
    all_runs,
    output,
    private_home,
    production,
    start,
    wait_for_new_run,
)

pytestmark = [pytest.mark.spark, pytest.mark.integration]


@pytest.fixture
def home(trained, session_home, tmp_path) -> Path:
    return private_home(session_home, tmp_path / "home")


def _interrupt(proc, signum: int) -> float:
    """Send ``signum``; return the seconds the process took to end."""
    sent = time.monotonic()
    proc.send_signal(signum)
    try:
        proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return time.monotonic() - sent


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_an_interrupted_training_ends_its_runs_killed(home, signum, code):
    before = set(all_runs(home))
    training = start(home, "training", "train", *FAST)
    parent = wait_for_new_run(home, before, training, stage="pipeline")
    # Signalled once a family's nested run exists, while the next family cross-validates.
    deadline = time.monotonic() + 300
    while not any(
        r.data.tags.get("mlflow.parentRunId") == parent.info.run_id for r in all_runs(home).values()
    ):
        assert time.monotonic() < deadline and training.poll() is None, output(home, "training")
        time.sleep(0.5)
    took = _interrupt(training, signum)

    printed = output(home, "training")
    assert training.returncode == code, printed[-3000:]
    name = signal.Signals(signum).name
    assert f"error: interrupted by {name}; its MLflow runs ended KILLED" in printed
    made = {i: r for i, r in all_runs(home).items() if i not in before}
    assert made[parent.info.run_id].info.status == "KILLED"
    children = [r for r in made.values() if r.info.run_id != parent.info.run_id]
    assert children and all(
        r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in children
    )
    assert {r.info.status for r in children} <= {"FINISHED", "KILLED"}
    assert took < 60, f"{took:.1f} s from the signal to the exit"


def test_an_interrupted_retrain_ends_its_runs_killed(home):
    from drift.traffic import log_line, passengers

    logs = home / "logs" / "titanic" / "data"
    logs.mkdir(parents=True)
    version, start_at = production(home), datetime.now() - timedelta(hours=1)
    lines = (
        log_line(p, 0.5, version, start_at + timedelta(seconds=i), i)
        for i, p in enumerate(passengers(600, drifted=True, labelled=True, seed=5))
    )
    (logs / "data.1.log").write_text("\n".join(lines) + "\n")
    before = set(all_runs(home))
    retrain = start(home, "drift", "retrain", "--force", "--no-reload", "--no-build",
                    "--logs", str(home / "logs"), *FAST)  # fmt: skip
    loop = wait_for_new_run(home, before, retrain, stage="retrain")
    took = _interrupt(retrain, signal.SIGTERM)

    printed = output(home, "drift")
    assert retrain.returncode == 143, printed[-3000:]
    assert "[interrupted] interrupted by SIGTERM" in printed
    made = {i: r for i, r in all_runs(home).items() if i not in before}
    assert made[loop.info.run_id].info.status == "KILLED"
    assert made[loop.info.run_id].data.tags["step.interrupted"] == "interrupted by SIGTERM"
    assert "RUNNING" not in {r.info.status for r in made.values()}, {
        r.data.tags.get("mlflow.runName"): r.info.status for r in made.values()
    }
    assert took < 60, f"{took:.1f} s from the signal to the exit"
