"""``make airflow`` as a user starts it (README, "Orchestration"), on a free port, and the real
scheduler running the training DAG against the real embedded stack.

A run's approval that nobody answers is timed out by the scheduler (Airflow 3.3 parks the task in
``awaiting_input``; the scheduler's sweep answers the default, Reject, once the run's
``approval_timeout_hours`` have passed; ``airflow dags test`` has no such sweep). The
challenger wins the gate for certain: ``--extra-data data/titanic.csv`` trains it on the
held-out rows too (as tests/airflow/test_dag_runs.py's drifted traffic does), against the
session's Production, which never saw them. The runs are triggered and read through Airflow's
REST API, as the UI does; Ctrl+C, last, must stop every component.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import psutil
import pytest

from loadtest.servers import ProcessGroup, free_port
from tests.airflow.conftest import serving_versions
from tests.airflow.rest import AirflowAPI, printed_password, wait_pause_seen
from tests.harness import (
    ROOT,
    production_version,
    registry_versions,
    set_production,
    still_running,
)

# Each test trains, and waits for Airflow's scheduler: on a loaded machine, beyond the suite's
# default per-test limit.
pytestmark = [
    pytest.mark.airflow,
    pytest.mark.spark,
    pytest.mark.integration,
    pytest.mark.timeout(2400),
]
DAGS = {"lifeboat_train", "lifeboat_monitor", "lifeboat_batch_score"}
READY_SECONDS = 240  # 25 s on the idle 2-core machine, 72 s while images were built
# A challenger that beats the session's Production: it also learns the held-out rows.
WINNER = ["--quick", "--folds", "2", "--extra-data", "data/titanic.csv"]
TIMEOUT_SECONDS = 20


@dataclass
class Standalone:
    port: int
    group: ProcessGroup
    log: Path
    seconds_to_ready: float

    @property
    def process(self) -> subprocess.Popen:
        assert self.group.process is not None
        return self.group.process

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answers(self) -> bool:
        try:
            return httpx.get(self.url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def processes(self) -> list[psutil.Process]:
        """``make airflow`` and everything under it: Airflow's components run in a session of
        their own (tools/foreground.py), so that Ctrl+C reaches only the launcher."""
        with contextlib.suppress(psutil.Error):
            return self.group.tree()
        return []


@pytest.fixture(scope="module")
def standalone(env, service, tmp_path_factory):
    """``make airflow AIRFLOW_PORT=<free>`` with a fresh AIRFLOW_HOME, until it says it is ready."""
    home = tmp_path_factory.mktemp("airflow-standalone")
    port = free_port()
    log = home / "make-airflow.log"
    started = time.monotonic()
    group = ProcessGroup(
        "make airflow",
        ["make", "--no-print-directory", "airflow", f"AIRFLOW_PORT={port}"],
        {
            **env,
            "AIRFLOW_HOME": str(home / "airflow"),
            # The scheduler's and triggerer's log servers: free ports too.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
        },
        log,
        cwd=ROOT,
    ).start()  # its own group, as a terminal's foreground job is
    process = group.process
    running = Standalone(port, group, log, 0.0)
    try:
        # "Airflow is ready" counts the scheduler, DAG processor and triggerer; the UI (the API
        # server) may still be starting then.
        deadline = time.monotonic() + READY_SECONDS
        while not ("Airflow is ready" in running.output() and running.answers()):
            if process.poll() is not None or time.monotonic() > deadline:
                said = running.output()[-6000:]
                pytest.fail(f"make airflow not ready (exit {process.poll()}):\n{said}")
            time.sleep(0.5)
        running.seconds_to_ready = time.monotonic() - started
        print(f"make airflow: the UI answered after {running.seconds_to_ready:.0f} s")
        yield running
    finally:
        group.stop()


@pytest.fixture(scope="module")
def api(standalone) -> AirflowAPI:
    return AirflowAPI(standalone.url, printed_password(standalone.output()))


def test_make_airflow_prints_the_ui_and_login_and_lists_the_dags(standalone, api):
    said = standalone.output()
    assert f"Airflow UI: http://127.0.0.1:{standalone.port}" in said
    assert standalone.seconds_to_ready < READY_SECONDS
    page = httpx.get(standalone.url, timeout=10)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    wrong = httpx.post(
        f"{standalone.url}/auth/token", json={"username": "admin", "password": "wrong"}, timeout=10
    )
    assert wrong.status_code == 401
    api.login()  # the printed password
    health = httpx.get(f"{standalone.url}/api/v2/monitor/health", timeout=10).json()
    assert {part: health[part]["status"] for part in health} == dict.fromkeys(health, "healthy")

    def listed() -> dict[str, bool]:
        return {d["dag_id"]: d["is_paused"] for d in api.get("/dags")["dags"]}

    deadline = time.monotonic() + 120
    while set(listed()) != DAGS and time.monotonic() < deadline:
        time.sleep(2)
    assert listed() == dict.fromkeys(DAGS, True)  # parsed, and paused until switched on
    assert api.get("/importErrors")["total_entries"] == 0
    # The UI and API listen on this machine only.
    assert {c.laddr.ip for c in psutil.net_connections("tcp") if c.laddr.port == standalone.port
            and c.status == psutil.CONN_LISTEN} == {"127.0.0.1"}  # fmt: skip


def test_an_unanswered_approval_times_out_and_leaves_production_alone(service, home, api):
    champion, before = production_version(home), registry_versions(home)
    served = serving_versions(service.url)
    reloads = service.log.read_text().count("path=/reload")
    conf = {"train_args": WINNER, "approval_timeout_hours": TIMEOUT_SECONDS / 3600, "build": False}

    run_id = api.trigger("lifeboat_train", conf)
    api.wait_task("lifeboat_train", run_id, "approve", "awaiting_input", timeout=1200)
    asked = api.hitl("lifeboat_train", run_id, "approve")
    state = api.wait_run("lifeboat_train", run_id, timeout=600)

    assert state == "success", api.tasks("lifeboat_train", run_id)
    outcome = api.output("lifeboat_train", run_id, "train")
    assert outcome["passed_gate"] is True and outcome["production_version"] == champion
    assert f"no answer within {TIMEOUT_SECONDS} s" in asked["body"]
    assert asked["response_received"] is False
    answered = api.hitl("lifeboat_train", run_id, "approve")
    assert answered["chosen_options"] == ["Reject"] and answered["responded_by_user"] is None
    waited = datetime.fromisoformat(answered["responded_at"]) - datetime.fromisoformat(
        answered["created_at"]
    )  # the scheduler's sweep looks every 15 s (when the machine lets it)
    assert timedelta(seconds=TIMEOUT_SECONDS) <= waited < timedelta(seconds=TIMEOUT_SECONDS + 120)
    tasks = api.tasks("lifeboat_train", run_id)
    assert (tasks["approve"], tasks["promote"]) == ("success", "skipped")
    log = api.log("lifeboat_train", run_id, "approve")
    assert f"Timed out: no answer within {TIMEOUT_SECONDS} s, so the default Reject applies" in log
    assert api.output("lifeboat_train", run_id, "conclude") == {
        "promoted": False,
        "verdict": f"v{outcome['version']} timed out: no answer within {TIMEOUT_SECONDS} s; "
        f"Production v{champion} left alone",
    }
    assert production_version(home) == champion
    assert registry_versions(home) == [*before, int(outcome["version"])]  # registered, held
    assert serving_versions(service.url) == served
    assert service.log.read_text().count("path=/reload") == reloads


@pytest.fixture(scope="module")
def champion(home) -> str:
    """The session's Production, which never saw the held-out rows: every WINNER beats it."""
    return production_version(home)


def test_an_approval_answered_in_the_ui_promotes_and_serves_the_challenger(
    service, home, api, champion, standalone
):
    """The reviewer's Approve, sent as the UI's Required Actions form sends it (``PATCH
    …/hitlDetails`` as the signed-in admin), resumes the task and ships the challenger."""
    set_production(home, champion)
    conf = {"train_args": WINNER, "build": False}

    run_id = api.trigger("lifeboat_train", conf)
    api.wait_task("lifeboat_train", run_id, "approve", "awaiting_input", timeout=1200)
    asked = api.hitl("lifeboat_train", run_id, "approve")
    wait_pause_seen(standalone.output, "lifeboat_train", run_id, "approve")
    answered = api.answer("lifeboat_train", run_id, "approve", "Approve")
    state = api.wait_run("lifeboat_train", run_id, timeout=900)

    tasks = api.tasks("lifeboat_train", run_id)
    assert state == "success", (tasks, api.log("lifeboat_train", run_id, "approve")[-4000:])
    outcome = api.output("lifeboat_train", run_id, "train")
    new = outcome["version"]
    assert outcome["passed_gate"] is True and outcome["production_version"] == champion
    assert asked["subject"] == f"Promote titanic v{new} to Production?"
    assert answered["chosen_options"] == ["Approve"]
    assert answered["responded_by"]["name"] == "admin"
    assert (tasks["approve"], tasks["promote"]) == ("success", "success")
    assert api.output("lifeboat_train", run_id, "approve", key="answer") == {
        "option": "Approve",
        "by": "admin",
        "timed_out": False,
    }
    assert api.output("lifeboat_train", run_id, "conclude") == {
        "promoted": True,
        "verdict": f"v{new} approved by admin: promoted, imported and served",
    }
    assert production_version(home) == new != champion
    assert serving_versions(service.url) == {new}


def test_auto_approve_promotes_builds_and_serves_a_winning_challenger(service, home, api, champion):
    set_production(home, champion)
    bentos = home / "bentoml" / "bentos" / "titanic_survival"
    built = {p for p in bentos.iterdir() if p.is_dir()} if bentos.exists() else set()
    conf = {"train_args": WINNER, "auto_approve": True, "build": True}

    run_id = api.trigger("lifeboat_train", conf)
    state = api.wait_run("lifeboat_train", run_id, timeout=1800)

    tasks = api.tasks("lifeboat_train", run_id)
    assert state == "success", tasks
    outcome = api.output("lifeboat_train", run_id, "train")
    new = outcome["version"]
    assert outcome["passed_gate"] is True and outcome["production_version"] == champion
    assert (tasks["approve"], tasks["promote"]) == ("skipped", "success")  # nobody asked
    assert api.output("lifeboat_train", run_id, "conclude") == {
        "promoted": True,
        "verdict": f"v{new} auto-approved: promoted, imported and served",
    }
    assert production_version(home) == new != champion
    assert len({p for p in bentos.iterdir() if p.is_dir()} - built) == 1  # bentoml build ran
    assert serving_versions(service.url) == {new}


def test_ctrl_c_stops_every_component(standalone):
    components = standalone.processes()
    assert len(components) >= 6, components  # make, launcher, standalone, scheduler, api-server, …
    os.killpg(standalone.process.pid, signal.SIGINT)  # what Ctrl+C sends to the foreground job
    deadline = time.monotonic() + 60  # the launcher's own grace: none of it is needed
    while (left := still_running(components)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, [p.cmdline() for p in left]
    said = standalone.output()
    assert "standalone | Complete" in said  # Airflow stopped its components itself
    assert "terminating the rest" not in said and "killing the rest" not in said
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", standalone.port), 2):
        pass
