"""Model behaviour: the served (ONNX) Production model acts sensibly on hand-made passengers."""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest

from lifeboat.passenger import EXAMPLE

pytestmark = [pytest.mark.spark]


@pytest.fixture(scope="module")
def production(trained, settings):
    mlflow.set_tracking_uri(settings.tracking_uri)
    return mlflow.pyfunc.load_model("models:/titanic@production")


def predict(model, rows: list[dict]) -> pd.DataFrame:
    return model.predict(pd.DataFrame(rows))


def test_first_class_woman_beats_third_class_man(production):
    woman = {**EXAMPLE, "Pclass": 1, "Sex": "female", "Age": 30, "Fare": 80.0, "Embarked": "C"}
    man = {**EXAMPLE, "Pclass": 3, "Sex": "male", "Age": 30, "Fare": 8.05, "Embarked": "S"}
    out = predict(production, [woman, man])
    assert out["probability"][0] > out["probability"][1] + 0.3
    assert list(out["survived"]) == [1, 0]


def test_name_and_ticket_never_move_the_score(production):
    base = {**EXAMPLE, "Name": "Braund, Mr. Owen Harris", "Ticket": "A/5 21171", "Cabin": None}
    variants = [
        base,
        {**base, "Name": "Astor, Col. John Jacob"},
        {**base, "Ticket": "PC 17757"},
        {**base, "Cabin": "C62 C64"},
    ]
    out = predict(production, variants)
    assert out["probability"].nunique() == 1


def test_missing_optional_fields_still_score(production):
    row = {**EXAMPLE, "Age": None, "Fare": None, "Embarked": None}
    out = predict(production, [row])
    assert 0.0 <= out["probability"][0] <= 1.0


def test_probability_is_consistent_with_the_label(production, titanic_path):
    data = pd.read_csv(titanic_path).head(200)
    out = predict(production, data.to_dict("records"))
    assert ((out["probability"] >= 0.5).astype(int) == out["survived"]).all()


def test_unknown_port_scores_like_a_known_one(production):
    """A passenger without a port must not be scored as a certain survivor (or victim)."""
    man = {**EXAMPLE, "Pclass": 3, "Sex": "male", "Age": 30, "Fare": 8.05}
    ports = predict(production, [{**man, "Embarked": e} for e in ("C", "Q", "S")])["probability"]
    missing = predict(production, [{**man, "Embarked": None}])["probability"][0]
    assert ports.min() - 0.15 <= missing <= ports.max() + 0.15
