"""The production stack without Docker: PostgreSQL, an S3 server and ``mlflow server``.

docker-compose.yml runs the MLflow server on PostgreSQL with its artifacts in MinIO, proxied by
the server (``--serve-artifacts``). Here the same ``mlflow server`` command runs as a subprocess,
on 127.0.0.1, against a throwaway PostgreSQL cluster and moto's standalone S3 server, which
stands in for MinIO because MinIO cannot be installed here. Only the server holds S3 keys: this
process, like every client in the stack, knows the tracking URI and nothing else.

Fixtures are package-scoped, so the servers stop and the environment is restored after the last
test in this folder: the other folders never see the server.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tests.harness import (
    DATA,
    ROOT,
    ProcessGroup,
    free_port,
    private_env,
    ready_or_fail,
    running,
    serving,
)

log = logging.getLogger(__name__)

BUCKET = "mlflow"
# moto accepts any key pair; these exist only in the environments of moto and the MLflow server.
S3_KEYS = {"AWS_ACCESS_KEY_ID": "lifeboat", "AWS_SECRET_ACCESS_KEY": "stack-test-secret"}
# docker-compose.yml's default MLFLOW_ALLOWED_HOSTS, so the tested command is the stack's.
ALLOWED_HOSTS = "mlflow,mlflow:5000,localhost,localhost:*,127.0.0.1,127.0.0.1:*"
ADMIN_TOKEN = "stack-admin-token"
STARTUP_TIMEOUT = 240  # seconds; a first start migrates the schema (about 40 s on 2 busy cores)


def unavailable(reason: str) -> NoReturn:
    """Skip on a developer's machine; fail in CI, whose .ci/run installs what these tests need."""
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def footprint(group: ProcessGroup) -> str:
    """How many processes a server runs and their resident memory, for the log."""
    import psutil

    tree = group.tree()
    rss = 0
    for process in tree:
        with contextlib.suppress(psutil.Error):
            rss += process.memory_info().rss
    return f"{len(tree)} processes, {rss / 2**20:.0f} MB resident"


# ------------------------------------------------------------------------------ PostgreSQL


def postgres_bindir() -> Path | None:
    """Debian's newest PostgreSQL (``/usr/lib/postgresql/<major>/bin``), else ``initdb`` on PATH."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    if found:
        return found[-1].parent
    on_path = shutil.which("initdb")
    return Path(on_path).resolve().parent if on_path else None


@dataclass(frozen=True)
class Postgres:
    uri: str  # the backend-store URI, psycopg2 driver named as in docker-compose.yml
    port: int


@pytest.fixture(scope="package")
def postgres() -> Iterator[Postgres]:
    """A throwaway cluster on a free 127.0.0.1 port with a database ``mlflow``; removed after."""
    bindir = postgres_bindir()
    if bindir is None:
        unavailable("PostgreSQL is not installed: apt-get install postgresql (see .ci/run)")
    # PostgreSQL refuses to run as root, so root runs it as the package's `postgres` user.
    as_owner: list[str] = []
    owner = None
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            unavailable("running as root and there is no `postgres` user to run PostgreSQL as")
        as_owner = ["runuser", "-u", "postgres", "--"]
    # Not pytest's tmp_path: root's is mode 0700, closed to the `postgres` user.
    base = Path(tempfile.mkdtemp(prefix="lifeboat-pg-"))
    password = secrets.token_hex(16)
    (base / "password").write_text(password)
    (base / "password").chmod(0o600)
    if owner is not None:
        for path in (base, base / "password"):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    port = free_port()
    data = base / "data"

    def pg(tool: str, *args: str) -> None:
        done = subprocess.run(
            [*as_owner, str(bindir / tool), *args],
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        if done.returncode != 0:
            pytest.fail(f"{tool} failed:\n{done.stdout}\n{done.stderr}")

    try:
        pg("initdb", "-D", str(data), "-U", "mlflow", f"--pwfile={base / 'password'}",
           "--auth=scram-sha-256", "--encoding=UTF8", "--no-locale", "--no-sync")  # fmt: skip
        # Durability is pointless for a cluster deleted at the end of the session.
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -k {base} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        pg("pg_ctl", "start", "-D", str(data), "-l", str(base / "postgres.log"), "-w",
           "-t", "60", "-o", options)  # fmt: skip
        import psycopg2

        connection = psycopg2.connect(
            host="127.0.0.1", port=port, user="mlflow", password=password, dbname="postgres"
        )
        connection.autocommit = True  # CREATE DATABASE refuses to run inside a transaction
        try:
            connection.cursor().execute("CREATE DATABASE mlflow")
        finally:
            connection.close()
        yield Postgres(f"postgresql+psycopg2://mlflow:{password}@127.0.0.1:{port}/mlflow", port)
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                [*as_owner, str(bindir / "pg_ctl"), "stop", "-D", str(data), "-m", "immediate",
                 "-w", "-t", "30"],
                capture_output=True, timeout=60, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)


# ------------------------------------------------------------------------------------- S3


@dataclass(frozen=True)
class S3:
    endpoint: str
    bucket: str

    def client(self) -> Any:
        """A boto3 client with the server's keys, for looking into the bucket as an operator."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=S3_KEYS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=S3_KEYS["AWS_SECRET_ACCESS_KEY"],
        )

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2")
        found = pages.paginate(Bucket=self.bucket, Prefix=prefix)
        return [item["Key"] for page in found for item in page.get("Contents", [])]

    def read(self, key: str) -> bytes:
        return self.client().get_object(Bucket=self.bucket, Key=key)["Body"].read()


@pytest.fixture(scope="package")
def s3(tmp_path_factory) -> Iterator[S3]:
    """moto's standalone S3 server on a free 127.0.0.1 port, with the bucket created."""
    if importlib.util.find_spec("moto.server") is None:
        unavailable("moto's server is not installed: pip install 'moto[server]'")
    port = free_port()
    logs = tmp_path_factory.mktemp("moto")
    # A process of its own: importing moto here would hook botocore in this process.
    with running(
        "moto",
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        clean_env(),
        logs / "moto.log",
        f"http://127.0.0.1:{port}/moto-api/",
    ):
        store = S3(f"http://127.0.0.1:{port}", BUCKET)
        store.client().create_bucket(Bucket=BUCKET)
        yield store


def clean_env() -> dict[str, str]:
    """This process's environment without MLflow's, AWS's, Lifeboat's or BentoML's variables."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLFLOW_", "AWS_", "LIFEBOAT_", "BENTOML_"))
    }


# ---------------------------------------------------------------------------- MLflow server


class MlflowServer:
    """docker-compose.yml's ``mlflow server`` command, on loopback with one worker."""

    def __init__(self, postgres: Postgres, s3: S3, log_dir: Path) -> None:
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.s3 = s3
        self.startup_seconds: list[float] = []
        command = [
            str(Path(sys.executable).with_name("mlflow")), "server",
            "--backend-store-uri", postgres.uri,
            "--serve-artifacts",
            "--artifacts-destination", f"s3://{s3.bucket}/artifacts",
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--workers", "1",
            "--allowed-hosts", ALLOWED_HOSTS,
        ]  # fmt: skip
        env = {
            **clean_env(),
            # The S3 endpoint and keys are the server's alone, as in the compose file.
            "MLFLOW_S3_ENDPOINT_URL": s3.endpoint,
            **S3_KEYS,
            # No job runner: it starts 8 more processes (about 0.9 GB RSS, measured here) for
            # GenAI jobs this project never submits.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
        self.process = ProcessGroup(
            "mlflow server", command, env, log_dir / "mlflow-server.log", cwd=ROOT
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def start(self) -> None:
        self.process.start()
        seconds = ready_or_fail(self.process, f"{self.uri}/health", STARTUP_TIMEOUT)
        self.startup_seconds.append(seconds)
        log.info("mlflow server answered /health after %.1f s; %s", seconds, self.footprint())

    def stop(self) -> None:
        self.process.stop(grace=20)

    def restart(self) -> None:
        """Stop the server and start a new one on the same port, PostgreSQL and bucket."""
        log.info("mlflow server before its restart: %s", self.footprint())
        self.stop()
        self.start()

    def footprint(self) -> str:
        return footprint(self.process)


@pytest.fixture(scope="package")
def mlflow_server(postgres, s3, tmp_path_factory) -> Iterator[MlflowServer]:
    server = MlflowServer(postgres, s3, tmp_path_factory.mktemp("mlflow-server"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


# ------------------------------------------------------------------- this process as a client


@pytest.fixture(scope="package")
def stack_home(tmp_path_factory) -> Path:
    """LIFEBOAT_HOME and BENTOML_HOME of the stack's clients (not the session's)."""
    home = tmp_path_factory.mktemp("stack-home")
    (home / "bentoml" / "models").mkdir(parents=True)
    return home


@pytest.fixture(scope="package")
def stack_settings(mlflow_server, stack_home) -> Iterator[Any]:
    """Settings pointing at the server, and an environment with no S3 endpoint or keys.

    Restored after this folder: the environment, the settings cache, MLflow's tracking URI and
    active experiment (module globals that ``training.registry.configure`` sets).
    """
    import mlflow.tracking.fluent as fluent
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    from lifeboat.settings import get_settings

    saved_env = dict(os.environ)
    saved_experiment = fluent._active_experiment_id
    for name in [k for k in os.environ if k.startswith("AWS_") or k == "MLFLOW_S3_ENDPOINT_URL"]:
        del os.environ[name]
    os.environ.update(
        MLFLOW_TRACKING_URI=mlflow_server.uri,
        LIFEBOAT_HOME=str(stack_home),
        BENTOML_HOME=str(stack_home / "bentoml"),
        # No credentials from a developer's ~/.aws or a cloud metadata endpoint either.
        AWS_CONFIG_FILE=str(stack_home / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(stack_home / "no-aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    get_settings.cache_clear()
    try:
        with _use_tracking_uri(mlflow_server.uri):
            yield get_settings()
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        get_settings.cache_clear()
        fluent._active_experiment_id = saved_experiment


@pytest.fixture(scope="package")
def stack_trained(spark, stack_settings) -> Any:
    """One quick training run against the server, shared by every test here."""
    from training.pipeline import TrainOptions, run

    return run(TrainOptions(data=DATA, quick=True), stack_settings)


@pytest.fixture(scope="package")
def bento_store(stack_home) -> Any:
    """The stack's BentoML model store (BentoML fixes its default store once per process)."""
    from bentoml._internal.models import ModelStore

    return ModelStore(stack_home / "bentoml" / "models")


@pytest.fixture(scope="package")
def stack_served(stack_trained, stack_settings, stack_home, bento_store) -> Iterator[str]:
    """``bentoml serve`` on a free port from the stack's store, with the Production model
    imported from the server first; yields its base URL."""
    from lifeboat.serving.store import import_production

    import_production(
        stack_settings.tracking_uri,
        stack_settings.model_name,
        stack_settings.production_alias,
        store=bento_store,
    )
    env = private_env(
        stack_home,
        os.environ,  # the stack's client environment: tracking URI, no S3 keys
        MLFLOW_TRACKING_URI=stack_settings.tracking_uri,
        LIFEBOAT_ADMIN_TOKEN=ADMIN_TOKEN,
        BENTOML_CONFIG_OPTIONS=(
            f"services.TitanicSurvival.monitoring.options.log_path={stack_home / 'monitoring'}"
        ),
    )
    log = stack_home / "bentoml-serve.log"
    with serving("service:TitanicSurvival", env, ROOT, log, ready_path="/health") as server:
        yield server.url
