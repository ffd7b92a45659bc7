"""Airflow's public REST API (``/api/v2``) as a person's browser uses it: log in as ``admin``
with the password Airflow printed, switch a DAG on, trigger it with a config, answer its
approval (the UI's *Required Actions* form sends the same ``PATCH …/hitlDetails``), read the
run's tasks, outputs and logs. Shared by tests/airflow (``make airflow``) and the container
stack test."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

PASSWORD_LINE = re.compile(r"Password for user 'admin': (\S+)")
FINISHED = {"success", "failed"}


def printed_password(log: str) -> str:
    """The admin password ``airflow standalone`` prints at its first start."""
    found = PASSWORD_LINE.findall(log)
    assert found, f"no admin password printed:\n{log[-3000:]}"
    return found[-1]


def wait_pause_seen(
    scheduler_log: Callable[[], str], dag_id: str, run_id: str, task_id: str, timeout: float = 120
) -> None:
    """Until the scheduler has taken the executor's report of the try that parked ``task_id`` in
    awaiting_input.

    Airflow 3.3.2 fails an approval answered before that: the answer puts the task back in the
    queue, and the late report of the parking try, "finished with state success", then looks like
    a task killed behind the scheduler's back (its log: "Marking task as FAILED", the state
    mismatch). A person takes longer than that; a test must wait for it.
    """
    seen = (
        "Received executor event with state success for task instance "
        f"TaskInstanceKey(dag_id='{dag_id}', task_id='{task_id}', run_id='{run_id}', try_number=1"
    )
    deadline = time.monotonic() + timeout
    while seen not in scheduler_log():
        assert time.monotonic() < deadline, f"the scheduler never saw {task_id} paused: {seen}"
        time.sleep(0.5)


@dataclass
class AirflowAPI:
    url: str
    password: str
    username: str = "admin"
    _token: str | None = field(default=None, repr=False)

    def login(self) -> str:
        """``POST /auth/token``, what the login page sends; the bearer token."""
        answer = httpx.post(
            f"{self.url}/auth/token",
            json={"username": self.username, "password": self.password},
            timeout=30,
        )
        answer.raise_for_status()
        self._token = answer.json()["access_token"]
        return self._token

    def call(self, method: str, path: str, **kwargs) -> httpx.Response:
        token = self._token or self.login()
        return httpx.request(
            method,
            f"{self.url}/api/v2{path}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
            **kwargs,
        )

    def get(self, path: str, **params) -> Any:
        answer = self.call("GET", path, params=params)
        assert answer.status_code == 200, f"GET {path}: {answer.status_code} {answer.text}"
        return answer.json()

    def trigger(self, dag_id: str, conf: dict) -> str:
        """Switch the DAG on (DAGs start paused) and trigger a run with ``conf``; its id."""
        on = self.call("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        assert on.status_code == 200, on.text
        body = {"logical_date": None, "conf": conf}
        run = self.call("POST", f"/dags/{dag_id}/dagRuns", json=body)
        assert run.status_code == 200, run.text
        return run.json()["dag_run_id"]

    def tasks(self, dag_id: str, run_id: str) -> dict[str, str]:
        found = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
        return {ti["task_id"]: ti["state"] for ti in found}

    def wait_task(self, dag_id: str, run_id: str, task_id: str, state: str, timeout: float) -> None:
        """Until ``task_id`` is in ``state``; fails early if the run ends first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.tasks(dag_id, run_id).get(task_id) == state:
                    return
                if self.run_state(dag_id, run_id) in FINISHED:
                    break
            except httpx.TransportError:  # a slow answer while tasks load the machine: ask again
                pass
            time.sleep(2)
        raise AssertionError(
            f"{dag_id}.{task_id} never {state} within {timeout} s: {self.tasks(dag_id, run_id)}"
        )

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}")["state"]

    def wait_run(self, dag_id: str, run_id: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if (state := self.run_state(dag_id, run_id)) in FINISHED:
                    return state
            except httpx.TransportError:
                pass
            time.sleep(2)
        raise AssertionError(
            f"{dag_id} run {run_id} not finished within {timeout} s: {self.tasks(dag_id, run_id)}"
        )

    def hitl(self, dag_id: str, run_id: str, task_id: str) -> dict:
        """What the approval asks (subject, body, options) and, once answered, the answer."""
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails")

    def answer(self, dag_id: str, run_id: str, task_id: str, option: str) -> dict:
        """Choose ``option`` in the approval's form, as the signed-in user."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/-1/hitlDetails"
        answer = self.call("PATCH", path, json={"chosen_options": [option]})
        assert answer.status_code == 200, answer.text
        return answer.json()

    def output(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        return self.get(path, deserialize=True)["value"]

    def log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        """The task's log, one event per line."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
        content = self.get(path, full_content=True)["content"]
        return "\n".join(str(line.get("event", line)) for line in content)
