"""Predictions over HTTP equal the ONNX scorer's, for the bodies clients really send."""

from __future__ import annotations

import pytest

from tests.harness import CURL_BODY, CURL_PASSENGER, scorer_probabilities

pytestmark = [pytest.mark.spark, pytest.mark.integration]

KAGGLE_ROW = {
    "PassengerId": 2,
    "Survived": 1,
    "Pclass": 1,
    "Name": "Cumings, Mrs. John Bradley (Florence Briggs Thayer)",
    "Sex": "female",
    "Age": 38,
    "SibSp": 1,
    "Parch": 0,
    "Ticket": "PC 17599",
    "Fare": 71.2833,
    "Cabin": "C85",
    "Embarked": "C",
}


def served_by(client, serving_home):
    """The served model's store folder and metadata, as /model_info reports them."""
    info = client.get("/model_info").json()
    return serving_home.model_dir(info["model_tag"]), info["metadata"]


def test_curl_body_gets_the_onnx_scorers_probability(client, serving_home):
    # curl -d sends application/x-www-form-urlencoded; the service reads the body as JSON.
    response = client.post(
        "/predict_titanic",
        content=CURL_BODY,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"request_id", "survived", "probability", "model_version", "drift_alerts"}
    assert body["request_id"] == response.headers["x-bentoml-request-id"]
    folder, metadata = served_by(client, serving_home)
    (expected,) = scorer_probabilities(folder, [CURL_PASSENGER])
    assert body["probability"] == pytest.approx(expected, abs=1e-6)
    assert body["survived"] == int(expected >= metadata["threshold"]) == 0
    assert body["model_version"] == metadata["version"]
    assert body["drift_alerts"] == []


def test_kaggle_row_is_accepted_and_its_extra_columns_do_not_move_the_score(client):
    features = {k: KAGGLE_ROW[k] for k in ("Pclass", "Sex", "Age", "SibSp", "Parch", "Fare")}
    features["Embarked"] = KAGGLE_ROW["Embarked"]
    full = client.post("/predict_titanic", json=KAGGLE_ROW)
    bare = client.post("/predict_titanic", json=features)
    assert full.status_code == bare.status_code == 200, full.text
    answers = [{k: v for k, v in r.json().items() if k != "request_id"} for r in (full, bare)]
    assert answers[0] == answers[1]
    assert full.json()["request_id"] != bare.json()["request_id"]
    assert full.json()["survived"] == 1  # a first-class woman


def test_fare_far_outside_training_raises_a_drift_alert(client, serving_home):
    _, metadata = served_by(client, serving_home)
    low, high = metadata["feature_ranges"]["Fare"]
    body = {**CURL_PASSENGER, "Fare": 5000.0}
    response = client.post("/predict_titanic", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["drift_alerts"] == [
        {"feature": "Fare", "value": 5000.0, "training_min": low, "training_max": high}
    ]
    assert high < 5000.0


def test_batch_answers_in_request_order(client, serving_home):
    passengers = [
        {
            "Pclass": pclass,
            "Sex": sex,
            "Age": age,
            "SibSp": 0,
            "Parch": 0,
            "Fare": fare,
            "Embarked": port,
        }
        for pclass, sex, age, fare, port in [
            (3, "male", 22, 7.25, "S"),
            (1, "female", 29, 211.3, "S"),
            (2, "male", None, 13.0, "Q"),
            (1, "male", 71, 49.5, "C"),
            (3, "female", 4, None, None),
            (2, "female", 30, 26.0, "S"),
        ]
    ]
    response = client.post("/predict_titanic_batch", json=passengers)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    folder, metadata = served_by(client, serving_home)
    expected = scorer_probabilities(folder, passengers)
    assert len(set(expected)) == len(expected)  # distinct, so an order change would show
    assert [p["probability"] for p in predictions] == pytest.approx(expected, abs=1e-6)
    assert {p["model_version"] for p in predictions} == {metadata["version"]}


def test_batch_alerts_and_classes_belong_to_their_own_passengers(client, serving_home):
    _, metadata = served_by(client, serving_home)
    low, high = metadata["feature_ranges"]["Fare"]
    passenger = CURL_PASSENGER
    passengers = [passenger, {**passenger, "Fare": 5000.0}, passenger, {**passenger, "Age": 119.0}]
    response = client.post("/predict_titanic_batch", json=passengers)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [[a["feature"] for a in p["drift_alerts"]] for p in predictions] == [
        [],
        ["Fare"],
        [],
        ["Age"] if metadata["feature_ranges"]["Age"][1] < 119.0 else [],
    ]
    assert predictions[1]["drift_alerts"][0] == {
        "feature": "Fare",
        "value": 5000.0,
        "training_min": low,
        "training_max": high,
    }
    threshold = metadata.get("threshold", 0.5)
    assert [p["survived"] for p in predictions] == [
        int(p["probability"] >= threshold) for p in predictions
    ]


@pytest.mark.parametrize("count", [0, 1001])
def test_batch_size_is_bounded(client, count):
    response = client.post("/predict_titanic_batch", json=[CURL_PASSENGER] * count)
    assert 400 <= response.status_code < 500, response.text


def test_batch_of_1000_is_served(client):
    response = client.post("/predict_titanic_batch", json=[CURL_PASSENGER] * 1000)
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 1000
