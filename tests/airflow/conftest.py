"""Airflow for the tests: its own venv (``make airflow-venv``) and one metadata database (SQLite)
per test session, with the project's dags/ and the tests' Python as the project's Python."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import ROOT

AIRFLOW_VENV = ROOT / ".airflow-venv"
PROBE = Path(__file__).with_name("probe.py")


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
