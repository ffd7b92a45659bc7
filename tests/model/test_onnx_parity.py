"""The served form (ONNX via OnnxScorer) scores like the Spark pipeline it was exported from."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from pyspark.ml import PipelineModel
from pyspark.ml.classification import (
    DecisionTreeClassifier,
    GBTClassifier,
    LogisticRegression,
    RandomForestClassifier,
)

from lifeboat.features import MODEL_NUMERIC_INPUTS, MODEL_STRING_INPUTS
from lifeboat.scoring import OnnxScorer
from training.data import load_passengers
from training.features import FEATURES_COL, preprocessing, strip_ml_metadata, with_derived
from training.onnx_export import EDGE_PASSENGERS, edge_rows, parity, to_onnx

TOLERANCE = 1e-6  # the bound on |P_spark - P_onnx|, per row

CLASSIFIERS = {
    "lr": lambda: LogisticRegression(featuresCol=FEATURES_COL, labelCol="Survived"),
    "rf": lambda: RandomForestClassifier(
        featuresCol=FEATURES_COL, labelCol="Survived", numTrees=20, maxDepth=5, seed=7
    ),
    "gbt": lambda: GBTClassifier(
        featuresCol=FEATURES_COL, labelCol="Survived", maxIter=10, maxDepth=3, seed=7
    ),
    # Not a training family: a lone tree takes onnx_trees' per-model read, not the ensemble's.
    "tree": lambda: DecisionTreeClassifier(
        featuresCol=FEATURES_COL, labelCol="Survived", maxDepth=5, seed=7
    ),
}


@pytest.fixture(scope="module")
def passengers(spark, titanic_path, tmp_path_factory):
    loaded = load_passengers(
        spark, titanic_path, quarantine_dir=tmp_path_factory.mktemp("quarantine")
    )
    return loaded.df.cache()


@pytest.fixture(scope="module")
def prepared(passengers):
    """Preprocessing fitted once, and the frame the classifiers train on (as training does)."""
    with_features = with_derived(passengers)
    prep = preprocessing().fit(with_features)
    return prep, strip_ml_metadata(prep.transform(with_features)).cache()


@pytest.fixture(scope="module", params=sorted(CLASSIFIERS))
def exported(request, prepared) -> tuple[PipelineModel, bytes]:
    prep, train = prepared
    classifier = CLASSIFIERS[request.param]().fit(train)
    pipeline = PipelineModel(stages=prep.stages + [classifier])
    return pipeline, to_onnx(pipeline)


@pytest.mark.spark
def test_onnx_matches_spark_on_every_row(exported, passengers):
    pipeline, model = exported
    assert passengers.count() == 1309
    assert parity(pipeline, model, passengers) < TOLERANCE


@pytest.mark.spark
def test_onnx_matches_spark_on_edge_rows(exported, spark):
    pipeline, model = exported
    edges = edge_rows(spark)
    assert edges.count() == len(EDGE_PASSENGERS)
    assert parity(pipeline, model, edges) < TOLERANCE


@pytest.mark.spark
def test_exported_graph_declares_the_model_inputs_and_spark_keep_bucket(exported):
    _, model = exported
    assert OnnxScorer(model).input_names == MODEL_NUMERIC_INPUTS + MODEL_STRING_INPUTS
    graph = onnx.load_from_string(model).graph
    encoders = [n for n in graph.node if n.op_type == "LabelEncoder"]
    assert len(encoders) == len(MODEL_STRING_INPUTS)
    for node in encoders:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        # StringIndexer(handleInvalid="keep") sends unseen and missing values to numLabels.
        assert attrs["default_int64"] == len(attrs["keys_strings"])


@pytest.mark.spark
def test_missing_and_unseen_ports_score_alike(exported):
    _, model = exported
    passenger = {
        "Pclass": [3],
        "Sex": ["female"],
        "Age": [30.0],
        "SibSp": [0],
        "Parch": [0],
        "Fare": [8.05],
    }
    scorer = OnnxScorer(model)
    missing = scorer.predict_proba({**passenger, "Embarked": [None]})
    unseen = scorer.predict_proba({**passenger, "Embarked": ["X"]})
    assert missing.shape == (1,) and missing.dtype == np.float64
    assert missing[0] == unseen[0]


def _older_model() -> bytes:
    """A hand-written graph of a model that knew only Pclass, FamilySize and Embarked.

    P(survived) = 0.1 * Pclass + 0.01 * FamilySize + {C: 0.3, Q: 0.2, S: 0.1, other: 0}.
    """
    floats, strings = TensorProto.FLOAT, TensorProto.STRING
    nodes = [
        helper.make_node(
            "LabelEncoder",
            ["Embarked"],
            ["port"],
            domain="ai.onnx.ml",
            keys_strings=["C", "Q", "S"],
            values_floats=[0.3, 0.2, 0.1],
            default_float=0.0,
        ),
        helper.make_node("Mul", ["Pclass", "tenth"], ["by_class"]),
        helper.make_node("Mul", ["FamilySize", "hundredth"], ["by_family"]),
        helper.make_node("Sum", ["by_class", "by_family", "port"], ["survived"]),
        helper.make_node("Sub", ["one", "survived"], ["died"]),
        helper.make_node("Concat", ["died", "survived"], ["probability"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "older",
        [
            helper.make_tensor_value_info("Pclass", floats, [None, 1]),
            helper.make_tensor_value_info("FamilySize", floats, [None, 1]),
            helper.make_tensor_value_info("Embarked", strings, [None, 1]),
        ],
        [helper.make_tensor_value_info("probability", floats, [None, 2])],
        initializer=[
            helper.make_tensor("tenth", floats, [1], [0.1]),
            helper.make_tensor("hundredth", floats, [1], [0.01]),
            helper.make_tensor("one", floats, [1], [1.0]),
        ],
    )
    opsets = [helper.make_opsetid("", 15), helper.make_opsetid("ai.onnx.ml", 2)]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def test_scorer_feeds_only_the_inputs_the_graph_declares():
    scorer = OnnxScorer(_older_model())
    columns = {
        "Pclass": [1, 3],
        "Sex": ["female", "male"],
        "Age": [None, 40.0],
        "SibSp": [1, 0],
        "Parch": [2, 0],
        "Fare": [None, 7.25],
        "Embarked": ["C", None],
        "Name": ["Allen, Miss. Elisabeth", "Doe, Mr. John"],
    }
    feeds = scorer.inputs(columns)
    assert list(feeds) == ["Pclass", "FamilySize", "Embarked"]
    assert feeds["FamilySize"].dtype == np.float32 and feeds["FamilySize"].shape == (2, 1)
    assert feeds["FamilySize"].ravel().tolist() == [4.0, 1.0]
    assert feeds["Embarked"].ravel().tolist() == ["C", ""]
    np.testing.assert_allclose(scorer.predict_proba(columns), [0.44, 0.31], atol=1e-6)


def test_scorer_names_a_missing_column():
    scorer = OnnxScorer(_older_model())
    with pytest.raises(KeyError, match="Embarked"):
        scorer.inputs({"Pclass": [1], "SibSp": [0], "Parch": [0]})
