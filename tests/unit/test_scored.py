"""Scored: one scoring call's columns, sliced for the monitor and turned into bodies."""

from __future__ import annotations

import json

import numpy as np
import pydantic_core
import pytest

from lifeboat.artifact import ModelMetadata
from lifeboat.passenger import EXAMPLE, Passenger
from lifeboat.prediction import DriftAlert, LoadedModel, Scored, predict
from lifeboat.serving.bodies import BatchPredictions, predictions

ALERT = DriftAlert(feature="Fare", value=600.0, training_min=0.0, training_max=512.33)
SCORED = Scored(
    columns={"Pclass": [3, 1, 2], "Fare": [7.25, 600.0, 13.0], "Survived": [None, 1, 0]},
    prediction_ids=["00000000000000aa-0", "00000000000000aa-1", "00000000000000aa-2"],
    probability=[0.1, 0.9, 0.5],
    survived=[0, 1, 1],
    model_version="7",
    drift_alerts={1: [ALERT]},
)


def test_take_slices_every_column_and_renumbers_the_alerts():
    tail = SCORED.take(1, 3)
    assert len(tail) == 2
    assert tail.columns == {"Pclass": [1, 2], "Fare": [600.0, 13.0], "Survived": [1, 0]}
    assert (tail.probability, tail.survived, tail.model_version) == ([0.9, 0.5], [1, 1], "7")
    assert tail.prediction_ids == ["00000000000000aa-1", "00000000000000aa-2"]
    assert tail.drift_alerts == {0: [ALERT]}
    assert SCORED.take(2, 3).drift_alerts == {}


def test_the_batch_body_is_what_pydantic_writes_for_the_same_predictions():
    fast = pydantic_core.to_json({"predictions": SCORED.rows()})
    slow = BatchPredictions(predictions=predictions(SCORED)).model_dump_json()
    assert fast.decode() == slow
    body = json.loads(fast)["predictions"]
    assert [p["drift_alerts"] for p in body] == [[], [ALERT.model_dump()], []]
    assert [p["request_id"] for p in body] == SCORED.prediction_ids


class _Answers:
    """A scorer that answers fixed probabilities: the graph's output is not under test here."""

    def __init__(self, probabilities: list[float]) -> None:
        self.probabilities = np.asarray(probabilities)

    def predict_proba(self, columns: object) -> np.ndarray:
        return self.probabilities


def _model(probabilities: list[float], version: str = "7") -> LoadedModel:
    metadata = ModelMetadata(
        version=version, run_id="r", dataset_sha256="0", heldout_auc=0.9, trained_at="t"
    )
    return LoadedModel(f"titanic:v{version}", metadata, _Answers(probabilities), "now")  # type: ignore[arg-type]


def _passenger() -> object:
    return Passenger.model_validate(EXAMPLE)


def test_classes_follow_the_threshold_as_plain_ints():
    scored = predict(_model([0.2, 0.5, 0.8]), [_passenger()] * 3, ["a", "b", "c"])
    assert scored.survived == [0, 1, 1]
    assert all(type(s) is int for s in scored.survived)


@pytest.mark.parametrize("bad", [float("nan"), 1.5, -0.1])
def test_an_answer_that_is_not_a_probability_is_an_error_not_a_body(bad):
    with pytest.raises(ValueError, match="outside"):
        predict(_model([0.3, bad]), [_passenger()] * 2, ["a", "b"])


def test_a_shadow_scores_the_same_passengers_into_the_records_not_the_bodies():
    production, shadow = _model([0.2, 0.8]), _model([0.6, 0.4], version="9")
    alone = predict(production, [_passenger()] * 2, ["a", "b"])
    shadowed = predict(production, [_passenger()] * 2, ["a", "b"], shadow)
    assert shadowed.rows() == alone.rows()  # what clients are answered does not change
    assert (shadowed.shadow_version, shadowed.shadow_probability) == ("9", [0.6, 0.4])
    assert shadowed.shadow_columns() == (["9", "9"], [0.6, 0.4])
    assert shadowed.take(1, 2).shadow_columns() == (["9"], [0.4])
    assert alone.shadow_columns() == ([None, None], [None, None])
    assert alone.take(0, 1).shadow_columns() == ([None], [None])


@pytest.mark.parametrize("answers", [[0.5, float("nan")], [0.5, 2.0], [0.5]])
def test_a_failing_shadow_leaves_nulls_and_the_prediction_stands(answers):
    production = _model([0.2, 0.8])
    scored = predict(production, [_passenger()] * 2, ["a", "b"], _model(answers, version="9"))
    assert scored.probability == [0.2, 0.8] and scored.model_version == "7"
    assert scored.shadow_columns() == ([None, None], [None, None])
    assert scored.shadow_error and "titanic:v9" in scored.shadow_error


def test_a_shadow_that_raises_is_caught_too():
    class Broken:
        def predict_proba(self, columns: object) -> np.ndarray:
            raise RuntimeError("onnxruntime fell over")

    broken = LoadedModel("titanic_shadow:x", _model([]).metadata, Broken(), "now")  # type: ignore[arg-type]
    scored = predict(_model([0.3]), [_passenger()], ["a"], broken)
    assert scored.probability == [0.3]
    assert scored.shadow_error == "titanic_shadow:x: RuntimeError: onnxruntime fell over"
    assert scored.shadow_columns() == ([None], [None])


def test_a_failed_shadow_batch_is_counted_and_said_once_a_minute(caplog):
    from prometheus_client import REGISTRY

    from lifeboat.serving.predicting import _counted

    def failures() -> float:
        return REGISTRY.get_sample_value("lifeboat_shadow_failures_total") or 0.0

    broken = predict(_model([0.3]), [_passenger()], ["a"], _model([2.0], version="9"))
    before = failures()
    with caplog.at_level("WARNING", logger="bentoml.lifeboat.monitoring"):
        for _ in range(3):
            assert _counted(broken) is broken
        assert _counted(predict(_model([0.3]), [_passenger()], ["a"])).shadow_error is None
    assert failures() - before == 3
    said = [r.getMessage() for r in caplog.records if "lifeboat_shadow_failures" in r.getMessage()]
    assert len(said) <= 1 and all("titanic:v9" in line for line in said)
