"""Passengers to send: rows of data/titanic.csv as clients send them, clean or drifted.

Field names, types and bounds come from ``lifeboat.passenger``; every row is checked against
:class:`~lifeboat.passenger.Passenger` before it is used, so a request the service rejects is
a finding about the service, never about the load test.

Drifted passengers come from a pluggable sampler: ``--drift-source module:factory`` names a
function that returns a zero-argument callable drawing one drifted passenger. The default,
:func:`drift_traffic`, is ``drift.traffic``'s, the population the drift report is tested on.
"""

from __future__ import annotations

import csv
import importlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from lifeboat.features import derive
from lifeboat.passenger import (
    CATEGORICAL_FEATURES,
    FEATURES,
    LABEL,
    Passenger,
    parse_csv_field,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "titanic.csv"
DEFAULT_DRIFT = "loadtest.passengers:drift_traffic"

Sampler = Callable[[], dict[str, Any]]


@lru_cache
def load(path: Path = DATA, labelled: bool = False) -> tuple[dict[str, Any], ...]:
    """The feature fields of every row of ``path`` that the passenger schema accepts, and with
    ``labelled`` its ``Survived`` where the file has one.

    Raises:
        ValueError: No row of the file is a valid passenger.
    """
    passengers = []
    with Path(path).open(newline="") as fh:
        for record in csv.DictReader(fh):
            try:
                passenger = {name: parse_csv_field(name, record.get(name)) for name in FEATURES}
                if labelled and (label := parse_csv_field(LABEL, record.get(LABEL))) is not None:
                    passenger[LABEL] = label
                Passenger.model_validate(passenger)
            except (ValueError, ValidationError):  # a malformed row is skipped, not sent
                continue
            passengers.append(passenger)
    if not passengers:
        raise ValueError(f"no valid passenger in {path}")
    return tuple(passengers)


def drift_traffic() -> Sampler:
    """Drifted passengers from ``drift.traffic``: first class most common, fares 2.5x, 15 years
    older (what the drift report is expected to flag), each with its real passenger's label
    (:class:`Traffic` drops it unless asked to send labels)."""
    from drift.traffic import TrafficSampler

    return TrafficSampler(drifted=True, labelled=True)


@lru_cache
def drift_sampler(spec: str = "") -> Sampler:
    """The drifted-passenger sampler made by the factory named ``"package.module:function"``.

    One sampler per process, shared by its users. Empty ``spec``: :func:`drift_traffic`.

    Raises:
        ValueError: ``spec`` is not of that form or names nothing callable.
    """
    module_name, _, attribute = (spec or DEFAULT_DRIFT).partition(":")
    if not module_name or not attribute:
        raise ValueError(f"drift source {spec!r} is not 'module:function'")
    factory = getattr(importlib.import_module(module_name), attribute, None)
    if not callable(factory):
        raise ValueError(f"drift source {spec!r} is not a callable")
    return factory()


def spark_record(passenger: dict[str, Any]) -> dict[str, Any]:
    """A passenger as the Spark pipeline reads it: numbers as doubles, derived features added."""
    record = {
        name: float(value) if isinstance(value, int) else value for name, value in passenger.items()
    }
    return record | derive(passenger, float)


def complete_categories(passengers: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The passengers with every categorical feature present.

    MLflow's Spark flavour turns a request into a pandas frame, then a Spark one: a string
    column that is null in every row arrives as NullType, which StringIndexer refuses. Two
    rows of data/titanic.csv lack Embarked.
    """
    return [p for p in passengers if all(p[name] is not None for name in CATEGORICAL_FEATURES)]


@dataclass
class Traffic:
    """Draws passengers at random from ``passengers``, a share of them from ``drifted``.

    ``labelled``: keep ``Survived`` where a passenger has one, for the user to report through
    ``POST /feedback`` after the answer (``drift retrain`` learns from those); otherwise it is
    dropped. Each call returns a fresh dict, which the caller may change.
    """

    passengers: Sequence[dict[str, Any]]
    drifted: Sampler | None = None
    drift_share: float = 0.0
    rng: random.Random = field(default_factory=random.Random)
    labelled: bool = False

    def one(self) -> tuple[dict[str, Any], bool]:
        """One passenger and whether it was drifted."""
        drifted = self.drifted is not None and self.rng.random() < self.drift_share
        passenger = self.drifted() if drifted else self.rng.choice(self.passengers)  # type: ignore[misc]
        if not self.labelled:
            return {k: v for k, v in passenger.items() if k != LABEL}, drifted
        return dict(passenger), drifted

    def many(self, count: int) -> list[dict[str, Any]]:
        """``count`` passengers for one batch request."""
        return [self.one()[0] for _ in range(count)]
