"""Shared fixtures, one per kind of thing the tests start, at session scope: a Spark session, a
private home (MLflow store, BentoML store), one quick training run with its Production model
imported into the store, and one ``bentoml serve`` of that model. Tests that mutate what they
serve (reload, retrain, promote) start their own server through the same harness
(``tests/harness.py``) on a private copy of that state.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness import (
    DATA,
    ROOT,
    SERVED_FEEDBACK_TOKEN,
    packages_imported_by,
    server_env,
    serving,
)

__all__ = ["DATA", "ROOT", "packages_imported_by"]  # for tests/containers, which imports them here


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


@dataclass(frozen=True)
class ProductionModel:
    """The session's Production model in the session's BentoML store."""

    tag: str  # name:version in the store
    version: str  # the registry's version
    path: Path  # its folder in the store


@pytest.fixture(scope="session")
def served_model(trained, settings) -> ProductionModel:
    """The session's Production model imported into the session's BentoML store."""
    import bentoml

    from lifeboat.serving.store import import_production

    imported, _ = import_production(settings.tracking_uri, settings.model_name)
    model = bentoml.models.get(imported.tag)  # a new model's own .path is its build folder
    return ProductionModel(str(model.tag), str(trained.version), Path(model.path))


@pytest.fixture(scope="session")
def served(served_model: ProductionModel, session_home: Path) -> Iterator[str]:
    """``bentoml serve service:TitanicSurvival`` on a free 127.0.0.1 port, serving the
    session's Production model from the session's BentoML store; yields its base URL.

    Read-only: a test that reloads, retrains or promotes starts a server of its own.
    """
    from loadtest.servers import private_home

    # A home of its own over the session's model store: `bentoml serve` empties its home's
    # Prometheus folder on start, which would break /metrics of other servers sharing it.
    home = private_home(session_home / "served-bentoml", served_model.path.parents[1])
    env = server_env(
        BENTOML_HOME=str(home),
        LIFEBOAT_API_TOKEN="",  # open, whatever a developer's .env says
        LIFEBOAT_FEEDBACK_TOKEN=SERVED_FEEDBACK_TOKEN,
        LIFEBOAT_MONITORING_DIR=str(session_home / "monitoring"),
    )
    with serving("service:TitanicSurvival", env, ROOT, session_home / "serve.log") as server:
        yield server.url
