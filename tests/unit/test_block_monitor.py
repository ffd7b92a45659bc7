"""BlockMonitor writes what BentoML's DefaultMonitor writes, one block per request."""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import logging.handlers
from collections.abc import Iterator
from pathlib import Path

import bentoml
import pytest

from lifeboat.serving.monitoring import BlockMonitor

COLUMNS = (
    ("Pclass", "feature", "numerical", [3, 1, 2]),
    ("Sex", "feature", "categorical", ["male", "female", "female"]),
    ("Age", "feature", "numerical", [22.0, None, 4.5]),
    ("Survived", "target", "categorical", [None, 1, 0]),
    ("probability", "prediction", "numerical", [0.11, 0.93, 0.6]),
)


def _write(name: str, log_path: Path, monitor_class: type | None) -> list[dict]:
    for block in (slice(0, 1), slice(1, 3)):  # the service's first block has one passenger
        with bentoml.monitor(
            name, monitor_class=monitor_class, monitor_options={"log_path": str(log_path)}
        ) as mon:
            for column, role, kind, values in COLUMNS:
                mon.log_batch(values[block], column, role, kind)
    lines = (log_path / name / "data" / "data.0.log").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_same_records_and_schema_as_bentomls_default_monitor(tmp_path):
    ours = _write("block-monitor-ours", tmp_path, BlockMonitor)
    theirs = _write("block-monitor-theirs", tmp_path, None)

    assert len(ours) == len(theirs) == 3
    for mine, reference in zip(ours, theirs, strict=True):
        assert mine.keys() == reference.keys()
        assert {"timestamp", "request_id", "trace_id"} <= mine.keys()
        assert {k: mine[k] for k, *_ in COLUMNS} == {k: reference[k] for k, *_ in COLUMNS}
    assert [r["Age"] for r in ours] == [22.0, None, 4.5]
    schema = [
        json.loads((tmp_path / n / "schema" / "schema.0.log").read_text())["columns"]
        for n in ("block-monitor-ours", "block-monitor-theirs")
    ]
    assert schema[0] == schema[1] and [c["name"] for c in schema[0]] == [c[0] for c in COLUMNS]


def test_two_monitors_in_one_process_each_keep_their_own_file(tmp_path):
    """Predictions and feedback are two streams of one worker; with BentoML's shared loggers
    the second monitor took over the first one's file."""
    for round_ in range(2):  # the second round writes after both have set up their files
        for name in ("block-monitor-first", "block-monitor-second"):
            with bentoml.monitor(
                name, monitor_class=BlockMonitor, monitor_options={"log_path": str(tmp_path)}
            ) as mon:
                mon.log_batch([f"{name}-{round_}"], "who", "feature", "categorical")
    for name in ("block-monitor-first", "block-monitor-second"):
        lines = (tmp_path / name / "data" / "data.0.log").read_text().splitlines()
        assert [json.loads(line)["who"] for line in lines] == [f"{name}-0", f"{name}-1"]


def test_a_reserved_column_name_is_renamed_as_bentoml_does(tmp_path):
    with bentoml.monitor(
        "block-monitor-reserved",
        monitor_class=BlockMonitor,
        monitor_options={"log_path": str(tmp_path)},
    ) as mon:
        mon.log_batch([1, 2], "timestamp", "feature", "numerical")
    lines = (tmp_path / "block-monitor-reserved" / "data" / "data.0.log").read_text().splitlines()
    assert [json.loads(line)["timestamp_"] for line in lines] == [1, 2]


def test_columns_of_unequal_length_are_refused_not_truncated(tmp_path):
    monitor = BlockMonitor("block-monitor-unequal", log_path=str(tmp_path))
    datas = {"Pclass": collections.deque([3, 1]), "Sex": collections.deque(["male"])}
    with pytest.raises(ValueError, match="unequal length"):
        monitor.export_data(datas)


@pytest.mark.parametrize(("days", "kept"), [(3, 3), (0, 6)])
def test_daily_rotation_keeps_the_retention_and_deletes_older_days(
    tmp_path, monkeypatch, days, kept
):
    from lifeboat.settings import get_settings

    monkeypatch.setenv("LIFEBOAT_MONITORING_RETENTION_DAYS", str(days))
    get_settings.cache_clear()
    try:
        name = f"block-monitor-retention-{days}"  # monitors are cached by name
        _write(name, tmp_path, BlockMonitor)
        folder = tmp_path / name / "data"
        for day in range(1, 6):  # five earlier days, as the daily rotation names them
            (folder / f"data.0.log.2026-01-0{day}").write_text("{}\n")
        (handler,) = [
            h
            for h in logging.getLogger(f"bentoml_monitor_data.{name}").handlers
            if isinstance(h, logging.handlers.TimedRotatingFileHandler)
        ]
        handler.doRollover()  # what midnight does
    finally:
        get_settings.cache_clear()
    rotated = sorted(p.name for p in folder.glob("data.0.log.*"))
    assert len(rotated) == kept, rotated
    assert (folder / "data.0.log").exists()
    if days:
        assert "data.0.log.2026-01-01" not in rotated  # the oldest went first


@contextlib.contextmanager
def small_disk(folder: Path, size: str, monitor: str) -> Iterator[Path]:
    """A real tmpfs of ``size`` at ``folder`` (needs root, as CI runs; skips otherwise),
    unmounted after ``monitor``'s file is closed."""
    import subprocess

    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        for h in logging.getLogger(f"bentoml_monitor_data.{monitor}").handlers:
            with contextlib.suppress(OSError):  # its last flush may find the disk full
                h.close()  # before the unmount
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.parametrize("full_from_the_start", [False, True])
def test_a_full_disk_drops_records_counted_without_a_traceback_per_line(
    tmp_path, capsys, full_from_the_start
):
    """A real full filesystem of 64 KiB: filling up while the worker writes, or full before its
    first record (the schema file then fails too)."""
    from prometheus_client import REGISTRY

    def dropped() -> float:
        return REGISTRY.get_sample_value("lifeboat_monitoring_records_dropped_total") or 0.0

    name = f"block-monitor-full-disk-{full_from_the_start}"
    with small_disk(tmp_path / "disk", "64k", name) as disk:
        if full_from_the_start:
            with contextlib.suppress(OSError), (disk / "filler").open("wb") as filler:
                filler.write(b"x" * 128 * 1024)
        before = dropped()
        for _ in range(300):  # ~300 blocks of 3 records: far more than 64 KiB
            with bentoml.monitor(
                name, monitor_class=BlockMonitor, monitor_options={"log_path": str(disk)}
            ) as mon:
                for column, role, kind, values in COLUMNS:
                    mon.log_batch(values, column, role, kind)
        data = disk / name / "data" / "data.0.log"
        written = len(data.read_text().splitlines()) if data.exists() else 0
    assert written < 900 and (written == 0) == full_from_the_start
    # Every record is written or counted; the block the disk filled up in may be both,
    # partly written and counted whole (at most its 3 records).
    assert 900 - written <= dropped() - before <= 900 - written + 3
    assert capsys.readouterr().err.count("Traceback") == 0


def test_a_strict_monitor_raises_when_its_record_cannot_be_written(tmp_path, monkeypatch):
    """Feedback labels are not dropped quietly: the write error reaches the caller, who
    answers 503 so that the client sends them again (a real full 16 KiB tmpfs); and the failed
    record does not block the next one."""
    from lifeboat.serving.monitoring import stream
    from lifeboat.settings import get_settings

    name = "block-monitor-strict"

    def write_block() -> None:
        with stream(name, strict=True) as mon:
            mon.log_batch(["0123456789abcdef"] * 100, "prediction_id", "feature", "categorical")

    with small_disk(tmp_path / "disk", "16k", name) as disk:
        monkeypatch.setenv("LIFEBOAT_MONITORING_DIR", str(disk))
        get_settings.cache_clear()
        try:
            with pytest.raises(OSError, match="No space left"):  # noqa: PT012 - blocks write
                for _ in range(100):  # 100 blocks of 100 records: far more than 16 KiB
                    write_block()
            with pytest.raises(OSError, match="No space left"):  # not BentoML's AssertionError
                write_block()
        finally:
            get_settings.cache_clear()
