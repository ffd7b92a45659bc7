"""Airflow for the tests: its own venv (``make airflow-venv``) and one metadata database (SQLite)
per test session, with the project's dags/ and the tests' Python as the project's Python; and
per test module, the embedded stack the DAGs' tasks work on: a private copy of the session's
registry and store, and a real ``bentoml serve`` on it."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.harness import ROOT, private_env, serving

AIRFLOW_VENV = ROOT / ".airflow-venv"
PROBE = Path(__file__).with_name("probe.py")
TOKEN = "airflow-tests-admin-token"


@pytest.fixture(scope="session")
def airflow_env(tmp_path_factory) -> dict[str, str]:
    """The environment Airflow's commands run in: a private AIRFLOW_HOME, migrated once."""
    made = subprocess.run(
        ["make", "--no-print-directory", "airflow-venv"],
        cwd=ROOT, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    home = tmp_path_factory.mktemp("airflow-home")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "LIFEBOAT_PROJECT": str(ROOT),
        "LIFEBOAT_PYTHON": sys.executable,
    }
    migrated = airflow(env, "db", "migrate", timeout=600)
    assert migrated.returncode == 0, migrated.stdout[-3000:]
    return env


def airflow(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``airflow <args>`` from Airflow's venv; stdout and stderr together."""
    return subprocess.run(
        [str(AIRFLOW_VENV / "bin" / "airflow"), *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=timeout,
    )  # fmt: skip


def probe(env: dict[str, str], *args: str, timeout: float = 300) -> dict:
    """What ``probe.py <args>`` found, run with Airflow's Python."""
    done = subprocess.run(
        [str(AIRFLOW_VENV / "bin" / "python"), str(PROBE), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def home(trained, served_model, settings, tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("airflow-stack")
    with (
        sqlite3.connect(settings.state_dir / "mlflow.db") as src,
        sqlite3.connect(home / "mlflow.db") as dst,
    ):
        src.backup(dst)  # a consistent copy; the versions' artifacts stay where they are
    shutil.copytree(served_model.path.parent, home / "bentoml" / "models" / "titanic")
    return home


@pytest.fixture(scope="module")
def env(home, airflow_env) -> dict[str, str]:
    return private_env(home, base=airflow_env, LIFEBOAT_ADMIN_TOKEN=TOKEN)


@pytest.fixture(scope="module")
def service(env, home):
    with serving("service:TitanicSurvival", env, ROOT, home / "serve.log") as server:
        env["LIFEBOAT_SERVICE_URL"] = server.url  # what the DAG's promote task reloads
        yield server


def serving_versions(url: str, asks: int = 12) -> set[str]:
    return {requests.get(f"{url}/health", timeout=10).json()["model_version"] for _ in range(asks)}
