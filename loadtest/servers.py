"""The bench's servers: started here on a free 127.0.0.1 port, watched, and stopped with their
whole process group."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from lifeboat.routes import METRICS_ROUTE
from lifeboat.settings import PROJECT_ROOT


def is_bento_worker(process: psutil.Process) -> bool:
    """A BentoML service worker (the arbiter that starts them is not one)."""
    return "_bentoml_impl.worker.service" in " ".join(process.cmdline())


def runs_a_jvm(process: psutil.Process) -> bool:
    """A process that loaded a Spark model: each one starts a JVM of its own."""
    return any(child.name() == "java" for child in process.children())


@dataclass(frozen=True)
class Target:
    """One server under test and how to drive it."""

    name: str
    label: str
    command: tuple[str, ...]  # "{port}" is replaced by a free port
    ready_path: str
    is_worker: Callable[[psutil.Process], bool]
    locustfile: str = "loadtest/locustfile.py"
    tags: str = "single"  # the locustfile's tasks to run
    rows: int = 1  # passengers per request
    ready_timeout: float = 60.0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(url: str, timeout: float = 1) -> bool:
    """Whether ``url`` answers 200 now."""
    # OSError: refused, reset, timed out, or an HTTP error status.
    with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status == 200
    return False


def _as_a_terminal_job() -> None:
    """Ctrl+C and Ctrl+\\ act as they do on a terminal's job, even where this Python was
    started with them ignored (a non-interactive shell's background job, as CI's runner is), which
    every child would otherwise inherit."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


class ProcessGroup:
    """A command in a process group of its own, logging to a file; stopping it stops every
    process it started (BentoML's workers, Spark's executors, a server's children)."""

    def __init__(
        self,
        name: str,
        command: list[str],
        env: Mapping[str, str],
        log_file: Path,
        cwd: Path = PROJECT_ROOT,
    ) -> None:
        self.name, self.command, self.env, self.log_file, self.cwd = (
            name,
            command,
            dict(env),
            log_file,
            cwd,
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ProcessGroup:
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopping it stops the workers
                preexec_fn=_as_a_terminal_job,
            )
        self.started = time.monotonic()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was never started"
        return self.process.pid

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_file.read_text(errors="replace")[-chars:]

    def wait_ready(self, url: str, timeout: float) -> float:
        """Seconds from launch to the first 200 from ``url``.

        Raises:
            RuntimeError: The process exited or ``url`` did not answer in time; the message
                ends with the tail of its log.
        """
        assert self.process is not None, f"{self.name} was never started"
        while not answers(url):
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode} before {url} answered "
                    f"({self.log_file}):\n{self.log_tail()}"
                )
            if time.monotonic() - self.started > timeout:
                raise RuntimeError(
                    f"{self.name}: {url} did not answer 200 in {timeout:.0f} s "
                    f"({self.log_file}):\n{self.log_tail()}"
                )
            time.sleep(0.05)
        return time.monotonic() - self.started

    def tree(self) -> list[psutil.Process]:
        """The leader and its descendants alive now."""
        root = psutil.Process(self.pid)
        return [root, *root.children(recursive=True)]

    def stop(self, grace: float = 30) -> None:
        """SIGTERM to the group, up to ``grace`` seconds for the leader to exit, then SIGKILL to
        whatever of the group is left (workers outlive a leader that exits first) and to any
        descendant that had moved to a session of its own (tools/foreground.py's)."""
        if self.process is None:
            return
        try:
            descendants = self.tree()[1:]
        except psutil.Error:
            descendants = []
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        for process in descendants:
            with contextlib.suppress(psutil.Error):
                process.kill()

    def __enter__(self) -> ProcessGroup:
        return self.start()

    def __exit__(self, *_: Any) -> None:
        self.stop()


class Server(ProcessGroup):
    """A target's server process group, from ``with`` to the end of the block."""

    def __init__(self, target: Target, env: dict[str, str], log_file: Path) -> None:
        self.target = target
        self.url = f"http://127.0.0.1:{free_port()}"
        port = self.url.rsplit(":", 1)[1]
        command = [part.replace("{port}", port) for part in target.command]
        super().__init__(target.name, command, env, log_file)

    def __enter__(self) -> Server:
        self.log_file.write_text("")  # this run's log only
        self.start()
        return self

    def wait_ready(self) -> float:  # type: ignore[override]
        """Seconds from launch to the first 200 on the target's ready path.

        Raises:
            RuntimeError: The server exited or was not ready in time (its log says why).
        """
        return super().wait_ready(self.url + self.target.ready_path, self.target.ready_timeout)

    def workers(self) -> list[psutil.Process]:
        found = []
        for process in self.tree():
            with contextlib.suppress(psutil.Error):
                if self.target.is_worker(process):
                    found.append(process)
        return found

    def worker_rss_mb(self) -> list[float]:
        """Resident memory of each worker with its children (a JVM, for Spark), in MB."""
        sizes = []
        for worker in self.workers():
            with contextlib.suppress(psutil.Error):
                tree = [worker, *worker.children(recursive=True)]
                sizes.append(sum(p.memory_info().rss for p in tree) / 2**20)
        return sizes

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by the server's processes (those alive now)."""
        total = 0.0
        for process in self.tree():
            with contextlib.suppress(psutil.Error):
                total += sum(process.cpu_times()[:2])
        return total


def private_home(home: Path, models: Path) -> Path:
    """A BentoML home of one server's own over the shared model store.

    ``bentoml serve`` empties ``$BENTOML_HOME/prometheus_multiproc_dir`` when it starts, so
    servers sharing a home wipe each other's ``/metrics``.
    """
    home.mkdir(parents=True)
    (home / "models").symlink_to(models, target_is_directory=True)
    return home


def post_json(url: str, body: Any, timeout: float = 60) -> None:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        response.read()


_BATCH_SIZE = re.compile(r"^bentoml_service_adaptive_batch_size_(sum|count)\{[^}]*\} (\S+)$")


def batch_histogram(url: str) -> tuple[float, float]:
    """Sum and count of ``bentoml_service_adaptive_batch_size`` over all workers and APIs."""
    with urllib.request.urlopen(url + METRICS_ROUTE, timeout=5) as response:
        text = response.read().decode()
    totals = {"sum": 0.0, "count": 0.0}
    for line in text.splitlines():
        if match := _BATCH_SIZE.match(line):
            totals[match.group(1)] += float(match.group(2))
    return totals["sum"], totals["count"]
