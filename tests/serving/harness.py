"""The serving tests' harness: a real ``bentoml serve`` subprocess, and what they read from it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

BENTOML = str(Path(sys.executable).with_name("bentoml"))
READY_SECONDS = 60
ADMIN_TOKEN = "serving-tests-admin"
FEEDBACK_TOKEN = "serving-tests-feedback"
# The README's curl example, byte for byte, and the passenger it sends.
CURL_BODY = '{"Pclass":3,"Sex":"male","Age":22,"SibSp":1,"Parch":0,"Fare":7.25,"Embarked":"S"}'
CURL_PASSENGER: dict = json.loads(CURL_BODY)


@dataclass(frozen=True)
class Server:
    """A running server: its base URL, process (group leader) and log file."""

    url: str
    process: subprocess.Popen
    log: Path

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def worker_pids(self) -> set[int]:
        """The pids of the service's worker processes (children of the circus arbiter)."""
        children = psutil.Process(self.process.pid).children(recursive=True)
        return {p.pid for p in children if "_bentoml_impl.worker.service" in " ".join(p.cmdline())}

    def healths(self, rounds: int = 40) -> list[dict]:
        """``/health`` over fresh connections, so that each worker gets a chance to answer."""
        answers = []
        for _ in range(rounds):
            response = httpx.get(f"{self.url}/health", timeout=10)
            response.raise_for_status()
            answers.append(response.json())
        return answers

    def wait_all_workers(self, version: str, timeout: float = 30) -> dict[int, str]:
        """Wait until every worker reports ``version``; return the last version seen per pid."""
        workers = self.worker_pids()
        seen: dict[int, str] = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for health in self.healths(rounds=10):
                seen[health["worker_pid"]] = health["model_version"]
            if set(seen) >= workers and all(seen[pid] == version for pid in workers):
                break
            time.sleep(0.2)
        return {pid: seen.get(pid, "never answered") for pid in workers}


def server_env(**overrides: str) -> dict[str, str]:
    """The test session's environment, without usage tracking, plus ``overrides``."""
    return {**os.environ, "BENTOML_DO_NOT_TRACK": "true", **overrides}


def store_with(model_dir: Path, home: Path) -> Path:
    """A BentoML home holding only the model in ``model_dir``, as the store's latest."""
    target = home / "models" / model_dir.parent.name / model_dir.name
    shutil.copytree(model_dir, target)
    (target.parent / "latest").write_text(model_dir.name)
    return home


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(
    target: str, env: Mapping[str, str], cwd: Path, log: Path, port: int | None = None
) -> Server:
    """Start ``bentoml serve <target>`` on ``port`` (default: a free one) in its own group."""
    port = port or free_port()
    with log.open("w") as out:
        process = subprocess.Popen(
            [BENTOML, "serve", target, "--host", "127.0.0.1", "--port", str(port)],
            cwd=cwd,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the workers go with it
        )
    return Server(f"http://127.0.0.1:{port}", process, log)


@contextlib.contextmanager
def serving(
    target: str, env: Mapping[str, str], cwd: Path, log: Path, port: int | None = None
) -> Iterator[Server]:
    """``bentoml serve <target>`` on ``port`` (default: a free one) until the block ends (the
    whole group dies).

    Fails the test with the server's log if ``/readyz`` does not answer 200 within a minute.
    """
    server = launch(target, env, cwd, log, port)
    process = server.process
    try:
        _wait_ready(server)
        yield server
    finally:
        stop_group(process)


def _wait_ready(server: Server) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(
                f"bentoml serve exited with {server.process.returncode}:\n{server.log_tail()}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    pytest.fail(f"bentoml serve not ready after {READY_SECONDS} s:\n{server.log_tail()}")


def stop_group(process: subprocess.Popen) -> None:
    """Stop a process started with ``start_new_session=True`` and everything in its group."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=15)
    with contextlib.suppress(ProcessLookupError):  # whatever outlived the arbiter
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=5)


def scorer_probabilities(model_dir: Path, passengers: list[dict]) -> list[float]:
    """What the ONNX scorer says, in process, for the model stored in ``model_dir``."""
    from lifeboat.passenger import FEATURES
    from lifeboat.scoring import OnnxScorer

    scorer = OnnxScorer.from_path(model_dir / "model.onnx")
    columns = {name: [p.get(name) for p in passengers] for name in FEATURES}
    return scorer.predict_proba(columns).tolist()


def monitoring_records(folder: Path, request_id: str, expected: int, timeout: float = 10) -> list:
    """The records the service logged for the request whose ``x-bentoml-request-id`` is given.

    Waits until ``expected`` records have appeared (BentoML writes them through ``logging``).
    """
    wanted = str(int(request_id, 16))  # the header is hex, the record decimal
    deadline = time.monotonic() + timeout
    while True:
        records = [
            record
            for path in sorted((folder / "titanic" / "data").glob("*.log"))
            for record in map(json.loads, path.read_text().splitlines())
            if record["request_id"] == wanted
        ]
        if len(records) >= expected or time.monotonic() > deadline:
            return records
        time.sleep(0.2)


def histogram(metrics_text: str, name: str, **labels: str) -> dict[str, float]:
    """One Prometheus histogram summed over matching series: its buckets, ``sum`` and ``count``.

    Buckets are cumulative: ``buckets["1.0"]`` counts observations <= 1.
    """
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {"sum": 0.0, "count": 0.0}
    buckets: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        if family.name != name:
            continue
        for sample in family.samples:
            if any(sample.labels.get(k) != v for k, v in labels.items()):
                continue
            if sample.name == f"{name}_bucket":
                le = sample.labels["le"]
                buckets[le] = buckets.get(le, 0.0) + sample.value
            elif sample.name in (f"{name}_sum", f"{name}_count"):
                key = sample.name.rsplit("_", 1)[1]
                out[key] += sample.value
    return {**out, **{f"le={k}": v for k, v in buckets.items()}}


def predict_then_report(url: str, passengers: list[dict], token: str, chunk: int = 500) -> None:
    """Send passengers to the batch route without their ``Survived``, then each outcome to
    ``POST /feedback`` by its prediction's ``request_id``, as a client that learns outcomes
    later does; fails the test on any answer but 200."""
    for start in range(0, len(passengers), chunk):
        part = passengers[start : start + chunk]
        answer = httpx.post(
            f"{url}/predict_titanic_batch",
            json=[{k: v for k, v in p.items() if k != "Survived"} for p in part],
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        ids = [p["request_id"] for p in answer.json()["predictions"]]
        labels = [
            {"request_id": i, "Survived": p["Survived"]} for i, p in zip(ids, part, strict=True)
        ]
        sent = httpx.post(
            f"{url}/feedback",
            json=labels,
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        assert sent.status_code == 200 and sent.json() == {"accepted": len(part)}, sent.text
