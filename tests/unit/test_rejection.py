"""Rejected bodies, as BentoML's 400 reports them: the first ten problems, all of them counted."""

from __future__ import annotations

import gc
import json

import pytest

from lifeboat.passenger import EXAMPLE
from lifeboat.serving.bodies import PredictTitanicBatchRequest, PredictTitanicRequest
from lifeboat.serving.rejection import MAX_LISTED_ERRORS, Rejection


def rejected(call, body) -> Rejection:
    with pytest.raises(Rejection) as caught:
        call(body)
    return caught.value


def bentoml_400(exc: Rejection) -> dict:
    """The body BentoML 1.4 writes for a ValidationError (``api_endpoint_wrapper``)."""
    return {
        "error": f"{exc.error_count()} validation error for {exc.title}",
        "detail": exc.errors(include_context=False, include_input=False),
    }


def unknown_keys(count: int, prefix: str = "") -> str:
    return ",".join(f'"{prefix}{i:x}":0' for i in range(count))


def test_an_object_with_400k_unknown_keys_is_stopped_at_the_first():
    body = "{" + unknown_keys(400_000) + "}"
    exc = rejected(PredictTitanicRequest.model_validate_json, body.encode())
    assert exc.errors(include_url=False, include_input=False) == [
        {"type": "extra_forbidden", "loc": ("0",), "msg": "Extra inputs are not permitted"}
    ]
    assert "stopped at its first unknown field" in exc.title
    assert len(json.dumps(bentoml_400(exc))) < 1024


def test_a_batch_of_crowded_passengers_names_the_first_unknown_key_of_ten():
    crowded = "{" + unknown_keys(380, prefix="k") + "}"
    body = "[" + ",".join([crowded] * 1000) + "]"
    exc = rejected(PredictTitanicBatchRequest.model_validate_json, body)
    assert exc.error_count() == 1000  # one per passenger: checking each stopped there
    assert [e["loc"] for e in exc.errors()] == [(i, "k0") for i in range(MAX_LISTED_ERRORS)]
    assert bentoml_400(exc)["error"].startswith("1000 validation error for list[Passenger] (")


def test_many_problems_are_counted_and_the_first_ten_listed_without_their_input():
    bad = {**EXAMPLE, "Pclass": 4, "Name": "x" * 501}
    exc = rejected(PredictTitanicBatchRequest.model_validate_json, json.dumps([bad] * 300))
    assert exc.error_count() == 600
    assert [e["loc"] for e in exc.errors()] == [
        (i, name) for i in range(5) for name in ("Pclass", "Name")
    ]
    assert {e["type"] for e in exc.errors()} == {"less_than_equal", "string_too_long"}
    assert "x" * 100 not in str(exc) + json.dumps(exc.errors(include_context=False))
    assert bentoml_400(exc)["error"] == (
        "600 validation error for list[Passenger] (the first 10 listed)"
    )


def test_a_few_problems_are_reported_as_pydantic_reports_them():
    body = json.dumps({**EXAMPLE, "Pclass": "3", "Cabinn": "C85"})
    exc = rejected(PredictTitanicRequest.model_validate_json, body)
    assert bentoml_400(exc) == {
        "error": "2 validation error for Passenger",
        "detail": [
            {
                "type": "int_type",
                "loc": ("Pclass",),
                "msg": "Input should be a valid integer",
                "url": "https://errors.pydantic.dev/2.14/v/int_type",
            },
            {
                "type": "extra_forbidden",
                "loc": ("Cabinn",),
                "msg": "Extra inputs are not permitted",
                "url": "https://errors.pydantic.dev/2.14/v/extra_forbidden",
            },
        ],
    }


@pytest.mark.parametrize(
    "body",
    [
        json.dumps({**EXAMPLE, "Name": "Smith: " + ":" * 490}),  # colons in a text
        "{"
        + ",".join(f'"Pclass":{i % 3 + 1}' for i in range(5000))
        + ","
        + json.dumps(EXAMPLE)[1:],
    ],
    ids=["colons in a name", "repeated known keys"],
)
def test_the_screen_passes_valid_bodies_with_many_colons(body):
    (received,) = PredictTitanicRequest.model_validate_json(body).passengers
    assert received.passenger.Pclass == EXAMPLE["Pclass"]


def test_a_body_that_is_not_json_still_says_so():
    exc = rejected(PredictTitanicRequest.model_validate_json, b"{" + b'"a":' * 5000)
    assert [e["type"] for e in exc.errors()] == ["json_invalid"]


@pytest.mark.parametrize(
    "body",
    ["{" + unknown_keys(2000) + "}", json.dumps({**EXAMPLE, "Pclass": 4})],
    ids=["screened", "fully validated"],
)
def test_a_rejection_leaves_no_garbage_cycle(body):
    # A cycle through the traceback would keep each rejected body until the collector runs.
    gc.collect()
    gc.disable()
    try:
        with pytest.raises(Rejection):
            PredictTitanicRequest.model_validate_json(body)
        assert gc.collect() == 0
    finally:
        gc.enable()
