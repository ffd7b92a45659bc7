"""A server's life: it starts only on a valid model, says when a worker is missing, and drains.

Real ``bentoml serve`` processes without MLflow (two workers each), on BentoML stores of their
own that hold a copy of this folder's production model.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.harness import (
    CURL_PASSENGER,
    ROOT,
    free_port,
    launch,
    server_env,
    serving,
    store_with,
)

pytestmark = [pytest.mark.spark, pytest.mark.integration]

TARGET = "service:TitanicSurvival"
GRACE_SECONDS = 20


def store_only(home: Path, tmp_path: Path, name: str, **overrides: str) -> dict[str, str]:
    """A two-worker server without MLflow serving ``home``'s latest, its files named ``name``."""
    return server_env(
        BENTOML_HOME=str(home),
        BENTOML_CONFIG_OPTIONS="services.TitanicSurvival.workers=2",
        MLFLOW_TRACKING_URI="",
        LIFEBOAT_API_TOKEN="",
        LIFEBOAT_MODEL_STORE="",
        LIFEBOAT_MONITORING_DIR=str(tmp_path / name / "monitoring"),
        LIFEBOAT_RELOAD_MARKER=str(tmp_path / name / "pointer.json"),
        LIFEBOAT_RELOAD_POLL_SECONDS="0.2",
        **overrides,
    )


def served_onnx(home: Path, model_dir: Path) -> Path:
    """The graph file of ``model_dir``'s copy in the store at ``home``."""
    return home / "models" / model_dir.parent.name / model_dir.name / "model.onnx"


def test_a_server_without_a_valid_model_exits_at_once_and_never_listens(serving_home, tmp_path):
    home = store_with(serving_home.model_path, tmp_path / "bentoml")
    served_onnx(home, serving_home.model_path).write_bytes(b"not an onnx graph")
    env = store_only(home, tmp_path, "broken")
    server = launch(TARGET, env, ROOT, tmp_path / "broken.log")
    port = int(server.url.rpartition(":")[2])
    connected = False
    try:
        deadline = time.monotonic() + 45
        while server.process.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                connected = True
            time.sleep(0.2)
        code = server.process.poll()
    finally:
        server.stop(grace=15)
    assert code is not None, f"still running after 45 s:\n{server.log_tail()}"
    from lifeboat.serving.lifecycle import EXIT_NO_MODEL

    assert code == EXIT_NO_MODEL, server.log_tail()
    assert not connected  # it never took a connection it could not answer
    reasons = [line for line in server.log.read_text().splitlines() if "no valid model" in line]
    assert len(reasons) == 1, server.log_tail()
    assert serving_home.model_tag in reasons[0] and "INVALID_PROTOBUF" in reasons[0]
    assert "Traceback" not in server.log.read_text()


def test_a_crash_looping_worker_fails_readyz_and_health_names_it(serving_home, tmp_path):
    home = store_with(serving_home.model_path, tmp_path / "bentoml")
    with serving(TARGET, store_only(home, tmp_path, "loop"), ROOT, tmp_path / "loop.log") as server:
        # The served model goes bad on disk: the workers keep it in memory, but a restarted
        # worker can load neither it nor anything else.
        served_onnx(home, serving_home.model_path).write_bytes(b"not an onnx graph")
        os.kill(min(server.worker_pids()), signal.SIGKILL)
        deadline = time.monotonic() + 60  # two failed starts of a few seconds each
        while time.monotonic() < deadline:
            ready = httpx.get(f"{server.url}/readyz", timeout=5).status_code
            health = httpx.get(f"{server.url}/health", timeout=5).json()
            states = sorted(health.get("workers", {}).values())
            if ready == 503 and any(state.startswith("crash-looping") for state in states):
                break
            time.sleep(0.5)
        assert ready == 503, server.log_tail()
        assert health["status"] == "degraded", health
        assert len(states) == 2 and states[1].startswith("serving"), states
        assert states[0].startswith("crash-looping") and serving_home.model_tag in states[0]
        # The healthy worker still answers.
        answer = httpx.post(f"{server.url}/predict_titanic", json=CURL_PASSENGER, timeout=10)
        assert answer.status_code == 200


def test_a_server_whose_workers_all_fail_to_restart_exits(serving_home, tmp_path):
    from lifeboat.serving.lifecycle import EXIT_NO_MODEL

    home = store_with(serving_home.model_path, tmp_path / "bentoml")
    with serving(TARGET, store_only(home, tmp_path, "dead"), ROOT, tmp_path / "dead.log") as server:
        served_onnx(home, serving_home.model_path).write_bytes(b"not an onnx graph")
        for pid in server.worker_pids():
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.process.wait(timeout=60)
        assert server.process.poll() == EXIT_NO_MODEL, server.log_tail()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/readyz", timeout=5)
    assert "no worker of this server can serve" in server.log.read_text()


class Clients:
    """Keep-alive clients sending batches without pause, as a load balancer would forward them.

    Every request carries its number in each passenger's Fare (``n + 0.25``), so that its
    monitoring records can be counted. A refused connection is retried (HAProxy's
    ``retry-on conn-failure``); any other outcome is final and kept in ``outcomes``.
    """

    def __init__(self, url: str, clients: int = 12, size: int = 300) -> None:
        self.url, self.clients, self.size = url, clients, size
        self.outcomes: dict[int, int | str] = {}
        self.in_flight: set[int] = set()
        self.refused = 0
        self._numbers = itertools.count(1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self) -> Clients:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Send no more requests; wait for the answers to those sent."""
        self._stop.set()
        self._thread.join(timeout=60)

    def answered(self) -> int:
        return sum(1 for outcome in self.outcomes.values() if outcome == 200)

    def wait_answered(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.answered() < count and time.monotonic() < deadline:
            time.sleep(0.1)
        assert self.answered() >= count, Counter(self.outcomes.values())

    async def _run(self) -> None:
        limits = httpx.Timeout(60, connect=30)
        async with httpx.AsyncClient(base_url=self.url, timeout=limits) as session:
            await asyncio.gather(*(self._client(session) for _ in range(self.clients)))

    async def _client(self, session: httpx.AsyncClient) -> None:
        while not self._stop.is_set():
            number = next(self._numbers)
            body = [{**CURL_PASSENGER, "Fare": number + 0.25}] * self.size
            self.in_flight.add(number)
            while not self._stop.is_set():
                try:
                    response = await session.post("/predict_titanic_batch", json=body)
                except httpx.ConnectError:  # refused: nobody took the request
                    self.refused += 1
                    await asyncio.sleep(0.05)
                    continue
                except httpx.HTTPError as exc:
                    self.outcomes[number] = type(exc).__name__
                else:
                    self.outcomes[number] = response.status_code
                break
            self.in_flight.discard(number)


def records_per_request(*folders: Path) -> Counter:
    """How many monitoring records each request (by the number in its Fare) left."""
    counts: Counter = Counter()
    for folder in folders:
        for path in (folder / "titanic" / "data").glob("*.log"):
            for line in path.read_text().splitlines():
                counts[round(json.loads(line)["Fare"] - 0.25)] += 1
    return counts


def test_a_restart_under_load_fails_no_request(serving_home, tmp_path):
    """SIGTERM under load, then a new server on the same port: every request gets its 200.

    What is asserted: each request the clients sent ended in a 200 (a refused connection, as
    the old server stops listening and until the new one listens, is retried; a reset, a
    connection closed without an answer or any other status is a failure); the requests in
    flight when the signal came were among them; each 200 left exactly its passengers'
    monitoring records and no other request left any; the old server exited 0 within its grace.
    """
    home = store_with(serving_home.model_path, tmp_path / "bentoml")
    port = free_port()
    grace = {"LIFEBOAT_SHUTDOWN_GRACE_SECONDS": str(GRACE_SECONDS)}
    old_env, new_env = (store_only(home, tmp_path, name, **grace) for name in ("old", "new"))
    with serving(TARGET, old_env, ROOT, tmp_path / "old.log", port) as old:
        load = Clients(old.url).start()
        try:
            load.wait_answered(40)
            in_flight = set(load.in_flight)
            signalled = time.monotonic()
            old.process.send_signal(signal.SIGTERM)  # to `bentoml serve`, as `docker stop` does
            code = old.process.wait(timeout=GRACE_SECONDS + 15)
            stopped_after = time.monotonic() - signalled
            with serving(TARGET, new_env, ROOT, tmp_path / "new.log", port):
                load.wait_answered(load.answered() + 40)
                load.stop()
        finally:
            load.stop()
    assert code == 0 and stopped_after < GRACE_SECONDS, old.log_tail()
    assert len(in_flight) >= 4
    failed = {n: outcome for n, outcome in load.outcomes.items() if outcome != 200}
    assert failed == {}, (Counter(failed.values()), old.log_tail())
    assert all(load.outcomes.get(n) == 200 for n in in_flight)
    records = records_per_request(tmp_path / "old" / "monitoring", tmp_path / "new" / "monitoring")
    assert set(records) == set(load.outcomes)
    assert set(records.values()) == {load.size}
