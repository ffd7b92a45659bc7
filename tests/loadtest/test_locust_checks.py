"""The load test's own parts, without a server: answer checks and passenger sampling."""

from __future__ import annotations

import random

import pytest

from lifeboat.passenger import BY_NAME, FEATURES, Passenger
from loadtest.checks import batch_problem, invocations_problem, prediction_problem
from loadtest.outcomes import Outcomes
from loadtest.passengers import (
    Traffic,
    complete_categories,
    drift_sampler,
    load,
    spark_record,
)
from tests.harness import packages_imported_by

GOOD = {"survived": 1, "probability": 0.83, "model_version": "3", "drift_alerts": []}


def test_a_correct_answer_passes():
    assert prediction_problem(GOOD) is None
    assert prediction_problem({**GOOD, "survived": 0, "probability": 0}) is None
    assert batch_problem({"predictions": [GOOD, GOOD]}, 2) is None
    assert invocations_problem({"predictions": [0.0]}, 1) is None


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ({**GOOD, "probability": 1.7}, "probability 1.7 is not in [0, 1]"),
        ({**GOOD, "probability": -0.1}, "probability -0.1 is not in [0, 1]"),
        ({**GOOD, "probability": float("nan")}, "probability nan is not in [0, 1]"),
        ({**GOOD, "probability": "0.5"}, "probability '0.5' is not in [0, 1]"),
        ({**GOOD, "survived": 2}, "survived 2 is not 0 or 1"),
        ({**GOOD, "survived": True}, "survived True is not 0 or 1"),
        ({**GOOD, "model_version": ""}, "model_version '' is not a version"),
        ({k: v for k, v in GOOD.items() if k != "survived"}, "answer has no survived"),
        ([GOOD], "answer is a JSON list, not an object"),
    ],
)
def test_a_wrong_answer_is_named(answer, problem):
    assert prediction_problem(answer) == problem


def test_a_batch_answer_must_match_the_request():
    assert batch_problem({"predictions": [GOOD]}, 2) == "1 predictions for 2 passengers"
    wrong = {**GOOD, "probability": 2}
    assert batch_problem({"predictions": [GOOD, wrong]}, 2) == (
        "prediction 1: probability 2 is not in [0, 1]"
    )
    assert batch_problem([GOOD], 1) == "answer has no predictions list"
    assert invocations_problem({"predictions": [0.5]}, 1) == (
        "prediction 0: survived 0.5 is not 0 or 1"
    )


def test_every_row_of_the_data_is_sent_as_a_valid_passenger():
    passengers = load()
    assert len(passengers) == 1309
    assert all(tuple(p) == FEATURES for p in passengers)
    assert sum(p["Age"] is None for p in passengers) > 200  # missing values are sent as null


def test_drifted_traffic_is_valid_and_shifted():
    traffic = Traffic(load(), drift_sampler(), drift_share=0.5, rng=random.Random(1))
    sent = [traffic.one() for _ in range(2000)]
    drifted = [p for p, was_drifted in sent if was_drifted]
    assert 900 < len(drifted) < 1100
    for passenger, _ in sent:
        Passenger.model_validate(passenger)
    clean_fares = [p["Fare"] for p in load() if p["Fare"] is not None]
    drifted_fares = [p["Fare"] for p in drifted if p["Fare"] is not None]
    assert sum(drifted_fares) / len(drifted_fares) > 2 * sum(clean_fares) / len(clean_fares)
    assert Traffic(load(), None, drift_share=1.0).one()[1] is False  # no sampler, no drift
    assert all("Survived" not in p for p, _ in sent)  # labels only when asked for


def test_labelled_traffic_sends_the_real_label_clean_or_drifted():
    labelled = load(labelled=True)
    assert len(labelled) == 1309 and all(p["Survived"] in (0, 1) for p in labelled)
    assert sum(p["Survived"] for p in labelled) == 500  # data/titanic.csv: 500 survivors
    traffic = Traffic(labelled, drift_sampler(), 0.5, random.Random(2), labelled=True)
    sent = [traffic.one() for _ in range(200)]
    assert {was_drifted for _, was_drifted in sent} == {True, False}
    for passenger, _ in sent:
        assert passenger["Survived"] in (0, 1)
        Passenger.model_validate(passenger)


def test_a_drift_source_must_name_a_factory():
    with pytest.raises(ValueError, match="not 'module:function'"):
        drift_sampler("drift.traffic")
    with pytest.raises(ValueError, match="not a callable"):
        drift_sampler("drift.traffic:LABEL")


def test_spark_records_carry_the_derived_features_as_doubles():
    record = spark_record({**load()[0], "SibSp": 1, "Parch": 2})
    assert (record["FamilySize"], record["IsAlone"]) == (4.0, 0.0)
    assert all(isinstance(record[n], float) for n in ("Pclass", "SibSp", "Parch"))
    assert all(p[n] is not None for p in complete_categories(load()) for n in ("Sex", "Embarked"))
    assert BY_NAME["Embarked"].kind == "category"


def test_the_locustfile_needs_no_more_than_locust_and_pydantic():
    # The compose stack runs it in the Locust image plus pydantic (docker/locust/Dockerfile).
    code = "import loadtest.locustfile, loadtest.passengers as p; p.drift_sampler()"
    heavy = ("numpy", "pandas", "bentoml", "mlflow", "pyspark", "onnxruntime", "evidently")
    assert packages_imported_by(code, heavy) == []


def test_outcomes_wait_their_delay_and_go_a_request_at_a_time():
    outcomes = Outcomes(delay=5.0)
    for i in range(1500):
        outcomes.add(100.0 + i / 1000, f"{i:016x}", i % 2)
    assert outcomes.due(104.9) == []  # nothing is 5 s old yet
    first = outcomes.due(200.0)
    assert len(first) == 1000  # the route's limit per request
    assert first[0] == {"request_id": f"{0:016x}", "Survived": 0}
    assert len(outcomes.due(200.0)) == 500 and outcomes.due(200.0) == []
    outcomes.add(300.0, "00000000000000aa", 1)
    assert outcomes.due(300.0) == []
    late = outcomes.due(300.0, everything=True)
    assert late == [{"request_id": "00000000000000aa", "Survived": 1}]


def test_a_labelled_passenger_can_be_changed_without_changing_the_data():
    traffic = Traffic(load(labelled=True), None, rng=random.Random(3), labelled=True)
    for _ in range(50):
        passenger, _ = traffic.one()
        passenger.pop("Survived")  # what the user does before sending it
    assert all("Survived" in p for p in load(labelled=True))
