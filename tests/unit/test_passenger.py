"""The passenger schema as clients meet it: what is accepted, what is refused and why."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from lifeboat.passenger import (
    BY_NAME,
    CATEGORICAL_FEATURES,
    COLUMN_NAMES,
    EXAMPLE,
    FEATURES,
    NUMERIC_FEATURES,
    ModelInput,
    Passenger,
    parse_csv_field,
)

KAGGLE_ORDER = (
    "PassengerId",
    "Survived",
    "Pclass",
    "Name",
    "Sex",
    "Age",
    "SibSp",
    "Parch",
    "Ticket",
    "Fare",
    "Cabin",
    "Embarked",
)


def test_columns_follow_kaggle_names_and_order():
    assert COLUMN_NAMES == KAGGLE_ORDER


def test_features_are_the_seven_fields_clients_send():
    assert set(FEATURES) == {"Pclass", "Sex", "Age", "SibSp", "Parch", "Fare", "Embarked"}
    assert set(NUMERIC_FEATURES) | set(CATEGORICAL_FEATURES) == set(FEATURES)
    assert not {"Name", "Ticket", "Cabin", "PassengerId", "Survived"} & set(FEATURES)


def test_example_body_is_valid():
    p = Passenger(**EXAMPLE)
    assert (p.Pclass, p.Sex, p.Age, p.Fare, p.Embarked) == (3, "male", 22.0, 7.25, "S")


def test_kaggle_row_with_nulls_is_valid():
    row = {
        "PassengerId": 6,
        "Survived": 0,
        "Pclass": 3,
        "Name": "Moran, Mr. James",
        "Sex": "male",
        "Age": None,
        "SibSp": 0,
        "Parch": 0,
        "Ticket": "330877",
        "Fare": None,
        "Cabin": None,
        "Embarked": None,
    }
    assert Passenger(**row).Survived == 0


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("Pclass", 4),
        ("Pclass", 0),
        ("Pclass", "3"),
        ("Pclass", True),
        ("Pclass", 2.0),
        ("Sex", "x"),
        ("Sex", None),
        ("Age", -1),
        ("Age", 500),
        ("Age", "22"),
        ("Age", math.nan),
        ("Age", math.inf),
        ("Age", True),
        ("SibSp", -1),
        ("SibSp", 1.5),
        ("Parch", None),
        ("Fare", -0.01),
        ("Fare", "cheap"),
        ("Embarked", "Z"),
        ("Embarked", 1),
        ("Survived", 2),
        ("Survived", False),
        ("Name", 5),
    ],
)
def test_bad_values_are_refused_naming_the_field(field, value):
    with pytest.raises(ValidationError) as err:
        Passenger(**{**EXAMPLE, field: value})
    assert [e["loc"][0] for e in err.value.errors()] == [field]


def test_unknown_fields_are_refused():
    with pytest.raises(ValidationError) as err:
        Passenger(**EXAMPLE, Boat="13")
    assert err.value.errors()[0]["loc"] == ("Boat",)


@pytest.mark.parametrize("field", ["Pclass", "Sex", "SibSp", "Parch"])
def test_required_fields(field):
    body = {k: v for k, v in EXAMPLE.items() if k != field}
    with pytest.raises(ValidationError) as err:
        Passenger(**body)
    assert err.value.errors()[0]["loc"] == (field,)


def test_json_schema_publishes_bounds_and_choices():
    props = Passenger.model_json_schema()["properties"]
    assert props["Pclass"]["enum"] == [1, 2, 3]
    assert props["Age"]["anyOf"][0]["maximum"] == BY_NAME["Age"].maximum
    assert props["Embarked"]["anyOf"][0]["enum"] == ["C", "Q", "S"]


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("Pclass", "3", 3),
        ("Age", "0.42", 0.42),
        ("Fare", "7", 7.0),
        ("Sex", "male", "male"),
        ("Embarked", "", None),
        ("Age", "  ", None),
        ("Survived", None, None),
    ],
)
def test_csv_fields_are_typed_as_json_clients_send_them(name, text, value):
    parsed = parse_csv_field(name, text)
    assert parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize(("name", "text"), [("Pclass", "3.5"), ("SibSp", "one"), ("Fare", "£7")])
def test_a_number_column_holding_something_else_is_an_error(name, text):
    with pytest.raises(ValueError):
        parse_csv_field(name, text)


# The registered MLflow model's rows: MLflow validates them with strict=True.
def model_input(**row):
    return ModelInput.model_validate(row, strict=True)


def test_model_input_takes_the_features_and_ignores_the_rest_of_a_kaggle_row():
    assert tuple(ModelInput.model_fields) == FEATURES
    row = model_input(**EXAMPLE, Name="Braund, Mr. Owen Harris", Survived=0, Cabin=None)
    assert row.model_dump() == {**EXAMPLE, "Age": 22.0}


def test_model_input_reads_pandas_nan_as_missing():
    row = model_input(**{**EXAMPLE, "Age": math.nan, "Fare": math.nan, "Embarked": math.nan})
    assert (row.Age, row.Fare, row.Embarked) == (None, None, None)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("Pclass", 4),
        ("Pclass", 2.0),  # a double column: registry.model_input casts Spark's
        ("Pclass", math.nan),
        ("Sex", "x"),
        ("Sex", None),
        ("Age", -1),
        ("Age", math.inf),
        ("SibSp", 1.5),
        ("Parch", None),
        ("Fare", "cheap"),
        ("Embarked", "Z"),
    ],
)
def test_model_input_refuses_what_the_service_refuses(field, value):
    with pytest.raises(ValidationError) as err:
        model_input(**{**EXAMPLE, field: value})
    assert [e["loc"][0] for e in err.value.errors()] == [field]
    with pytest.raises(ValidationError):
        Passenger(**{**EXAMPLE, field: value})
