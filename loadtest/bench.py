"""``make bench``: service.py's /predict_titanic side by side with a constant endpoint, with
itself without adaptive batching, with itself scoring a shadow model too, and with MLflow's own
server of the Spark model; then the batch route in rows/s.

Every server listens on 127.0.0.1, started and stopped here. The BentoML ones run side by side
and take turns at each concurrency level; MLflow's runs after them, alone. Every level is a
headless Locust run of ``--duration`` seconds whose users never wait. Per level: req/s (rows/s
on the batch route), p50/p95/p99, failures, the mean adaptive batch size from ``/metrics``, and
the cores used by the server, by Locust and by everything else meanwhile (Locust near one core:
the load generator was the limit; other work: the numbers shared the machine). Per server: time
from launch to ready, worker count, resident memory of the largest worker with its children
(Spark's JVM, for MLflow). Writes ``results.json``, ``results.md`` and ``results.png``.

    python -m loadtest.bench --help
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psutil
import typer

from lifeboat.artifact import BENTO_MODEL, METADATA_FILE, ModelMetadata
from lifeboat.passenger import EXAMPLE
from lifeboat.routes import BATCH_ROUTE, PREDICT_ROUTE, READY_ROUTE
from lifeboat.serving.store import open_store
from lifeboat.settings import PROJECT_ROOT, Settings, get_settings
from loadtest.passengers import spark_record
from loadtest.report import Level, Measured, checks, markdown, plot
from loadtest.servers import (
    Server,
    Target,
    batch_histogram,
    is_bento_worker,
    post_json,
    private_home,
    runs_a_jvm,
)

log = logging.getLogger("lifeboat.bench")
BIN = Path(sys.executable).parent
BENCH_EXPERIMENT = "titanic-bench"
# What the Spark-flavour model needs to load, pinned to this environment's versions.
SPARK_PACKAGES = ("pyspark", "mlflow")

app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0])


def bento(name: str, label: str, service: str) -> Target:
    command = (str(BIN / "bentoml"), "serve", service, "--host", "127.0.0.1", "--port", "{port}")
    return Target(name, label, command, READY_ROUTE, is_bento_worker)


SHIPPED = bento("predict_titanic", "/predict_titanic (service.py)", "service:TitanicSurvival")
CONSTANT = bento("constant", "constant endpoint", "loadtest.constant_service:ConstantTitanic")
UNBATCHED = bento(
    "unbatched", "/predict_titanic, batching off", "loadtest.unbatched_service:TitanicSurvival"
)
SHADOWED = replace(SHIPPED, name="shadowed", label="/predict_titanic, a shadow loaded")


def mlflow_target(model_uri: str, workers: int) -> Target:
    command = (str(BIN / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local")
    return Target(
        "mlflow",
        "mlflow models serve (Spark)",
        (*command, "-h", "127.0.0.1", "-p", "{port}", "-w", str(workers)),
        "/ping",
        runs_a_jvm,
        locustfile="loadtest/mlflow_locustfile.py",
        ready_timeout=300.0,
    )


# ------------------------------------------------------------------------------- load


def run_locust(server: Server, users: int, duration: int, out: Path) -> Level:
    """One headless Locust run against ``server``; its CSVs stay in ``out``. Also measures the
    cores the server, Locust and everything else used meanwhile."""
    target = server.target
    prefix = out / f"{target.name}-{users}"
    command = [
        str(BIN / "locust"),
        *("-f", target.locustfile, "--headless", "--host", server.url, "--tags", target.tags),
        *("--users", str(users), "--spawn-rate", str(users), "--run-time", f"{duration}s"),
        *("--think-time", "0", "--batch-size", str(target.rows)),
        *("--reset-stats", "--only-summary"),
        *("--csv", str(prefix), "--exit-code-on-error", "0", "--loglevel", "WARNING"),
    ]
    histogram = target.is_worker is is_bento_worker
    before = batch_histogram(server.url) if histogram else (0.0, 0.0)
    load_avg = os.getloadavg()[0]
    machine, served = _busy_seconds(), server.cpu_seconds()
    started = time.monotonic()
    with (out / f"{prefix.name}.log").open("w") as log_file:
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=log_file, stderr=log_file)
        watched, locust_seconds = psutil.Process(process.pid), 0.0
        # the last reading before it exits: psutil cannot read a finished process
        while process.poll() is None and time.monotonic() - started < duration + 90:
            with contextlib.suppress(psutil.Error):
                locust_seconds = sum(watched.cpu_times()[:2])
            time.sleep(0.25)
        if process.poll() is None:
            process.kill()
        process.wait()
    elapsed = time.monotonic() - started
    machine, served = _busy_seconds() - machine, server.cpu_seconds() - served
    after = batch_histogram(server.url) if histogram else (0.0, 0.0)
    batches = after[1] - before[1]
    stats = _aggregated(Path(f"{prefix}_stats.csv"))
    rps = float(stats["Requests/s"])
    return Level(
        users=users,
        requests=int(stats["Request Count"]),
        failures=int(stats["Failure Count"]),
        rps=rps,
        rows_per_s=rps * target.rows,
        p50_ms=_ms(stats["50%"]),
        p95_ms=_ms(stats["95%"]),
        p99_ms=_ms(stats["99%"]),
        mean_batch_size=(after[0] - before[0]) / batches if batches else None,
        server_cpu=served / elapsed,
        loadgen_cpu=locust_seconds / elapsed,
        other_cpu=max(0.0, machine - served - locust_seconds) / elapsed,
        load_avg=load_avg,
        failure_messages=_failure_messages(Path(f"{prefix}_failures.csv")),
    )


def _busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def _ms(percentile: str) -> float | None:
    return None if percentile == "N/A" else float(percentile)  # N/A: nothing completed


def _aggregated(stats_csv: Path) -> dict[str, str]:
    with stats_csv.open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["Name"] == "Aggregated":
                return row
    raise RuntimeError(f"no Aggregated row in {stats_csv}")


def _failure_messages(failures_csv: Path) -> list[str]:
    if not failures_csv.exists():
        return []
    with failures_csv.open(newline="") as fh:
        return [f"{row['Occurrences']}× {row['Error']}"[:160] for row in csv.DictReader(fh)]


def side_by_side(
    targets: list[Target],
    env_for: Callable[[Target], dict[str, str]],
    users: list[int],
    duration: int,
    out: Path,
) -> dict[str, Measured]:
    """Start the targets one at a time (each timed to ready alone), then at each concurrency
    level load each in turn, so that a change in the machine's other work meanwhile touches
    all of them alike. Idle servers wait their turn; every one is stopped at the end."""
    with contextlib.ExitStack() as stack:
        servers: dict[str, tuple[Server, float]] = {}
        for target in targets:
            log_file = out / f"{target.name}.server.log"
            server = stack.enter_context(Server(target, env_for(target), log_file))
            startup = server.wait_ready()
            log.info("%s ready in %.1f s on %s", target.name, startup, server.url)
            warm_up(server)
            servers[target.name] = (server, startup)
        levels: dict[str, list[Level]] = {name: [] for name in servers}
        for count in users:
            for name, (server, _) in servers.items():
                level = run_locust(server, count, duration, out)
                log.info(
                    "%-15s %3d users: %8.1f rows/s, p99 %s ms, %d failures; "
                    "CPU server %.2f, locust %.2f, other %.2f",
                    name,
                    count,
                    level.rows_per_s,
                    level.p99_ms,
                    level.failures,
                    level.server_cpu,
                    level.loadgen_cpu,
                    level.other_cpu,
                )
                levels[name].append(level)
        return {
            name: Measured(
                server.target.label,
                startup,
                len(server.workers()),
                max(server.worker_rss_mb(), default=0.0),
                levels[name],
                server.target.rows,
            )
            for name, (server, startup) in servers.items()
        }


def warm_up(server: Server) -> None:
    """A few requests of the kind the level will send, so the first level is not the JIT's."""
    target, url = server.target, server.url
    if target.is_worker is runs_a_jvm:
        for _ in range(5):
            post_json(url + "/invocations", {"dataframe_records": [spark_record(EXAMPLE)]})
    elif target.tags == "batch":
        for _ in range(3):
            post_json(url + BATCH_ROUTE, [EXAMPLE] * target.rows)
    else:
        for _ in range(50):
            post_json(url + PREDICT_ROUTE, EXAMPLE)


# ------------------------------------------------------------------------------ setup


def ensure_bento_model(settings: Settings) -> Any:
    """The registry's production model in the BentoML store (imported once per version)."""
    from lifeboat.serving.store import import_production

    model, _ = import_production(
        settings.tracking_uri, settings.model_name, settings.production_alias
    )
    return model


def shadowed_home(home: Path, production: Any, settings: Settings) -> str:
    """A BentoML home of its own holding Production and a shadow beside it; says which shadow.

    The shadow is the registry's challenger when one is set, else a copy of Production's own
    graph under another version: scoring costs the same, and the bench measures cost.
    """
    from lifeboat.serving.store import SHADOW_BENTO_MODEL, NoProductionModel, import_production

    models = home / "models"
    shutil.copytree(Path(production.path), models / BENTO_MODEL / production.tag.version)
    (models / BENTO_MODEL / "latest").write_text(production.tag.version)
    try:
        shadow, _ = import_production(
            settings.tracking_uri,
            settings.model_name,
            settings.challenger_alias,
            SHADOW_BENTO_MODEL,
            store=open_store(home),
        )
    except NoProductionModel:
        pass
    else:
        version = shadow.info.labels["registry_version"]
        if version != production.info.labels.get("registry_version"):
            return f"{shadow.tag} (registry challenger v{version})"
        open_store(home).delete(shadow.tag)
    copy = models / SHADOW_BENTO_MODEL / production.tag.version
    shutil.copytree(Path(production.path), copy)
    metadata = ModelMetadata.from_folder(copy)
    metadata.model_copy(update={"version": f"{metadata.version}-copy"}).to_file(
        copy / METADATA_FILE
    )
    (copy.parent / "latest").write_text(production.tag.version)
    return f"{SHADOW_BENTO_MODEL}:{production.tag.version} (a copy of Production's graph)"


def log_spark_model(settings: Settings) -> str:
    """Log the production version's Spark pipeline as an MLflow ``spark`` flavour model.

    Logged once per registry version in the ``titanic-bench`` experiment; the registry is not
    touched. Returns the model's URI.
    """
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature

    from training.batch import download_spark_pipeline, production_uri
    from training.registry import configure, production_version
    from training.spark import get_spark, shared_folder

    client = configure(settings, BENCH_EXPERIMENT)
    production = production_version(client, settings.model_name, settings.production_alias)
    if production is None:
        raise typer.BadParameter("no production model: run `make train` first")
    tags = {"registry_version": str(production.version), "source_run": production.run_id}
    logged = mlflow.search_runs(
        experiment_names=[BENCH_EXPERIMENT],
        filter_string=" and ".join(f"tags.{k} = '{v}'" for k, v in tags.items()),
        output_format="list",
    )
    if logged:
        return f"runs:/{logged[0].info.run_id}/spark_model"
    # The signature makes MLflow cast JSON numbers (and nulls) to doubles, as Spark ML reads them.
    signature = infer_signature(pd.DataFrame([spark_record(EXAMPLE)]))
    spark = get_spark("lifeboat-bench")
    try:
        # Spark's executors read the pipeline and write MLflow's copy of it (dfs_tmpdir, by
        # default /tmp/mlflow on the driver's disk only): both in a folder the driver shares.
        with shared_folder("bench-") as tmp:
            pipeline = download_spark_pipeline(production_uri(settings), tmp)
            run_name = f"spark-flavour-v{production.version}"
            with mlflow.start_run(run_name=run_name, tags=tags) as run:
                mlflow.spark.log_model(
                    pipeline,
                    "spark_model",
                    dfs_tmpdir=str(tmp / "dfs"),
                    signature=signature,
                    pip_requirements=[f"{name}=={version(name)}" for name in SPARK_PACKAGES],
                )
    finally:
        spark.stop()
    return f"runs:/{run.info.run_id}/spark_model"


def server_env(work: Path) -> dict[str, str]:
    """The servers' environment: this one's, minus the API token and monitoring/."""
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # mlflow runs `uvicorn` from PATH
    env["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    env["BENTOML_DO_NOT_TRACK"] = "true"
    env["LIFEBOAT_API_TOKEN"] = ""  # empty means unset: the bench sends no token
    # The records of a few hundred thousand bench requests stay out of monitoring/.
    env["LIFEBOAT_MONITORING_DIR"] = str(work / "monitoring")
    return env


# -------------------------------------------------------------------------------- cli


def run_meta(**fields: Any) -> dict[str, Any]:
    """What a benchmark's results file says about its run: when, on how many CPUs, under what
    load (a warning when other work is running: it lowers every number measured), and
    ``fields``."""
    if (busy := os.getloadavg()[0]) > (os.cpu_count() or 1) / 2:
        log.warning("load average %.1f: other work will lower every number measured", busy)
    return {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "load_avg_before": busy,
        **fields,
    }


@app.command()
def bench(
    users: list[int] = typer.Option([1, 8, 32, 64], "--users", help="Concurrency levels."),
    duration: int = typer.Option(20, min=3, max=120, help="Seconds per level."),
    batch_size: int = typer.Option(1000, min=1, max=1000, help="Passengers per batch request."),
    out: Path = typer.Option(None, help="Report folder. Default: reports/bench."),
    with_mlflow: bool = typer.Option(
        True, "--mlflow/--no-mlflow", help="Include mlflow models serve (needs Java; minutes)."
    ),
) -> None:
    """Benchmark the serving paths side by side on 127.0.0.1."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    settings = get_settings()
    out = out or settings.reports_dir / "bench"
    raw = out / "locust"
    raw.mkdir(parents=True, exist_ok=True)
    meta = run_meta(
        duration_s=duration,
        batch_size=batch_size,
        python=platform.python_version(),
        versions={p: version(p) for p in ("bentoml", "locust", "mlflow", "pyspark")},
    )
    model = ensure_bento_model(settings)
    meta["model"], models = str(model.tag), Path(model.path).parents[1]
    with tempfile.TemporaryDirectory(prefix="lifeboat-bench-") as tmp:
        work = Path(tmp)
        env = server_env(work)

        def env_for(target: Target) -> dict[str, str]:
            if target.is_worker is runs_a_jvm:  # mlflow models serve resolves a runs:/ URI
                return env | {"MLFLOW_TRACKING_URI": settings.tracking_uri}
            if target.name == SHADOWED.name:  # the store's Production and titanic_shadow
                meta["shadow"] = shadowed_home(work / target.name, model, settings)
                return env | {"BENTOML_HOME": str(work / target.name), "MLFLOW_TRACKING_URI": ""}
            home = private_home(work / target.name, models)
            return env | {"BENTOML_HOME": str(home), "LIFEBOAT_SHADOW_SCORING": "false"}

        batch = replace(
            SHIPPED,
            name="batch",
            label=f"/predict_titanic_batch ×{batch_size}",
            tags="batch",
            rows=batch_size,
        )
        bentos = [CONSTANT, SHIPPED, SHADOWED, UNBATCHED, batch]
        results = side_by_side(bentos, env_for, users, duration, raw)
        if with_mlflow:  # alone: its JVMs would weigh on the others
            # as many workers as service.py runs here; each starts a JVM of its own
            workers = results["predict_titanic"].workers
            target = mlflow_target(log_spark_model(settings), workers)
            results |= side_by_side([target], env_for, users, duration, raw)
    found = checks(results)
    report = {
        "meta": meta,
        "results": {name: asdict(run) for name, run in results.items()},
        "targets": [asdict(check) for check in found],
    }
    (out / "results.json").write_text(json.dumps(report, indent=2))
    table = markdown(results, found, meta)
    (out / "results.md").write_text(table)
    plot(results, out / "results.png")
    typer.echo(table)
    typer.echo(f"written: {out / 'results.json'}, {out / 'results.md'}, {out / 'results.png'}")


if __name__ == "__main__":
    app()
