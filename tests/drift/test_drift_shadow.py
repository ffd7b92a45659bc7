"""Shadow evidence over real monitoring files: ``drift report``'s shadow block, its page and
console, and ``drift shadow``'s JSON and exit codes (issue 14).

The files are what the service writes (``bentoml.monitor`` lines with the shadow columns of
``lifeboat.streams``, feedback in its own stream), made by ``drift.traffic.write_shadowed``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from drift import traffic
from drift.__main__ import app

runner = CliRunner()


def _records(logs: Path) -> list[dict]:
    return [
        json.loads(line)
        for path in sorted((logs / "titanic" / "data").glob("data.*.log"))
        for line in path.read_text().splitlines()
    ]


@pytest.mark.spark
@pytest.mark.integration
def test_the_report_compares_production_and_a_worse_shadow(
    served_model, write_log, tmp_path, settings
):
    version = served_model.version
    traffic.write_shadowed(tmp_path, version, "99", 800, seed=3, shadow_noise=0.25)
    # older records, written before shadows existed: no shadow columns at all
    write_log(tmp_path, traffic.passengers(150, seed=4), version, file="data.2.log")
    result = runner.invoke(app, ["report", "--logs", str(tmp_path), "--no-mlflow"])
    assert result.exit_code in (0, 42), result.output
    folder = Path(result.output.strip().splitlines()[-1].removeprefix("report: "))
    summary = json.loads((folder / "summary.json").read_text())

    block = summary["shadow"]
    assert block["rows_with_shadow"] == 800 and block["rows_without_shadow"] == 150
    assert block["min_labelled"] == settings.shadow_min_labelled
    (found,) = block["comparisons"]
    assert (found["production_version"], found["shadow_version"]) == (version, "99")
    # the figures, recomputed from the files themselves
    shadowed = [r for r in _records(tmp_path) if "shadow_version" in r]
    p = np.array([r["probability"] for r in shadowed])
    q = np.array([r["shadow_probability"] for r in shadowed])
    predicted = np.array([r["prediction"] for r in shadowed])
    labels = _labels(tmp_path)
    y = np.array([labels[r["prediction_id"]] for r in shadowed])
    assert found["rows"] == 800 and found["labelled_rows"] == 800
    assert found["agreement"] == pytest.approx(np.mean((q >= 0.5) == predicted))
    assert found["mean_shift"] == pytest.approx(np.mean(q - p))
    assert found["production"]["auc"] == pytest.approx(roc_auc_score(y, p))
    assert found["shadow"]["auc"] == pytest.approx(roc_auc_score(y, q))
    assert found["production"]["accuracy"] == pytest.approx(np.mean(predicted == y))
    assert found["difference"]["auc_ci"][1] < 0
    assert found["verdict"] == "worse"

    page = (folder / "report.html").read_text()
    assert page.index('<section id="shadow"') < page.rindex("</body>")
    assert "worse: AUC shadow - Production" in page
    assert f"shadow v99 beside Production v{version}: 800 rows" in result.output
    assert "verdict: WORSE" in result.output


def _labels(logs: Path) -> dict[str, int]:
    lines = (logs / "titanic_feedback" / "data" / "data.1.log").read_text().splitlines()
    return {r["prediction_id"]: r["Survived"] for r in map(json.loads, lines)}


def test_drift_shadow_writes_json_and_exits_3_on_a_worse_shadow(tmp_path):
    logs = tmp_path / "monitoring"
    traffic.write_shadowed(logs, "4", "5", 600, seed=1, shadow_noise=0.25)
    traffic.write_shadowed(
        logs, "4", "6", 300, seed=2, shadow_noise=0.0, labelled=50, file="data.2.log"
    )
    out = tmp_path / "evidence.json"
    done = runner.invoke(app, ["shadow", "--logs", str(logs), "--out", str(out)])
    assert done.exit_code == 4, done.output
    verdicts = {
        c["shadow_version"]: c["verdict"] for c in json.loads(out.read_text())["comparisons"]
    }
    assert verdicts == {"5": "worse", "6": "not enough evidence"}
    assert "50 labelled rows scored by both, fewer than the 200 needed" in done.output
    # one version asked for: only its verdict counts
    done = runner.invoke(app, ["shadow", "--logs", str(logs), "--out", str(out), "--version", "6"])
    assert done.exit_code == 0, done.output
    assert [c["shadow_version"] for c in json.loads(out.read_text())["comparisons"]] == ["6"]
    # the same logs give the same evidence, to the last digit
    again = tmp_path / "again.json"
    runner.invoke(app, ["shadow", "--logs", str(logs), "--out", str(again), "--version", "6"])
    assert again.read_text() == out.read_text()


def test_drift_shadow_without_logs_or_with_a_bad_window_is_exit_2(tmp_path):
    done = runner.invoke(app, ["shadow", "--logs", str(tmp_path / "none")])
    assert done.exit_code == 2
    assert "no prediction logs under" in done.output
    traffic.write_shadowed(tmp_path, "4", "5", 10)
    done = runner.invoke(app, ["shadow", "--logs", str(tmp_path), "--since", "yesterday"])
    assert done.exit_code == 2 and "use 30m, 24h, 7d, 2w or an ISO date/time" in done.output


def test_logs_without_a_shadow_say_so(tmp_path, write_log):
    write_log(tmp_path, traffic.passengers(20, labelled=True), "4")
    done = runner.invoke(
        app, ["shadow", "--logs", str(tmp_path), "--out", str(tmp_path / "e.json")]
    )
    assert done.exit_code == 0, done.output
    assert "no logged request was scored by a shadow (20 rows without one)" in done.output
