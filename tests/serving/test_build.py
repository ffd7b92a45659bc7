"""``bentoml build`` makes a small Bento (no Spark, no training code) that serves on its own."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from service import TitanicSurvival
from tests.harness import BENTOML, ROOT, server_env, serving, store_with

pytestmark = [pytest.mark.spark, pytest.mark.integration]

NOT_IN_THE_BENTO = {"pyspark", "scikit-learn", "mlflow", "evidently", "pandas", "locust"}


def requirement_names(text: str) -> set[str]:
    lines = (line.strip() for line in text.splitlines())
    return {
        line.split("==")[0].split("[")[0].lower()
        for line in lines
        if line and not line.startswith(("#", "-"))
    }


def pins(text: str) -> set[tuple[str, str]]:
    return set(re.findall(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)", text, re.M))


def test_bento_builds_small_and_serves(serving_home, tmp_path):
    # A store of its own with only the imported production model: what `make build` would see.
    home = store_with(serving_home.model_path, tmp_path / "bentoml")
    env = server_env(
        BENTOML_HOME=str(home),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    built = subprocess.run(
        [BENTOML, "build", "--output", "tag"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    tag = built.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    name, version = tag.split(":")
    assert name == "titanic_survival"
    bento = home / "bentos" / name / version

    # The image `bentoml containerize` builds: the stack's pinned base plus wheels, without the
    # compilers and git BentoML installs by default (633 MB of the image; service.py, image=).
    dockerfile = (bento / "env" / "docker" / "Dockerfile").read_text()
    assert re.search(rf"^FROM {re.escape(TitanicSurvival.image.base_image)}\b", dockerfile, re.M)
    assert not re.findall(r"apt-get|build-essential|\bgit\b|\bgcc\b", dockerfile), dockerfile
    requirements = (bento / "env" / "python" / "requirements.txt").read_text()
    packages = requirement_names(requirements)
    # The project's own resolution: uv.lock's export, as is (BentoML repeats its own pin).
    assert pins(requirements) == pins((ROOT / "requirements" / "bento.txt").read_text())
    assert {"bentoml", "onnxruntime", "mlflow-skinny", "pydantic-settings"} <= packages
    assert not NOT_IN_THE_BENTO & packages
    sources = {p.relative_to(bento / "src").parts[0] for p in (bento / "src").rglob("*.py")}
    assert sources == {"service.py", "lifeboat"}
    manifest = (bento / "bento.yaml").read_text()
    assert serving_home.model_tag in manifest
    assert "workers: cpu_count" in manifest  # the shipped default: one worker per core

    # Served from elsewhere, so the Bento's own copy of service.py and lifeboat/ is what runs.
    env["BENTOML_CONFIG_OPTIONS"] = "services.TitanicSurvival.workers=1"
    env["LIFEBOAT_MONITORING_DIR"] = str(tmp_path / "monitoring")
    env["MLFLOW_TRACKING_URI"] = ""
    with serving(f"{name}:latest", env, tmp_path, tmp_path / "serve.log") as server:
        assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
        assert len(server.worker_pids()) == 1  # BENTOML_CONFIG_OPTIONS overrides the default
        health = httpx.get(f"{server.url}/health", timeout=10).json()
        assert health["model_tag"] == serving_home.model_tag
