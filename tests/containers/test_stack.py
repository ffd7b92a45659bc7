"""The whole pipeline in containers, in the order a user runs it (README, "Production stack").

The tests share one stack (see conftest.py) and run in file order: each step starts from what
the one before it left, as the README's commands do.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from mlflow import MlflowClient

from drift import traffic
from tests.airflow.rest import AirflowAPI, printed_password, wait_pause_seen
from tests.containers.conftest import REPLICAS, S3_STAND_IN, Stack, stack_commit, wait_for
from tests.harness import ROOT, predict_then_report

# The first test also pays for the session's fixture: building every image from nothing takes
# several minutes on 2 cores, more than the suite's default per-test limit allows for.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(3600)]

PASSENGER = {
    "Pclass": 1,
    "Sex": "female",
    "Age": 30,
    "SibSp": 0,
    "Parch": 0,
    "Fare": 80.0,
    "Embarked": "C",
}


def production(stack: Stack) -> str:
    client = MlflowClient(tracking_uri=stack.mlflow)
    return str(client.get_model_version_by_alias("titanic", "production").version)


def replica_versions(stack: Stack) -> dict[str, str]:
    """Which registry version each Bento replica's worker answering /health serves."""
    return {
        host: httpx.get(f"{url}/health", timeout=5).json()["model_version"]
        for host, url in stack.replica_urls().items()
    }


def request_count(metrics: str) -> float:
    """Successful /predict_titanic requests in one replica's /metrics."""
    pattern = re.compile(
        r'^bentoml_service_request_total\{[^}]*endpoint="/predict_titanic"[^}]*'
        r'http_response_code="200"[^}]*\}\s+(\S+)$',
        re.M,
    )
    return sum(float(m) for m in pattern.findall(metrics))


def locust(stack: Stack, seconds: int, users: int = 8, **extra: str) -> subprocess.Popen:
    """Headless Locust on the host against the gateway (the project's checked answers)."""
    csv = stack.home / f"locust-{time.monotonic_ns()}"
    return subprocess.Popen(
        [
            str(ROOT / ".venv" / "bin" / "locust"),
            "--config",
            "loadtest/headless.conf",
            "--host",
            stack.gateway,
            "--users",
            str(users),
            "--spawn-rate",
            str(users),
            "--run-time",
            f"{seconds}s",
            "--csv",
            str(csv),
            "--max-p99-ms",
            "5000",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finished(run: subprocess.Popen, timeout: float) -> tuple[int, str]:
    out, _ = run.communicate(timeout=timeout)
    return run.returncode, out


def failures(output: str) -> int:
    """Locust's own count of failed requests, from its closing statistics table."""
    match = re.search(r"^\s*Aggregated\s+(\d+)\s+(\d+)\(", output, re.M)
    assert match, output[-3000:]
    return int(match[2])


def test_images_are_built_and_stand_ins_say_so(stack):
    log = (stack.home / "images.log").read_text()
    for tag in (
        "python:3.11.14-slim-bookworm",
        "postgres:15-bookworm",
        "haproxy:2.6-bookworm",
        "locustio/locust:2.47.0",
        "prom/prometheus:v3.5.0",
        "prom/pushgateway:v1.11.3",
    ):
        assert tag in log
        labels = (
            json.loads(
                subprocess.run(
                    ["docker", "image", "inspect", "-f", "{{json .Config.Labels}}", tag],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )
            or {}
        )
        if labels.get("org.lifeboat.standin") == "true":  # built here: it must say so, per image
            assert labels["org.lifeboat.standin.for"] == tag
            assert re.search(rf"{re.escape(tag)}\s+.*STAND-IN", log), log
    for image in (
        "lifeboat-trainer:latest",
        "lifeboat-mlflow:3.17.2",
        "lifeboat-locust:2.47.0",
        "lifeboat-airflow:3.3.2",
    ):
        subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=True)


def test_trainer_trains_against_the_server_quietly(stack):
    started = time.monotonic()
    run = stack.compose("run", "--rm", "trainer", timeout=1200)
    stack.timings["trainer"] = time.monotonic() - started
    output = run.stdout + run.stderr
    assert production(stack) == "1", output[-3000:]
    # Its BLAS is there, GitPython is quiet, and the run records the image's commit.
    assert "netlib" not in output.lower() and "GitPython" not in output, output[-3000:]
    client = MlflowClient(tracking_uri=stack.mlflow)
    version = client.get_model_version_by_alias("titanic", "production")
    parent = client.get_run(version.run_id)
    if parent.data.tags.get("mlflow.parentRunId"):
        parent = client.get_run(parent.data.tags["mlflow.parentRunId"])
    assert parent.data.tags["git_commit"] == stack_commit(stack.env_file) != "unknown"


def test_the_host_cli_imports_from_the_stack_in_seconds_and_builds_the_bento_image(stack):
    started = time.monotonic()
    imported = stack.host("-m", "training", "import-model", timeout=120)
    stack.timings["host_import"] = time.monotonic() - started
    assert imported.returncode == 0, imported.stderr[-3000:]
    assert stack.timings["host_import"] < 60
    started = time.monotonic()
    build = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "bentoml"), "build"],
        cwd=ROOT,
        env={**os.environ, **stack.env},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    image = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "bentoml"),
            "containerize",
            "titanic_survival:latest",
            "-t",
            "titanic_survival:latest",
        ],
        cwd=ROOT,
        env={**os.environ, **stack.env, "DOCKER_BUILDKIT": "0"},
        capture_output=True,
        text=True,
        timeout=1200,
    )
    stack.timings["bento_image"] = time.monotonic() - started
    assert image.returncode == 0, image.stderr[-3000:]


def test_up_serves_replicas_behind_the_gateway_and_never_retrains(stack):
    started = time.monotonic()
    stack.compose("up", "-d", timeout=600)
    stack.wait_healthy("bento", REPLICAS)
    stack.wait_healthy("bento-gateway")
    stack.timings["up_to_healthy"] = time.monotonic() - started
    running = stack.compose("ps", "--services").stdout.split()
    assert "trainer" not in running
    assert len(MlflowClient(tracking_uri=stack.mlflow).search_model_versions("name='titanic'")) == 1
    answer = wait_for(
        lambda: httpx.post(f"{stack.gateway}/predict_titanic", json=PASSENGER, timeout=10),
        60,
        what="the gateway answering",
    )
    assert answer.status_code == 200 and answer.json()["model_version"] == "1"
    assert set(replica_versions(stack).values()) == {"1"}


def test_locust_through_the_stack_spreads_over_every_replica_with_no_failure(stack):
    before = {
        h: request_count(httpx.get(f"{u}/metrics").text) for h, u in stack.replica_urls().items()
    }
    # The stack's own Locust image, headless, against the gateway by its service name.
    run = stack.compose(
        "run",
        "--rm",
        "--no-deps",
        "locust",
        "-f",
        "/mnt/locust/loadtest/locustfile.py",
        "--headless",
        "--users",
        "16",
        "--spawn-rate",
        "16",
        "--run-time",
        "20s",
        "--host",
        "http://bento-gateway:3000",
        "--only-summary",
        check=False,
        timeout=300,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-3000:]
    assert failures(output) == 0
    after = {
        h: request_count(httpx.get(f"{u}/metrics").text) for h, u in stack.replica_urls().items()
    }
    served = {h: after[h] - before.get(h, 0) for h in after}
    assert len(served) == REPLICAS and all(n > 50 for n in served.values()), served


def test_drift_report_reads_every_replicas_logs_from_the_bind_mount(stack):
    hosts = {p.name for p in stack.monitoring.iterdir() if (p / "titanic" / "data").is_dir()}
    assert hosts == set(stack.replica_urls()), hosts
    report = stack.host(
        "-m", "drift", "report", "--logs", str(stack.monitoring), "--min-rows", "100", timeout=300
    )
    assert report.returncode in (0, 42), report.stderr[-3000:]
    summary = json.loads(
        sorted((stack.home / "reports" / "drift").glob("*/summary.json"))[-1].read_text()
    )
    assert summary["rows"]["current"] > 100
    read_from = {Path(name).parts[0] for name in summary["logs"]["files"]}
    assert read_from == hosts, summary["logs"]


def test_a_promotion_reaches_every_replica_with_no_failed_request(stack):
    # Traffic through the gateway, its outcomes reported afterwards to POST /feedback (also
    # through the gateway, so to whichever replica): drifted passengers, and every passenger of
    # the data set, held-out rows included, so the challenger's gain and so its promotion are
    # certain (as in tests/drift/test_drift_loop.py).
    batch = traffic.passengers(600, drifted=True, labelled=True, seed=5) + traffic.load_rows()
    predict_then_report(stack.gateway, batch, stack.secret("LIFEBOAT_FEEDBACK_TOKEN"))
    load = locust(stack, seconds=600)
    try:
        started = time.monotonic()
        retrain = stack.host(
            "-m", "drift", "retrain", "--force", "--no-build", "--quick", "--folds", "2",
            "--logs", str(stack.monitoring), "--min-rows", "100", timeout=900,
        )  # fmt: skip
        assert retrain.returncode == 0, retrain.stdout[-3000:] + retrain.stderr[-4000:]
        assert "PROMOTED" in retrain.stdout, retrain.stdout[-3000:]
        assert f"{len(batch)} joined from feedback" in retrain.stdout, retrain.stdout[-3000:]
        assert production(stack) == "2"
        promoted = time.monotonic()
        wait_for(
            lambda: set(replica_versions(stack).values()) == {"2"}, 60, what="every replica on v2"
        )
        stack.timings["promotion_to_all_replicas"] = time.monotonic() - promoted
        stack.timings["retrain"] = promoted - started
        # A rollback is moving the alias: no call to any replica, they follow on their own.
        client = MlflowClient(tracking_uri=stack.mlflow)
        for version in ("1", "2"):
            moved = time.monotonic()
            client.set_registered_model_alias("titanic", "production", version)
            wait_for(
                lambda v=version: set(replica_versions(stack).values()) == {v},
                60,
                interval=0.25,
                what=f"every replica following the alias to v{version}",
            )
            stack.timings[f"alias_to_v{version}_on_all_replicas"] = time.monotonic() - moved
        time.sleep(3)  # traffic after the switch too
    finally:
        load.terminate()
    code, output = finished(load, 60)
    assert failures(output) == 0, output[-3000:]


def test_the_stack_restarted_keeps_registry_artifacts_logs_and_serves_production(stack):
    files = sorted(p.name for p in stack.monitoring.rglob("data.*.log*"))
    services = [s for s in stack.compose("ps", "--services").stdout.split() if s != S3_STAND_IN]
    # moto keeps its objects in memory, so the S3 stand-in stays up; everything else goes.
    stack.compose("rm", "--stop", "--force", *services, timeout=300)
    started = time.monotonic()
    stack.compose("up", "-d", timeout=600)
    stack.wait_healthy("bento", REPLICAS)
    stack.wait_healthy("bento-gateway")
    stack.timings["restart_to_healthy"] = time.monotonic() - started
    assert production(stack) == "2"
    # The image still holds v1; the replicas serve the registry's production, v2.
    assert set(replica_versions(stack).values()) == {"2"}
    assert set(files) <= {p.name for p in stack.monitoring.rglob("data.*.log*")}
    smoke = subprocess.run(
        [
            sys.executable,
            str(ROOT / "docker" / "smoke.py"),
            "--bento-url",
            stack.gateway,
            "--mlflow-url",
            stack.mlflow,
            "--wait",
            "60",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={"LIFEBOAT_ADMIN_TOKEN": "", "PATH": "/usr/bin:/bin"},
    )
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    assert "5 passed, 0 failed" in smoke.stdout, smoke.stdout


def test_training_scales_out_to_the_spark_cluster(stack):
    master = "spark://spark-master:7077"
    stack.compose("up", "-d", "--wait", "spark-worker", profiles="spark", timeout=600)
    before = production(stack)
    started = time.monotonic()
    run = stack.compose(
        "run",
        "--rm",
        "trainer",
        profiles="spark",
        timeout=1800,
        env={"TRAINER_SPARK_MASTER": master},
        check=False,
    )
    stack.timings["trainer_on_cluster"] = time.monotonic() - started
    assert run.returncode == 0, (run.stdout + run.stderr)[-5000:]
    client = MlflowClient(tracking_uri=stack.mlflow)
    experiment = client.get_experiment_by_name("titanic")
    (parent,) = client.search_runs(
        [experiment.experiment_id], "params.spark_master = 'spark://spark-master:7077'"
    )
    assert parent.info.status == "FINISHED"
    families = client.search_runs(
        [experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert len(families) == 3
    # The same parity check as in local mode, now with the trees written by executors.
    assert all(f.data.metrics["parity_max_abs_diff"] <= 1e-6 for f in families)
    # And the same gate: a new version, promoted only if it beat production on held-out data.
    versions = client.search_model_versions("name='titanic'")
    assert max(int(v.version) for v in versions) == 3
    assert production(stack) in (before, "3")
    # The workers ran the executors: the master saw an application from the trainer.
    state = json.loads(
        subprocess.run(
            [
                "docker",
                "exec",
                stack.containers("spark-master")[0]["Id"],
                "python",
                "-c",
                "import urllib.request;print(urllib.request.urlopen('http://localhost:8080/json/').read().decode())",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    assert state["completedapps"] or state["activeapps"], state


def test_prometheus_scrapes_every_replica_and_the_drift_gauges_and_grafana_queries_exist(stack):
    stack.compose(
        "up", "-d", "--wait", "prometheus", "pushgateway", profiles="monitoring", timeout=300
    )
    prometheus = f"http://127.0.0.1:{stack.ports['PROMETHEUS_PORT']}"
    pushgateway = f"http://127.0.0.1:{stack.ports['PUSHGATEWAY_PORT']}"
    for _ in range(20):  # some predictions, so the request counters are there to scrape
        httpx.post(f"{stack.gateway}/predict_titanic", json=PASSENGER, timeout=10)
    report = stack.host(
        "-m",
        "drift",
        "report",
        "--logs",
        str(stack.monitoring),
        "--pushgateway",
        pushgateway,
        timeout=300,
    )
    assert report.returncode in (0, 42), report.stderr[-3000:]

    def query(expr: str) -> list[dict]:
        answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10)
        try:
            return answer.json()["data"]["result"]
        except ValueError as exc:
            raise ValueError(f"{answer.status_code} {answer.text[:300]!r}") from exc

    def targets() -> str:
        """Prometheus's logs and, if it answers, its view of each target, for a failure."""
        logs = stack.compose(
            "logs", "--tail", "40", "prometheus", profiles="monitoring", check=False
        ).stdout[-4000:]
        try:
            active = httpx.get(f"{prometheus}/api/v1/targets", timeout=10).json()["data"]
            seen = [
                (t["labels"].get("job"), t["labels"].get("instance"), t["health"], t["lastError"])
                for t in active["activeTargets"]
            ]
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            seen = [repr(exc)]
        return f"targets: {seen}\nreplicas: {stack.replica_urls()}\n{logs}"

    replicas = wait_for(
        lambda: (
            len({r["metric"]["instance"] for r in query("bentoml_service_request_total")})
            >= REPLICAS
        ),
        180,
        what="Prometheus scraping every replica",
        explain=targets,
    )
    assert replicas
    wait_for(lambda: query("lifeboat_drift_share"), 90, what="the pushed drift gauges")
    names = set(httpx.get(f"{prometheus}/api/v1/label/__name__/values", timeout=10).json()["data"])
    # Grafana cannot run here: every metric its dashboard queries must be one Prometheus returned.
    dashboard = json.loads(
        (ROOT / "docker" / "grafana" / "dashboards" / "lifeboat.json").read_text()
    )
    queried = {
        metric
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for metric in re.findall(r"\b(bentoml_[a-z_]+|lifeboat_[a-z_]+)", target["expr"])
    }
    assert queried and queried <= names, sorted(queried - names)


def test_the_airflow_profile_schedules_the_projects_commands_against_the_stack(stack):
    """Airflow in the stack: metadata in a second database of the stack's PostgreSQL, the DAGs
    mounted and parsed, the monitor DAG's report task running the project's drift report in the
    container against the replicas' logs and the MLflow server, and a training run's approval
    answered through Airflow's REST API: the approved version reaches every replica; `docker
    compose stop` stops Airflow cleanly."""
    stack.compose("up", "-d", "airflow", profiles="airflow", timeout=600)
    try:
        ui = f"http://127.0.0.1:{stack.ports['AIRFLOW_PORT']}"

        def healthy() -> bool:
            try:
                health = httpx.get(f"{ui}/api/v2/monitor/health", timeout=5).json()
            except (httpx.HTTPError, ValueError):
                return False
            parts = ("metadatabase", "scheduler", "dag_processor")
            return all(health.get(part, {}).get("status") == "healthy" for part in parts)

        wait_for(healthy, 300, interval=2, what="airflow standalone healthy")

        def inside(*command: str) -> subprocess.CompletedProcess[str]:
            return stack.compose("exec", "-T", "airflow", *command, profiles="airflow", timeout=600)

        def airflow(*args: str) -> subprocess.CompletedProcess[str]:
            return inside("airflow", *args)

        def parsed() -> set[str]:
            listed = airflow("dags", "list", "--output", "plain")
            return {line.split()[0] for line in listed.stdout.splitlines() if line.strip()}

        dags = {"lifeboat_train", "lifeboat_monitor", "lifeboat_batch_score"}
        wait_for(lambda: dags <= parsed(), 180, interval=5, what="the DAGs parsed")
        errors = airflow("dags", "list-import-errors", "--output", "plain")
        assert "lifeboat" not in errors.stdout, errors.stdout
        report = airflow("tasks", "test", "lifeboat_monitor", "report")
        said = report.stdout + report.stderr  # Airflow logs the returned verdict
        assert re.search(r"'exit_code': (0|42)", said), said[-4000:]
        approved_in_the_ui(stack, ui)

        # An orphan (its parent gone, as a task's Spark JVM can be) goes to PID 1, which reaps
        # it; `airflow standalone` as PID 1 left it a zombie. Only PID 1's zombies count: a
        # live parent waits for its own children when it gets to it (a CI run caught an exited
        # `airflow worker`, a child of Airflow's executor, before that wait).
        orphan = (
            "sh -c 'sleep 1 &'; sleep 3; ps -eo stat=,ppid=,pid=,args= | awk '$1 ~ /^Z/ && $2 == 1'"
        )
        zombies = inside("sh", "-c", orphan)
        assert zombies.stdout.strip() == "", inside("ps", "-eo", "stat,ppid,pid,args").stdout
        # `docker compose stop`: the image's launcher (PID 1) passes SIGTERM on as the one
        # SIGINT Airflow stops cleanly on; `airflow standalone` as PID 1 ignored it and was
        # killed at the end of the grace period (exit 137).
        stack.compose("stop", "airflow", profiles="airflow", timeout=300)
        (stopped,) = stack.containers("airflow", running=False)
        said = stack.compose("logs", "--no-color", "airflow", profiles="airflow").stdout
        assert stopped["State"]["ExitCode"] == 0, said[-3000:]
        assert "standalone | Complete" in said and "terminating the rest" not in said
    finally:
        stack.compose("rm", "--stop", "--force", "airflow", profiles="airflow", check=False)


def approved_in_the_ui(stack: Stack, ui: str) -> None:
    """Trigger lifeboat_train, wait for its approval and approve it as admin, logged in with the
    password in the container's log, through the API the UI's form uses."""
    # Production back to v1 first, as a rollback does: the challenger, which also learns the
    # held-out rows (--extra-data), beats it for certain; v2 had learned them too.
    MlflowClient(tracking_uri=stack.mlflow).set_registered_model_alias("titanic", "production", "1")
    wait_for(lambda: set(replica_versions(stack).values()) == {"1"}, 60, what="replicas on v1")

    def airflow_log() -> str:  # the password printed at the first start, the scheduler's lines
        return stack.compose("logs", "--no-color", "airflow", profiles="airflow").stdout

    api = AirflowAPI(ui, printed_password(airflow_log()))
    started = time.monotonic()
    conf = {"train_args": ["--quick", "--folds", "2", "--extra-data", "data/titanic.csv"]}
    run_id = api.trigger("lifeboat_train", conf)
    api.wait_task("lifeboat_train", run_id, "approve", "awaiting_input", timeout=1200)
    asked = api.hitl("lifeboat_train", run_id, "approve")
    wait_pause_seen(airflow_log, "lifeboat_train", run_id, "approve")
    answered = api.answer("lifeboat_train", run_id, "approve", "Approve")
    state = api.wait_run("lifeboat_train", run_id, timeout=600)
    stack.timings["airflow_train_approve_promote"] = time.monotonic() - started

    tasks = api.tasks("lifeboat_train", run_id)
    assert state == "success", (tasks, api.log("lifeboat_train", run_id, "approve")[-4000:])
    outcome = api.output("lifeboat_train", run_id, "train")
    new = outcome["version"]
    assert outcome["passed_gate"] is True and outcome["production_version"] == "1"
    assert asked["subject"] == f"Promote titanic v{new} to Production?"
    assert "build the Bento" not in asked["body"]  # the replicas follow the registry
    assert answered["responded_by"]["name"] == "admin"
    assert api.output("lifeboat_train", run_id, "conclude") == {
        "promoted": True,
        "verdict": f"v{new} approved by admin: promoted, imported and served",
    }
    assert production(stack) == new
    wait_for(
        lambda: set(replica_versions(stack).values()) == {new}, 60, what=f"every replica on v{new}"
    )
