"""A server's life around its workers: it starts on a valid model or not at all, it says which
workers serve, and it drains on ``SIGTERM``.

- **Start.** ``bentoml serve`` runs :func:`prepare_server` once, in the process that then
  supervises the workers (circus's arbiter), before the port is bound. It chooses the model the
  way a starting worker does (:func:`lifeboat.serving.reloading.startup_model`) and names it in the
  server's pointer, so every worker starts on it (with the shadow resolved beside it, if any: a
  shadow that does not load is dropped, never a reason not to start). With no valid model it logs
  one line naming the model and the reason and exits with :data:`EXIT_NO_MODEL`: nothing ever
  listens. It does not fall back to an older version in the store: that is a model nobody chose
  for production (perhaps one withdrawn on purpose), while a replica that refuses to start leaves
  the others, or the one being replaced, serving, which is what a rollout needs.
- **Workers.** Beside the pointer, each worker records whether it is starting, serving or
  failed to start (``<pointer stem>.workers/<worker id>.json``), and the server records how many
  workers it runs. ``/readyz`` answers 200 only while every worker serves; ``/health`` shows
  each worker's state, so a missing or crash-looping worker is seen from its siblings. A worker
  that cannot start waits a little longer after each failure before it exits and circus starts
  it again, so a crash loop does not eat the CPU; when no other worker serves either, it stops
  the server, which exits with :data:`EXIT_NO_MODEL` instead of keeping a port nobody answers.
- **Drain.** On ``SIGTERM`` a worker reports not ready, makes the kernel drop new connection
  attempts on the shared listening socket while it still accepts those already queued (clients
  retry their SYN and are refused once the socket closes), and closes each open connection
  after its next response (``Connection: close``). After :data:`HANDOFF_SECONDS` uvicorn's own
  graceful shutdown closes the listener, waits for the requests in flight (their monitoring
  records written with them) and runs the shutdown hooks. Whatever is still running
  ``LIFEBOAT_SHUTDOWN_GRACE_SECONDS`` after the signal is cancelled.
"""

from __future__ import annotations

import asyncio
import atexit
import ctypes
import logging
import os
import signal
import socket
import struct
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import psutil
from pydantic import BaseModel, ValidationError

from lifeboat import exits
from lifeboat.prediction import ModelRejected
from lifeboat.serving import reloading
from lifeboat.serving.pointer import (
    forget_dead_servers,
    marker_path,
    pointer_lock,
    write_atomically,
    write_pointer,
)
from lifeboat.serving.reloading import Health, ModelHolder
from lifeboat.serving.sources import challenger_source, production_source
from lifeboat.serving.store import open_store
from lifeboat.settings import Settings

logger = logging.getLogger("bentoml.lifeboat.lifecycle")

EXIT_NO_MODEL = exits.MISSING
"""``bentoml serve``'s exit status when no valid model can be served."""
HANDOFF_SECONDS = 1.0
"""How long a draining worker answers on its open connections before uvicorn closes idle ones."""
MAX_BACKOFF_SECONDS = 10.0


class WorkerRecord(BaseModel):
    """One worker's file: its process, its state and its failed starts in a row."""

    pid: int
    state: Literal["starting", "serving", "failed"]
    failures: int = 0
    error: str | None = None
    since: str


class ServerRecord(BaseModel):
    """The server's file: its supervising process and how many workers it runs."""

    arbiter: int
    workers: int
    stopped: str | None = None
    """Why a worker stopped the server: none of its workers could serve."""


class Roster:
    """The records of one server's workers, in a folder beside its pointer."""

    def __init__(self, pointer: Path, worker_id: int = 0) -> None:
        self.folder = pointer.with_name(f"{pointer.stem}.workers")
        self.worker_id = worker_id

    def open(self, arbiter: int, workers: int) -> None:
        """Start a server's roster: no records but that it runs ``workers`` workers."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        for stale in self.folder.glob("*.json"):  # a previous server's, with a fixed pointer
            stale.unlink(missing_ok=True)
        server = ServerRecord(arbiter=arbiter, workers=workers)
        write_atomically(self._file("server"), server.model_dump_json())

    def record(self, state: str, error: str | None = None) -> WorkerRecord:
        """Write this worker's state; failed starts in a row are counted until it serves."""
        previous = self._read(self.worker_id)
        carried = previous if previous and previous.state != "serving" else None
        failures = carried.failures if carried else 0
        record = WorkerRecord(
            pid=os.getpid(),
            state=state,
            failures=0 if state == "serving" else failures + (state == "failed"),
            error=None if state == "serving" else error or (carried.error if carried else None),
            since=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomically(self._file(self.worker_id), record.model_dump_json())
        return record

    def server(self) -> ServerRecord | None:
        """The server's record; None when ``bentoml serve`` did not run :func:`prepare_server`."""
        try:
            return ServerRecord.model_validate_json(self._file("server").read_bytes())
        except (OSError, ValidationError):
            return None

    def states(self) -> dict[str, str]:
        """Each configured worker's state, as ``/health`` shows it; empty without a roster."""
        if (server := self.server()) is None:
            return {}
        return {
            str(wid): describe(self._read(wid), server.arbiter)
            for wid in range(1, server.workers + 1)
        }

    def others_may_serve(self) -> bool:
        """Whether another worker of this server serves, or is starting without a failure."""
        if (server := self.server()) is None:
            return True
        for worker_id in range(1, server.workers + 1):
            record = self._read(worker_id)
            if worker_id == self.worker_id or record is None or record.failures:
                continue
            if record.state != "failed" and _is_worker(record.pid, server.arbiter):
                return True
        return False

    def stop_server(self, reason: str) -> None:
        """Stop the whole server (``SIGTERM`` to its arbiter), which then exits
        :data:`EXIT_NO_MODEL`."""
        if (server := self.server()) is None:
            return
        stopped = server.model_copy(update={"stopped": reason})
        write_atomically(self._file("server"), stopped.model_dump_json())
        os.kill(server.arbiter, signal.SIGTERM)

    def ready(self) -> bool:
        """Whether every worker of this server serves, and this one is not draining."""
        return not DRAIN.active and all(s.startswith("serving") for s in self.states().values())

    def health(self, health: Health) -> Health:
        """``health`` of this worker, with its siblings' states."""
        states = self.states()
        ok = all(state.startswith("serving") for state in states.values())
        status = "draining" if DRAIN.active else "ok" if ok else "degraded"
        return health.model_copy(update={"workers": states, "status": status})

    def _file(self, name: int | str) -> Path:
        return self.folder / f"{name}.json"

    def _read(self, worker_id: int) -> WorkerRecord | None:
        try:
            return WorkerRecord.model_validate_json(self._file(worker_id).read_bytes())
        except (OSError, ValidationError):
            return None


def describe(record: WorkerRecord | None, arbiter: int) -> str:
    """A worker's state in words: serving, starting, missing or crash-looping (and why)."""
    if record is None:
        return "missing: never started"
    if record.state == "failed" or record.failures:
        kind = "crash-looping" if record.failures > 1 else "failed to start"
        return f"{kind} ({record.failures} failed starts in a row): {record.error}"
    if not _is_worker(record.pid, arbiter):
        return f"missing: pid {record.pid} exited while {record.state}"
    return f"{record.state} (pid {record.pid}, since {record.since})"


def _is_worker(pid: int, arbiter: int) -> bool:
    try:
        return psutil.Process(pid).ppid() == arbiter
    except psutil.Error:
        return False


def configured_workers(service_name: str) -> int:
    """How many workers ``bentoml serve`` starts for the service, as BentoML counts them."""
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.resource import system_resources

    workers = BentoMLContainer.config.services.get()[service_name].get("workers") or 1
    if workers == "cpu_count":
        return int(system_resources()["cpu"]) or 1
    return int(workers)


def prepare_server(stored: Any, settings: Settings, workers: int) -> None:
    """Before the workers start: name a valid model in the pointer, or exit.

    Runs in the process that supervises the workers (a BentoML deployment hook).

    Raises:
        SystemExit: With :data:`EXIT_NO_MODEL` when no model loads and passes its smoke test.
    """
    arbiter = psutil.Process()
    pointer = marker_path(settings, arbiter)
    # The private folder holds one pointer per server that ever ran here: forget the stopped.
    private = settings.reload_marker is None
    if private and (forgotten := forget_dead_servers(pointer.parent)):
        logger.info("forgot %d stopped servers' pointers", len(forgotten))
    store = open_store(settings.model_store)
    production = production_source(settings, store)
    challenger = challenger_source(settings, store)
    try:
        with pointer_lock(pointer):
            model, shadow = reloading.startup_model(stored, pointer, store, production, challenger)
            write_pointer(pointer, model, shadow)
    except ModelRejected as exc:
        logger.critical("no valid model to serve, exiting with %d: %s", EXIT_NO_MODEL, exc)
        raise SystemExit(EXIT_NO_MODEL) from None
    roster = Roster(pointer)
    roster.open(arbiter.pid, workers)
    atexit.register(_exit_if_stopped, roster)
    shadowed = f", shadowed by {shadow.model.tag}" if shadow.model else ""
    logger.info("%d workers will serve %s%s", workers, model.tag, shadowed)


def _exit_if_stopped(roster: Roster) -> None:
    # The arbiter ends normally (status 0) once its workers stopped; a server stopped for want
    # of a model must say so to whoever restarts it.
    server = roster.server()
    if server is not None and server.stopped:
        logging.shutdown()
        os._exit(EXIT_NO_MODEL)


def start_worker(stored: Any, settings: Settings) -> tuple[ModelHolder, Roster]:
    """A starting worker's model holder, its start recorded in the server's roster.

    A start that fails is recorded, then the worker waits (1, 2, 4 ... up to 10 s) before the
    error ends it; when no other worker serves or may serve, it stops the whole server instead,
    which exits :data:`EXIT_NO_MODEL` rather than keep a port nobody answers.
    """
    from bentoml._internal.context import server_context

    roster = Roster(marker_path(settings), server_context.worker_index or 0)
    roster.record("starting")
    try:
        holder = reloading.open_holder(stored, settings)
    except ModelRejected as exc:
        failures = roster.record("failed", str(exc)).failures
        if not roster.others_may_serve():
            logger.critical(
                "no worker of this server can serve, stopping it (exit %d): %s", EXIT_NO_MODEL, exc
            )
            roster.stop_server(str(exc))
            raise
        backoff = min(2.0 ** (failures - 1), MAX_BACKOFF_SECONDS)
        logger.error(
            "worker %d cannot serve (failed start %d in a row), exiting in %.0f s: %s",
            roster.worker_id,
            failures,
            backoff,
            exc,
        )
        time.sleep(backoff)
        raise
    roster.record("serving")
    return holder, roster


class Drain:
    """This worker's answer to ``SIGTERM`` (see the module docstring)."""

    def __init__(self) -> None:
        self.active = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: Callable[[int, Any], Any] | None = None
        self._grace = 0.0

    def install(self, grace_seconds: float) -> None:
        """Take over ``SIGTERM`` from uvicorn, whose handler the drain calls in the end.

        Called from a startup hook: in the worker's main thread, on its running loop, after
        uvicorn installed its handlers.
        """
        previous = signal.getsignal(signal.SIGTERM)
        if not callable(previous):  # not under uvicorn's server: nothing to hand over to
            return
        self._loop, self._stop, self._grace = asyncio.get_running_loop(), previous, grace_seconds
        signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        if self.active:  # `docker stop` signals the arbiter, which signals us; a group, twice
            return
        self.active = True
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._begin, signum)

    def _begin(self, signum: int) -> None:
        assert self._loop is not None and self._stop is not None
        refused = refuse_new_connections()
        logger.info(
            "SIGTERM: draining (%d listening sockets closed to new connections); "
            "requests in flight have %.0f s",
            refused,
            self._grace,
        )
        self._loop.call_later(HANDOFF_SECONDS, self._stop, signum, None)
        # uvicorn's second Ctrl+C: stop waiting for what is left
        self._loop.call_later(self._grace, self._stop, signal.SIGINT, None)


DRAIN = Drain()


def drain_on_sigterm(grace_seconds: float) -> None:
    """Drain this worker on ``SIGTERM`` within ``grace_seconds`` (from a startup hook)."""
    DRAIN.install(grace_seconds)


class CloseWhenDraining:
    """ASGI middleware: a response started while the worker drains closes its connection."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def closing(message: dict) -> None:
            if message["type"] == "http.response.start" and DRAIN.active:
                headers = [*message.get("headers", []), (b"connection", b"close")]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, closing)


# SO_ATTACH_FILTER with the one-instruction classic BPF program "return 0": every packet that
# reaches the socket is dropped. On a listening socket that is every SYN: the kernel stops
# queueing connections, while those already queued can still be accepted.
_SO_ATTACH_FILTER = 26
_DROP_ALL = struct.pack("HBBI", 0x06, 0, 0, 0)  # BPF_RET | BPF_K, k = 0


def refuse_new_connections() -> int:
    """Stop the kernel queueing connections on this process's listening TCP sockets.

    Returns:
        How many sockets now drop new connection attempts (0 off Linux).
    """
    if not sys.platform.startswith("linux"):
        return 0
    program = ctypes.create_string_buffer(_DROP_ALL)
    fprog = struct.pack("HP", 1, ctypes.addressof(program))
    count = 0
    for conn in psutil.Process().net_connections(kind="tcp"):
        if conn.status != psutil.CONN_LISTEN or conn.fd < 0:
            continue
        with socket.socket(fileno=os.dup(conn.fd)) as listener:
            listener.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)
        count += 1
    return count
