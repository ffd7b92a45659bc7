"""The shared scratch directory a Spark cluster needs: refused early when it is missing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lifeboat.settings import Settings
from tests.harness import DATA, ROOT
from training.spark import ScratchError, is_local, require_scratch

CLUSTER = "spark://spark-master:7077"


def settings_for(master: str, scratch: str | Path = "") -> Settings:
    # Init values win over the environment and .env, so a developer's own settings don't leak in.
    return Settings(_env_file=None, SPARK_MASTER=master, LIFEBOAT_SPARK_SCRATCH=str(scratch))


LOCAL = ["local", "local[*]", "local[4]", "local[4,2]", "local[*,3]", "local-cluster[2,1,1024]"]


@pytest.mark.parametrize("master", LOCAL)
def test_local_masters_need_no_scratch(master):
    assert is_local(master)
    require_scratch(settings_for(master))


@pytest.mark.parametrize(
    "master", [CLUSTER, "spark://localhost:7077", "yarn", "k8s://https://k8s:443", "localhost"]
)
def test_a_cluster_without_scratch_is_refused_naming_the_setting(master):
    assert not is_local(master)
    with pytest.raises(ScratchError, match=r"set LIFEBOAT_SPARK_SCRATCH to a directory") as error:
        require_scratch(settings_for(master))
    assert master in str(error.value) and "\n" not in str(error.value)


def test_a_cluster_with_an_existing_scratch_directory_is_accepted(tmp_path):
    require_scratch(settings_for(CLUSTER, tmp_path))


@pytest.mark.parametrize("scratch", ["scratch", "/nonexistent/lifeboat-scratch"])
def test_a_scratch_that_is_not_an_absolute_directory_is_refused(scratch):
    with pytest.raises(ScratchError, match=f"LIFEBOAT_SPARK_SCRATCH={scratch} is not"):
        require_scratch(settings_for(CLUSTER, scratch))


@pytest.mark.parametrize("command", ["train", "score"])
def test_cli_exits_2_before_any_work(command, tmp_path):
    # A process of its own: nothing the command sets (MLflow's URI, settings) leaks into others.
    home = tmp_path / "home"
    env = {
        **os.environ,
        "SPARK_MASTER": CLUSTER,
        "LIFEBOAT_SPARK_SCRATCH": "",
        "LIFEBOAT_HOME": str(home),
    }
    args = ["train"] if command == "train" else ["score", str(DATA), str(tmp_path / "out.csv")]
    done = subprocess.run(
        [sys.executable, "-m", "training", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"error: SPARK_MASTER={CLUSTER} is a cluster, whose executors cannot see this machine's "
        "temporary files: set LIFEBOAT_SPARK_SCRATCH to a directory mounted at the same path "
        "here and on every Spark worker"
    ]
    # Nothing was started or written: no MLflow store, no quarantine, no output.
    assert not home.exists() and not (tmp_path / "out.csv").exists()
