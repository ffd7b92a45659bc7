"""Passengers to send to the service: like the training data, or drifted away from it.

Used by the drift tests and by the load test (``loadtest/locustfile.py``), so it needs only the
standard library and the passenger schema (``lifeboat.passenger``): a Locust image need not
carry pandas or Evidently. Rows are sampled from ``data/titanic.csv``; the drifted ones shift
three features at once:

* **class mix**: first class becomes the most common (50/30/20 instead of about 25/21/54);
* **Fare**: multiplied by 2.5 (a price rise), capped at the schema's 10 000;
* **Age**: 15 years older, capped at 120; a missing age stays missing.

Sex, SibSp, Parch, Embarked and the label keep the sampled passenger's values, so a labelled
drifted passenger is a real passenger's outcome with a shifted profile.
"""

from __future__ import annotations

import csv
import json
import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from lifeboat.passenger import BY_NAME, FEATURES, LABEL, parse_csv_field
from lifeboat.streams import (
    FEEDBACK,
    PREDICTION_ID,
    PREDICTIONS,
    SENDER,
    SHADOW_PROBABILITY,
    SHADOW_VERSION,
    request_hex,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "titanic.csv"

DRIFTED_CLASS_MIX = {1: 0.5, 2: 0.3, 3: 0.2}
FARE_FACTOR = 2.5
AGE_SHIFT = 15.0
MAX_FARE = float(BY_NAME["Fare"].maximum or 0)
MAX_AGE = float(BY_NAME["Age"].maximum or 0)


def load_rows(path: Path = DATA) -> list[dict[str, Any]]:
    """The features and label of every passenger in a Kaggle-format CSV, typed as JSON sends them.

    Empty fields become ``None``; other columns (Name, Ticket, ...) are left out.

    Raises:
        ValueError: A number column holds something else (see ``parse_csv_field``).
    """
    rows = []
    with Path(path).open(newline="", encoding="utf-8") as fh:
        for raw in csv.DictReader(fh):
            rows.append({name: parse_csv_field(name, raw.get(name)) for name in (*FEATURES, LABEL)})
    return rows


def drift(row: dict[str, Any]) -> dict[str, Any]:
    """One passenger moved away from the training distribution (class is chosen by the caller)."""
    out = dict(row)
    if out["Fare"] is not None:
        out["Fare"] = round(min(out["Fare"] * FARE_FACTOR, MAX_FARE), 4)
    if out["Age"] is not None:
        out["Age"] = round(min(out["Age"] + AGE_SHIFT, MAX_AGE), 4)
    return out


class TrafficSampler:
    """Draws passengers one at a time, as a Locust task does.

    Args:
        drifted: Shift the class mix, Fare and Age (see the module docstring).
        labelled: Include ``Survived``, as a client reporting outcomes would.
        seed: Seed of the sampler's own random generator (``None``: not reproducible).
        path: The passengers to sample from (Kaggle columns).
    """

    def __init__(
        self,
        drifted: bool = False,
        labelled: bool = False,
        seed: int | None = None,
        path: Path = DATA,
    ) -> None:
        self.drifted = drifted
        self.labelled = labelled
        self.rng = random.Random(seed)
        self.rows = load_rows(path)
        self.by_class: dict[int, list[dict[str, Any]]] = {}
        for row in self.rows:
            self.by_class.setdefault(row["Pclass"], []).append(row)

    def __call__(self) -> dict[str, Any]:
        """One passenger as a JSON-ready dict."""
        if self.drifted:
            classes = list(DRIFTED_CLASS_MIX)
            (pclass,) = self.rng.choices(classes, weights=[DRIFTED_CLASS_MIX[c] for c in classes])
            row = drift(self.rng.choice(self.by_class[pclass]))
        else:
            row = dict(self.rng.choice(self.rows))
        if not self.labelled:
            row.pop(LABEL, None)
        return row

    def sample(self, n: int) -> list[dict[str, Any]]:
        """``n`` passengers drawn with replacement."""
        return [self() for _ in range(n)]


def passengers(
    n: int, drifted: bool = False, labelled: bool = False, seed: int | None = 0
) -> list[dict[str, Any]]:
    """``n`` passengers sampled from ``data/titanic.csv``, drifted or not (seeded by default)."""
    return TrafficSampler(drifted=drifted, labelled=labelled, seed=seed).sample(n)


def log_line(
    passenger: dict[str, Any],
    probability: float,
    model_version: str,
    timestamp: datetime,
    request_id: int = 0,
    threshold: float = 0.5,
    shadow: tuple[str, float] | None = None,
) -> str:
    """The line ``bentoml.monitor`` writes when the service scores ``passenger`` (its label, if
    present, as a claimed inline label): synthetic logs for tests and the benchmark, no service
    needed. Its prediction id is :func:`lifeboat.streams.request_hex` of ``request_id``;
    ``shadow`` is the shadow's ``(version, probability)`` when one scored the passenger too."""
    record: dict[str, Any] = {name: passenger.get(name) for name in FEATURES}
    record[LABEL] = passenger.get(LABEL)
    record.update(
        probability=probability,
        prediction=int(probability >= threshold),
        model_version=model_version,
        prediction_id=request_hex(request_id),
        timestamp=timestamp.isoformat(),
        request_id=str(request_id),
        trace_id=str(request_id * 7919),
    )
    if shadow is not None:
        record[SHADOW_VERSION], record[SHADOW_PROBABILITY] = shadow
    return json.dumps(record)


def feedback_line(
    request_id: int, label: int, timestamp: datetime, sender: str = "feedback"
) -> str:
    """The line ``POST /feedback`` writes for a label of the prediction :func:`log_line` logged
    under ``request_id``."""
    record = {
        PREDICTION_ID: request_hex(request_id),
        LABEL: label,
        SENDER: sender,
        "timestamp": timestamp.isoformat(),
        "request_id": str(request_id + 1),
        "trace_id": "0",
    }
    return json.dumps(record)


def write_shadowed(
    root: Path,
    production: str,
    shadow: str,
    n: int,
    seed: int = 0,
    shadow_noise: float = 0.2,
    labelled: int | None = None,
    file: str = "data.1.log",
) -> Path:
    """Write the monitoring files of ``n`` passengers scored by Production and, in shadow, by
    ``shadow`` (``lifeboat.streams``' shadow columns), with the outcomes of the first
    ``labelled`` (default all) sent to ``POST /feedback`` a second later.

    Production's probability follows the real outcome (0.3 + 0.4 * survived, plus noise 0.25);
    the shadow's is Production's plus ``shadow_noise`` more: a deliberately worse model (0: the
    same). Synthetic logs for tests and demos of ``drift shadow``; returns the predictions file.
    """
    rng = random.Random(seed)
    rows = passengers(n, labelled=True, seed=seed)
    labelled = n if labelled is None else labelled
    start = datetime.now() - timedelta(seconds=n + 2)
    folders = [root / PREDICTIONS / "data", root / FEEDBACK / "data"]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    with (folders[0] / file).open("a") as out, (folders[1] / file).open("a") as feedback:
        for i, row in enumerate(rows):
            label = row.pop(LABEL)
            p = min(1.0, max(0.0, 0.3 + 0.4 * label + rng.gauss(0, 0.25)))
            p_shadow = min(1.0, max(0.0, p + rng.gauss(0, shadow_noise)))
            when, request_id = start + timedelta(seconds=i), rng.getrandbits(63)
            out.write(log_line(row, p, production, when, request_id, shadow=(shadow, p_shadow)))
            out.write("\n")
            if i < labelled:
                feedback.write(feedback_line(request_id, label, when + timedelta(seconds=1)) + "\n")
    return folders[0] / file
