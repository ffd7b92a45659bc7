"""Training's Spark file traffic on a real standalone cluster whose worker has a /tmp of its own.

A master and a worker are started with pyspark's ``spark-class``; the worker runs in a mount
namespace with a private tmpfs on /tmp, as a worker in another container would, so its
executors never see the driver's temporary files. Only the scratch directory (under /var/tmp)
is shared, as ``LIFEBOAT_SPARK_SCRATCH`` is in the compose stack. The driver runs
``spark_cluster_job.py`` in a process of its own (the test session holds a local session).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.harness import DATA, ROOT, ProcessGroup, free_port
from training.pipeline import PARITY_TOLERANCE

pytestmark = [pytest.mark.spark, pytest.mark.integration]

JOB = Path(__file__).with_name("spark_cluster_job.py")
READY_SECONDS = 60
JOB_SECONDS = 300
# Run a command with a private tmpfs on /tmp; as root, or else in a user namespace of its own.
PRIVATE_TMP = ("sh", "-c", 'mount -t tmpfs tmpfs /tmp && exec "$0" "$@"')
UNSHARE = (
    ("unshare", "--mount", "--propagation", "private"),
    ("unshare", "--user", "--map-root-user", "--mount", "--propagation", "private"),
)


@dataclass(frozen=True)
class Cluster:
    """A running master and worker, and the folder that holds their logs and the scratch."""

    url: str
    base: Path

    @property
    def scratch(self) -> Path:
        return self.base / "scratch"

    def logs(self, chars: int = 3000) -> str:
        """The tails of the master's, the worker's and every executor's log."""
        files = [self.base / "master.log", self.base / "worker.log"]
        files += sorted((self.base / "work").glob("*/*/stderr"))
        return "\n".join(
            f"--- {f.relative_to(self.base)}\n{f.read_text(errors='replace')[-chars:]}"
            for f in files
            if f.exists()
        )


def spark_class() -> str:
    from pyspark.find_spark_home import _find_spark_home

    return str(Path(_find_spark_home()) / "bin" / "spark-class")


def private_tmp_prefix() -> tuple[str, ...]:
    """The first ``unshare`` that may mount a tmpfs on /tmp here; skips the module if none."""
    for unshare in UNSHARE:
        try:
            probe = subprocess.run([*unshare, *PRIVATE_TMP, "true"], capture_output=True)
        except OSError:  # no unshare at all
            break
        if probe.returncode == 0:
            return (*unshare, *PRIVATE_TMP)
    pytest.skip("cannot give the Spark worker a /tmp of its own (unshare --mount refused)")


def start(argv: list[str], log: Path) -> ProcessGroup:
    """``argv`` in its own group: the executors and Python workers stop with it."""
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}
    return ProcessGroup(log.stem, argv, env, log, cwd=ROOT).start()


def wait_for_worker(cluster: Cluster, ui: str, processes: list[ProcessGroup]) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if any(p.process is None or p.process.poll() is not None for p in processes):
            pytest.fail(f"the Spark master or worker exited:\n{cluster.logs()}")
        with contextlib.suppress(httpx.HTTPError, ValueError):
            if httpx.get(f"{ui}/json/", timeout=2).json().get("aliveworkers", 0) >= 1:
                return
        time.sleep(0.5)
    pytest.fail(f"no Spark worker registered after {READY_SECONDS} s:\n{cluster.logs()}")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A standalone master and one worker (1 core, 1 GB) on 127.0.0.1; always stopped."""
    isolate = private_tmp_prefix()
    # Not under /tmp, which the worker does not share: only this folder is common ground.
    base = Path(tempfile.mkdtemp(prefix="lifeboat-cluster-", dir="/var/tmp"))
    (base / "scratch").mkdir()
    port, master_ui, worker_ui = free_port(), free_port(), free_port()
    cluster = Cluster(f"spark://127.0.0.1:{port}", base)
    master_argv = ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1"]
    master_argv += ["--port", str(port), "--webui-port", str(master_ui)]
    worker_argv = ["org.apache.spark.deploy.worker.Worker", cluster.url, "--cores", "1"]
    worker_argv += ["--memory", "1g", "--webui-port", str(worker_ui)]
    worker_argv += ["--work-dir", str(base / "work")]
    processes: list[ProcessGroup] = []
    try:
        processes.append(start([spark_class(), *master_argv], base / "master.log"))
        processes.append(start([*isolate, spark_class(), *worker_argv], base / "worker.log"))
        wait_for_worker(cluster, f"http://127.0.0.1:{master_ui}", processes)
        yield cluster
    finally:
        for process in reversed(processes):
            process.stop(grace=15)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def job(cluster: Cluster) -> dict:
    """What ``spark_cluster_job.py`` found, driving the cluster with the shared scratch."""
    env = {
        **os.environ,
        "SPARK_MASTER": cluster.url,
        "LIFEBOAT_SPARK_SCRATCH": str(cluster.scratch),
        "LIFEBOAT_HOME": str(cluster.base / "home"),
        "MLFLOW_TRACKING_URI": "",
        "SPARK_DRIVER_MEMORY": "1g",
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    done = subprocess.run(
        [sys.executable, str(JOB), str(DATA)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=JOB_SECONDS,
    )
    assert done.returncode == 0, f"{done.stderr[-6000:]}\n{cluster.logs()}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_executors_see_the_scratch_but_not_the_drivers_tmp(job):
    # Without this the other tests would pass on a cluster that shares everything.
    assert job["master"].startswith("spark://127.0.0.1:")
    assert job["executors_see_driver_tmp"] is False
    assert job["executors_see_scratch"] is True


def test_a_save_to_the_drivers_tmp_is_refused_with_the_setting_to_fix(job):
    assert "LIFEBOAT_SPARK_SCRATCH must be mounted at the same path" in job["driver_tmp_save"]


def test_forest_fitted_on_the_cluster_exports_to_onnx_with_parity(job):
    assert job["trees"] == 10
    assert job["parity_rows"] == 1309 + 9  # the data and the edge passengers
    assert 0 <= job["parity"] <= PARITY_TOLERANCE


def test_logged_spark_pipeline_holds_every_stage_file(job):
    stages = job["logged_stages"]
    assert job["logged_metadata_parts"] == 1
    assert [name.split("_")[1] for name in stages] == [
        "Imputer",
        "StringIndexer",
        "OneHotEncoder",
        "VectorAssembler",
        "RandomForestClassifier",
    ]
    for name, parts in stages.items():
        assert parts["metadata"] == 1, name
        if "VectorAssembler" not in name:  # the one stage without fitted data
            assert parts["data"] >= 1, name
    forest = next(parts for name, parts in stages.items() if "RandomForest" in name)
    assert forest["treesMetadata"] >= 1


def test_batch_scoring_loads_the_logged_pipeline_and_writes_every_row(job):
    assert job["scored_rows"] == [1309, 1309]
    assert job["scored_vs_onnx"] <= PARITY_TOLERANCE


def test_shared_folders_are_removed(job):
    assert job["scratch_left"] == []
