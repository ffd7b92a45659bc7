"""The commands as a user runs them: `python -m training` (score, leaderboard, clear errors)
and the installed `lifeboat` console command."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lifeboat.scoring import OnnxScorer
from tests.harness import DATA, ROOT, packages_imported_by
from training.__main__ import app

pytestmark = [pytest.mark.spark, pytest.mark.integration]
runner = CliRunner()


def test_batch_score_matches_the_served_model(trained, settings, tmp_path):
    import mlflow

    src = tmp_path / "test.csv"  # Kaggle's test.csv shape: no Survived column
    with (ROOT / "tests/fixtures/kaggle_train_head.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    fields = [f for f in rows[0] if f != "Survived"]
    with src.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "scored.csv"
    result = runner.invoke(app, ["score", str(src), str(out)])
    assert result.exit_code == 0, result.output
    assert "10 rows scored" in result.output
    with out.open() as fh:
        scored = list(csv.DictReader(fh))
    assert [r["PassengerId"] for r in scored] == [r["PassengerId"] for r in rows]
    assert all(r["survived"] in {"0", "1"} for r in scored)

    onnx = mlflow.artifacts.download_artifacts(
        "models:/titanic@production/artifacts/model.onnx", dst_path=str(tmp_path)
    )
    columns = {
        k: [
            None if r[k] == "" else (float(r[k]) if k not in ("Sex", "Embarked") else r[k])
            for r in rows
        ]
        for k in ("Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked")
    }
    expected = OnnxScorer.from_path(onnx).predict_proba(columns)
    got = np.array([float(r["probability"]) for r in scored])
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_leaderboard_writes_table_and_figure(trained, settings, tmp_path):
    result = runner.invoke(app, ["leaderboard", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert {"leaderboard.csv", "leaderboard.md", "leaderboard.png"} <= {
        p.name for p in tmp_path.iterdir()
    }
    table = (tmp_path / "leaderboard.md").read_text()
    for family in ("gbt", "logistic_regression", "random_forest"):
        assert family in table


def test_train_on_a_bad_file_exits_2_with_the_reason(spark, tmp_path):
    src = tmp_path / "nolabel.csv"
    src.write_text("PassengerId,Pclass,Sex,SibSp,Parch\n1,3,male,0,0\n")
    result = runner.invoke(app, ["train", "--data", str(src)])
    assert result.exit_code == 2
    assert "missing required column(s) Survived" in result.output


def test_score_without_a_production_model_says_how_to_train(spark, tmp_path, monkeypatch):
    monkeypatch.setenv("LIFEBOAT_MODEL_NAME", "no_such_model")
    from lifeboat.settings import get_settings

    get_settings.cache_clear()
    try:
        result = runner.invoke(app, ["score", str(DATA), str(tmp_path / "o.csv")])
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert "python -m training train" in result.output


# ── the installed console command (pyproject's [project.scripts]) ─────────────────────────────

LIFEBOAT = Path(sys.executable).with_name("lifeboat")


def lifeboat(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    # Wide enough that typer's help does not wrap the lines asserted on.
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [str(LIFEBOAT), *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=env
    )


def test_the_console_command_holds_training_and_drift():
    listed = lifeboat("--help")
    assert listed.returncode == 0, listed.stderr
    for command in ("train", "score", "import-model", "leaderboard", "drift"):
        assert re.search(rf"^\W*{command}\s", listed.stdout, re.M), command
    report = lifeboat("drift", "report", "--help")
    assert report.returncode == 0, report.stderr
    assert "--psi-threshold" in report.stdout and "Exit 0 none, 42 drift, 2 error" in report.stdout
    unknown = lifeboat("nope")
    assert unknown.returncode == 2 and "No such command 'nope'" in unknown.stderr


@pytest.mark.parametrize("package", ["training", "drift"])
def test_python_dash_m_keeps_working(package):
    done = subprocess.run(
        [sys.executable, "-m", package, "--help"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert f"python -m {package}" in done.stdout


def test_importing_the_console_loads_neither_training_nor_drift():
    assert packages_imported_by("import lifeboat.console", ["training", "drift"]) == []


def test_lifeboat_leaderboard_writes_its_files(trained, tmp_path):
    # The session's store (os.environ points at it) read by the installed command.
    done = lifeboat("leaderboard", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    assert {"leaderboard.csv", "leaderboard.md", "leaderboard.png"} <= {
        p.name for p in tmp_path.iterdir()
    }
    assert "random_forest" in (tmp_path / "leaderboard.md").read_text()


def test_lifeboat_drift_report_passes_drift_exit_codes_through(tmp_path):
    # No logged predictions: drift's data error, exit 2 with the reason, as `python -m drift`.
    done = lifeboat("drift", "report", "--logs", str(tmp_path / "empty"))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "error: no prediction logs under" in done.stderr
