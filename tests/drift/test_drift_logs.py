"""Reading monitor logs: the real line format, rotation, bad lines, windows, sampling, export."""

from __future__ import annotations

import csv
import hashlib
import json
from datetime import datetime, timedelta

import pandas as pd
import pytest

from drift import logs, stats, traffic
from lifeboat.passenger import COLUMN_NAMES, FEATURES, LABEL
from lifeboat.streams import PREDICTIONS as MONITOR_NAME
from lifeboat.streams import request_hex

BAD_LINES = (
    b"not json at all",
    b'{"Pclass": 3, "Sex": "male"',  # truncated mid-write
    b'["a", "list"]',
    b'{"Pclass": 3}',  # fields missing
    b"\xff\xfe broken utf-8",
)


def _bad_record(**change) -> bytes:
    good = traffic.passengers(1, labelled=True, seed=0)[0]
    line = traffic.log_line(good, 0.3, "1", datetime.now())
    import json

    record = json.loads(line)
    record.update(change)
    return json.dumps(record).encode()


def test_reads_what_bentoml_monitor_really_writes(tmp_path):
    """Log through BentoML's own monitor with the service's columns, then read it back."""
    import bentoml

    passengers = traffic.passengers(3, labelled=True, seed=2)
    with bentoml.monitor(
        MONITOR_NAME, monitor_class="default", monitor_options={"log_path": str(tmp_path)}
    ) as mon:
        for name in FEATURES:
            mon.log_batch([p[name] for p in passengers], name, "feature", "numerical")
        mon.log_batch([p[LABEL] for p in passengers], LABEL, "target", "categorical")
        mon.log_batch([0.25, 0.5, 0.75], "probability", "prediction", "numerical")
        mon.log_batch([0, 1, 1], "prediction", "prediction", "categorical")
        mon.log_batch(["7", "7", "7"], "model_version", "prediction", "categorical")
        ids = [request_hex(i) for i in range(3)]
        mon.log_batch(ids, "prediction_id", "prediction", "categorical")
    scan = logs.scan_logs(tmp_path)
    assert scan.data_dir == tmp_path / MONITOR_NAME / "data"
    assert scan.unreadable == 0
    assert scan.newest_version == "7"
    frame = scan.versions["7"].frame()
    assert frame[list(FEATURES)].to_dict("records") == [
        {k: p[k] for k in FEATURES} for p in passengers
    ]
    assert frame["probability"].tolist() == [0.25, 0.5, 0.75]
    # and the synthetic writer used by the other tests produces the same keys
    bentoml_line = next((scan.data_dir).glob("data.*.log")).read_text().splitlines()[0]
    ours = traffic.log_line(passengers[0], 0.25, "7", datetime.now())
    assert list(pd.read_json(bentoml_line, lines=True)) == list(pd.read_json(ours, lines=True))


def test_every_worker_and_rotated_file_is_read(tmp_path, write_log):
    write_log(tmp_path, traffic.passengers(10, seed=1), "1", file="data.0.log")
    write_log(tmp_path, traffic.passengers(20, seed=2), "1", file="data.1.log")
    write_log(tmp_path, traffic.passengers(30, seed=3), "1", file="data.1.log.2026-11-20")
    scan = logs.scan_logs(tmp_path)
    assert [p.name for p in scan.files] == ["data.0.log", "data.1.log", "data.1.log.2026-11-20"]
    assert scan.versions["1"].rows == 60


def test_malformed_lines_are_counted_and_skipped(tmp_path, write_log):
    wrong_types = (
        _bad_record(Pclass="3"),
        _bad_record(Pclass=True),
        _bad_record(Age="old"),
        _bad_record(Survived=2),
        _bad_record(probability=1.5),
        _bad_record(timestamp="yesterday"),
        _bad_record(Sex=None),  # required
    )
    write_log(tmp_path, traffic.passengers(40, seed=1), "1", extra_lines=BAD_LINES + wrong_types)
    write_log(tmp_path, traffic.passengers(5, seed=2), "1", file="data.2.log", extra_lines=[b""])
    scan = logs.scan_logs(tmp_path)
    assert scan.unreadable == len(BAD_LINES) + len(wrong_types)
    assert scan.versions["1"].rows == 45
    assert scan.lines == 45 + scan.unreadable  # the blank line is not a record at all


def test_since_keeps_only_the_window(tmp_path, write_log):
    now = datetime.now()
    write_log(tmp_path, traffic.passengers(30, seed=1), "1", start=now - timedelta(days=3))
    write_log(tmp_path, traffic.passengers(12, seed=2), "2", start=now - timedelta(minutes=30))
    scan = logs.scan_logs(tmp_path, since=logs.parse_since("2h", now))
    assert {v: s.rows for v, s in scan.versions.items()} == {"2": 12}
    assert scan.outside_window == 30
    assert scan.newest_version == "2"


def test_parse_since_accepts_durations_and_dates():
    now = datetime(2026, 11, 23, 12, 0)
    assert logs.parse_since("90m", now) == datetime(2026, 11, 23, 10, 30)
    assert logs.parse_since("7d", now) == datetime(2026, 11, 16, 12, 0)
    assert logs.parse_since("2026-11-01", now) == datetime(2026, 11, 1)
    assert logs.parse_since(None, now) is None
    with pytest.raises(ValueError, match="--since"):
        logs.parse_since("last tuesday", now)


def test_memory_is_bounded_by_a_uniform_reservoir(tmp_path, write_log):
    rows = [{**p, "Parch": i % 10} for i, p in enumerate(traffic.passengers(5000, seed=4))]
    write_log(tmp_path, rows, "1")
    scan = logs.scan_logs(tmp_path, sample_size=500)
    sample = scan.versions["1"]
    assert sample.rows == 5000 and len(sample.sample) == 500
    # late rows get in as often as early ones: Parch cycles 0..9, so about 50 of each
    counts = sample.frame()["Parch"].value_counts()
    assert counts.min() > 25 and counts.max() < 80


def test_no_logs_is_an_error_that_says_where_it_looked(tmp_path):
    with pytest.raises(logs.NoLogs, match="titanic/data"):
        logs.scan_logs(tmp_path / "nowhere")


def test_labelled_rows_export_as_kaggle_csv_byte_for_byte(tmp_path, write_log):
    labelled = traffic.passengers(25, labelled=True, seed=1)
    write_log(tmp_path, labelled + traffic.passengers(15, seed=2), "1", extra_lines=BAD_LINES)
    first, scan = logs.export_labelled(tmp_path, None, tmp_path / "a.csv")
    second, _ = logs.export_labelled(tmp_path, None, tmp_path / "b.csv")
    assert first == second == 25 and scan.unreadable == len(BAD_LINES)
    digest = [hashlib.sha256((tmp_path / n).read_bytes()).hexdigest() for n in ("a.csv", "b.csv")]
    assert digest[0] == digest[1]
    with (tmp_path / "a.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == list(COLUMN_NAMES)
    assert [int(r[LABEL]) for r in rows] == [p[LABEL] for p in labelled]
    assert [r["PassengerId"] for r in rows] == [str(i) for i in range(1, 26)]


def test_psi_is_small_for_the_same_distribution_and_large_for_a_shift():
    base = pd.DataFrame(traffic.passengers(3000, seed=1))
    again = pd.DataFrame(traffic.passengers(3000, seed=2))
    shifted = pd.DataFrame(traffic.passengers(3000, drifted=True, seed=3))
    for name, categorical in (("Fare", False), ("Age", False), ("Pclass", True)):
        assert stats.psi(base[name], again[name], categorical) < 0.05
        assert stats.psi(base[name], shifted[name], categorical) > 0.2
    more_missing = again["Age"].where(again.index % 2 == 0)  # half the ages gone
    assert stats.psi(base["Age"], more_missing, categorical=False) > 0.2


def test_only_feedback_labels_are_trained_on_unless_inline_ones_are_opted_in(tmp_path, write_log):
    """Labels claimed inside prediction requests (anyone who may predict can send them) are
    kept in the log but poison nothing: the export holds the labels of POST /feedback."""
    honest = traffic.passengers(20, labelled=True, seed=1)
    poisoned = [{**p, LABEL: 1 - p[LABEL]} for p in traffic.passengers(30, labelled=True, seed=2)]
    write_log(tmp_path, honest, "1")
    write_log(tmp_path, poisoned, "1", file="data.2.log", labels="inline")

    rows, scan = logs.export_labelled(tmp_path, None, tmp_path / "trusted.csv")
    assert rows == 20
    with (tmp_path / "trusted.csv").open() as fh:
        assert [int(r[LABEL]) for r in csv.DictReader(fh)] == [p[LABEL] for p in honest]
    assert scan.feedback.claimed == 30 and scan.feedback.claimed_used == 0

    rows, scan = logs.export_labelled(tmp_path, None, tmp_path / "all.csv", inline_labels=True)
    assert rows == 50 and scan.feedback.claimed_used == 30


def test_feedback_joins_by_prediction_id_counting_unmatched_and_repeated(tmp_path, write_log):
    passengers = traffic.passengers(10, labelled=True, seed=4)
    write_log(tmp_path, passengers, "1")
    feedback = tmp_path / "titanic_feedback" / "data" / "data.1.log"
    lines = feedback.read_text().splitlines()
    first = json.loads(lines[0])
    corrected = {**first, LABEL: 1 - first[LABEL]}  # a client correcting its first label
    stranger = {**first, "prediction_id": "00000000000000ff"}  # no such prediction
    extra = [json.dumps(corrected), json.dumps(stranger), "garbage", '{"prediction_id": 3}']
    feedback.write_text("\n".join([*lines, *extra]) + "\n")

    scan = logs.scan_logs(tmp_path)
    assert scan.feedback.as_dict() == {
        "received": 12,
        "distinct": 11,
        "duplicates": 1,
        "joined": 10,
        "unmatched": 1,
        "unreadable_lines": 2,
        "claimed_inline": 0,
        "claimed_used": 0,
        "inline_labels_trusted": False,
    }
    labels = scan.versions["1"].frame()[LABEL].tolist()
    assert labels == [1 - passengers[0][LABEL], *(p[LABEL] for p in passengers[1:])]


def test_feedback_before_the_window_is_left_out(tmp_path, write_log):
    old = datetime.now() - timedelta(hours=3)
    write_log(tmp_path, traffic.passengers(5, labelled=True, seed=5), "1", start=old)
    scan = logs.scan_logs(tmp_path, since=datetime.now() - timedelta(hours=1))
    assert scan.feedback.records == 0 and scan.rows == 0
