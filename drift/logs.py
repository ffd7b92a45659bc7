"""Read the service's prediction logs: every worker's file, rotated ones too, one line at a time.

``bentoml.monitor("titanic")`` writes one JSON object per prediction to
``<log_path>/titanic/data/data.<worker>.log``; its ``TimedRotatingFileHandler`` renames a day's
file to ``data.<worker>.log.<YYYY-MM-DD>``. A record holds the seven features, ``Survived`` (null
unless the client sent it), ``probability``, ``prediction``, ``model_version`` and BentoML's
``timestamp`` (the server's local time, no zone), ``request_id`` and ``trace_id``.

Memory stays bounded whatever the size of the logs: lines are streamed, and each model version
keeps exact counts plus a uniform **reservoir sample** (Algorithm R, seeded) of at most
``sample_size`` rows. The statistics (drift tests, PSI, live AUC and accuracy) are computed on
that sample, which is every row up to ``sample_size`` and an unbiased subset beyond. Lines that
are not a valid record are skipped and counted, never fatal.
"""

from __future__ import annotations

import csv
import json
import math
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drift.config import MONITOR_NAME
from lifeboat.passenger import BY_NAME, COLUMN_NAMES, FEATURES, ID, LABEL

if TYPE_CHECKING:
    import pandas as pd

OUTPUTS = ("probability", "prediction")
ROW_FIELDS = (*FEATURES, LABEL, *OUTPUTS)
DEFAULT_SAMPLE_SIZE = 50_000
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class NoLogs(LookupError):
    """No prediction log files where they were looked for."""


@dataclass
class VersionSample:
    """What the logs hold for one model version: exact counts and a reservoir of rows."""

    rows: int = 0
    labelled: int = 0
    first: datetime | None = None
    last: datetime | None = None
    sample: list[tuple[Any, ...]] = field(default_factory=list)

    def add(self, row: tuple[Any, ...], when: datetime, rng: random.Random, capacity: int) -> None:
        self.rows += 1
        self.labelled += row[len(FEATURES)] is not None
        self.first = when if self.first is None or when < self.first else self.first
        self.last = when if self.last is None or when > self.last else self.last
        if len(self.sample) < capacity:
            self.sample.append(row)
        elif (j := rng.randrange(self.rows)) < capacity:
            self.sample[j] = row

    def frame(self) -> pd.DataFrame:
        """The sampled rows as a DataFrame with the schema's column types."""
        import pandas as pd

        frame = pd.DataFrame.from_records(self.sample, columns=list(ROW_FIELDS))
        for name in ("Age", "Fare", "probability"):
            frame[name] = frame[name].astype(float)
        return frame


@dataclass
class LogScan:
    """The result of reading every log file once."""

    data_dir: Path
    files: list[Path]
    lines: int = 0
    unreadable: int = 0
    outside_window: int = 0
    versions: dict[str, VersionSample] = field(default_factory=dict)
    newest_version: str | None = None

    @property
    def rows(self) -> int:
        return sum(v.rows for v in self.versions.values())


def find_data_dirs(logs: Path) -> list[Path]:
    """The folders holding ``data.<worker>.log*``: ``logs/titanic/data``, ``logs/data`` or
    ``logs``; else every replica's ``logs/<host>/titanic/data`` (``LIFEBOAT_MONITORING_PER_HOST``:
    replicas sharing one mount each write under their own hostname).

    Raises:
        NoLogs: None of them holds a log file.
    """
    for candidate in (logs / MONITOR_NAME / "data", logs / "data", logs):
        if candidate.is_dir() and any(candidate.glob("data.*.log*")):
            return [candidate]
    replicas = sorted(
        d for d in logs.glob(f"*/{MONITOR_NAME}/data") if d.is_dir() and any(d.glob("data.*.log*"))
    )
    if replicas:
        return replicas
    raise NoLogs(
        f"no prediction logs under {logs} (expected {logs}/{MONITOR_NAME}/data/data.<worker>.log); "
        "serve the model and send traffic first, or pass --logs DIR"
    )


def log_files(data_dirs: list[Path], since: datetime | None = None) -> list[Path]:
    """Every worker's file, rotated ones included, in name order within each folder; files last
    written before ``since`` are left out (none of their records can be in the window)."""
    files = [p for d in data_dirs for p in sorted(d.glob("data.*.log*")) if p.is_file()]
    if since is None:
        return files
    return [p for p in files if datetime.fromtimestamp(p.stat().st_mtime) >= since]


def open_scan(logs: Path, since: datetime | None) -> LogScan:
    """A scan of the log files under ``logs``, before any is read.

    Raises:
        NoLogs: No log file under ``logs``.
    """
    dirs = find_data_dirs(logs)
    return LogScan(data_dir=dirs[0] if len(dirs) == 1 else logs, files=log_files(dirs, since))


def parse_since(text: str | None, now: datetime | None = None) -> datetime | None:
    """``24h``, ``90m``, ``7d``, ``2w`` back from now, or an ISO date/time; naive local time.

    Raises:
        ValueError: Neither a duration nor an ISO date/time.
    """
    if text is None or not text.strip():
        return None
    now = now or datetime.now()
    if match := _DURATION.match(text):
        return now - timedelta(**{_UNITS[match[2]]: float(match[1])})
    try:
        return _local_naive(datetime.fromisoformat(text.strip()))
    except ValueError:
        raise ValueError(f"--since {text!r}: use 30m, 24h, 7d, 2w or an ISO date/time") from None


def _local_naive(when: datetime) -> datetime:
    # BentoML writes datetime.now().isoformat(): local time without a zone.
    return when.astimezone().replace(tzinfo=None) if when.tzinfo is not None else when


# (kind, required) per feature, in FEATURES order: checked for every line, so kept flat.
_CHECKS = tuple((BY_NAME[name].kind, BY_NAME[name].required) for name in FEATURES)


def _valid_features(values: tuple[Any, ...]) -> bool:
    """The JSON types the service logs; ``type(...) is`` keeps booleans out of the ints."""
    for (kind, required), value in zip(_CHECKS, values, strict=False):
        if value is None:
            if required:
                return False
        elif kind == "category":
            if type(value) is not str:
                return False
        elif kind == "int" or type(value) is int:
            if type(value) is not int:
                return False
        elif type(value) is not float or not math.isfinite(value):
            return False
    return True


def parse_line(line: bytes) -> tuple[str, datetime, tuple[Any, ...]] | None:
    """``(model_version, timestamp, row)`` from one log line, or None if it is not a record."""
    try:
        record = json.loads(line)
        version = record["model_version"]
        when = _local_naive(datetime.fromisoformat(record["timestamp"]))
        row = tuple(record[name] for name in ROW_FIELDS)
    except (ValueError, KeyError, TypeError):  # bad JSON or UTF-8, not an object, a field missing
        return None
    if not isinstance(version, str | int) or isinstance(version, bool) or version == "":
        return None
    if not _valid_features(row):
        return None
    label, probability, prediction = row[len(FEATURES) :]
    if label not in (None, 0, 1) or prediction not in (0, 1) or isinstance(label, bool):
        return None
    if not isinstance(probability, int | float) or not 0.0 <= probability <= 1.0:
        return None
    return str(version), when, row


def records(
    files: list[Path], since: datetime | None, scan: LogScan
) -> Iterator[tuple[str, datetime, tuple[Any, ...]]]:
    """Valid records in the window, in file order; ``scan`` counts lines, skips and rejects."""
    for path in files:
        with path.open("rb") as fh:  # bytes: a bad UTF-8 sequence spoils one line, not the file
            for line in fh:
                if not line.strip():
                    continue
                scan.lines += 1
                parsed = parse_line(line)
                if parsed is None:
                    scan.unreadable += 1
                elif since is not None and parsed[1] < since:
                    scan.outside_window += 1
                else:
                    yield parsed


def scan_logs(
    logs: Path, since: datetime | None = None, sample_size: int = DEFAULT_SAMPLE_SIZE, seed: int = 0
) -> LogScan:
    """Read every log file once: per-version counts, reservoir samples and the newest version.

    Raises:
        NoLogs: No log file under ``logs``.
    """
    scan = open_scan(logs, since)
    rng = random.Random(seed)
    newest: datetime | None = None
    for version, when, row in records(scan.files, since, scan):
        scan.versions.setdefault(version, VersionSample()).add(row, when, rng, sample_size)
        if newest is None or when >= newest:
            newest, scan.newest_version = when, version
    return scan


def export_labelled(logs: Path, since: datetime | None, out: Path) -> tuple[int, LogScan]:
    """Write every labelled logged row, whichever version served it, as a Kaggle-format CSV.

    ``PassengerId`` numbers the rows from 1 in log order, Name/Ticket/Cabin are empty: the
    output is the same bytes for the same logs, which makes a retrain on them recognisable.

    Returns:
        The number of rows written and the scan's counts.
    """
    scan = open_scan(logs, since)
    written = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMN_NAMES)
        for _, _, row in records(scan.files, since, scan):
            values = dict(zip(ROW_FIELDS, row, strict=True))
            if values[LABEL] is None:
                continue
            written += 1
            values[ID] = written
            writer.writerow(["" if values.get(c) is None else values[c] for c in COLUMN_NAMES])
    return written, scan
