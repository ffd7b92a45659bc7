"""Model features: the passenger fields a client sends plus features derived from them.

Derived features are written once, as arithmetic on column-like values, and evaluated by two
backends: Spark Columns in training and numpy arrays when serving. Only operators both
backends share (``+``, ``==``) appear here, and only on required (never-null) fields.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from lifeboat.passenger import CATEGORICAL_FEATURES, NUMERIC_FEATURES

DERIVED_FEATURES: tuple[str, ...] = ("FamilySize", "IsAlone")

# Model inputs in the order the Spark pipeline and the ONNX graph declare them.
MODEL_NUMERIC_INPUTS: tuple[str, ...] = NUMERIC_FEATURES + DERIVED_FEATURES
MODEL_STRING_INPUTS: tuple[str, ...] = CATEGORICAL_FEATURES
# Missing or unseen categories reach the ONNX graph as this string; its label encoders map
# anything not seen in training to Spark's "keep" bucket.
MISSING_CATEGORY = ""


def derive(cols: Mapping[str, Any], to_float: Callable[[Any], Any]) -> dict[str, Any]:
    """Compute the derived features from column-like values.

    Args:
        cols: ``SibSp`` and ``Parch`` as Spark Columns or numpy arrays.
        to_float: The backend's cast to a floating-point column.

    Returns:
        Derived feature name to column-like value, in ``DERIVED_FEATURES`` order.
    """
    family_size = cols["SibSp"] + cols["Parch"] + 1
    return {"FamilySize": to_float(family_size), "IsAlone": to_float(family_size == 1)}
