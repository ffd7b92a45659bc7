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


def test_live_figures_by_slice_count_the_labelled_rows(served_model, write_log, tmp_path):
    rows = traffic.passengers(600, labelled=True, seed=21)
    write_log(tmp_path / "logs", rows, served_model.version)
    result = CliRunner().invoke(app, ["report", "--logs", str(tmp_path / "logs"), "--no-mlflow"])
    assert result.exit_code in (0, 42), result.output
    folder = Path(result.output.strip().splitlines()[-1].removeprefix("report: "))
    by_slice = {
        s["slice"]: s
        for s in json.loads((folder / "summary.json").read_text())["performance_by_slice"]
    }
    frame = pd.DataFrame(rows)
    assert by_slice["Sex=female"]["rows"] == int((frame["Sex"] == "female").sum())
    assert by_slice["Pclass=1"]["rows"] == int((frame["Pclass"] == 1).sum())
    assert by_slice["age band=unknown"]["rows"] == int(frame["Age"].isna().sum())
    for dimension in slices.DIMENSIONS:
        inside = [s["rows"] for name, s in by_slice.items() if name.startswith(f"{dimension}=")]
        assert sum(inside) == 600


def test_no_labels_no_slice_figures(served_model, write_log, tmp_path):
    write_log(tmp_path / "logs", traffic.passengers(300, seed=22), served_model.version)
    result = CliRunner().invoke(app, ["report", "--logs", str(tmp_path / "logs"), "--no-mlflow"])
    folder = Path(result.output.strip().splitlines()[-1].removeprefix("report: "))
    assert json.loads((folder / "summary.json").read_text())["performance_by_slice"] is None
