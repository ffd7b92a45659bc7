"""``POST /feedback``: outcomes reported for earlier predictions, the only labels retraining
trusts by default.

A client sends ``{"request_id": "<the prediction's request_id>", "Survived": 0 or 1}``, or a
list of up to :data:`MAX_FEEDBACK_ITEMS` of them, possibly hours after the prediction, with the
feedback token (``LIFEBOAT_FEEDBACK_TOKEN``) or the admin token. Each label becomes one record of
the feedback stream (``lifeboat.streams.FEEDBACK``) naming the token that sent it; ``drift``
joins the two streams by prediction id. The service does not look the id up (the prediction may
have been served by another worker or replica): a well-formed id that matches no prediction is
counted as unmatched by the drift report.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, TypeAdapter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from lifeboat.passenger import LABEL
from lifeboat.serving.monitoring import stream
from lifeboat.serving.rejection import BodyValidator, Rejection
from lifeboat.streams import FEEDBACK, PREDICTION_ID, PREDICTION_ID_PATTERN, SENDER

MAX_FEEDBACK_ITEMS = 1000


class Feedback(BaseModel):
    """One reported outcome."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    request_id: Annotated[str, Field(pattern=PREDICTION_ID_PATTERN, max_length=21)] = Field(
        description="The request_id of the prediction this outcome is for"
    )
    Survived: Annotated[StrictInt, Field(ge=0, le=1)] = Field(
        description="What happened: 1 survived, 0 died"
    )


FeedbackList = Annotated[list[Feedback], Field(min_length=1, max_length=MAX_FEEDBACK_ITEMS)]
_LIST: TypeAdapter[list[Feedback]] = TypeAdapter(FeedbackList)
_KEYS = tuple(Feedback.model_fields)
_ONE = BodyValidator("Feedback", Feedback.model_validate_json, Feedback.model_validate, keys=_KEYS)
_MANY = BodyValidator(
    "list[Feedback]", _LIST.validate_json, _LIST.validate_python, is_list=True, keys=_KEYS
)


class FeedbackAccepted(BaseModel):
    """Response of ``POST /feedback``."""

    accepted: int = Field(description="Labels recorded")


def parse(body: bytes) -> list[Feedback]:
    """The labels of a body: one object or a list of them.

    Raises:
        lifeboat.serving.rejection.Rejection: The body is not valid (at most ten problems listed).
    """
    if body.lstrip()[:1] == b"[":
        return _MANY.json(body)
    return [_ONE.json(body)]


def record(labels: list[Feedback], sender: str) -> None:
    """Write one feedback record per label, in one write.

    Raises:
        OSError: The records could not be written (the client should send them again).
    """
    with stream(FEEDBACK, strict=True) as mon:
        mon.log_batch([f.request_id for f in labels], PREDICTION_ID, "feature", "categorical")
        mon.log_batch([f.Survived for f in labels], LABEL, "target", "categorical")
        mon.log_batch([sender] * len(labels), SENDER, "feature", "categorical")


async def receive(request: Request, sender: str) -> Response:
    """Record the labels of a ``POST /feedback`` body sent with ``sender``'s token.

    200 with the number recorded; 400 naming the first problems of an invalid body (nothing
    recorded); 503 when the records could not be written (nothing recorded, send again).
    """
    body = await request.body()
    try:
        labels = parse(body)
    except Rejection as exc:
        detail = exc.errors(include_url=False, include_context=False, include_input=False)
        error = f"{exc.error_count()} validation error for {exc.title}"
        return JSONResponse({"error": error, "detail": detail}, status_code=400)
    try:
        await asyncio.to_thread(record, labels, sender)
    except OSError as exc:
        return JSONResponse(
            {"error": f"feedback not recorded ({type(exc).__name__}); send it again"},
            status_code=503,
        )
    return JSONResponse(FeedbackAccepted(accepted=len(labels)).model_dump())


def openapi_body() -> dict[str, Any]:
    """The route's request body for the OpenAPI document: one object or a list of them."""
    one = Feedback.model_json_schema()
    many = {"type": "array", "items": one, "maxItems": MAX_FEEDBACK_ITEMS}
    example = {"request_id": "3f2a9c4e1b7d6a05", "Survived": 1}
    content = {"schema": {"oneOf": [one, many]}, "example": example}
    return {"requestBody": {"required": True, "content": {"application/json": content}}}
