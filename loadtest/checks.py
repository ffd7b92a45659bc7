"""What a correct answer looks like: each check returns what is wrong, or None.

Pure functions over decoded JSON, so they are unit-tested without a server and shared by the
Locust users and the bench. The messages become the rows of Locust's failure table, so they
name the field and the value and stay short.
"""

from __future__ import annotations

import math
from typing import Any


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def label_problem(survived: Any) -> str | None:
    """A survival label must be the integer 0 or 1 (JSON ``true`` is not a label)."""
    if not _is_number(survived) or survived not in (0, 1):
        return f"survived {survived!r} is not 0 or 1"
    return None


def prediction_problem(body: Any) -> str | None:
    """What is wrong with one ``/predict_titanic`` answer, if anything."""
    if not isinstance(body, dict):
        return f"answer is a JSON {type(body).__name__}, not an object"
    for field in ("survived", "probability", "model_version", "drift_alerts"):
        if field not in body:
            return f"answer has no {field}"
    if (problem := label_problem(body["survived"])) is not None:
        return problem
    probability = body["probability"]
    # math.isfinite also rejects NaN, which no comparison catches
    if not _is_number(probability) or not math.isfinite(probability) or not 0 <= probability <= 1:
        return f"probability {probability!r} is not in [0, 1]"
    if not isinstance(body["model_version"], str) or not body["model_version"]:
        return f"model_version {body['model_version']!r} is not a version"
    if not isinstance(body["drift_alerts"], list):
        return "drift_alerts is not a list"
    return None


def feedback_problem(body: Any, sent: int) -> str | None:
    """What is wrong with a ``/feedback`` answer to ``sent`` labels."""
    accepted = body.get("accepted") if isinstance(body, dict) else None
    if accepted != sent:
        return f"feedback accepted {accepted!r} of {sent} labels"
    return None


def batch_problem(body: Any, expected: int) -> str | None:
    """What is wrong with a ``/predict_titanic_batch`` answer to ``expected`` passengers."""
    predictions = body.get("predictions") if isinstance(body, dict) else None
    if not isinstance(predictions, list):
        return "answer has no predictions list"
    if len(predictions) != expected:
        return f"{len(predictions)} predictions for {expected} passengers"
    for index, prediction in enumerate(predictions):
        if (problem := prediction_problem(prediction)) is not None:
            return f"prediction {index}: {problem}"
    return None


def invocations_problem(body: Any, expected: int) -> str | None:
    """What is wrong with an MLflow ``/invocations`` answer of a Spark classifier (labels)."""
    predictions = body.get("predictions") if isinstance(body, dict) else None
    if not isinstance(predictions, list):
        return "answer has no predictions list"
    if len(predictions) != expected:
        return f"{len(predictions)} predictions for {expected} passengers"
    for index, label in enumerate(predictions):
        if (problem := label_problem(label)) is not None:
            return f"prediction {index}: {problem}"
    return None
