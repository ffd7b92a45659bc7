"""`drift report` adds live figures by the model card's slices when feedback labels exist."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from drift import traffic
from drift.__main__ import app
from training import slices

pytestmark = [pytest.mark.spark, pytest.mark.integration]


def test_live_figures_by_slice_count_the_labelled_rows(served_model, write_log, tmp_path, settings):
    from mlflow import MlflowClient

    rows = traffic.passengers(600, labelled=True, seed=21)
    write_log(tmp_path / "logs", rows, served_model.version)
    result = CliRunner().invoke(app, ["report", "--logs", str(tmp_path / "logs")])
    assert result.exit_code in (0, 42), result.output
    folder = Path(result.output.strip().splitlines()[-1].removeprefix("report: "))
    summary = json.loads((folder / "summary.json").read_text())
    by_slice = {s["slice"]: s for s in summary["performance_by_slice"]}
    frame = pd.DataFrame(rows)
    assert by_slice["Sex=female"]["rows"] == int((frame["Sex"] == "female").sum())
    assert by_slice["Pclass=1"]["rows"] == int((frame["Pclass"] == 1).sum())
    assert by_slice["age band=unknown"]["rows"] == int(frame["Age"].isna().sum())
    for dimension in slices.DIMENSIONS:
        inside = [s["rows"] for name, s in by_slice.items() if name.startswith(f"{dimension}=")]
        assert sum(inside) == 600

    # Shown where people look, not only in the JSON: the page, the console and MLflow.
    page = (folder / "report.html").read_text(encoding="utf-8")
    section = page[page.index('<section id="slices"') :]
    assert "Live figures by slice" in section and "On the 600 logged predictions" in section
    female = by_slice["Sex=female"]
    assert f"<td>Sex=female</td><td>{female['rows']}</td><td>{female['auc']:.3f}</td>" in section
    table = [line for line in result.output.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + len(by_slice)  # the header and one line per slice
    assert any(line.startswith(f"| Sex=female | {female['rows']} |") for line in table)
    metrics = MlflowClient(settings.tracking_uri).get_run(summary["mlflow_run_id"]).data.metrics
    assert metrics["live_slice/Sex/female/rows"] == female["rows"]
    assert metrics["live_slice/Sex/female/auc"] == pytest.approx(female["auc"])
    oldest = by_slice["age band=60+"]
    assert metrics["live_slice/age band/60 and over/accuracy"] == pytest.approx(oldest["accuracy"])


def test_no_labels_no_slice_figures(served_model, write_log, tmp_path):
    write_log(tmp_path / "logs", traffic.passengers(300, seed=22), served_model.version)
    result = CliRunner().invoke(app, ["report", "--logs", str(tmp_path / "logs"), "--no-mlflow"])
    folder = Path(result.output.strip().splitlines()[-1].removeprefix("report: "))
    assert json.loads((folder / "summary.json").read_text())["performance_by_slice"] is None
    assert 'id="slices"' not in (folder / "report.html").read_text(encoding="utf-8")
    assert "Live figures by slice" not in result.output
