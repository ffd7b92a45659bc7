"""Custom onnxmltools converters for the two Spark stages whose stock export is not exact.

* OneHotEncoder: the stock converter refuses ``handleInvalid="error"`` with ``dropLast=True`` and
  mishandles other combinations; this one emits exactly Spark's slots for every combination.
* LogisticRegression: the stock LinearClassifier works in float32; this one computes the margin
  and probability in float64, as Spark does.
"""

from __future__ import annotations

import math
from typing import Any

from onnx import TensorProto
from onnxmltools.convert.common.data_types import (
    DoubleTensorType,
    FloatTensorType,
    Int64TensorType,
)

OPSET = 15  # default-domain opset of the exported graph; onnxmltools 1.16's own maximum


class UnsupportedStage(ValueError):
    """A stage this exporter does not convert faithfully."""


def _one_hot_width(encoder: Any, size: int) -> int:
    # Spark: categorySize slots, one more for "keep", the last one dropped by dropLast.
    return size + (encoder.getHandleInvalid() == "keep") - encoder.getDropLast()


def _one_hot_shapes(operator: Any) -> None:
    encoder = operator.raw_operator
    batch = operator.inputs[0].type.shape[0]
    for size, output in zip(encoder.categorySizes, operator.outputs, strict=True):
        output.type = FloatTensorType([batch, _one_hot_width(encoder, size)])


def _convert_one_hot(scope: Any, operator: Any, container: Any) -> None:
    """Spark's OneHotEncoder as ONNX: a slot per kept index, all zeros for every other index.

    With ``cats`` equal to the kept slots and ``zeros=1``, the index Spark drops (dropLast) and
    any index past the last slot encode as zeros, which is what Spark does in every
    handleInvalid/dropLast combination the StringIndexer in front of it can produce.
    """
    encoder = operator.raw_operator
    pairs = zip(operator.inputs, operator.outputs, encoder.categorySizes, strict=True)
    for source, target, size in pairs:
        width = _one_hot_width(encoder, size)
        encoded = scope.get_unique_variable_name(f"{source.raw_name}_onehot")
        container.add_node(
            "OneHotEncoder",
            [source.full_name],
            [encoded],
            name=scope.get_unique_operator_name("OneHotEncoder"),
            op_domain="ai.onnx.ml",
            op_version=1,
            cats_int64s=list(range(width)),
            zeros=1,
        )
        shape = scope.get_unique_variable_name(f"{source.raw_name}_onehot_shape")
        container.add_initializer(shape, TensorProto.INT64, [2], [-1, width])
        # OneHotEncoder appends an axis: [n, 1] -> [n, 1, width]; the assembler wants [n, width].
        container.add_node(
            "Reshape",
            [encoded, shape],
            [target.full_name],
            name=scope.get_unique_operator_name("Reshape"),
            op_version=OPSET,
        )


def _logistic_shapes(operator: Any) -> None:
    batch = operator.inputs[0].type.shape[0]
    operator.outputs[0].type = Int64TensorType([batch])
    operator.outputs[1].type = DoubleTensorType([batch, 2])


def _convert_logistic(scope: Any, operator: Any, container: Any) -> None:
    """Binary logistic regression in float64, the way Spark computes it.

    onnxmltools' LinearClassifier works in float32. When the margin is a sum of large terms that
    cancel (seen with weakly regularised fits: terms near ±20), float32 loses ~4e-6 of it, up to
    7e-7 in probability: too close to the 1e-6 budget.
    """
    lr = operator.raw_operator
    if lr.numClasses != 2:
        raise UnsupportedStage(f"only binary LogisticRegression is exported, not {lr.numClasses}")

    def node(op_type: str, inputs: list[str], output: str | None = None, **attrs: Any) -> str:
        output = output or scope.get_unique_variable_name(op_type.lower())
        name = scope.get_unique_operator_name(op_type)
        container.add_node(op_type, inputs, [output], name=name, op_version=OPSET, **attrs)
        return output

    def const(label: str, values: list[float], shape: list[int], dtype: int) -> str:
        name = scope.get_unique_variable_name(label)
        container.add_initializer(name, dtype, shape, values)
        return name

    double = TensorProto.DOUBLE
    coefficients = const(
        "coefficients", lr.coefficients.toArray().tolist(), [lr.numFeatures, 1], double
    )
    features = node("Cast", [operator.inputs[0].full_name], to=double)
    margin = node(
        "Add",
        [node("MatMul", [features, coefficients]), const("intercept", [lr.intercept], [1], double)],
    )
    # Spark: probability(0) = 1 / (1 + exp(-rawPrediction(0))), probability(1) = 1 - that,
    # with rawPrediction = [-margin, margin].
    died = node("Sigmoid", [node("Neg", [margin])])
    survived = node("Sub", [const("one", [1.0], [1], double), died])
    node("Concat", [died, survived], operator.outputs[1].full_name, axis=1)
    # Spark predicts 1 when the margin exceeds log(t / (1 - t)) for threshold t.
    t = lr.getThreshold()
    raw_threshold = math.log(t / (1 - t)) if 0 < t < 1 else (-math.inf if t == 0 else math.inf)
    above = node("Greater", [margin, const("raw_threshold", [raw_threshold], [1], double)])
    label = node("Cast", [above], to=TensorProto.INT64)
    flat = const("flat", [-1], [1], TensorProto.INT64)
    node("Reshape", [label, flat], operator.outputs[0].full_name)


_ONE_HOT = "pyspark.ml.feature.OneHotEncoderModel"
_LOGISTIC = "pyspark.ml.classification.LogisticRegressionModel"
CONVERTERS = {_ONE_HOT: _convert_one_hot, _LOGISTIC: _convert_logistic}
SHAPE_CALCULATORS = {_ONE_HOT: _one_hot_shapes, _LOGISTIC: _logistic_shapes}
