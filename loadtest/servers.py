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
from collections.abc import Callable
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
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A target's server process group, from ``with`` to the end of the block."""

    def __init__(self, target: Target, env: dict[str, str], log_file: Path) -> None:
        self.target = target
        self.url = f"http://127.0.0.1:{free_port()}"
        self.env = env
        self.log_file = log_file

    def __enter__(self) -> Server:
        port = self.url.rsplit(":", 1)[1]
        command = [part.replace("{port}", port) for part in self.target.command]
        self.log = self.log_file.open("w")
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopping it stops the workers
        )
        return self

    def wait_ready(self) -> float:
        """Seconds from launch to the first 200 on the ready path.

        Raises:
            RuntimeError: The server exited or was not ready in time (its log says why).
        """
        deadline = self.started + self.target.ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.target.name} exited; see {self.log_file}")
            with contextlib.suppress(OSError):
                url = self.url + self.target.ready_path
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return time.monotonic() - self.started
            time.sleep(0.05)
        raise RuntimeError(f"{self.target.name} not ready in {self.target.ready_timeout:.0f} s")

    def _tree(self) -> list[psutil.Process]:
        root = psutil.Process(self.process.pid)
        return [root, *root.children(recursive=True)]

    def workers(self) -> list[psutil.Process]:
        found = []
        for process in self._tree():
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
        for process in self._tree():
            with contextlib.suppress(psutil.Error):
                total += sum(process.cpu_times()[:2])
        return total

    def __exit__(self, *_: Any) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):  # whatever outlived the leader
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.log.close()


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
