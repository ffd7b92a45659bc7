"""Spark feature engineering: derived columns, preprocessing stages and classifier inputs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyspark.ml import Pipeline
from pyspark.ml.feature import Imputer, OneHotEncoder, StringIndexer, VectorAssembler
from pyspark.sql import functions as F

from lifeboat.features import DERIVED_FEATURES, MODEL_NUMERIC_INPUTS, MODEL_STRING_INPUTS, derive

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

IMPUTED = ("Age", "Fare")  # the numeric inputs that may be missing
FEATURES_COL = "features"


def with_derived(df: DataFrame) -> DataFrame:
    """Add the derived feature columns (one definition, shared with serving)."""
    cols = {name: F.col(name) for name in ("SibSp", "Parch")}
    derived = derive(cols, lambda c: c.cast("double"))
    return df.select("*", *[derived[name].alias(name) for name in DERIVED_FEATURES])


def preprocessing() -> Pipeline:
    """Imputer → StringIndexer(keep) → OneHotEncoder → VectorAssembler.

    Unseen or missing categories go to StringIndexer's extra "keep" bucket, which keeps a
    one-hot slot of its own (dropLast=False). With dropLast=True that bucket would become the
    reference level that the intercept describes: the two training passengers without a port
    both survived, and logistic regression then scored every port-less passenger near 1.0.
    """
    imputer = Imputer(
        inputCols=list(IMPUTED), outputCols=[f"{c}_imp" for c in IMPUTED], strategy="median"
    )
    indexer = StringIndexer(
        inputCols=list(MODEL_STRING_INPUTS),
        outputCols=[f"{c}_idx" for c in MODEL_STRING_INPUTS],
        handleInvalid="keep",
        stringOrderType="alphabetAsc",
    )
    encoder = OneHotEncoder(
        inputCols=[f"{c}_idx" for c in MODEL_STRING_INPUTS],
        outputCols=[f"{c}_ohe" for c in MODEL_STRING_INPUTS],
        dropLast=False,
    )
    numeric = [f"{c}_imp" if c in IMPUTED else c for c in MODEL_NUMERIC_INPUTS]
    assembler = VectorAssembler(
        inputCols=numeric + [f"{c}_ohe" for c in MODEL_STRING_INPUTS],
        outputCol=FEATURES_COL,
        handleInvalid="error",
    )
    return Pipeline(stages=[imputer, indexer, encoder, assembler])


def feature_names(prep_model) -> list[str]:
    """Names of the assembled vector's slots (for importances and coefficients)."""
    indexer = prep_model.stages[1]
    names = list(MODEL_NUMERIC_INPUTS)
    for col, labels in zip(MODEL_STRING_INPUTS, indexer.labelsArray, strict=True):
        names.extend([*(f"{col}={label}" for label in labels), f"{col}=<unknown>"])
    return names


def strip_ml_metadata(df: DataFrame, col: str = FEATURES_COL) -> DataFrame:
    """Drop the ML attribute metadata of the feature vector.

    Trees trained on one-hot slots that carry nominal metadata use categorical splits, which
    onnxmltools converts wrongly; without the metadata they split numerically (x <= 0.5), which
    converts exactly.
    """
    return df.withColumn(col, F.col(col).alias(col, metadata={}))
