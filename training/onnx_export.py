"""Export a fitted Spark pipeline to ONNX, repaired so onnxruntime scores it exactly like Spark.

``onnxmltools.convert_sparkml`` (1.16) gets the pipeline most of the way; what it gets wrong for
ours is fixed here and checked by ``parity`` on the training rows and ``edge_rows``:

* Opsets: the stock one-hot converter emits ``Reshape`` in domain ``ai.onnx`` at opset 13 while
  other nodes use ``""`` at a lower version, so the default domain is imported twice; and the
  Imputer's ``Split`` carries ``split`` as an attribute, which opset 13 made an input.
  onnxruntime rejects that graph. The repair declares the domain once and moves ``split``.
* LabelEncoder: unseen and missing categories map to -1; StringIndexer "keep" maps them to
  ``numLabels``. The repair sets that default.
* OneHotEncoder and LogisticRegression: replaced by the converters in ``onnx_converters``
  (exact one-hot slots for every handleInvalid/dropLast combination; float64 logistic maths).
* Trees: categorical splits convert wrongly (only the first category is kept); training strips
  the metadata that causes them and ``to_onnx`` refuses a model that still has one.
"""

from __future__ import annotations

import contextlib
import io
import re
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnxmltools import convert_sparkml
from onnxmltools.convert.common.data_types import (
    FloatTensorType,
    StringTensorType,
)
from pyspark.ml.functions import vector_to_array
from pyspark.sql import SparkSession
from pyspark.sql.types import DoubleType, StringType, StructField, StructType

from lifeboat.features import DERIVED_FEATURES, MODEL_NUMERIC_INPUTS, MODEL_STRING_INPUTS
from lifeboat.passenger import BY_NAME, FEATURES
from lifeboat.scoring import PROBABILITY, OnnxScorer
from training.features import with_derived
from training.onnx_converters import CONVERTERS, OPSET, SHAPE_CALCULATORS
from training.onnx_trees import trees_read_once

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel
    from pyspark.sql import DataFrame

# Default-domain ops checked to mean the same at OPSET as at the older versions the sparkml
# converters tag them with (Split once its attribute becomes an input), plus those emitted here.
# Anything else is refused, not guessed.
_SAFE_AT_OPSET = frozenset(
    ("Add", "ArgMax", "Cast", "Concat", "Exp", "Greater", "MatMul", "Mul", "Neg")
    + ("Reciprocal", "Reshape", "Sigmoid", "Split", "Sub")
)
_CATEGORICAL_SPLIT = re.compile(r"feature \d+ (not )?in \{")

# Passengers at the edges of the schema; each once broke, or could break, a naive export.
# Columns: Pclass, Sex, Age, SibSp, Parch, Fare, Embarked (``lifeboat.passenger.FEATURES``).
EDGE_PASSENGERS: tuple[tuple[Any, ...], ...] = (
    (3, "male", None, 0, 0, 7.25, "S"),  # missing Age: imputed with the training median
    (1, "female", 38.0, 1, 0, None, "C"),  # missing Fare
    (1, "female", 62.0, 0, 0, 80.0, None),  # missing Embarked: Spark's "keep" bucket
    (2, "male", None, 0, 0, None, None),  # every optional field missing
    (3, "female", 30.0, 0, 0, 8.05, "X"),  # a port never seen in training
    (2, "female", 30.0, 0, 0, 13.0, ""),  # empty string: unseen to Spark too
    (1, "female", 0.0, 0, 2, 0.0, "C"),  # lower bounds
    (3, "male", 120.0, 20, 20, 10_000.0, "Q"),  # upper bounds, FamilySize 41
    (3, "male", 0.17, 8, 2, 69.55, "S"),  # youngest, largest family in the data
)


class ConversionError(RuntimeError):
    """The pipeline cannot be exported to an ONNX graph that onnxruntime loads."""


def initial_types() -> list[tuple[str, Any]]:
    """The graph's inputs: one ``[n, 1]`` tensor per model input, in the pipeline's order."""
    numeric = [(name, FloatTensorType([None, 1])) for name in MODEL_NUMERIC_INPUTS]
    strings = [(name, StringTensorType([None, 1])) for name in MODEL_STRING_INPUTS]
    return numeric + strings


def to_onnx(pipeline_model: PipelineModel, name: str = "titanic") -> bytes:
    """Convert a fitted Titanic pipeline to a repaired, validated ONNX model.

    Args:
        pipeline_model: Preprocessing stages plus a classifier, as training fits them.
        name: The ONNX graph's name.

    Returns:
        The serialized ONNX model, loadable by ``lifeboat.scoring.OnnxScorer``.

    Raises:
        ConversionError: A stage cannot be converted faithfully, or the graph does not load.
    """
    _refuse_categorical_splits(pipeline_model)
    try:
        # The tree converters would save and read back every tree through Spark, in a folder
        # only the driver sees (see onnx_trees); the stock linear one pprints its coefficients.
        with trees_read_once(pipeline_model), contextlib.redirect_stdout(io.StringIO()):
            model = convert_sparkml(
                pipeline_model,
                name,
                initial_types(),
                target_opset=OPSET,
                custom_conversion_functions=CONVERTERS,
                custom_shape_calculators=SHAPE_CALCULATORS,
                spark_session=SparkSession.active(),
            )
    except Exception as exc:  # the converter raises bare RuntimeError/ValueError/KeyError
        raise ConversionError(f"onnxmltools could not convert the pipeline: {exc}") from exc
    repair(model)
    data = model.SerializeToString()
    _validate(model, data)
    return data


def repair(model: onnx.ModelProto) -> onnx.ModelProto:
    """Fix, in place, what onnxmltools' Spark converters emit wrongly; returns the model."""
    _one_default_opset(model)
    _split_sizes_as_input(model)
    _unseen_to_keep_bucket(model)
    return model


def _one_default_opset(model: onnx.ModelProto) -> None:
    """Declare the default domain once, at ``OPSET``.

    The converters tag nodes with their own op versions and domain spellings ("" and "ai.onnx"
    are the same domain), so the graph can import the default domain twice at different
    versions; which one a runtime honours is then arbitrary. Every node is moved to ``""`` and
    checked to mean the same at ``OPSET``.
    """
    for node in model.graph.node:
        if node.domain == "ai.onnx":
            node.domain = ""
        if node.domain == "" and node.op_type not in _SAFE_AT_OPSET:
            raise ConversionError(
                f"{node.op_type} ({node.name}) is not known to keep its meaning at opset {OPSET}"
            )
    others = [o for o in model.opset_import if o.domain not in ("", "ai.onnx")]
    del model.opset_import[:]
    model.opset_import.extend([helper.make_opsetid("", OPSET), *others])
    model.ir_version = helper.find_min_ir_version_for(list(model.opset_import), True)


def _split_sizes_as_input(model: onnx.ModelProto) -> None:
    """Move Split's ``split`` attribute to its second input, where opset 13 and later read it."""
    for node in model.graph.node:
        sizes = [a for a in node.attribute if a.name == "split"]
        if node.op_type != "Split" or not sizes:
            continue
        name = f"{node.name or node.output[0]}_sizes"
        tensor = numpy_helper.from_array(np.asarray(sizes[0].ints, dtype=np.int64), name)
        model.graph.initializer.append(tensor)
        node.attribute.remove(sizes[0])
        node.input.append(name)


def _unseen_to_keep_bucket(model: onnx.ModelProto) -> None:
    """Send unseen and missing categories to ``numLabels``, as StringIndexer "keep" does.

    The converter leaves LabelEncoder's default at -1, which the one-hot encoder turns into all
    zeros instead of the "keep" bucket's own slot: LR probabilities then moved by up to 0.23 on
    passengers without Embarked.
    """
    for node in model.graph.node:
        if node.op_type != "LabelEncoder":
            continue
        keys = next((a for a in node.attribute if a.name == "keys_strings"), None)
        if keys is None:
            continue
        for old in [a for a in node.attribute if a.name == "default_int64"]:
            node.attribute.remove(old)
        node.attribute.append(helper.make_attribute("default_int64", len(keys.strings)))


def _refuse_categorical_splits(pipeline_model: PipelineModel) -> None:
    # onnxmltools keeps only the first category of a categorical split, silently.
    for stage in pipeline_model.stages:
        debug = getattr(stage, "toDebugString", "")  # trees and ensembles only
        if _CATEGORICAL_SPLIT.search(debug):
            raise ConversionError(
                f"{type(stage).__name__} has categorical splits, which onnxmltools converts "
                "wrongly; fit it on a frame passed through training.features.strip_ml_metadata"
            )


def _validate(model: onnx.ModelProto, data: bytes) -> None:
    try:
        onnx.checker.check_model(model, full_check=True)
        OnnxScorer(data)
    except Exception as exc:  # checker and onnxruntime raise their own unrelated types
        raise ConversionError(f"the converted graph does not load: {exc}") from exc


def parity(pipeline_model: PipelineModel, onnx_bytes: bytes, df: DataFrame) -> float:
    """Largest |Spark − ONNX| survival probability over the rows of a passenger frame.

    Args:
        pipeline_model: The fitted Spark pipeline.
        onnx_bytes: Its export, from ``to_onnx``.
        df: Raw passengers (``lifeboat.passenger.FEATURES`` typed as training reads them);
            derived columns are added here when absent.

    Returns:
        The maximum absolute difference in P(Survived=1); 0.0 for an empty frame.
    """
    if not set(DERIVED_FEATURES) <= set(df.columns):
        df = with_derived(df)
    # One pass, so Spark's probability and the raw values the ONNX side sees stay row-aligned.
    rows = (
        pipeline_model.transform(df)
        .select(*FEATURES, vector_to_array(PROBABILITY)[1].alias("_spark"))
        .collect()
    )
    if not rows:
        return 0.0
    columns = {name: [row[name] for row in rows] for name in FEATURES}
    expected = np.array([row["_spark"] for row in rows], dtype=np.float64)
    actual = OnnxScorer(onnx_bytes).predict_proba(columns)
    return float(np.max(np.abs(expected - actual)))


def edge_rows(spark: SparkSession) -> DataFrame:
    """``EDGE_PASSENGERS`` as a frame typed like the training data (numbers as double)."""
    fields = [
        StructField(
            name, DoubleType() if BY_NAME[name].kind in ("int", "float") else StringType(), True
        )
        for name in FEATURES
    ]
    rows = [
        tuple(float(v) if isinstance(v, int | float) else v for v in row) for row in EDGE_PASSENGERS
    ]
    return spark.createDataFrame(rows, StructType(fields))
