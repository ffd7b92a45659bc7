"""Headless Locust runs as ``make loadtest`` does them: against the real service, and against a
stand-in whose wrong or slow answers must fail the run."""

from __future__ import annotations

import ast
import csv
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness import ROOT, SERVED_FEEDBACK_TOKEN
from tests.loadtest.conftest import STAND_IN_TOKEN

pytestmark = pytest.mark.integration


@dataclass
class Run:
    returncode: int
    stats: dict[str, dict[str, str]]  # Locust's stats CSV by request name
    failures: dict[str, int]  # failure message: occurrences
    output: str


def locust(host: str, out: Path, *options: str, seconds: int = 4) -> Run:
    """A short headless run of loadtest/locustfile.py, every answer checked."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIFEBOAT_", "LOCUST_"))}
    command = [
        *(sys.executable, "-m", "locust", "-f", "loadtest/locustfile.py", "--headless"),
        *("--host", host, "--users", "4", "--spawn-rate", "4", "--run-time", f"{seconds}s"),
        *("--think-time", "0.02", "--csv", str(out / "run"), "--exit-code-on-error", "1"),
        *options,
    ]
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=seconds + 60
    )
    with (out / "run_stats.csv").open(newline="") as fh:
        stats = {row["Name"]: row for row in csv.DictReader(fh)}
    with (out / "run_failures.csv").open(newline="") as fh:
        failures = {_message(row["Error"]): int(row["Occurrences"]) for row in csv.DictReader(fh)}
    return Run(done.returncode, stats, failures, done.stdout + done.stderr)


def _message(error: str) -> str:
    # Locust writes a failure given as text as the repr of the exception it wraps it in.
    prefix = "CatchResponseError("
    return ast.literal_eval(error[len(prefix) : -1]) if error.startswith(prefix) else error


@pytest.mark.spark
def test_the_service_answers_every_kind_of_request_correctly(served, tmp_path):
    run = locust(
        served, tmp_path, "--drift-share", "0.3", "--batch-size", "20", "--max-p99-ms", "5000"
    )
    assert run.returncode == 0, run.output
    assert run.failures == {}
    for name in ("/predict_titanic", "/predict_titanic (drifted)", "/predict_titanic_batch"):
        assert int(run.stats[name]["Request Count"]) > 0, name
    assert int(run.stats["Aggregated"]["Request Count"]) >= 50


@pytest.mark.spark
def test_labelled_drifted_load_is_what_the_drift_report_flags(served, tmp_path, session_home):
    """`make loadtest DRIFT_SHARE=1 LABELLED=1` then `make drift-report`: the demo of drift."""
    import json
    import time
    from datetime import datetime

    from typer.testing import CliRunner

    from drift.__main__ import app

    # The window starts after the last request of the tests before (a whole second: --since
    # reads seconds), so it holds this run's records only.
    time.sleep(1.5)
    since = datetime.now().isoformat(timespec="seconds")
    run = locust(served, tmp_path, "--drift-share", "1", "--labelled", "--tags", "single",
                 "--feedback-token", SERVED_FEEDBACK_TOKEN, "--feedback-delay", "1",
                 "--max-p99-ms", "5000", "--stop-timeout", "10", seconds=6)  # fmt: skip
    assert run.returncode == 0, run.output
    sent = int(run.stats["/predict_titanic (drifted)"]["Request Count"])
    assert sent >= 60 and "/predict_titanic" not in run.stats
    # Outcomes went to POST /feedback a second later, a list at a time (the rest at the stop).
    assert 0 < int(run.stats["/feedback"]["Request Count"]) < sent

    logs = str(session_home / "monitoring")
    report = CliRunner().invoke(
        app, ["report", "--logs", logs, "--since", since, "--min-rows", "50", "--no-mlflow"]
    )
    assert report.exit_code == 42, report.output
    folder = Path(report.output.strip().splitlines()[-1].removeprefix("report: "))
    summary = json.loads((folder / "summary.json").read_text())
    assert {"Pclass", "Fare", "Age"} <= set(summary["drifted_features"])
    # Every record of the window is this run's, each labelled through the feedback channel and
    # none inline: --stop-timeout lets a request in flight at the stop get its answer, so its
    # label goes too (without it, the service logged a prediction whose answer Locust never
    # read: 1644 rows, 1643 labelled). Locust's final statistics may miss the last fraction of
    # a second of requests, so the log holds at least what it counted.
    assert summary["rows"]["current"] == summary["rows"]["labelled"] >= sent
    assert summary["feedback"]["joined"] == summary["rows"]["current"]
    assert summary["feedback"]["unmatched"] == summary["feedback"]["claimed_inline"] == 0


def test_wrong_answers_are_failures(stand_in, tmp_path):
    run = locust(f"{stand_in}/wrong", tmp_path, "--api-token", STAND_IN_TOKEN, "--batch-size", "20")
    assert run.returncode == 1, run.output
    assert set(run.failures) == {
        "probability 1.7 is not in [0, 1]",
        "19 predictions for 20 passengers",
    }
    assert run.stats["Aggregated"]["Failure Count"] == run.stats["Aggregated"]["Request Count"]


def test_a_missing_token_is_a_failure(stand_in, tmp_path):
    run = locust(f"{stand_in}/slow", tmp_path, seconds=2)
    assert run.returncode == 1, run.output
    assert list(run.failures) == ['HTTP 401: {"error": "missing or wrong API token"}']


@pytest.mark.parametrize(("bound_ms", "returncode"), [("1000", 0), ("10", 3)])
def test_p99_above_the_bound_fails_the_run(stand_in, tmp_path, bound_ms, returncode):
    run = locust(
        f"{stand_in}/slow", tmp_path, "--api-token", STAND_IN_TOKEN, "--max-p99-ms", bound_ms
    )
    assert run.failures == {}  # correct answers: only the latency bound decides
    assert run.returncode == returncode, run.output
