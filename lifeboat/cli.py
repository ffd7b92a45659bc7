"""What the command-line apps (``python -m training``, ``python -m drift``) share.

Not used by the service: the Bento ships this module but never imports it.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn

from lifeboat.settings import proxy_artifact_downloads

# Libraries whose INFO lines would drown the progress a user is waiting for.
NOISY_LOGGERS = (
    "py4j",
    "mlflow",
    "alembic",
    "urllib3",
    "matplotlib",
    "PIL",
    "onnxmltools",
    "skl2onnx",
    "bentoml",
)


def setup_logging(verbose: bool) -> None:
    """Timestamped progress lines on stderr (DEBUG with ``verbose``); libraries at WARNING."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    proxy_artifact_downloads()
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def fail(code: int, message: str) -> NoReturn:
    """Print ``error: message`` in red on stderr and exit with ``code``."""
    import typer

    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)
