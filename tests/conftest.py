"""Shared fixtures: one Spark session, one temporary MLflow store per test session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def packages_imported_by(code: str, candidates: Iterable[str]) -> list[str]:
    """Which of the top-level packages ``candidates`` a fresh interpreter holds after ``code``."""
    wanted = json.dumps(sorted(candidates))
    probe = (
        f"{code}\nimport json, sys\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({wanted}))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


DATA = ROOT / "data" / "titanic.csv"


@pytest.fixture(scope="session")
def spark():
    """One SparkSession (one JVM) for the whole test session."""
    from training.spark import get_spark

    session = get_spark("lifeboat-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def titanic_path() -> Path:
    return DATA


@pytest.fixture(scope="session")
def session_home(tmp_path_factory) -> Path:
    """A private LIFEBOAT_HOME so tests never touch the developer's mlflow.db or BentoML store."""
    home = tmp_path_factory.mktemp("lifeboat-home")
    return home


@pytest.fixture(autouse=True, scope="session")
def _isolated_env(session_home):
    """Point every setting that writes state at the session's temporary home."""
    from lifeboat.settings import get_settings

    saved = dict(os.environ)
    # Environment variables win over a developer's .env file: pin the ones that would send the
    # tests to a real server or cluster.
    os.environ["MLFLOW_TRACKING_URI"] = ""
    os.environ["SPARK_MASTER"] = "local[*]"
    os.environ["LIFEBOAT_MODEL_NAME"] = "titanic"
    os.environ["LIFEBOAT_EXPERIMENT"] = "titanic"
    os.environ["LIFEBOAT_HOME"] = str(session_home)
    os.environ["BENTOML_HOME"] = str(session_home / "bentoml")
    get_settings.cache_clear()
    yield
    os.environ.clear()
    os.environ.update(saved)
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def settings(_isolated_env):
    from lifeboat.settings import get_settings

    return get_settings()


@pytest.fixture(scope="session")
def trained(spark, settings):
    """One real training run (quick grids) into the session's MLflow store, shared by tests."""
    from training.pipeline import TrainOptions, run

    return run(TrainOptions(data=DATA, quick=True), settings)
