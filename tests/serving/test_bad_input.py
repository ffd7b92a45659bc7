"""Bad bodies get a 4xx that names the field, never a 5xx, and the service keeps answering.

Every 400 stays small whatever the body holds: it lists at most ``MAX_LISTED`` problems and
counts them all in ``error`` ("<count> validation error for ...").
"""

from __future__ import annotations

import json

import pytest

from tests.harness import CURL_PASSENGER

pytestmark = [pytest.mark.spark, pytest.mark.integration]

GOOD = CURL_PASSENGER
GOOD_TEXT = json.dumps(GOOD)


MAX_LISTED = 10
SMALL_ANSWER = 16 * 1024


def with_(**changes) -> str:
    return json.dumps({**GOOD, **changes})


def with_unknown_keys(count: int) -> str:
    """The good passenger and ``count`` short unknown keys ("0", "1", ... "61a7f"): 400k of
    them make a body of about 3.95 MB, under the 4 MiB limit."""
    return GOOD_TEXT[:-1] + "," + ",".join(f'"{i:x}":0' for i in range(count)) + "}"


# (case, body, the field the error must name or None for a body that is not a passenger)
PASSENGER_CASES = [
    ("unknown field", with_(Cabinn="C85"), "Cabinn"),
    ("Pclass 4", with_(Pclass=4), "Pclass"),
    ("Pclass 0", with_(Pclass=0), "Pclass"),
    ('Sex "x"', with_(Sex="x"), "Sex"),
    ("Sex null", with_(Sex=None), "Sex"),
    ("Age -1", with_(Age=-1), "Age"),
    ("Age 500", with_(Age=500), "Age"),
    ("Fare negative", with_(Fare=-3), "Fare"),
    ('Embarked "Z"', with_(Embarked="Z"), "Embarked"),
    ('Pclass "3"', with_(Pclass="3"), "Pclass"),
    ('Age "22"', with_(Age="22"), "Age"),
    ("Pclass 3.0", with_(Pclass=3.0), "Pclass"),
    ("Age NaN", GOOD_TEXT.replace('"Age": 22', '"Age": NaN'), "Age"),
    ("Fare Infinity", GOOD_TEXT.replace("7.25", "Infinity"), "Fare"),
    ("Fare -Infinity", GOOD_TEXT.replace("7.25", "-Infinity"), "Fare"),
    ("Age 1e400", GOOD_TEXT.replace('"Age": 22', '"Age": 1e400'), "Age"),
    ("Pclass true", with_(Pclass=True), "Pclass"),
    ("Age false", with_(Age=False), "Age"),
    ("SibSp missing", json.dumps({k: v for k, v in GOOD.items() if k != "SibSp"}), "SibSp"),
    ("Name too long", with_(Name="x" * 501), "Name"),
    ("Survived 2", with_(Survived=2), "Survived"),
    ("nested object as Pclass", with_(Pclass={"a": {"b": [1, 2, {"c": None}]}}), "Pclass"),
    ("11 unknown fields", with_unknown_keys(11), "0"),
    ("400k unknown fields", with_unknown_keys(400_000), "0"),
]
BODY_CASES = [
    ("empty body", "", None),
    ("non-JSON", "hello", None),
    ("truncated JSON", GOOD_TEXT[:-5], None),
    ("JSON string", '"x"', None),
    ("JSON null", "null", None),
    ("empty object", "{}", "Pclass"),
    ("nested 3000 deep", '{"Pclass":' + '{"a":' * 3000 + "1" + "}" * 3001, None),
    ("deeply nested arrays", '{"a":' + "[" * 10_000 + "]" * 10_000 + "}", None),
    ("unterminated deep array", "[" * 100_000, None),
    ("invalid UTF-8", b'{"Pclass":3,"Sex":"\xff\xfe"}', None),
]


def named_fields(response) -> set[str]:
    """Every field name the error's pydantic details point at."""
    detail = response.json().get("detail") or []
    return {str(part) for item in detail for part in item.get("loc", [])}


def counted_errors(response) -> int:
    """How many problems a bounded 400 says the body had (it lists at most ``MAX_LISTED``)."""
    assert len(response.content) < SMALL_ANSWER, f"{len(response.content)} bytes"
    answer = response.json()
    assert 1 <= len(answer["detail"]) <= MAX_LISTED
    assert all("input" not in item for item in answer["detail"])
    count = int(answer["error"].split()[0])  # "<count> validation error for <title>..."
    assert count >= len(answer["detail"])
    return count


@pytest.mark.parametrize(
    ("body", "field"),
    [pytest.param(body, field, id=case) for case, body, field in PASSENGER_CASES + BODY_CASES],
)
def test_single_route_rejects(client, body, field):
    response = client.post(
        "/predict_titanic", content=body, headers={"Content-Type": "application/json"}
    )
    assert 400 <= response.status_code < 500, response.text[:300]
    if field is not None:
        assert field in named_fields(response), response.text[:300]
        counted_errors(response)


@pytest.mark.parametrize(
    ("body", "field"), [pytest.param(body, field, id=case) for case, body, field in PASSENGER_CASES]
)
def test_batch_route_rejects_the_same_passenger_at_its_index(client, body, field):
    batch = f"[{GOOD_TEXT}, {body}]"
    response = client.post(
        "/predict_titanic_batch", content=batch, headers={"Content-Type": "application/json"}
    )
    assert 400 <= response.status_code < 500, response.text[:300]
    detail = response.json()["detail"]
    assert any(item["loc"][:2] == [1, field] for item in detail), response.text[:300]
    counted_errors(response)


def test_many_bad_passengers_are_all_counted_and_the_first_ten_listed(client):
    bad = json.dumps({**GOOD, "Pclass": 4, "Sex": "x"})
    batch = "[" + ",".join([bad] * 1000) + "]"
    response = client.post(
        "/predict_titanic_batch", content=batch, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert counted_errors(response) == 2000
    locs = [item["loc"] for item in response.json()["detail"]]
    assert locs == [[i, field] for i in range(5) for field in ("Pclass", "Sex")]


def test_passengers_with_many_unknown_fields_get_a_small_answer(client):
    # 1000 passengers with 380 unknown fields each: 380k problems in 3.3 MB
    crowded = "{" + ",".join(f'"k{i}":0' for i in range(380)) + "}"
    batch = "[" + ",".join([crowded] * 1000) + "]"
    response = client.post(
        "/predict_titanic_batch", content=batch, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert counted_errors(response) >= 1000  # at least the first unknown field of each
    assert [item["loc"] for item in response.json()["detail"]] == [
        [i, "k0"] for i in range(MAX_LISTED)
    ]


@pytest.mark.parametrize(
    "route,body",
    [("/predict_titanic", "[" + GOOD_TEXT + "]"), ("/predict_titanic_batch", GOOD_TEXT)],
    ids=["list to the single route", "object to the batch route"],
)
def test_wrong_shape_for_the_route(client, route, body):
    response = client.post(route, content=body, headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500, response.text[:300]


def test_multipart_is_refused(client):
    response = client.post("/predict_titanic", files={"Pclass": (None, "3")})
    assert 400 <= response.status_code < 500, response.text[:300]


def test_declared_huge_body_is_413_before_it_is_read(client):
    huge = '{"Name":"' + "x" * 10_000_000 + '"}'
    response = client.post(
        "/predict_titanic", content=huge, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert "body over" in response.json()["error"]


def test_streamed_huge_body_is_413(client):
    def chunks():  # no Content-Length: chunked transfer encoding
        for _ in range(100):
            yield b"x" * 100_000

    response = client.post("/predict_titanic", content=chunks())
    assert response.status_code == 413


def test_the_service_still_answers_and_logged_no_validation_tracebacks(client, server):
    response = client.post(
        "/predict_titanic", content=GOOD_TEXT, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200
    assert 0.0 <= response.json()["probability"] <= 1.0
    assert "ValidationError" not in server.log.read_text(errors="replace")
