"""Drift fixtures: the session's model in its BentoML store, and synthetic monitor logs."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from drift.traffic import log_line

LogWriter = Callable[..., Path]


@pytest.fixture(scope="session")
def served_model(trained, settings) -> dict[str, Any]:
    """The session's Production model imported into the session's BentoML store."""
    import bentoml

    from lifeboat.model_store import import_production

    imported, _ = import_production(settings.tracking_uri, settings.model_name)
    model = bentoml.models.get(imported.tag)  # a new model's own .path is its build folder
    return {"tag": str(model.tag), "version": str(trained.version), "path": Path(model.path)}


@pytest.fixture
def write_log() -> LogWriter:
    """Write passengers as ``bentoml.monitor`` lines into ``<root>/titanic/data/<file>``.

    Probabilities are random: the report tests are about inputs, not about the model.
    """

    def write(
        root: Path,
        passengers: Sequence[dict[str, Any]],
        version: str,
        file: str = "data.1.log",
        start: datetime | None = None,
        extra_lines: Sequence[bytes] = (),
        seed: int = 0,
    ) -> Path:
        rng = random.Random(seed)
        folder = root / "titanic" / "data"
        folder.mkdir(parents=True, exist_ok=True)
        start = start or datetime.now() - timedelta(seconds=len(passengers))
        path = folder / file
        with path.open("ab") as fh:
            for i, passenger in enumerate(passengers):
                when = start + timedelta(seconds=i)
                fh.write(log_line(passenger, rng.random(), version, when, i).encode() + b"\n")
            for line in extra_lines:
                fh.write(line + b"\n")
        return path

    return write
