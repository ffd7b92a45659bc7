"""``bentoml.monitor``'s default files and lines, written one block per request.

BentoML's :class:`DefaultMonitor` appends a value at a time and emits one logging record per
passenger through ``python-json-logger``: most of a 1000-passenger batch request's cost (see
the README's serving results). :class:`BlockMonitor` keeps everything a reader sees — the files
(``<log_path>/<name>/data/data.<worker>.log``, rotated daily), the schema file, one JSON object
per passenger with ``timestamp``, ``request_id`` and ``trace_id`` — and changes how they are
produced: columns are extended a batch at a time and a request's lines go to the file as one
write, so a killed server still loses only requests in flight. Each monitor has loggers of its
own, so that one process can write several streams (predictions and feedback).
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import functools
import itertools
import logging
import logging.handlers
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import bentoml
import pydantic_core
from bentoml._internal.context import trace_context
from bentoml._internal.monitoring.base import MON_COLUMN_VAR, MON_DATAS_VAR
from bentoml._internal.monitoring.default import DefaultMonitor

from lifeboat.settings import get_settings

logger = logging.getLogger("bentoml.lifeboat.monitoring")
WARN_EVERY_SECONDS = 60.0
_last_warning: dict[str, float] = {}  # by counter: when it was last said


@functools.cache
def _counter(name: str, documentation: str) -> Any:
    # Created on first use, in the worker: prometheus_client must see BentoML's multiprocess
    # directory, which a worker sets after importing the service.
    import prometheus_client

    return prometheus_client.Counter(name, documentation)


def _count(name: str, documentation: str, amount: int, said: str) -> None:
    """Add to a counter; say ``said`` at most once a minute per counter, not per event."""
    _counter(name, documentation).inc(amount)
    now = time.monotonic()
    if now - _last_warning.get(name, float("-inf")) >= WARN_EVERY_SECONDS:
        _last_warning[name] = now
        logger.warning("%s (%s_total): %s", documentation.split(" (")[0], name, said)


def count_dropped(records: int, error: BaseException | None) -> None:
    """Count records that never reached the log; say so at most once a minute, not per line."""
    _count(
        "lifeboat_monitoring_records_dropped",
        "Prediction records that could not be written (a full disk, a read-only mount ...)",
        records,
        f"{type(error).__name__}: {error}",
    )


def count_shadow_failure(error: str) -> None:
    """Count a batch the shadow failed to score (its records carry nulls); said at most once a
    minute."""
    _count(
        "lifeboat_shadow_failures",
        "Batches the shadow model failed to score (their records carry no shadow columns)",
        1,
        error,
    )


def _dropped_by_handler(record: logging.LogRecord) -> None:
    # logging calls handleError inside its except block: the error is the current exception.
    count_dropped(str(record.msg).count("\n") + 1, sys.exc_info()[1])


def _schema_not_written(record: logging.LogRecord) -> None:
    # The columns' description, once per worker: not a record, so only said, not counted.
    error = sys.exc_info()[1]
    logger.warning("monitoring schema not written: %s: %s", type(error).__name__, error)


def _own_logger(name: str, handler: logging.Handler) -> logging.Logger:
    log = logging.getLogger(name)
    for old in log.handlers[:]:  # a monitor set up again (tests) replaces its file handler
        log.removeHandler(old)
        old.close()
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    return log


class BlockMonitor(DefaultMonitor):
    """A :class:`DefaultMonitor` that writes each request's records in one piece.

    A record that cannot be written is counted and dropped: monitoring never fails a
    prediction.
    """

    def _on_write_error(self, record: logging.LogRecord) -> None:
        _dropped_by_handler(record)

    def _init_logger(self) -> None:
        # BentoML's version configures the process-wide loggers "bentoml_monitor_data" and
        # "bentoml_monitor_schema" through logging.config.dictConfig: a second monitor in the
        # process (predictions and feedback) would take over the first one's logger, and
        # dictConfig closes every handler already open. Each monitor gets loggers of its own,
        # with BentoML's files, daily rotation and schema format.
        from bentoml._internal.context import server_context
        from pythonjsonlogger.jsonlogger import JsonFormatter

        worker = server_context.worker_index or 0
        folder = Path(self.log_path) / self.name
        (folder / "data").mkdir(parents=True, exist_ok=True)
        (folder / "schema").mkdir(parents=True, exist_ok=True)
        # BentoML keeps every day's file forever: the rotation deletes the oldest beyond the
        # retention (LIFEBOAT_MONITORING_RETENTION_DAYS; 0 keeps them all).
        data = logging.handlers.TimedRotatingFileHandler(
            folder / "data" / f"data.{worker}.log",
            when="D",
            backupCount=get_settings().monitoring_retention_days,
        )
        data.setFormatter(logging.Formatter("%(message)s"))  # lines arrive already as JSON
        # logging's default prints a traceback per failed write and counts nothing.
        data.handleError = self._on_write_error  # type: ignore[method-assign]
        schema = logging.handlers.RotatingFileHandler(folder / "schema" / f"schema.{worker}.log")
        schema.setFormatter(JsonFormatter("()", validate=False))
        schema.handleError = _schema_not_written  # type: ignore[method-assign]
        # BentoML's DefaultMonitor sets both to None in __init__, so they are typed as None.
        self.data_logger = _own_logger(f"bentoml_monitor_data.{self.name}", data)  # type: ignore[assignment]
        self.schema_logger = _own_logger(f"bentoml_monitor_schema.{self.name}", schema)  # type: ignore[assignment]

    def log_batch(self, data_batch: Iterable[Any], name: str, role: str, data_type: str) -> None:
        """Append a column's values for every passenger of the block."""
        values = list(data_batch)
        if not values:
            return
        # The first value goes through log(): it registers the column (and renames a reserved
        # name) as BentoML does; the rest are appended under the same name in one go.
        self.log(values[0], name, role, data_type)
        column = f"{name}_" if name in self.PRESERVED_COLUMNS else name
        datas = MON_DATAS_VAR.get()
        assert datas is not None
        datas[column].extend(values[1:])

    def export_data(self, datas: dict[str, collections.deque[Any]]) -> None:
        """One JSON line per passenger, all of the block's lines in one logging call."""
        if self.data_logger is None:
            self._init_logger()
            assert self.data_logger is not None
        extra = {
            self.COLUMN_TIME: datetime.datetime.now().isoformat(),
            self.COLUMN_RID: str(trace_context.request_id),
            self.COLUMN_TID: str(trace_context.trace_id),
        }
        lengths = {name: len(queue) for name, queue in datas.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"columns of unequal length: {lengths}")
        keys = (*datas, *extra)
        # The same three values end every row; the checked columns set the number of rows.
        repeated = (itertools.repeat(value) for value in extra.values())
        rows = zip(*datas.values(), *repeated, strict=False)
        # pydantic's Rust encoder: a quarter of json.dumps's time. NaN stays NaN and a value
        # JSON has no type for becomes its str(), as python-json-logger writes them.
        encode = functools.partial(pydantic_core.to_json, fallback=str, inf_nan_mode="constants")
        lines = [encode(dict(zip(keys, row, strict=True))) for row in rows]
        for queue in datas.values():
            queue.clear()
        if lines:
            self.data_logger.info(b"\n".join(lines).decode())


class StrictBlockMonitor(BlockMonitor):
    """A :class:`BlockMonitor` whose failed write raises, for records a client must resend
    (feedback labels) rather than lose."""

    def _on_write_error(self, record: logging.LogRecord) -> None:
        raise  # noqa: PLE0704 - logging calls handleError inside its except block


@contextlib.contextmanager
def stream(name: str, strict: bool = False) -> Any:
    """``bentoml.monitor(name)`` writing block by block to the configured folder (where
    ``LIFEBOAT_MONITORING_DIR`` and ``LIFEBOAT_MONITORING_PER_HOST`` put it, else BentoML's
    ``monitoring.options.log_path``)."""
    log_dir = get_settings().monitoring_log_path
    options = {"monitor_options": {"log_path": str(log_dir)}} if log_dir else {}
    monitor_class = StrictBlockMonitor if strict else BlockMonitor
    try:
        # BentoML's overloads type monitor_class as an instance; it takes the class.
        with bentoml.monitor(name, monitor_class=monitor_class, **options) as mon:  # type: ignore[call-overload]
            yield mon
    finally:
        # bentoml.monitor leaves a failed record's buffers in the context, and the next record
        # in the same context would fail BentoML's assertion that none is open.
        MON_DATAS_VAR.set(None)
        MON_COLUMN_VAR.set(None)
