"""`python -m drift report` against the session's model: exit codes, files, MLflow, reasons."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from drift import traffic
from drift.__main__ import app
from tests.harness import ROOT

pytestmark = [pytest.mark.spark, pytest.mark.integration]
runner = CliRunner()


def _report(*args: str):
    return runner.invoke(app, ["report", *args])


def _summary(output: str) -> dict:
    folder = Path(output.strip().splitlines()[-1].removeprefix("report: "))
    assert (folder / "report.html").stat().st_size > 10_000  # Evidently's page, not a stub
    return json.loads((folder / "summary.json").read_text())


def test_traffic_like_the_reference_is_no_drift(served_model, write_log, tmp_path, settings):
    from mlflow import MlflowClient

    rows = traffic.passengers(1500, labelled=True, seed=11)
    write_log(tmp_path, rows, served_model.version, extra_lines=[b"garbage", b"{"])
    result = _report("--logs", str(tmp_path))
    assert result.exit_code == 0, result.output
    summary = _summary(result.output)
    assert summary["drift_detected"] is False
    assert summary["drifted_features"] == []
    assert summary["model_version"] == served_model.version
    assert summary["reference"]["source"] == f"bentoml:{served_model.tag}"
    assert summary["rows"]["current"] == 1500 and summary["logs"]["unreadable_lines"] == 2
    assert all(f["psi"] < 0.1 for f in summary["features"].values())
    # tests named as Evidently ran them: distances above 1000 non-missing reference values
    assert summary["features"]["Fare"]["test"] == "Wasserstein distance (normed)"
    assert summary["features"]["Sex"]["test"] == "Jensen-Shannon distance"
    assert summary["features"]["Age"]["reference_values"] <= 1000
    assert summary["features"]["Age"]["test"] == "K-S p_value"

    perf = summary["performance"]
    metadata = json.loads((served_model.path / "metadata.json").read_text())
    assert perf["labelled_rows"] == 1500
    assert perf["heldout_auc"] == pytest.approx(metadata["heldout_auc"])
    assert perf["live_auc"] == pytest.approx(0.5, abs=0.06)  # the fixture's coin-flip scores

    client = MlflowClient(settings.tracking_uri)
    run = client.get_run(summary["mlflow_run_id"])
    assert client.get_experiment(run.info.experiment_id).name == "titanic-drift"
    assert run.data.tags["drift_detected"] == "False"
    assert run.data.metrics["unreadable_lines"] == 2
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {
        "report.html",
        "summary.json",
    }


def test_drifted_traffic_exits_42_and_names_the_drifted_features(served_model, write_log, tmp_path):
    write_log(tmp_path, traffic.passengers(1500, drifted=True, seed=12), served_model.version)
    # a real process: the exit status is what a cron job or CI step sees
    done = subprocess.run(
        [sys.executable, "-m", "drift", "report", "--logs", str(tmp_path), "--no-mlflow"],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 42, done.stderr
    summary = _summary(done.stdout)
    assert {"Pclass", "Fare", "Age"} <= set(summary["drifted_features"])
    assert "Sex" not in summary["drifted_features"]
    assert summary["features"]["Fare"]["psi"] > 0.2 and summary["share_drifted"] >= 0.25
    assert "DRIFT: " in done.stdout and "Fare" in done.stdout.splitlines()[-2]


class _Pushgateway(BaseHTTPRequestHandler):
    """Records every push (method, path, body) and answers as a Pushgateway does."""

    pushes: list[tuple[str, str, str]] = []

    def do_PUT(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        self.pushes.append((self.command, self.path, body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_the_verdict_is_pushed_to_a_pushgateway_and_an_outage_only_warns(
    served_model, write_log, tmp_path
):
    write_log(tmp_path, traffic.passengers(600, drifted=True, seed=13), served_model.version)
    _Pushgateway.pushes = []
    server = HTTPServer(("127.0.0.1", 0), _Pushgateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        result = _report("--logs", str(tmp_path), "--no-mlflow", "--pushgateway", url)
    finally:
        server.shutdown()
    assert result.exit_code == 42, result.output
    summary = _summary(result.output)
    ((method, path, body),) = _Pushgateway.pushes
    assert (method, path) == ("PUT", "/metrics/job/lifeboat_drift/model/titanic")
    version = f'model_version="{served_model.version}"'
    assert f"lifeboat_drift_share{{{version}}} {summary['share_drifted']}" in body
    assert f"lifeboat_drift_detected{{{version}}} 1.0" in body
    fare_psi = summary["features"]["Fare"]["psi"]
    assert f'lifeboat_drift_feature_psi{{feature="Fare",{version}}} {fare_psi}' in body
    assert "lifeboat_drift_last_report_timestamp_seconds" in body

    # nothing listens there now: the verdict and the files still come
    again = _report("--logs", str(tmp_path), "--no-mlflow", "--pushgateway", url)
    assert again.exit_code == 42 and _summary(again.output)["drift_detected"] is True


def test_retrain_pushes_the_verdict_of_the_report_it_runs(served_model, write_log, tmp_path):
    write_log(tmp_path, traffic.passengers(600, seed=17), served_model.version)
    _Pushgateway.pushes = []
    server = HTTPServer(("127.0.0.1", 0), _Pushgateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        result = runner.invoke(
            app, ["retrain", "--logs", str(tmp_path), "--no-reload", "--pushgateway", url]
        )
    finally:
        server.shutdown()
    assert result.exit_code == 0, result.output
    assert "no drift; nothing to retrain" in result.output
    ((method, path, body),) = _Pushgateway.pushes
    assert (method, path) == ("PUT", "/metrics/job/lifeboat_drift/model/titanic")
    assert f'lifeboat_drift_detected{{model_version="{served_model.version}"}} 0.0' in body


def test_only_the_window_and_version_asked_for_are_compared(served_model, write_log, tmp_path):
    from datetime import datetime, timedelta

    old = datetime.now() - timedelta(days=2)
    version = served_model.version
    write_log(tmp_path, traffic.passengers(800, drifted=True, seed=1), version, start=old)
    write_log(tmp_path, traffic.passengers(800, seed=2), version, file="data.2.log")
    result = _report("--logs", str(tmp_path), "--since", "1d", "--no-mlflow")
    assert result.exit_code == 0, result.output
    assert _summary(result.output)["logs"]["outside_window"] == 800


def test_no_logs_is_exit_2_with_a_one_line_reason(served_model, tmp_path):
    result = _report("--logs", str(tmp_path / "empty"))
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "no prediction logs under" in result.output


def test_too_few_rows_is_exit_2(served_model, write_log, tmp_path):
    write_log(tmp_path, traffic.passengers(40, seed=1), served_model.version)
    result = _report("--logs", str(tmp_path), "--min-rows", "100")
    assert result.exit_code == 2
    assert "40 logged rows of model version" in result.output


def test_an_unknown_model_version_is_exit_2(served_model, write_log, tmp_path):
    write_log(tmp_path, traffic.passengers(200, seed=1), "999")
    result = _report("--logs", str(tmp_path))
    assert result.exit_code == 2
    assert "model version '999' is in neither the BentoML store nor the MLflow registry" in (
        result.output
    )


def test_reference_falls_back_to_the_registry(served_model, settings):
    from drift.reference import from_mlflow, from_store

    stored = from_store(served_model.version, settings.tracking_uri)
    registry = from_mlflow(served_model.version, settings.tracking_uri, settings.model_name)
    assert registry is not None and registry.source.startswith("mlflow:models:/titanic/")
    assert registry.frame.equals(stored.frame)
    assert registry.metadata.heldout_auc == pytest.approx(stored.metadata.heldout_auc)
    assert from_store("999", settings.tracking_uri) is None


def test_retrain_dry_run_changes_nothing(served_model, write_log, tmp_path, settings):
    from mlflow import MlflowClient

    rows = traffic.passengers(600, drifted=True, labelled=True, seed=5)
    write_log(tmp_path, rows, served_model.version)
    client = MlflowClient(settings.tracking_uri)

    def versions():
        return sorted(v.version for v in client.search_model_versions("name = 'titanic'"))

    before = versions()
    reports = settings.reports_dir / "drift"
    folders = set(reports.iterdir()) if reports.exists() else set()
    result = runner.invoke(app, ["retrain", "--logs", str(tmp_path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "[export] 600 labelled rows" in result.output
    assert "would train with 600 extra rows" in result.output
    assert "then: import into the BentoML store, bentoml build, POST " in result.output
    assert versions() == before
    assert (set(reports.iterdir()) if reports.exists() else set()) == folders
