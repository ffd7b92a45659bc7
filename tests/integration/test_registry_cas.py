"""The production alias is compare-and-set, and train and retrain exclude each other (issue 11).

Real MLflow (a private copy of the session's registry), real Spark training through the CLI.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.harness import ROOT
from tests.integration.registry_home import (
    FAST,
    all_runs,
    client,
    environment,
    output,
    private_home,
    production,
    start,
    wait_for_new_run,
)

pytestmark = [pytest.mark.spark, pytest.mark.integration]

# A registered version any challenger beats on the held-out rows: every passenger a coin flip.
COIN_FLIP = """
import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel


class CoinFlip(PythonModel):
    def predict(self, context, model_input, params=None):
        return pd.DataFrame({"probability": [0.5] * len(model_input)})


set_model(CoinFlip())
"""
REGISTER = """
import sys
import mlflow
from lifeboat.settings import get_settings
from training import registry

registry.configure(get_settings())
with mlflow.start_run(run_name="coin-flip"):
    info = mlflow.pyfunc.log_model(name="model", python_model=sys.argv[1], pip_requirements=[])
print(mlflow.register_model(info.model_uri, "titanic").version)
"""


@pytest.fixture(scope="module")
def home(trained, session_home, tmp_path_factory) -> Path:
    return private_home(session_home, tmp_path_factory.mktemp("registry-cas"))


def _register_coin_flip(home: Path) -> str:
    code = home / "coin_flip.py"
    code.write_text(COIN_FLIP)
    done = subprocess.run(
        [sys.executable, "-c", REGISTER, str(code)],
        cwd=ROOT, env=environment(home), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def test_a_training_leaves_production_that_moved_while_it_ran_and_blocks_a_retrain(home):
    coin_flip = _register_coin_flip(home)
    found = production(home)
    before = set(all_runs(home))
    training = start(home, "training", "train", *FAST)
    try:
        wait_for_new_run(home, before, training, stage="pipeline")
        # While it trains, a retrain on the same state folder is refused at once...
        retrain = subprocess.run(
            [sys.executable, "-m", "drift", "retrain", "--force", "--no-reload",
             "--logs", str(home / "no-logs")],
            cwd=ROOT, env=environment(home), capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        # ...and someone promotes by hand (the MLflow UI, another machine): the gate would beat
        # this version, so only the compare-and-set keeps the training from overwriting it.
        client(home).set_registered_model_alias("titanic", "production", coin_flip)
        training.wait(900)
    finally:
        if training.poll() is None:
            training.kill()
    printed = output(home, "training")

    assert retrain.returncode == 2, retrain.stdout + retrain.stderr
    assert "another train or retrain is running" in retrain.stderr
    assert f"python -m training train --quick --folds 2, pid {training.pid}" in retrain.stderr
    assert training.returncode == 0, printed[-3000:]
    moved = f"production moved from v{found} to v{coin_flip} during this run; left as it is"
    assert f"NOT promoted: {moved} (the gate had passed: held-out AUC" in printed
    assert production(home) == coin_flip
    (parent,) = [
        r
        for run_id, r in all_runs(home).items()
        if run_id not in before and r.data.tags.get("stage") == "pipeline"
    ]
    assert parent.data.tags["promoted"] == "False"
    assert parent.data.tags["production_at_start"] == found
    assert parent.data.tags["decision"].startswith(moved)


def test_training_refuses_to_start_while_the_lock_is_held(home):
    from training.runs import exclusive

    with exclusive(home):
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "training", "train", *FAST],
            cwd=ROOT, env=environment(home), capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        took = time.monotonic() - started
    assert done.returncode == 2, done.stdout + done.stderr[-3000:]
    assert "another train or retrain is running on" in done.stderr
    assert f"pid {os.getpid()}" in done.stderr
    assert took < 60  # before Spark starts, not after a training


def _copy_of(store, version: str) -> str:
    """A new version of ``titanic`` with the files of ``version`` (the undo loads neither)."""
    old = store.get_model_version("titanic", version)
    files = old.source
    if files.startswith("models:/"):  # resolved by the tracking URI, not this client's: a path
        files = store.get_logged_model(files.removeprefix("models:/")).artifact_location
    return str(store.create_model_version("titanic", files, old.run_id).version)


def _undo_after(home: Path, monkeypatch, moved_by_someone: bool) -> tuple[str, str, list[str]]:
    """Promote a new version as the loop does, maybe move the alias, undo; return what it said."""
    from drift.config import get_drift_settings
    from drift.deploy import undo
    from drift.report import ReportOptions
    from drift.retrain import Retrain, RetrainOptions
    from training import registry

    monkeypatch.setenv("LIFEBOAT_HOME", str(home))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")  # mlflow.set_tracking_uri sets it: unset it
    settings = get_drift_settings()
    store = client(home)
    previous = production(home)
    ours, theirs = _copy_of(store, previous), _copy_of(store, previous)
    registry.promote(store, "titanic", "production", ours)  # this call's promotion
    if moved_by_someone:
        store.set_registered_model_alias("titanic", "production", theirs)
    lines: list[str] = []
    options = RetrainOptions(report=ReportOptions(logs=home), reload=False)
    state = Retrain(options, settings, lines.append, version=ours, promoted=True)
    said = undo(state.shipment(), previous, created_tag=None, reload_sent=False)
    return said, production(home), [previous, ours, theirs, *lines]


def test_an_undo_leaves_a_promotion_made_meanwhile(home, monkeypatch):
    said, now, (_, ours, theirs, *lines) = _undo_after(home, monkeypatch, moved_by_someone=True)
    assert now == theirs
    moved = f"production moved from v{ours} to v{theirs} during this run; left as it is"
    assert said.startswith(moved)
    assert lines == [f"[undo] {moved}; the service was not reloaded back"]


def test_an_undo_puts_back_an_alias_nobody_moved(home, monkeypatch):
    said, now, (previous, _, _, *lines) = _undo_after(home, monkeypatch, moved_by_someone=False)
    assert now == previous
    assert said == "Production and the service rolled back"
    assert lines == [f"[undo] production alias back on v{previous}"]
