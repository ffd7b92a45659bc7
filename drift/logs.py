"""Read the service's prediction logs: every worker's file, rotated ones too, one line at a time.

``bentoml.monitor("titanic")`` writes one JSON object per prediction to
``<log_path>/titanic/data/data.<worker>.log``; its ``TimedRotatingFileHandler`` renames a day's
file to ``data.<worker>.log.<YYYY-MM-DD>``. A record holds the seven features, ``Survived`` (a
label the client *claimed* inline, usually null), ``probability``, ``prediction``,
``model_version``, ``prediction_id`` and BentoML's ``timestamp`` (the server's local time, no
zone), ``request_id`` and ``trace_id``.

**Labels** come from the feedback stream (``<log_path>/titanic_feedback/data/``, written by
``POST /feedback``): each row's label is the latest feedback for its ``prediction_id``. A label
claimed inline is used only where the operator opts in (``inline_labels``) and no feedback
exists. :class:`FeedbackLabels` counts what was joined, unmatched and repeated.

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

from lifeboat.passenger import BY_NAME, COLUMN_NAMES, FEATURES, ID, LABEL
from lifeboat.streams import FEEDBACK, PREDICTION_ID, PREDICTIONS, is_prediction_id

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
class FeedbackLabels:
    """The labels sent to ``POST /feedback`` (the latest one per prediction id) and what joining
    them to the predictions found."""

    labels: dict[str, int]
    inline: bool = False  # also trust a label claimed inside a prediction request
    records: int = 0
    unreadable: int = 0
    duplicates: int = 0  # feedback for an id that already had some (the latest one counts)
    joined: set[str] = field(default_factory=set)
    claimed: int = 0  # predictions logged with an inline label
    claimed_used: int = 0  # ... used as a label (inline opted in, no feedback for the row)

    def label(self, prediction_id: str | None, claimed: int | None) -> int | None:
        """The label a logged prediction gets: its feedback, else (opted in) its claim."""
        self.claimed += claimed is not None
        if prediction_id is not None and (value := self.labels.get(prediction_id)) is not None:
            self.joined.add(prediction_id)
            return value
        if self.inline and claimed is not None:
            self.claimed_used += 1
            return claimed
        return None

    def as_dict(self) -> dict[str, Any]:
        """The counts, for the report's summary."""
        return {
            "received": self.records,
            "distinct": len(self.labels),
            "duplicates": self.duplicates,
            "joined": len(self.joined),
            "unmatched": len(self.labels) - len(self.joined),
            "unreadable_lines": self.unreadable,
            "claimed_inline": self.claimed,
            "claimed_used": self.claimed_used,
            "inline_labels_trusted": self.inline,
        }


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
    feedback: FeedbackLabels = field(default_factory=lambda: FeedbackLabels({}))

    @property
    def rows(self) -> int:
        return sum(v.rows for v in self.versions.values())


def find_data_dirs(logs: Path, stream: str = PREDICTIONS) -> list[Path]:
    """The folders holding a stream's ``data.<worker>.log*``: ``logs/<stream>/data`` (for
    predictions also ``logs/data`` or ``logs``); else every replica's
    ``logs/<host>/<stream>/data`` (``LIFEBOAT_MONITORING_PER_HOST``: replicas sharing one mount
    each write under their own hostname).

    Raises:
        NoLogs: None of them holds a log file.
    """
    candidates = [logs / stream / "data"]
    if stream == PREDICTIONS:
        candidates += [logs / "data", logs]
    for candidate in candidates:
        if candidate.is_dir() and any(candidate.glob("data.*.log*")):
            return [candidate]
    replicas = sorted(
        d for d in logs.glob(f"*/{stream}/data") if d.is_dir() and any(d.glob("data.*.log*"))
    )
    if replicas:
        return replicas
    kind = "prediction" if stream == PREDICTIONS else stream
    raise NoLogs(
        f"no {kind} logs under {logs} (expected {logs}/{stream}/data/data.<worker>.log); "
        "serve the model and send traffic first, or pass --logs DIR"
    )


def log_files(data_dirs: list[Path], since: datetime | None = None) -> list[Path]:
    """Every worker's file, rotated ones included, in name order within each folder; files last
    written before ``since`` are left out (none of their records can be in the window)."""
    files = [p for d in data_dirs for p in sorted(d.glob("data.*.log*")) if p.is_file()]
    if since is None:
        return files
    return [p for p in files if datetime.fromtimestamp(p.stat().st_mtime) >= since]


def open_scan(logs: Path, since: datetime | None, inline_labels: bool = False) -> LogScan:
    """A scan of the prediction log files under ``logs``, before any is read, with the
    feedback labels already read.

    Raises:
        NoLogs: No prediction log file under ``logs``.
    """
    dirs = find_data_dirs(logs)
    return LogScan(
        data_dir=dirs[0] if len(dirs) == 1 else logs,
        files=log_files(dirs, since),
        feedback=read_feedback(logs, since, inline_labels),
    )


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


def parse_line(line: bytes) -> tuple[str, datetime, tuple[Any, ...], str | None] | None:
    """``(model_version, timestamp, row, prediction_id)`` from one log line, or None if it is
    not a record. The row's label is the one claimed inline (usually None); logs written before
    prediction ids existed have none."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return parse_record(record)


def parse_record(record: Any) -> tuple[str, datetime, tuple[Any, ...], str | None] | None:
    """:func:`parse_line` on a line already decoded from JSON."""
    try:
        version = record["model_version"]
        when = _local_naive(datetime.fromisoformat(record["timestamp"]))
        row = tuple(record[name] for name in ROW_FIELDS)
        prediction_id = record.get(PREDICTION_ID)
    except (ValueError, KeyError, TypeError, AttributeError):  # not an object, a bad field ...
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
    if prediction_id is not None and not is_prediction_id(prediction_id):
        return None
    return str(version), when, row, prediction_id


def _lines(files: list[Path]) -> Iterator[bytes]:
    for path in files:
        with path.open("rb") as fh:  # bytes: a bad UTF-8 sequence spoils one line, not the file
            for line in fh:
                if line.strip():
                    yield line


def read_feedback(logs: Path, since: datetime | None, inline: bool = False) -> FeedbackLabels:
    """Every label of the feedback stream under ``logs`` sent since ``since`` (none if the
    stream has no files yet); unreadable lines are counted, never fatal."""
    feedback = FeedbackLabels({}, inline=inline)
    try:
        files = log_files(find_data_dirs(logs, FEEDBACK), since)
    except NoLogs:
        return feedback
    for line in _lines(files):
        try:
            record = json.loads(line)
            prediction_id, label = record[PREDICTION_ID], record[LABEL]
            when = _local_naive(datetime.fromisoformat(record["timestamp"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            feedback.unreadable += 1
            continue
        if not is_prediction_id(prediction_id) or type(label) is not int or label not in (0, 1):
            feedback.unreadable += 1
            continue
        if since is not None and when < since:
            continue
        feedback.records += 1
        feedback.duplicates += prediction_id in feedback.labels
        feedback.labels[prediction_id] = label
    return feedback


def valid_records(
    files: list[Path], since: datetime | None, scan: LogScan
) -> Iterator[tuple[dict[str, Any], str, datetime, tuple[Any, ...], str | None]]:
    """Every valid record in the window, in file order, as ``(record, model_version, timestamp,
    row, prediction_id)`` (the row's label the claimed one); ``scan`` counts lines, skips and
    rejects."""
    for line in _lines(files):
        scan.lines += 1
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        parsed = None if record is None else parse_record(record)
        if parsed is None:
            scan.unreadable += 1
        elif since is not None and parsed[1] < since:
            scan.outside_window += 1
        else:
            yield record, *parsed


def records(
    files: list[Path], since: datetime | None, scan: LogScan
) -> Iterator[tuple[str, datetime, tuple[Any, ...]]]:
    """Valid records in the window, in file order, each labelled by ``scan.feedback``; ``scan``
    counts lines, skips and rejects."""
    label_at = len(FEATURES)
    for _, version, when, row, prediction_id in valid_records(files, since, scan):
        label = scan.feedback.label(prediction_id, row[label_at])
        yield version, when, (*row[:label_at], label, *row[label_at + 1 :])


def scan_logs(
    logs: Path,
    since: datetime | None = None,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    seed: int = 0,
    inline_labels: bool = False,
) -> LogScan:
    """Read every log file once: per-version counts, reservoir samples and the newest version.

    Raises:
        NoLogs: No log file under ``logs``.
    """
    scan = open_scan(logs, since, inline_labels)
    rng = random.Random(seed)
    newest: datetime | None = None
    for version, when, row in records(scan.files, since, scan):
        scan.versions.setdefault(version, VersionSample()).add(row, when, rng, sample_size)
        if newest is None or when >= newest:
            newest, scan.newest_version = when, version
    return scan


def export_labelled(
    logs: Path, since: datetime | None, out: Path, inline_labels: bool = False
) -> tuple[int, LogScan]:
    """Write every labelled logged row, whichever version served it, as a Kaggle-format CSV:
    labels from the feedback stream (and claimed inline ones only with ``inline_labels``).

    ``PassengerId`` numbers the rows from 1 in log order, Name/Ticket/Cabin are empty: the
    output is the same bytes for the same logs, which makes a retrain on them recognisable.

    Returns:
        The number of rows written and the scan's counts.
    """
    scan = open_scan(logs, since, inline_labels)
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
