"""One real ``bentoml serve service:TitanicSurvival`` for the whole folder, on a free port.

It serves the model the session's training run (``trained``) promoted, imported with
``lifeboat.serving.store.import_production`` into a BentoML store of this folder's own: the reload
tests add candidates (one of them broken) to that store and move the production alias in a
copy of the session's MLflow registry, which other folders must not see.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.harness import ADMIN_TOKEN, FEEDBACK_TOKEN, ROOT, Server, private_env, serving

WORKERS = 2


@dataclass(frozen=True)
class ServingHome:
    """This folder's private state: an MLflow registry and a BentoML store."""

    path: Path
    tracking_uri: str
    bentoml_home: Path
    model_tag: str  # the production model imported at the start
    model_path: Path

    def model_dir(self, tag: str) -> Path:
        """Where the store keeps the model ``tag`` (``name:version``)."""
        name, version = tag.split(":")
        return self.bentoml_home / "models" / name / version


@pytest.fixture(scope="package")
def serving_home(trained, settings, tmp_path_factory) -> ServingHome:
    from bentoml._internal.models import ModelStore

    from lifeboat.serving.store import import_production

    home = tmp_path_factory.mktemp("serving")
    # sqlite's backup API: a consistent copy of the registry; artifacts stay where they are.
    with (
        sqlite3.connect(settings.state_dir / "mlflow.db") as src,
        sqlite3.connect(home / "mlflow.db") as dst,
    ):
        src.backup(dst)
    tracking_uri = f"sqlite:///{home / 'mlflow.db'}"
    (home / "bentoml" / "models").mkdir(parents=True)
    model, created = import_production(
        tracking_uri,
        settings.model_name,
        settings.production_alias,
        store=ModelStore(home / "bentoml" / "models"),
    )
    assert created
    tag = str(model.tag)  # a new model's own .path is its build folder, gone by now
    folder = home / "bentoml" / "models" / tag.replace(":", "/")
    return ServingHome(home, tracking_uri, home / "bentoml", tag, folder)


@pytest.fixture(scope="package")
def server(serving_home: ServingHome) -> Iterator[Server]:
    """``bentoml serve service:TitanicSurvival`` from the project folder, two workers."""
    home = serving_home.path
    env = private_env(
        home,
        BENTOML_CONFIG_OPTIONS=f"services.TitanicSurvival.workers={WORKERS}",
        MLFLOW_TRACKING_URI=serving_home.tracking_uri,
        LIFEBOAT_ADMIN_TOKEN=ADMIN_TOKEN,
        LIFEBOAT_FEEDBACK_TOKEN=FEEDBACK_TOKEN,
    )
    with serving("service:TitanicSurvival", env, ROOT, home / "serve.log") as running:
        assert len(running.worker_pids()) == WORKERS, running.log_tail()
        yield running


@pytest.fixture(scope="package")
def monitoring_dir(serving_home: ServingHome) -> Path:
    return serving_home.path / "monitoring"


@pytest.fixture(scope="package")
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as session:
        yield session
