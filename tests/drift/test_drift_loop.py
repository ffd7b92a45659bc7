"""The retrain loop end to end: real `bentoml serve`, real training, real MLflow registry.

The loop promotes and reloads, so it runs on a private copy of the session's registry database
and BentoML store: the other tests keep seeing the session's Production version. (The copied
versions' artifacts stay where the session wrote them; new runs write theirs there too.)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from drift import traffic
from tests.harness import (
    ROOT,
    Server,
    predict_then_report,
    private_env,
    production_version,
    registry_versions,
    serving,
)

pytestmark = [pytest.mark.spark, pytest.mark.integration]
TOKEN = "drift-loop-admin-token"
RESULTS: dict[str, str] = {}  # what the first test did, for the ones after it
FAST = ("--quick", "--folds", "2")  # one grid point per family, two folds: the gate still runs


@pytest.fixture(scope="module")
def home(trained, served_model, session_home, tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("drift-loop")
    shutil.copy(session_home / "mlflow.db", home / "mlflow.db")
    shutil.copytree(served_model.path.parent, home / "bentoml" / "models" / "titanic")
    return home


@pytest.fixture(scope="module")
def env(home) -> dict[str, str]:
    return private_env(home, LIFEBOAT_ADMIN_TOKEN=TOKEN)


@pytest.fixture(scope="module")
def service(env, home) -> Iterator[Server]:
    """`bentoml serve` from the project folder on a free port, stopped after the module."""
    with serving(
        "service:TitanicSurvival", env, ROOT, home / "serve.log", ready_path="/health"
    ) as server:
        yield server


def _health(url: str) -> dict | None:
    try:
        response = requests.get(f"{url}/health", timeout=5)
    except requests.RequestException:
        return None
    return response.json() if response.status_code == 200 else None


def _workers(url: str, asks: int = 16) -> dict[int, tuple[str, str, str]]:
    """What each worker that answers serves: pid → (version, tag, loaded_at)."""
    seen = {}
    for _ in range(asks):
        h = _health(url)
        seen[h["worker_pid"]] = (h["model_version"], h["model_tag"], h["loaded_at"])
    return seen


def _untouched(before: dict, after: dict) -> bool:
    """Every worker seen twice serves the same model, loaded at the same time."""
    return all(after[pid] == state for pid, state in before.items() if pid in after)


def _worker_pids(proc: subprocess.Popen) -> set[int]:
    import psutil

    return {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}


def _drift(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "drift", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


class Clients(threading.Thread):
    """Steady prediction traffic; records every status and the version that answered."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.stopping = url, threading.Event()
        self.statuses: Counter = Counter()
        self.versions: list[str] = []

    def run(self) -> None:
        sampler = traffic.TrafficSampler(seed=99)
        while not self.stopping.is_set():
            try:
                response = requests.post(f"{self.url}/predict_titanic", json=sampler(), timeout=30)
                self.statuses[response.status_code] += 1
                if response.status_code == 200:
                    self.versions.append(response.json()["model_version"])
            except requests.RequestException as exc:
                self.statuses[type(exc).__name__] += 1
            time.sleep(0.05)

    def stop(self) -> None:
        self.stopping.set()
        if self.is_alive():
            self.join(30)


def test_drifted_labelled_traffic_is_retrained_promoted_and_served_without_restart(
    service, env, home
):
    """Labelled traffic: 1200 drifted passengers, plus every passenger of data/titanic.csv.

    The latter include the held-out rows, so the challenger gains about 0.02 held-out AUC (as
    measured here) and the gate's promotion is certain rather than a coin toss; the drifted ones
    are what the report must notice.
    """
    before, pids = _workers(service.url), _worker_pids(service.process)
    (old,) = {version for version, _, _ in before.values()}
    batch = traffic.passengers(1200, drifted=True, labelled=True, seed=21) + traffic.load_rows()
    predict_then_report(service.url, batch, TOKEN)
    # Poison: every label wrong, claimed inside the prediction requests by a client that may
    # predict but not report outcomes. Logged as claims, never trained on.
    poison = traffic.passengers(600, drifted=True, labelled=True, seed=22)
    response = requests.post(
        f"{service.url}/predict_titanic_batch",
        json=[{**p, "Survived": 1 - p["Survived"]} for p in poison],
        timeout=60,
    )
    assert response.status_code == 200, response.text
    # Clients start once training is done (on 2 cores they would only slow it down) and run
    # through the import and the swap; the logs are the service's default folder.
    clients = Clients(service.url)
    stderr = home / "retrain-stderr.log"
    with stderr.open("w") as err:
        loop = subprocess.Popen(
            [sys.executable, "-m", "drift", "retrain", *FAST, "--service-url", service.url],
            cwd=ROOT, env={**env, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
            stderr=err, text=True,
        )  # fmt: skip
        lines = []
        for line in loop.stdout:
            lines.append(line)
            if line.startswith("[train]") and not clients.is_alive():
                clients.start()
        loop.wait(60)
    time.sleep(2)  # traffic after the swap too
    clients.stop()
    stdout = "".join(lines)

    assert loop.returncode == 0, stdout + stderr.read_text()[-3000:]
    assert "PROMOTED" in stdout and "[report] drift=True" in stdout
    assert "[export] 2509 labelled rows (2509 joined from feedback)" in stdout
    new = production_version(home)
    assert new != old
    serving = _workers(service.url)
    assert {version for version, _, _ in serving.values()} == {new}
    (tag,) = {tag for _, tag, _ in serving.values()}
    bentos = home / "bentoml" / "bentos" / "titanic_survival"  # rebuilt with the new model
    assert tag in (bentos / (bentos / "latest").read_text().strip() / "bento.yaml").read_text()
    assert _worker_pids(service.process) == pids and service.process.poll() is None  # no restart
    assert set(clients.statuses) == {200}, clients.statuses
    assert clients.versions[0] == old and clients.versions[-1] == new
    assert service.log.read_text().count("path=/reload") == 1
    RESULTS.update(old=old, new=new)


def test_a_second_run_on_the_same_logs_changes_nothing(service, env, home):
    if "new" not in RESULTS:
        pytest.skip("needs the promotion of the test before")
    versions, before = registry_versions(home), _workers(service.url)
    done = _drift(env, "retrain", *FAST, "--force", "--min-rows", "1",
                  "--service-url", service.url)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "already trained on these rows" in done.stdout
    assert "already serving it; not reloaded" in done.stdout
    assert registry_versions(home) == versions
    assert _untouched(before, _workers(service.url))


def test_a_worse_challenger_is_not_promoted_and_the_service_is_untouched(
    service, env, home, write_log
):
    serving, production, versions = (
        _workers(service.url),
        production_version(home),
        registry_versions(home),
    )
    (served,) = {version for version, _, _ in serving.values()}
    reloads = service.log.read_text().count("path=/reload")
    models = sorted((home / "bentoml" / "models" / "titanic").iterdir())
    rows = traffic.passengers(1500, drifted=True, labelled=True, seed=31)
    flipped = [{**p, "Survived": 1 - p["Survived"]} for p in rows]  # every label wrong
    write_log(home / "flipped", flipped, served)

    done = _drift(env, "retrain", "--logs", str(home / "flipped"), *FAST,
                  "--service-url", service.url)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "not promoted" in done.stdout
    assert registry_versions(home) == [*versions, versions[-1] + 1]  # registered, not promoted
    assert production_version(home) == production
    assert _untouched(serving, _workers(service.url))
    assert service.log.read_text().count("path=/reload") == reloads
    assert sorted((home / "bentoml" / "models" / "titanic").iterdir()) == models
    RESULTS["worse"] = str(versions[-1] + 1)


ROLLBACK = """
import sys
from drift.config import get_drift_settings
from drift.deploy import StepFailed, ship
from drift.report import ReportOptions
from drift.retrain import Retrain, RetrainOptions
from training import registry
from mlflow import MlflowClient

url, candidate, previous = sys.argv[1:4]
settings = get_drift_settings()
registry.promote(MlflowClient(settings.tracking_uri), "titanic", "production", candidate)
options = RetrainOptions(report=ReportOptions(logs=settings.monitoring_dir), service_url=url,
                         admin_token="not-the-token")
state = Retrain(options, settings, print, version=candidate, promoted=True)
try:
    ship(state.shipment(), promoted_now=True, previous=previous)
except StepFailed as exc:
    print("StepFailed:", exc)
"""


def test_a_failed_reload_after_promotion_puts_everything_back(service, env, home):
    if "worse" not in RESULTS:
        pytest.skip("needs the unpromoted challenger of the test before")
    serving, production = _workers(service.url), production_version(home)
    models = sorted((home / "bentoml" / "models" / "titanic").iterdir())
    latest = (home / "bentoml" / "models" / "titanic" / "latest").read_text()
    done = subprocess.run(
        [sys.executable, "-c", ROLLBACK, service.url, RESULTS["worse"], production],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert "StepFailed:" in done.stdout and "401" in done.stdout, done.stdout + done.stderr
    assert "[import] titanic:" in done.stdout  # the candidate did reach the store...
    assert sorted((home / "bentoml" / "models" / "titanic").iterdir()) == models  # ...and left
    assert (home / "bentoml" / "models" / "titanic" / "latest").read_text() == latest
    assert production_version(home) == production
    assert _untouched(serving, _workers(service.url))
