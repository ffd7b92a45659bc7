"""The tests' one harness: paths, free ports, servers in their own process group (ready on a
URL or the test fails with their log, stopped with everything they started), private homes, and
what the tests read from a running ``bentoml serve``.

The process-group runner and the port finder are the benchmark's (``loadtest/servers.py``):
one implementation for both.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import httpx
import psutil
import pytest

from loadtest.servers import ProcessGroup, free_port

__all__ = ["ProcessGroup", "free_port"]

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "titanic.csv"
BENTOML = str(Path(sys.executable).with_name("bentoml"))
READY_SECONDS = 180  # generous: other test runs may share the machine's two cores
ADMIN_TOKEN = "serving-tests-admin"
FEEDBACK_TOKEN = "serving-tests-feedback"
SERVED_FEEDBACK_TOKEN = "loadtest-feedback-token"  # the session's `served` Production's
# The README's curl example, byte for byte, and the passenger it sends.
CURL_BODY = '{"Pclass":3,"Sex":"male","Age":22,"SibSp":1,"Parch":0,"Fare":7.25,"Embarked":"S"}'
CURL_PASSENGER: dict = json.loads(CURL_BODY)


def packages_imported_by(code: str, candidates: Iterable[str]) -> list[str]:
    """Which of the top-level packages ``candidates`` a fresh interpreter holds after ``code``."""
    wanted = json.dumps(sorted(candidates))
    probe = (
        f"{code}\nimport json, sys\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({wanted}))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def ready_or_fail(group: ProcessGroup, url: str, timeout: float = READY_SECONDS) -> float:
    """Seconds until ``url`` answered 200; else stop the group and fail the test with its log."""
    try:
        return group.wait_ready(url, timeout)
    except RuntimeError as failed:
        group.stop()
        pytest.fail(str(failed))


@contextlib.contextmanager
def running(
    name: str,
    command: list[str],
    env: Mapping[str, str],
    log: Path,
    ready_url: str,
    timeout: float = READY_SECONDS,
    cwd: Path = ROOT,
) -> Iterator[ProcessGroup]:
    """``command`` in its own process group until the block ends, then the whole group stops.

    Fails the test with the tail of ``log`` if ``ready_url`` does not answer 200 within
    ``timeout`` seconds or the process exits first.
    """
    group = ProcessGroup(name, command, env, log, cwd=cwd).start()
    try:
        ready_or_fail(group, ready_url, timeout)
        yield group
    finally:
        group.stop()


class Server(ProcessGroup):
    """A running ``bentoml serve``: its base URL, process group and log file."""

    def __init__(self, port: int, target: str, env: Mapping[str, str], log: Path, cwd: Path):
        command = [BENTOML, "serve", target, "--host", "127.0.0.1", "--port", str(port)]
        super().__init__("bentoml serve", command, env, log, cwd=cwd)
        self.url = f"http://127.0.0.1:{port}"

    @property
    def log(self) -> Path:
        return self.log_file

    def worker_pids(self) -> set[int]:
        """The pids of the service's worker processes (children of the circus arbiter)."""
        children = psutil.Process(self.pid).children(recursive=True)
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


def server_env(base: Mapping[str, str] | None = None, **overrides: str) -> dict[str, str]:
    """``base`` (default: this process's environment) without usage tracking, plus
    ``overrides``."""
    return {**(os.environ if base is None else base), "BENTOML_DO_NOT_TRACK": "true", **overrides}


def private_env(
    home: Path, base: Mapping[str, str] | None = None, **overrides: str
) -> dict[str, str]:
    """The environment of a service with a home of its own: LIFEBOAT_HOME (so the registry,
    ``sqlite:///<home>/mlflow.db`` unless ``MLFLOW_TRACKING_URI`` is overridden), BENTOML_HOME,
    the monitoring folder and the reload marker all under ``home``; the reload poll fast; no
    API token and no model store keyword, whatever a developer's ``.env`` says."""
    own = {
        "LIFEBOAT_HOME": str(home),
        "BENTOML_HOME": str(home / "bentoml"),
        "MLFLOW_TRACKING_URI": "",
        "LIFEBOAT_API_TOKEN": "",
        "LIFEBOAT_MODEL_STORE": "",
        "LIFEBOAT_MONITORING_DIR": str(home / "monitoring"),
        "LIFEBOAT_RELOAD_MARKER": str(home / "reload-marker.json"),
        "LIFEBOAT_RELOAD_POLL_SECONDS": "0.2",
    }
    return server_env(base, **{**own, **overrides})


def store_with(model_dir: Path, home: Path) -> Path:
    """A BentoML home holding only the model in ``model_dir``, as the store's latest."""
    target = home / "models" / model_dir.parent.name / model_dir.name
    shutil.copytree(model_dir, target)
    (target.parent / "latest").write_text(model_dir.name)
    return home


def launch(
    target: str, env: Mapping[str, str], cwd: Path, log: Path, port: int | None = None
) -> Server:
    """Start ``bentoml serve <target>`` on ``port`` (default: a free one) in its own group."""
    log.write_text("")
    server = Server(port or free_port(), target, env, log, cwd)
    server.start()
    return server


@contextlib.contextmanager
def serving(
    target: str,
    env: Mapping[str, str],
    cwd: Path,
    log: Path,
    port: int | None = None,
    ready_path: str = "/readyz",
) -> Iterator[Server]:
    """``bentoml serve <target>`` on ``port`` (default: a free one) until the block ends (the
    whole group stops).

    Fails the test with the server's log if ``ready_path`` does not answer 200 in time.
    """
    server = launch(target, env, cwd, log, port)
    try:
        ready_or_fail(server, server.url + ready_path)
        yield server
    finally:
        server.stop(grace=15)


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


def production_version(home: Path) -> str:
    """The Production version of the registry in ``<home>/mlflow.db``."""
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    return str(client.get_model_version_by_alias("titanic", "production").version)


def set_production(home: Path, version: str) -> None:
    """Point the production alias of ``<home>/mlflow.db`` at ``version``, as a rollback does."""
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    client.set_registered_model_alias("titanic", "production", version)


def still_running(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Those of ``processes`` that are still running (a zombie has stopped)."""
    found = []
    for process in processes:
        with contextlib.suppress(psutil.Error):
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
    return found


def registry_versions(home: Path) -> list[int]:
    """Every registered version of ``titanic`` in ``<home>/mlflow.db``, in order."""
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    return sorted(int(v.version) for v in client.search_model_versions("name = 'titanic'"))
