"""Metric labels by route: what each request is counted under, and what the app behind sees."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from _bentoml_impl.server.mount import PassiveMount
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from lifeboat.serving.metric_labels import UNMATCHED, RouteLabelledMetrics, RouteLabels


def echo_path(request: Request) -> PlainTextResponse:
    return PlainTextResponse(request.url.path)


def files(scope, receive, send):  # an ASGI app without a route table, like StaticFiles
    raise NotImplementedError


admin = FastAPI()
admin.get("/health")(echo_path)
admin.get("/items/{item}")(echo_path)

# The shape of BentoML's table: its own routes, the service's FastAPI app mounted passively at
# "/" and static assets.
ROUTES = [
    Route("/predict_titanic", echo_path, methods=["POST"]),
    Route("/metrics", echo_path),
    PassiveMount("/", admin),
    Mount("/assets", files),
    Route("/", echo_path),
]


def request(path: str, method: str = "GET") -> dict:
    return {"type": "http", "method": method, "path": path, "root_path": ""}


@pytest.mark.parametrize(
    ("method", "path", "label"),
    [
        ("POST", "/predict_titanic", "/predict_titanic"),
        ("GET", "/predict_titanic", "/predict_titanic"),  # a 405, still the route's
        ("GET", "/metrics", "/metrics"),
        ("GET", "/assets/app.js", "/assets/{path}"),
        ("GET", "/", "/"),
        ("GET", "/health", "/health"),  # in the mounted app: its path
        ("POST", "/health", "/health"),
        ("GET", "/predict_titanic/x", UNMATCHED),
        ("GET", "/health/", UNMATCHED),
        ("GET", "/wp-login.php", UNMATCHED),
        ("GET", "/" + "a/" * 50, UNMATCHED),
    ],
)
def test_a_request_is_labelled_with_its_route(method, path, label):
    assert RouteLabels()(ROUTES, request(path, method)) == label


def test_paths_in_a_mounted_app_are_labelled_as_themselves_up_to_a_limit():
    labels = RouteLabels(max_paths=3)
    assert [labels(ROUTES, request(f"/items/{i}")) for i in range(5)] == [
        "/items/0",
        "/items/1",
        "/items/2",
        UNMATCHED,
        UNMATCHED,
    ]
    assert labels(ROUTES, request("/items/1")) == "/items/1"
    assert labels(ROUTES, request("/predict_titanic", "POST")) == "/predict_titanic"


def test_the_app_behind_sees_the_path_the_client_sent():
    app = Starlette(routes=ROUTES, middleware=[Middleware(RouteLabelledMetrics, namespace="t")])

    async def requests() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            assert (await client.post("/predict_titanic")).text == "/predict_titanic"
            assert (await client.get("/items/42")).text == "/items/42"
            assert (await client.get("/nowhere")).status_code == 404
            # The router's trailing-slash redirect needs the real path, not the label.
            redirect = await client.get("/health/")
            assert (redirect.status_code, redirect.headers["location"]) == (
                307,
                "http://test/health",
            )

    asyncio.run(requests())
