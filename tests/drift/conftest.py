"""Drift fixtures: synthetic monitor logs (the session's model in its store is ``served_model``,
tests/conftest.py)."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from drift.traffic import feedback_line as log_feedback
from drift.traffic import log_line
from lifeboat.passenger import LABEL

LogWriter = Callable[..., Path]


@pytest.fixture
def write_log() -> LogWriter:
    """Write passengers as ``bentoml.monitor`` lines into ``<root>/titanic/data/<file>``.

    A passenger's ``Survived``, if any, is reported as the service would see it: with
    ``labels="feedback"`` (default) as a ``POST /feedback`` record a second later in
    ``<root>/titanic_feedback/data/<file>``, with ``labels="inline"`` as a label claimed inside
    the prediction request. Probabilities are random: the report tests are about inputs, not
    about the model.
    """

    def write(
        root: Path,
        passengers: Sequence[dict[str, Any]],
        version: str,
        file: str = "data.1.log",
        start: datetime | None = None,
        extra_lines: Sequence[bytes] = (),
        seed: int = 0,
        labels: str = "feedback",
    ) -> Path:
        assert labels in ("feedback", "inline")
        rng = random.Random(seed)
        ids = random.Random(f"{seed}/{file}/{version}/{len(passengers)}")  # unique per call
        folder = root / "titanic" / "data"
        folder.mkdir(parents=True, exist_ok=True)
        start = start or datetime.now() - timedelta(seconds=len(passengers) + 1)
        path = folder / file
        feedback: list[str] = []
        with path.open("ab") as fh:
            for i, passenger in enumerate(passengers):
                when = start + timedelta(seconds=i)
                request_id = ids.getrandbits(63)
                label = passenger.get(LABEL)
                if labels == "feedback" and label is not None:
                    passenger = {k: v for k, v in passenger.items() if k != LABEL}
                    feedback.append(log_feedback(request_id, label, when + timedelta(seconds=1)))
                line = log_line(passenger, rng.random(), version, when, request_id)
                fh.write(line.encode() + b"\n")
            for line in extra_lines:
                fh.write(line + b"\n")
        if feedback:
            (root / "titanic_feedback" / "data").mkdir(parents=True, exist_ok=True)
            with (root / "titanic_feedback" / "data" / file).open("a") as fh:
                fh.write("".join(f"{line}\n" for line in feedback))
        return path

    return write
