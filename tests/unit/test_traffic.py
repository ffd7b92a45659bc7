"""BentoML's request timeout, with each request's timer cancelled once the request ends
(lifeboat.serving.traffic)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from bentoml._internal.server.http.traffic import TimeoutMiddleware

from lifeboat.serving import traffic

TIMEOUT = 0.3


async def answer(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def too_slow(scope: Any, receive: Any, send: Any) -> None:
    await asyncio.sleep(10)
    await answer(scope, receive, send)


async def request(app: Any) -> tuple[list[dict], int]:
    """One HTTP request through the middleware; what it sent, and how many of the middleware's
    timers are still armed."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await TimeoutMiddleware(app, timeout=TIMEOUT)({"type": "http"}, receive, send)
    loop = asyncio.get_running_loop()
    armed = [
        h
        for h in loop._scheduled  # type: ignore[attr-defined]
        if not h.cancelled() and getattr(h._callback, "__name__", "") == "_set_timer_out"
    ]
    return sent, len(armed)


@pytest.fixture
def fixed():
    original = TimeoutMiddleware.__call__
    assert traffic.cancel_finished_timers()
    yield
    TimeoutMiddleware.__call__ = original  # type: ignore[method-assign]


def test_bentoml_alone_keeps_the_timer_of_an_answered_request():
    # The fault the module works around: if this fails, BentoML fixed it and the module can go.
    sent, armed = asyncio.run(request(answer))
    assert sent[0]["status"] == 200 and armed == 1


def test_an_answered_request_leaves_no_timer_behind(fixed):
    sent, armed = asyncio.run(request(answer))
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"{}"
    assert armed == 0


def test_a_request_past_the_timeout_still_gets_bentomls_504(fixed):
    sent, armed = asyncio.run(request(too_slow))
    assert sent[0]["status"] == 504
    assert json.loads(sent[1]["body"]) == {
        "error": f"Not able to process the request in {TIMEOUT} seconds"
    }
    assert armed == 0
