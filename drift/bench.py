"""Benchmark ``python -m drift report`` on 100,000 logged predictions: wall time and peak RSS.

``python -m drift.bench`` builds a throwaway world in a temporary folder (a BentoML store with a
``titanic`` model whose reference is data/titanic.csv, an embedded MLflow store whose database
exists, as it does wherever a model was trained, and monitor logs of four workers with a rotated
file, 30% drifted traffic, outcomes of 20% of the rows in the feedback stream and some broken
lines), runs the real command in a child process ``repeats`` times, and writes the figures to
``reports/bench/drift.json``. Peak RSS is the child's own ``ru_maxrss`` from ``wait4``; the
verdict uses the slowest run.
"""

from __future__ import annotations

import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import typer

from drift.traffic import DATA, TrafficSampler, feedback_line, log_line
from lifeboat import exits

TIME_LIMIT_S, RSS_LIMIT_MB = 30.0, 1024.0
app = typer.Typer(add_completion=False)


def make_store(home: Path) -> None:
    """A ``titanic`` model for registry version 1, as the store import leaves one (the served
    files and the registry's identity), with data/titanic.csv as its reference; and the
    embedded MLflow database."""
    uri = f"sqlite:///{home / 'mlflow.db'}"
    # A child: BENTOML_HOME must be set before bentoml is imported.
    script = "import sys; from drift.bench import store_model; store_model(sys.argv[1])"
    subprocess.run([sys.executable, "-c", script, uri], env=_env(home), check=True)
    # The MLflow database, as training leaves it (creating it costs seconds, once per store).
    tables = "import sys, mlflow; mlflow.MlflowClient(sys.argv[1]).search_experiments()"
    subprocess.run([sys.executable, "-c", tables, uri], env=_env(home), check=True)


def store_model(tracking_uri: str) -> None:
    """Put version 1 into the BentoML store of ``BENTOML_HOME``. The report reads its reference
    and metadata only, never its graph: ``model.onnx`` holds a line that says so."""
    import bentoml
    import pandas as pd

    from lifeboat.artifact import BENTO_MODEL, ModelMetadata, write_model_folder
    from lifeboat.passenger import FEATURES, LABEL
    from training.data import file_sha256

    metadata = ModelMetadata(
        run_id="drift-bench",
        dataset_sha256=file_sha256(DATA),
        heldout_auc=0.86,
        heldout_accuracy=0.80,
        trained_at=datetime.now().astimezone().isoformat(timespec="seconds"),
    ).imported("1", BENTO_MODEL, "production", tracking_uri)
    reference = pd.read_csv(DATA)[[*FEATURES, LABEL]]
    with bentoml.models.create(BENTO_MODEL, labels={"registry_version": "1"}) as model:
        graph = b"drift.bench: the drift report never loads the model\n"
        write_model_folder(Path(model.path), graph, metadata, reference)


def make_logs(folder: Path, rows: int, bad_lines: int = 100, seed: int = 0) -> int:
    """Write ``rows`` records over four workers (worker 0 rotated once); returns bytes written."""
    rng = random.Random(seed)
    plain = TrafficSampler(labelled=True, seed=seed)
    drifted = TrafficSampler(drifted=True, labelled=True, seed=seed + 1)
    data, labels = folder / "titanic" / "data", folder / "titanic_feedback" / "data"
    data.mkdir(parents=True)
    labels.mkdir(parents=True)
    start = datetime.now() - timedelta(days=1)
    names = ["data.0.log." + start.strftime("%Y-%m-%d"), *(f"data.{w}.log" for w in range(4))]
    files = [(data / name).open("w") for name in names]
    feedback = (labels / "data.0.log").open("w")
    try:
        for i in range(rows):
            passenger = (drifted if rng.random() < 0.3 else plain)()
            label = passenger.pop("Survived")
            when = start + timedelta(seconds=i * 86_400 / rows)
            line = log_line(passenger, rng.random(), "1", when, i)
            files[i % len(files)].write(line + "\n")
            if rng.random() < 0.2:  # outcomes reported later through POST /feedback
                feedback.write(feedback_line(i, label, when + timedelta(minutes=5)) + "\n")
        for i in range(bad_lines):
            files[i % len(files)].write('{"Pclass": 3, "Sex": "ma\n' if i % 2 else "garbage\n")
    finally:
        for fh in [*files, feedback]:
            fh.close()
    return sum(p.stat().st_size for d in (data, labels) for p in d.iterdir())


def _env(home: Path) -> dict[str, str]:
    root = str(Path(__file__).resolve().parent.parent)
    return {
        **os.environ,
        "LIFEBOAT_HOME": str(home),
        "BENTOML_HOME": str(home / "bentoml"),
        "MLFLOW_TRACKING_URI": "",
        "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
    }


def run_report(home: Path, logs: Path) -> dict[str, float | int]:
    """One ``python -m drift report`` in a child process: wall seconds, peak RSS, exit status."""
    errors = home / "report.stderr"
    started = time.perf_counter()
    with errors.open("w") as stderr:
        child = subprocess.Popen(
            [sys.executable, "-m", "drift", "report", "--logs", str(logs)],
            env=_env(home),
            cwd=home,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)  # so Popen does not wait again
    if child.returncode not in (exits.OK, exits.DRIFT):  # a failed report measures nothing
        raise RuntimeError(f"drift report exited {child.returncode}:\n{errors.read_text()[-3000:]}")
    return {
        "wall_seconds": round(time.perf_counter() - started, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # Linux reports KiB
        "exit_code": child.returncode,
    }


@app.command()
def main(
    rows: int = typer.Option(100_000, min=1000, help="Logged predictions to generate."),
    repeats: int = typer.Option(3, min=1, help="Timed runs of the report."),
    out: Path = typer.Option(None, help="Default: <LIFEBOAT_HOME>/reports/bench/drift.json."),
) -> None:
    """Generate the logs, time the report, write the figures as JSON."""
    from drift.config import get_drift_settings

    out = out or get_drift_settings().reports_dir / "bench" / "drift.json"
    with tempfile.TemporaryDirectory(prefix="drift-bench-") as tmp:
        home = Path(tmp)
        make_store(home)
        size = make_logs(home / "monitoring", rows)
        runs = [run_report(home, home / "monitoring") for _ in range(repeats)]
        summary = json.loads(next((home / "reports" / "drift").glob("*/summary.json")).read_text())
    worst_time = max(r["wall_seconds"] for r in runs)
    worst_rss = max(r["peak_rss_mb"] for r in runs)
    result = {
        "measured_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "rows": rows,
        "log_megabytes": round(size / 2**20, 1),
        "runs": runs,
        "worst": {"wall_seconds": worst_time, "peak_rss_mb": worst_rss},
        "limits": {"wall_seconds": TIME_LIMIT_S, "peak_rss_mb": RSS_LIMIT_MB},
        "within_limits": worst_time <= TIME_LIMIT_S and worst_rss <= RSS_LIMIT_MB,
        "report": {k: summary[k] for k in ("drift_detected", "drifted_features", "rows")}
        | {"unreadable_lines": summary["logs"]["unreadable_lines"]},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "load_average": os.getloadavg()},
    }  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    typer.echo(json.dumps(runs))
    typer.echo(f"{'within' if result['within_limits'] else 'OVER'} limits; written to {out}")


if __name__ == "__main__":
    app()
