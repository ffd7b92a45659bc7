"""The feedback channel's parts without a server: ids, body parsing, the token guard."""

from __future__ import annotations

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from lifeboat.serving import feedback, guards
from lifeboat.serving.rejection import MAX_LISTED_ERRORS, Rejection
from lifeboat.streams import batch_ids, is_prediction_id, request_hex


def test_prediction_ids_are_the_request_header_and_its_batch_positions():
    assert request_hex(0xABC) == "0000000000000abc"  # as X-BentoML-Request-ID writes it
    assert batch_ids(0xABC, 3) == [f"0000000000000abc-{i}" for i in range(3)]
    assert len(request_hex(None)) == 16 and request_hex(None) != request_hex(None)
    assert all(is_prediction_id(i) for i in ["0000000000000abc", *batch_ids(1, 1000)])
    for bad in ("0000000000000ABC", "abc", "0000000000000abc-", "0000000000000abc-12345", 7):
        assert not is_prediction_id(bad)


def test_a_body_is_one_label_or_a_list_of_them():
    one = feedback.parse(b'{"request_id": "0000000000000abc", "Survived": 1}')
    assert [(f.request_id, f.Survived) for f in one] == [("0000000000000abc", 1)]
    many = feedback.parse(b' [{"request_id": "0000000000000abc-0", "Survived": 0}]')
    assert [(f.request_id, f.Survived) for f in many] == [("0000000000000abc-0", 0)]


def test_a_list_of_bad_labels_names_the_first_ten_and_counts_them_all():
    body = b"[" + b",".join([b'{"request_id": "x", "Survived": 3}'] * 50) + b"]"
    with pytest.raises(Rejection) as caught:
        feedback.parse(body)
    assert caught.value.error_count() == 100
    assert len(caught.value.errors()) == MAX_LISTED_ERRORS


@pytest.fixture
def guarded(monkeypatch):
    from lifeboat.settings import get_settings

    def client(**tokens: str) -> TestClient:
        for name in ("LIFEBOAT_FEEDBACK_TOKEN", "LIFEBOAT_ADMIN_TOKEN"):
            monkeypatch.setenv(name, tokens.get(name, ""))
        get_settings.cache_clear()
        app = FastAPI()

        @app.post("/feedback")
        def route(sender: str = Depends(guards.feedback_sender)) -> dict[str, str]:
            return {"sender": sender}

        return TestClient(app)

    yield client
    get_settings.cache_clear()


def test_feedback_is_off_without_a_token_and_names_who_sent_it(guarded):
    off = guarded().post("/feedback", headers={"Authorization": "Bearer "})
    assert off.status_code == 403 and "LIFEBOAT_FEEDBACK_TOKEN" in off.text
    on = guarded(LIFEBOAT_FEEDBACK_TOKEN="f-token", LIFEBOAT_ADMIN_TOKEN="a-token")
    assert on.post("/feedback", headers={"Authorization": "Bearer f-token"}).json() == {
        "sender": "feedback"
    }
    assert on.post("/feedback", headers={"Authorization": "Bearer a-token"}).json() == {
        "sender": "admin"
    }
    assert on.post("/feedback", headers={"Authorization": "Bearer other"}).status_code == 401
    admin_only = guarded(LIFEBOAT_ADMIN_TOKEN="a-token")
    assert admin_only.post("/feedback", headers={"Authorization": "Bearer "}).status_code == 401
