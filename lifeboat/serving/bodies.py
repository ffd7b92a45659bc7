"""The HTTP bodies of ``service.py``: what clients send and what they get back.

BentoML's (1.4.39) batching shapes the prediction route's bodies:

* A batchable API takes exactly one list argument. :class:`PredictTitanicRequest` validates the
  flat passenger clients send and hands BentoML a one-element list; its JSON schema is the
  passenger's, so ``/docs.json`` describes the body clients actually send.
* The dispatcher gives each request its one-element slice of the batch's output;
  :class:`PredictionResponse` writes that element as the body.
* The batch runs in the context of whichever request started the dispatcher, so each passenger
  carries its own request's ids (:class:`~lifeboat.serving.predicting.Received`) into its
  monitoring record.

BentoML answers a ``ValidationError`` raised while parsing with a 400 of its details; the
request models validate through :class:`~lifeboat.serving.rejection.BodyValidator`, so that 400
lists at most ten problems whatever the body holds.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import bentoml
import pydantic_core
from pydantic import BaseModel, Field, TypeAdapter
from starlette.responses import Response

from lifeboat.passenger import EXAMPLE, Passenger
from lifeboat.prediction import DriftAlert, Scored
from lifeboat.serving.predicting import Received
from lifeboat.serving.rejection import BodyValidator

MAX_BATCH_PASSENGERS = 1000


# The flat object is validated as itself, so errors name the client's field ("Pclass", not
# "passengers.0.Pclass").
_PASSENGER = BodyValidator("Passenger", Passenger.model_validate_json, Passenger.model_validate)


class PredictTitanicRequest(BaseModel):
    """Body of ``POST /predict_titanic``: one flat passenger, batched as a one-element list."""

    passengers: list[Received]

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **_: Any) -> Any:
        # BentoML calls this in the request's own context.
        return cls.model_construct(passengers=[Received.now(_PASSENGER.json(json_data))])

    @classmethod
    def model_validate(cls, obj: Any, **_: Any) -> Any:
        return cls.model_construct(passengers=[Received.now(_PASSENGER.python(obj))])

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        # What /docs.json, /schema.json and BentoML's clients show: the flat passenger.
        schema = _openapi_nullable(Passenger.model_json_schema(*args, **kwargs))
        return {**schema, "example": EXAMPLE}


PassengerList = Annotated[
    list[Passenger],
    Field(min_length=1, max_length=MAX_BATCH_PASSENGERS),
]
_PASSENGER_LIST: TypeAdapter[list[Any]] = TypeAdapter(PassengerList)
_PASSENGERS = BodyValidator(
    "list[Passenger]", _PASSENGER_LIST.validate_json, _PASSENGER_LIST.validate_python, is_list=True
)


class PredictTitanicBatchRequest(BaseModel):
    """Body of ``POST /predict_titanic_batch``: a JSON list of passengers."""

    passengers: PassengerList

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **_: Any) -> Any:
        return cls.model_construct(passengers=_PASSENGERS.json(json_data))

    @classmethod
    def model_validate(cls, obj: Any, **_: Any) -> Any:
        return cls.model_construct(passengers=_PASSENGERS.python(obj))

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        schema = _openapi_nullable(_PASSENGER_LIST.json_schema(*args, **kwargs))
        return {**schema, "example": [EXAMPLE]}


def _openapi_nullable(schema: Any) -> Any:
    # BentoML's OpenAPI writer keeps only the first branch of an anyOf, which would publish
    # `float | None` as a plain number; OpenAPI 3.0 spells it {"type": ..., "nullable": true}.
    if isinstance(schema, list):
        return [_openapi_nullable(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: _openapi_nullable(value) for key, value in schema.items()}
    branches = out.get("anyOf", [])
    if len(branches) == 2 and {"type": "null"} in branches:
        (kept,) = [b for b in branches if b != {"type": "null"}]
        del out["anyOf"]
        out.update(kept, nullable=True)
    return out


class Prediction(BaseModel):
    """One passenger's prediction."""

    request_id: str = Field(
        description="This prediction's id: send it with the outcome to POST /feedback"
    )
    survived: Literal[0, 1]
    probability: float = Field(ge=0.0, le=1.0, description="P(survived)")
    model_version: str
    drift_alerts: list[DriftAlert] = Field(default_factory=list)


class PredictionResponse(bentoml.IODescriptor, Prediction):
    """Response of ``POST /predict_titanic``: one :class:`Prediction` object."""

    media_type: ClassVar[str | None] = "application/json"

    @classmethod
    async def to_http_response(cls, obj: Any, serde: Any) -> Response:
        (prediction,) = obj  # this request's one-element slice of the batch output
        return Response(prediction.model_dump_json(), media_type="application/json")


class BatchPredictions(BaseModel):
    """Response of ``POST /predict_titanic_batch``, in request order."""

    predictions: list[Prediction]


def predictions(scored: Scored) -> list[Prediction]:
    """One :class:`Prediction` per scored passenger, in order."""
    return [Prediction(**row) for row in scored.rows()]


class BatchPredictionsResponse(bentoml.IODescriptor, BatchPredictions):
    """Response of ``POST /predict_titanic_batch``: :class:`BatchPredictions` from :class:`Scored`
    in one encoder call (the route's OpenAPI schema is ``BatchPredictions``)."""

    media_type: ClassVar[str | None] = "application/json"

    @classmethod
    async def to_http_response(cls, obj: Any, serde: Any) -> Response:
        body = pydantic_core.to_json({"predictions": obj.rows()})
        return Response(body, media_type="application/json")
