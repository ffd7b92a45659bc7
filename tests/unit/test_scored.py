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


def _model(probabilities: list[float]) -> LoadedModel:
    metadata = ModelMetadata(
        version="7", run_id="r", dataset_sha256="0", heldout_auc=0.9, trained_at="t"
    )
    return LoadedModel("titanic:test", metadata, _Answers(probabilities), "now")  # type: ignore[arg-type]


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
