"""A SIGTERM that lands inside MLflow's own start or end of a nested run leaves no run RUNNING
(training.runs.tracked_run, in a real MLflow store on SQLite).

Each test sends the process a real SIGTERM at one point of MLflow's code; under
:func:`training.runs.sigterm_raises` its handler raises there, as it did in a CI run of
``test_an_interrupted_training_ends_its_runs_killed``, which found the pipeline's run RUNNING.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from typing import Any

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.tracking._tracking_service.utils import _use_tracking_uri

from training import runs


@pytest.fixture
def experiment(tmp_path, monkeypatch) -> Iterator[str]:
    """An experiment in a SQLite store that is MLflow's tracking URI for this test only.

    Nothing leaks to the tests after it: MLflow's own ``_use_tracking_uri`` puts the
    process-wide URI back, and monkeypatch the ``MLFLOW_TRACKING_URI`` that MLflow also sets
    for subprocesses. No ``set_experiment`` (process-wide too): runs name their experiment.
    """
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with _use_tracking_uri(uri):
        try:
            yield MlflowClient().create_experiment("interrupts")
        finally:
            while mlflow.active_run() is not None:  # what an old tracked_run left on the stack
                mlflow.end_run()


def _statuses(experiment: str) -> dict[str, str]:
    found = MlflowClient().search_runs([experiment])
    return {r.info.run_name: r.info.status for r in found}


def _signalled_once(real: Callable[..., Any], when: Callable[..., bool], before: bool) -> Any:
    """``real``, with a SIGTERM sent to this process before or after its first call that
    ``when`` accepts."""
    sent: list[bool] = []

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        fire = not sent and when(*args, **kwargs)
        if fire:
            sent.append(True)  # before the signal: its handler raises in os.kill's caller
        if fire and before:
            os.kill(os.getpid(), signal.SIGTERM)
        result = real(*args, **kwargs)
        if fire and not before:
            os.kill(os.getpid(), signal.SIGTERM)
        return result

    return wrapper


def _nested(**kwargs: Any) -> bool:
    return bool(kwargs.get("nested"))


def _with_parent(_client: MlflowClient, *args: Any, **kwargs: Any) -> bool:
    return "mlflow.parentRunId" in (kwargs.get("tags") or {})


@pytest.mark.parametrize(
    ("owner", "name", "when"),
    [
        # After start_run pushed the nested run, before the nested block began.
        (mlflow, "start_run", _nested),
        # Inside start_run, after it created the nested run, before it pushed it on the stack.
        (MlflowClient, "create_run", _with_parent),
    ],
    ids=["pushed", "created"],
)
def test_a_sigterm_as_a_nested_run_starts_ends_it_and_its_parent_killed(
    experiment, monkeypatch, owner, name, when
):
    signalled = _signalled_once(getattr(owner, name), when, before=False)
    monkeypatch.setattr(owner, name, signalled)
    with (
        pytest.raises(runs.Terminated),
        runs.sigterm_raises(),
        runs.tracked_run(run_name="pipeline", experiment_id=experiment),
        runs.tracked_run(run_name="family", nested=True, experiment_id=experiment),
    ):
        pytest.fail("the nested block must not start")
    assert _statuses(experiment) == {"pipeline": "KILLED", "family": "KILLED"}
    assert mlflow.active_run() is None


def test_a_sigterm_as_a_nested_run_ends_leaves_no_run_running(experiment, monkeypatch):
    # Inside end_run, after it popped the nested run, before it wrote its status.
    ending = _signalled_once(
        MlflowClient.set_terminated, lambda _client, _run_id, *a, **kw: True, before=True
    )
    monkeypatch.setattr(MlflowClient, "set_terminated", ending)
    with (
        pytest.raises(runs.Terminated),
        runs.sigterm_raises(),
        runs.tracked_run(run_name="pipeline", experiment_id=experiment),
    ):
        with runs.tracked_run(run_name="family", nested=True, experiment_id=experiment):
            mlflow.log_metric("auc", 0.87)
        pytest.fail("the signal must stop the pipeline as the family's run ends")
    assert _statuses(experiment) == {"pipeline": "KILLED", "family": "KILLED"}
    assert mlflow.active_run() is None


def test_an_error_ends_the_runs_failed_and_a_clean_block_finished(experiment):
    with pytest.raises(ValueError), runs.tracked_run(run_name="pipeline", experiment_id=experiment):
        with runs.tracked_run(run_name="family", nested=True, experiment_id=experiment):
            pass
        raise ValueError("a step failed")
    assert _statuses(experiment) == {"pipeline": "FAILED", "family": "FINISHED"}
    assert mlflow.active_run() is None
