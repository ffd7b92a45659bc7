"""What a train or retrain process owes the others: one writer at a time, truthful run statuses.

Both ``python -m training train`` and ``python -m drift retrain`` write the production alias, so
both hold :func:`exclusive`, one lock file in ``LIFEBOAT_HOME``: a second one fails at once, with
exit 2 and the first one's command line and pid, rather than waiting (a retrain takes minutes, and
a scheduler retries a failed task on its own). The lock excludes the Lifeboat writers that share
the state folder: processes on this machine, or containers mounting the same ``LIFEBOAT_HOME``.
It does not reach a writer elsewhere on the same tracking server, nor the MLflow UI.

A process stopped by ``SIGTERM`` or Ctrl-C unwinds as with an exception (:func:`sigterm_raises`,
and PySpark's own SIGINT handler), so its MLflow runs end ``KILLED`` (:func:`tracked_run`) rather
than staying ``RUNNING``, and its command exits 143 or 130 (:func:`exit_code`).
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import ActiveRun

    from lifeboat.settings import Settings

LOCK_FILE = ".lifeboat-writer.lock"

_held: dict[Path, int] = {}  # lock file → the thread holding it, for re-entry by that thread


class Busy(RuntimeError):
    """Another train or retrain holds the writers' lock of this ``LIFEBOAT_HOME``."""


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that ``with`` blocks and ``finally`` clauses run.

    A BaseException, like KeyboardInterrupt: ``except Exception`` must not swallow it.
    """


INTERRUPTS = (KeyboardInterrupt, Terminated)


@contextmanager
def exclusive(state_dir: Path) -> Iterator[None]:
    """Hold the writers' lock of ``state_dir`` (``LIFEBOAT_HOME``; an flock, which the kernel
    releases however the process ends).

    Re-entrant for the thread that holds it: a retrain holds it and the training it runs asks
    again. The file names its holder, so that the one refused can say who is in the way.

    Raises:
        Busy: Another process (or another thread of this one) holds it.
    """
    path = (state_dir / LOCK_FILE).resolve()
    if _held.get(path) == threading.get_ident():
        yield
        return
    state_dir.mkdir(parents=True, exist_ok=True)
    # Opened without truncation: the holder's line must survive the attempts of others.
    with os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT, 0o644), "r+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = fh.read().strip() or "a process that has not named itself yet"
            raise Busy(
                f"another train or retrain is running on {state_dir} ({who}); "
                "try again when it has finished"
            ) from None
        fh.truncate(0)
        since = datetime.now(UTC).isoformat(timespec="seconds")
        fh.write(f"{command_line()}, pid {os.getpid()}, since {since}\n")
        fh.flush()
        _held[path] = threading.get_ident()
        try:
            yield
        finally:
            del _held[path]


def command_line() -> str:
    """``python -m drift retrain --quick`` rather than ``…/drift/__main__.py retrain --quick``."""
    first, rest = Path(sys.argv[0]), sys.argv[1:]
    program = f"python -m {first.parent.name}" if first.name == "__main__.py" else first.name
    return " ".join([program, *rest])


def _raise_terminated(signum: int, frame: Any) -> None:
    # A second SIGTERM during the clean-up ends the process at once, as an operator expects.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # As PySpark does for SIGINT: stop the jobs in flight, or the fits in other threads run on.
    pyspark = sys.modules.get("pyspark")
    context = getattr(pyspark, "SparkContext", None)
    if context is not None and context._active_spark_context is not None:
        with suppress(Exception):
            context._active_spark_context.cancelAllJobs()
    raise Terminated("SIGTERM")


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (main thread only; else no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def interrupt_of(exc: BaseException | None) -> BaseException | None:
    """The interrupt behind ``exc``: itself, or one that an error in its clean-up replaced.

    py4j answers a Ctrl-C during a Spark call by closing its connection, and when that fails
    its ``Py4JError`` is what propagates, with the KeyboardInterrupt as its context.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, INTERRUPTS):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def exit_code(exc: BaseException) -> int | None:
    """128 + the signal's number for an interrupt (143 SIGTERM, 130 SIGINT), else None."""
    found = interrupt_of(exc)
    if found is None:
        return None
    return 128 + (signal.SIGTERM if isinstance(found, Terminated) else signal.SIGINT)


def describe(exc: BaseException) -> str:
    """``interrupted by SIGTERM`` or ``… SIGINT``, for a step line or an error message."""
    return "interrupted by " + ("SIGTERM" if exit_code(exc) == 128 + signal.SIGTERM else "SIGINT")


@contextmanager
def tracked_run(**kwargs: Any) -> Iterator[ActiveRun]:
    """``mlflow.start_run(**kwargs)`` whose run ends KILLED when an interrupt stops the block.

    MLflow's own ``with mlflow.start_run()`` ends it FAILED for any exception; this one ends it
    FAILED for an error and KILLED for SIGINT or SIGTERM (with :func:`sigterm_raises`).

    A signal can land between two lines of MLflow's own code, so the runs are ended by who they
    are, not only as ``mlflow.end_run`` does (whatever run is on top of the stack):

    - inside a nested ``start_run``, after it created the run: the enclosing ``tracked_run``
      ends every run above its own on the stack, then its own, then any run of its children
      still RUNNING (before, it ended the top one only, the child, and stayed RUNNING itself);
    - inside ``end_run``, after it popped the run and before it wrote the status: the run is
      marked KILLED here.

    Only direct children are looked for, and a top-level run interrupted inside its own
    ``start_run`` stays RUNNING: neither happens in this project.
    """
    import mlflow

    outer = mlflow.active_run()
    below = outer.info.run_id if outer is not None else None
    active = None
    try:
        active = mlflow.start_run(**kwargs)
        yield active
    except BaseException as exc:
        status = "KILLED" if exit_code(exc) else "FAILED"
        while (top := mlflow.active_run()) is not None and top.info.run_id != below:
            mlflow.end_run(status)
        if active is not None:
            end_running_children(
                mlflow.MlflowClient(), active.info.experiment_id, active.info.run_id, status
            )
        raise
    try:
        mlflow.end_run()
    except BaseException:
        mlflow.MlflowClient().set_terminated(active.info.run_id, "KILLED")
        raise


def end_running_children(client: Any, experiment_id: str, run_id: str, status: str) -> None:
    """End with ``status`` the nested runs of ``run_id`` (in ``experiment_id``) still RUNNING:
    what a run that did not finish owes the runs it started."""
    running = client.search_runs(
        [experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{run_id}' and attributes.status = 'RUNNING'",
    )
    for child in running:
        client.set_terminated(child.info.run_id, status)


def experiment_id(client: Any, settings: Settings, name: str) -> str:
    """The id of experiment ``name``, created if missing (also when created concurrently).

    The embedded store keeps artifacts in the project (``settings.artifact_root``), not in
    ./mlruns of the caller's working folder; a tracking server chooses its own artifact root.
    """
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None if settings.mlflow_tracking_uri else f"{settings.artifact_root}/{name}"
    with suppress(MlflowException):  # created concurrently
        return client.create_experiment(name, artifact_location=location)
    return client.get_experiment_by_name(name).experiment_id
