"""A private LIFEBOAT_HOME for tests that move the production alias or kill a run.

A copy of the session's registry database (its versions' artifacts stay where the session wrote
them), so the session's Production version is untouched; the CLI runs as a user runs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Run

from tests.harness import ROOT

FAST = ("--quick", "--folds", "2")  # one grid point per family, two folds: the gate still runs


def private_home(session_home: Path, home: Path) -> Path:
    """``home`` with a copy of the session's ``mlflow.db``."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(session_home / "mlflow.db", home / "mlflow.db")
    return home


def environment(home: Path) -> dict[str, str]:
    """The test session's environment with every state folder in ``home``."""
    return {
        **os.environ,
        "LIFEBOAT_HOME": str(home),
        "BENTOML_HOME": str(home / "bentoml"),
        "MLFLOW_TRACKING_URI": "",
        "LIFEBOAT_MODEL_STORE": "",
        "PYTHONUNBUFFERED": "1",
    }


def client(home: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{home / 'mlflow.db'}")


def production(home: Path) -> str | None:
    from training.registry import production_number

    return production_number(client(home), "titanic", "production")


def all_runs(home: Path) -> dict[str, Run]:
    """Every run of every experiment in ``home``'s store, by id."""
    store = client(home)
    ids = [e.experiment_id for e in store.search_experiments()]
    return {r.info.run_id: r for r in store.search_runs(ids, max_results=5000)}


def start(home: Path, module: str, *args: str) -> subprocess.Popen:
    """``python -m module args…`` in the project with ``home``; output to ``home/<module>.log``."""
    log = (home / f"{module}.log").open("w")
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=ROOT, env=environment(home), stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip


def output(home: Path, module: str) -> str:
    return (home / f"{module}.log").read_text()


def wait_for_new_run(
    home: Path, before: set[str], proc: subprocess.Popen, timeout: float = 300, **tags: str
) -> Run:
    """The first RUNNING run not in ``before`` whose tags include ``tags``; polls MLflow."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"ended ({proc.returncode}) before its run showed up")
        for run_id, run in all_runs(home).items():
            wanted = all(run.data.tags.get(k) == v for k, v in tags.items())
            if run_id not in before and run.info.status == "RUNNING" and wanted:
                return run
        time.sleep(0.5)
    raise AssertionError(f"no new RUNNING run with {tags} within {timeout} s")
