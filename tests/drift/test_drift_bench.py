"""``make drift-bench`` builds its own world and measures a drift report that really ran.

It once measured nothing: its store's model lacked the files and metadata the report now asks
of a stored version, every report exited 2 unseen, and the bench died on a missing summary.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.harness import ROOT


def test_the_drift_bench_measures_a_report_that_read_the_logs_and_joined_the_labels(tmp_path):
    out = tmp_path / "drift.json"
    done = subprocess.run(
        [sys.executable, "-m", "drift.bench", "--rows", "1000", "--repeats", "1", "--out", out],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    result = json.loads(out.read_text())
    (run,) = result["runs"]
    assert run["exit_code"] == 42  # 30% of the traffic drifted
    assert run["wall_seconds"] > 0 and run["peak_rss_mb"] > 0
    report = result["report"]
    assert report["drift_detected"] and report["drifted_features"]
    assert report["rows"]["current"] == 1000 and report["rows"]["by_version"] == {"1": 1000}
    # About 20% of the outcomes come back through the feedback stream, joined by request id.
    assert 100 <= report["rows"]["labelled"] <= 300
    assert report["unreadable_lines"] == 100
