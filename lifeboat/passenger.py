"""The passenger schema: the one definition shared by training, serving, drift and load tests.

Every consumer derives what it needs from ``COLUMNS``: the service's pydantic model
(:class:`Passenger`), the registered MLflow model's signature (:class:`ModelInput`), Spark's
read schema and row checks (``training.data``), the drift report's column mapping and the load
test's sampling. Nothing here imports pyspark, mlflow or evidently, so the Bento stays small and
``import service`` stays cheap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, create_model, field_validator

Kind = Literal["int", "float", "category", "text"]
Role = Literal["feature", "label", "id", "ignored"]


@dataclass(frozen=True)
class Column:
    """One column of a passenger record, with the bounds a valid value must respect."""

    name: str
    kind: Kind
    role: Role
    description: str
    required: bool = False
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] | None = None


# Kaggle's column names and order (data/titanic.csv uses exactly these).
COLUMNS: tuple[Column, ...] = (
    Column("PassengerId", "int", "id", "Row identifier; never a feature", minimum=1),
    Column("Survived", "int", "label", "Ground truth: 1 survived, 0 died", choices=(0, 1)),
    Column("Pclass", "int", "feature", "Ticket class: 1, 2 or 3", required=True, choices=(1, 2, 3)),
    Column("Name", "text", "ignored", "Passenger name; never a feature, never logged"),
    Column(
        "Sex", "category", "feature", "male or female", required=True, choices=("female", "male")
    ),
    Column(
        "Age",
        "float",
        "feature",
        "Age in years; fractional below 1; may be missing",
        minimum=0.0,
        maximum=120.0,
    ),
    Column(
        "SibSp",
        "int",
        "feature",
        "Siblings and spouses aboard",
        required=True,
        minimum=0,
        maximum=20,
    ),
    Column(
        "Parch",
        "int",
        "feature",
        "Parents and children aboard",
        required=True,
        minimum=0,
        maximum=20,
    ),
    Column("Ticket", "text", "ignored", "Ticket number; never a feature"),
    Column(
        "Fare",
        "float",
        "feature",
        "Passenger fare in pre-1970 British pounds; may be missing",
        minimum=0.0,
        maximum=10_000.0,
    ),
    Column("Cabin", "text", "ignored", "Cabin number; never a feature"),
    Column(
        "Embarked",
        "category",
        "feature",
        "Port of embarkation: C Cherbourg, Q Queenstown, S Southampton; may be missing",
        choices=("C", "Q", "S"),
    ),
)

BY_NAME: dict[str, Column] = {c.name: c for c in COLUMNS}
COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
LABEL = "Survived"
ID = "PassengerId"
FEATURES: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.role == "feature")
NUMERIC_FEATURES: tuple[str, ...] = tuple(
    c.name for c in COLUMNS if c.role == "feature" and c.kind in ("int", "float")
)
CATEGORICAL_FEATURES: tuple[str, ...] = tuple(
    c.name for c in COLUMNS if c.role == "feature" and c.kind == "category"
)
REQUIRED_FEATURES: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.required)


def _annotation(col: Column, literal_choices: bool = True) -> Any:
    # Integer choices stay plain (strict) ints bounded by _field: Literal[1, 2, 3] would accept
    # True, which equals 1 in Python.
    if literal_choices and col.choices is not None and col.kind != "int":
        base: Any = Literal[col.choices]
    else:
        base = {"int": int, "float": float, "category": str, "text": str}[col.kind]
    return base if col.required else base | None


def _field(col: Column) -> Any:
    bounds: dict[str, Any] = {}
    if col.kind == "int" and col.choices is not None:
        # contiguous integer codes (Pclass 1..3, Survived 0..1)
        bounds.update(
            ge=min(col.choices), le=max(col.choices), json_schema_extra={"enum": list(col.choices)}
        )
    if col.minimum is not None:
        bounds["ge"] = col.minimum
    if col.maximum is not None:
        bounds["le"] = col.maximum
    if col.kind == "float":
        bounds["allow_inf_nan"] = False
    if col.kind == "text":
        bounds["max_length"] = 500
    default = ... if col.required else None
    return Field(default, description=col.description, **bounds)


class _Strict(BaseModel):
    # strict: "3" is not an int and true is not 1; forbid: a typo in a field name is an error,
    # not a silently missing feature.
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


Passenger: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "Passenger",
    __base__=_Strict,
    __doc__="A passenger as clients send it: Kaggle's columns, the seven features required or "
    "nullable as documented, PassengerId/Name/Ticket/Cabin optional and never used.",
    **{c.name: (_annotation(c), _field(c)) for c in COLUMNS},
)


class _Features(BaseModel):
    # extra: a frame of whole Kaggle rows (Name, Ticket, the label) scores by its features.
    model_config = ConfigDict(extra="ignore", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _nan_is_missing(cls, value: Any) -> Any:
        # pandas holds a missing number as NaN: it is a missing value, not a number.
        return None if isinstance(value, float) and math.isnan(value) else value

    @field_validator("*")
    @classmethod
    def _one_of_the_choices(cls, value: Any, info: ValidationInfo) -> Any:
        # MLflow's type hints take no Literal: the text choices are checked here instead.
        choices = BY_NAME[str(info.field_name)].choices
        if value is not None and choices is not None and value not in choices:
            raise ValueError(f"must be one of {list(choices)}")
        return value


ModelInput: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "ModelInput",
    __base__=_Features,
    __doc__="One row as the registered MLflow model takes it: the seven features, typed, bounded "
    "and required or nullable as in ``COLUMNS``. Its ``predict`` type hint, from which MLflow "
    "takes the model's signature and validates input (strictly: an int column must hold ints).",
    **{
        c.name: (
            _annotation(c, literal_choices=False),
            _field(c),
        )
        for c in COLUMNS
        if c.role == "feature"
    },
)


def parse_csv_field(name: str, text: str | None) -> Any:
    """A Kaggle CSV field typed as a JSON client sends it: empty is ``None``, an int or float
    column a number, any other column its text.

    Raises:
        ValueError: An int or float column holds something else ("3.5" is not an int).
    """
    if text is None or text.strip() == "":
        return None
    kind = BY_NAME[name].kind
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    return text


EXAMPLE: dict[str, Any] = {
    "Pclass": 3,
    "Sex": "male",
    "Age": 22,
    "SibSp": 1,
    "Parch": 0,
    "Fare": 7.25,
    "Embarked": "S",
}
