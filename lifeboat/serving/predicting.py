"""The prediction path behind ``service.py``: score a request's passengers and log the records.

Scoring itself is ``lifeboat.prediction`` (no HTTP, no BentoML); this module adds what a
serving worker needs around it: the request ids BentoML assigns, adaptive batches of requests,
and a ``bentoml.monitor`` record per passenger.
"""

from __future__ import annotations

import contextvars
import gc
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from bentoml._internal.context import trace_context  # no public accessor for the request id
from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace

from lifeboat.passenger import BY_NAME, FEATURES, LABEL
from lifeboat.prediction import LoadedModel, Scored, predict
from lifeboat.serving.monitoring import count_dropped, count_shadow_failure, stream
from lifeboat.streams import (
    PREDICTION_ID,
    PREDICTIONS,
    SHADOW_PROBABILITY,
    SHADOW_VERSION,
    batch_ids,
    request_hex,
)

# A child of BentoML's logger, so INFO reaches the server log (the root logger shows WARNING+).
logger = logging.getLogger("bentoml.lifeboat")


@dataclass(frozen=True)
class Received:
    """A passenger and the ids of the request that sent it."""

    passenger: Any
    request_id: int | None
    span: Any  # the request's OpenTelemetry span: the monitor reads the trace id from it

    @classmethod
    def now(cls, passenger: Any) -> Received:
        """Stamp a passenger with the current request's ids (call while parsing the body)."""
        return cls(passenger, trace_context.request_id, otel_trace.get_current_span())

    def run_as_request(self, func: Callable[[], None]) -> None:
        """Run ``func`` with this passenger's request ids current, in a copied context."""

        def run() -> None:
            trace_context.request_id = self.request_id
            otel_context.attach(otel_trace.set_span_in_context(self.span))
            func()

        contextvars.copy_context().run(run)


def freeze_startup_heap() -> None:
    """Keep what a started worker holds (imports, app, model) out of the collector's scans.

    A 1000-passenger request allocates thousands of objects, which sets off full collections
    that walk every object the worker has; frozen, those are skipped (``gc.freeze``, the
    standard remedy for long-lived server heaps; the saving is measured in the README's serving
    results). Garbage already unreachable is collected first.
    """
    gc.collect()
    gc.freeze()


def predict_and_log(
    model: LoadedModel, passengers: Sequence[Any], shadow: LoadedModel | None = None
) -> Scored:
    """Score one request's passengers (by the shadow too) and write their monitoring records."""
    ids = batch_ids(trace_context.request_id, len(passengers))
    scored = _counted(predict(model, passengers, ids, shadow))
    log_predictions(scored)
    return scored


def predict_received(
    model: LoadedModel, batch: Sequence[Received], shadow: LoadedModel | None = None
) -> Scored:
    """Score an adaptive batch (by the shadow too, in the same call); each record is written
    under its own request's ids."""
    ids = [request_hex(item.request_id) for item in batch]
    scored = _counted(predict(model, [item.passenger for item in batch], ids, shadow))
    for i, item in enumerate(batch):
        item.run_as_request(partial(log_predictions, scored.take(i, i + 1)))
    return scored


def _counted(scored: Scored) -> Scored:
    if scored.shadow_error is not None:
        count_shadow_failure(scored.shadow_error)
    return scored


def log_predictions(scored: Scored) -> None:
    """Write one ``bentoml.monitor`` record per passenger: features, claimed label, outputs,
    version, prediction id and the shadow's version and probability (``lifeboat.streams``).

    Never Name, Ticket or Cabin. Monitoring must not fail a prediction: errors are logged.
    """
    # BentoML learns the columns in a process's first record block and warns once per
    # repeated value there; a one-passenger first block keeps that quiet.
    for start, stop in ((0, 1), (1, len(scored))):
        if start < stop:
            _log_block(scored.take(start, stop))


def _log_block(scored: Scored) -> None:
    try:
        with stream(PREDICTIONS) as mon:
            for name in FEATURES:
                kind = "categorical" if BY_NAME[name].kind == "category" else "numerical"
                mon.log_batch(scored.columns[name], name, "feature", kind)
            mon.log_batch(scored.columns[LABEL], LABEL, "target", "categorical")
            # "Survived" is the label, so the predicted class goes in "prediction".
            mon.log_batch(scored.probability, "probability", "prediction", "numerical")
            mon.log_batch(scored.survived, "prediction", "prediction", "categorical")
            versions = [scored.model_version] * len(scored)
            mon.log_batch(versions, "model_version", "prediction", "categorical")
            mon.log_batch(scored.prediction_ids, PREDICTION_ID, "prediction", "categorical")
            shadow_versions, shadow_probabilities = scored.shadow_columns()
            mon.log_batch(shadow_versions, SHADOW_VERSION, "prediction", "categorical")
            mon.log_batch(shadow_probabilities, SHADOW_PROBABILITY, "prediction", "numerical")
    except Exception as exc:
        count_dropped(len(scored), exc)
