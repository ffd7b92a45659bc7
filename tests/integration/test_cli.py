"""The `python -m training` commands as a user runs them: score, leaderboard, clear errors."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from typer.testing import CliRunner

from lifeboat.scoring import OnnxScorer
from tests.harness import DATA, ROOT
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
