"""The production stack in real containers: `docker compose` over docker-compose.yml.

Every image is built (``docker/images.sh``: stand-in base images where no registry answers),
the stack runs under its own compose project name with a generated ``.env``, and MinIO is
replaced by moto's S3 server through ``compose.moto.yml`` (MinIO cannot be had here). Traffic
goes only to 127.0.0.1 and to the containers this fixture started; everything it started
(containers, networks, volumes) is removed at the end, also when a test fails.

No Docker engine: skipped with the reason on a developer's machine, a failure in CI (whose
``.ci/run`` installs ``docker.io`` and starts ``dockerd``).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.harness import ROOT, free_port

COMPOSE = ROOT / ".venv" / "bin" / "docker-compose"
OVERRIDE = Path(__file__).with_name("compose.moto.yml")
PROJECT = "lifeboat-stacktest"
REPLICAS = 2
SECRETS = (
    "POSTGRES_PASSWORD",
    "MINIO_ROOT_PASSWORD",
    "LIFEBOAT_ADMIN_TOKEN",
    "LIFEBOAT_FEEDBACK_TOKEN",
)
# Services the S3 stand-in's in-memory objects live in: a restart test leaves it running.
S3_STAND_IN = "minio"

pytestmark = [pytest.mark.integration]


def docker_unavailable() -> str | None:
    """Why no Docker engine can be used here, or None."""
    if shutil.which("docker") is None:
        return "no docker CLI (apt-get install docker.io)"
    if not COMPOSE.exists():
        return f"no compose binary at {COMPOSE} (make install)"
    probe = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        return f"no Docker engine answers: {probe.stderr.strip().splitlines()[-1:]}"
    return None


@dataclass
class Stack:
    """One compose project of docker-compose.yml (+ the moto override) and its host state."""

    home: Path
    env_file: Path
    env: dict[str, str]
    ports: dict[str, int]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def monitoring(self) -> Path:
        return self.home / "monitoring"

    def secret(self, name: str) -> str:
        """A value of the stack's .env file (as the README has a user fill it in)."""
        for line in self.env_file.read_text().splitlines():
            key, _, value = line.partition("=")
            if key == name:
                return value
        raise KeyError(name)

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.ports['BENTO_PORT']}"

    @property
    def mlflow(self) -> str:
        return f"http://127.0.0.1:{self.ports['MLFLOW_PORT']}"

    def compose(
        self,
        *args: str,
        timeout: float = 900,
        check: bool = True,
        profiles: str = "",
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """``docker compose`` on this project; fails the test with its output on error."""
        command = [
            str(COMPOSE),
            "-p",
            PROJECT,
            "-f",
            str(ROOT / "docker-compose.yml"),
            "-f",
            str(OVERRIDE),
            "--env-file",
            str(self.env_file),
            *args,
        ]
        done = subprocess.run(
            command,
            cwd=ROOT,
            env={**os.environ, **(env or {}), "COMPOSE_PROFILES": profiles},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            pytest.fail(
                f"docker compose {' '.join(args)} exited {done.returncode}:\n"
                f"{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
            )
        return done

    def host(self, *args: str, timeout: float = 900, **extra: str) -> subprocess.CompletedProcess:
        """A project command on the host, as a user of the stack runs it (``python -m ...``)."""
        env = {**os.environ, **self.env, **extra}
        return subprocess.run(
            [sys.executable, *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def containers(self, service: str, running: bool = True) -> list[dict]:
        """``docker inspect`` of the service's running containers (all of them: ``running``
        False)."""
        ids = self.compose("ps", "-q", *(() if running else ("-a",)), service).stdout.split()
        if not ids:
            return []
        out = subprocess.run(
            ["docker", "inspect", *ids], capture_output=True, text=True, check=True
        )
        return [c for c in json.loads(out.stdout) if c["State"]["Running"] or not running]

    def replica_urls(self) -> dict[str, str]:
        """Each running Bento replica's own URL (its address on the stack's network)."""
        urls = {}
        for container in self.containers("bento"):
            networks = container["NetworkSettings"]["Networks"]
            address = next(iter(networks.values()))["IPAddress"]
            urls[container["Config"]["Hostname"]] = f"http://{address}:3000"
        return urls

    def wait_healthy(self, service: str, count: int = 1, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = [c["State"].get("Health", {}).get("Status") for c in self.containers(service)]
            if states.count("healthy") >= count:
                return
            time.sleep(2)
        logs = self.compose("logs", "--tail", "60", service, check=False).stdout
        pytest.fail(f"{service}: not {count} healthy after {timeout} s:\n{logs[-6000:]}")


def wait_for(
    check,
    timeout: float,
    interval: float = 1.0,
    what: str = "condition",
    explain: Callable[[], str] | None = None,
):
    """Call ``check`` until it returns something truthy; fail after ``timeout`` seconds, with the
    last error, when the last call raised, and what ``explain`` says of the state then."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if result := check():
                return result
            last = None
        except (httpx.HTTPError, OSError, ValueError, KeyError) as exc:
            last = exc
        time.sleep(interval)
    state = ""
    if explain is not None:
        try:
            state = "\n" + explain()
        except Exception as exc:  # the failure message must not hide behind its explanation
            state = f"\n(explaining failed: {exc!r})"
    pytest.fail(f"{what}: not reached in {timeout} s (last call raised: {last!r}){state}")


# Module, not session: every test of the stack is in test_stack.py, and the stack's ten
# containers (replicas polling the registry, healthchecks, Prometheus scraping) would otherwise
# run on through the rest of the suite, taking CPU from it.
@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    """Images built, ``mlflow`` (PostgreSQL, S3, bucket) up and healthy; all removed after the
    module's last test."""
    if reason := docker_unavailable():
        if os.environ.get("CI"):
            pytest.fail(f"CI needs a Docker engine for tests/containers: {reason}")
        pytest.skip(f"tests/containers need a Docker engine: {reason}")
    home = tmp_path_factory.mktemp("stack")
    ports = {
        name: free_port()
        for name in (
            "MLFLOW_PORT",
            "BENTO_PORT",
            "LOCUST_PORT",
            "PROMETHEUS_PORT",
            "PUSHGATEWAY_PORT",
            "SPARK_MASTER_UI_PORT",
            "SPARK_WORKER_UI_PORT",
            "AIRFLOW_PORT",
        )
    }
    values = {
        **{name: secrets.token_hex(16) for name in SECRETS},
        "GRAFANA_ADMIN_PASSWORD": secrets.token_hex(16),
        **{name: str(port) for name, port in ports.items()},
        "LIFEBOAT_MONITORING_HOST_DIR": str(home / "monitoring"),
        "BENTO_REPLICAS": str(REPLICAS),
        "LIFEBOAT_REGISTRY_POLL_SECONDS": "3",
        "LIFEBOAT_GIT_COMMIT": subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        or "unknown",
    }
    # .env.example with its empty secrets filled in, as the README tells a user to do.
    lines = []
    for line in (ROOT / ".env.example").read_text().splitlines():
        name = line.split("=", 1)[0]
        lines.append(f"{name}={values.pop(name)}" if name in values and "=" in line else line)
    lines += [f"{name}={value}" for name, value in values.items()]
    env_file = home / "stack.env"
    env_file.write_text("\n".join(lines) + "\n")
    (home / "monitoring").mkdir()
    stack = Stack(
        home=home,
        env_file=env_file,
        env={
            "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{ports['MLFLOW_PORT']}",
            "BENTOML_HOME": str(home / "bentoml"),
            "BENTOML_DO_NOT_TRACK": "true",
            "LIFEBOAT_HOME": str(home),
            "LIFEBOAT_ENV_FILE": str(env_file),
            "LIFEBOAT_MODEL_STORE": "",
            "LIFEBOAT_MONITORING_DIR": str(home / "monitoring"),
            "LIFEBOAT_SERVICE_URL": f"http://127.0.0.1:{ports['BENTO_PORT']}",
            "LIFEBOAT_PUSHGATEWAY_URL": "",
            "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}",
        },
        ports=ports,
    )
    try:
        started = time.monotonic()
        images = subprocess.run(
            [str(ROOT / "docker" / "images.sh"), "--no-bento"],
            cwd=ROOT,
            env={**os.environ, **stack.env, "LIFEBOAT_GIT_COMMIT": stack_commit(env_file)},
            capture_output=True,
            text=True,
            timeout=2400,
        )
        assert images.returncode == 0, images.stderr[-6000:]
        stack.timings["images"] = time.monotonic() - started
        (home / "images.log").write_text(images.stderr)
        started = time.monotonic()
        stack.compose("up", "-d", "--wait", "mlflow", timeout=600)
        stack.timings["mlflow_up"] = time.monotonic() - started
        yield stack
    finally:
        (home / "compose.log").write_text(
            stack.compose("logs", "--no-color", check=False, profiles="*").stdout
        )
        stack.compose(
            "down", "-v", "--remove-orphans", "-t", "5", check=False, timeout=300, profiles="*"
        )
        (Path(os.environ.get("LIFEBOAT_STACK_TIMINGS", home / "timings.json"))).write_text(
            json.dumps(stack.timings, indent=2)
        )


def stack_commit(env_file: Path) -> str:
    for line in env_file.read_text().splitlines():
        if line.startswith("LIFEBOAT_GIT_COMMIT="):
            return line.split("=", 1)[1]
    return "unknown"
