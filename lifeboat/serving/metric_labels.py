"""BentoML's HTTP metrics labelled by route, so that clients cannot mint new series.

BentoML 1.4 labels ``bentoml_service_request_total``, ``..._request_duration_seconds`` and
``..._request_in_progress`` with the raw request path: every path a client invents adds about
twenty series to every later scrape (the README's Serving section has the measurement).
:class:`RouteLabelledMetrics` labels a request with the template of the route that serves it
(``/predict_titanic``, ``/assets/{path}``), and every request no route serves with
:data:`UNMATCHED`; see :class:`RouteLabels`.

No public hook reaches that label: BentoML's metrics middleware wraps every middleware a
service adds with ``add_asgi_middleware``, and takes the label from ``scope["path"]`` before
calling them. :func:`label_by_route` therefore replaces the class in the private module that
``_bentoml_impl.server.app.ServiceAppFactory`` imports it from when it builds the app; the
serving tests fail if an upgrade moves it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bentoml._internal.server.http import instruments
from starlette.routing import BaseRoute, Match, Mount

UNMATCHED = "unmatched"
# Most distinct paths labelled as themselves, for routes whose template is out of sight (in a
# mounted app, e.g. the service's FastAPI routes): more than a service has routes, and few
# enough that a client inventing paths under a mount cannot grow the metrics much.
MAX_PATH_LABELS = 64
_REAL_PATH = "lifeboat.real_path"  # where the app inside finds the path the client sent


def matched_route(routes: Sequence[BaseRoute], scope: Any) -> BaseRoute | None:
    """The route Starlette's router hands ``scope`` to (the first full match, else the first
    partial one, a 405), or None for a 404."""
    probe = dict(scope)  # some routes' matches() leave keys behind in the scope they are given
    partial: BaseRoute | None = None
    for route in routes:
        match, _ = route.matches(probe)
        if match is Match.FULL:
            return route
        if match is Match.PARTIAL and partial is None:
            partial = route
    return partial


class RouteLabels:
    """The label of each request: its route's template; :data:`UNMATCHED` if no route serves it.

    A route inside a mounted app (the service's FastAPI routes, which FastAPI keeps in routers
    of its own) shows no template from here: such requests are labelled with their path, for
    the first ``max_paths`` distinct paths, then as unmatched.
    """

    def __init__(self, max_paths: int = MAX_PATH_LABELS) -> None:
        self.max_paths = max_paths
        self._paths: set[str] = set()

    def __call__(self, routes: Sequence[BaseRoute], scope: Any) -> str:
        """The label of the request ``scope`` to an app whose route table is ``routes``."""
        route = matched_route(routes, scope)
        if route is None:
            return UNMATCHED
        if isinstance(route, Mount):
            if not route.routes:  # an app without a route table: static files, say
                return f"{route.path}/{{path}}"
        elif isinstance(template := getattr(route, "path", None), str):
            return template
        path: str = scope["path"]
        if path not in self._paths and len(self._paths) >= self.max_paths:
            return UNMATCHED
        self._paths.add(path)
        return path


class RouteLabelledMetrics(instruments.RunnerTrafficMetricsMiddleware):
    """BentoML's traffic metrics middleware, labelling requests by :class:`RouteLabels`."""

    def __init__(self, app: Any, **options: Any) -> None:
        super().__init__(_RealPath(app), **options)
        self.labels = RouteLabels()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            app = scope.get("app")  # the Starlette app, set before its middleware runs
            label = self.labels(app.router.routes if app is not None else [], scope)
            if label != scope["path"]:
                # BentoML reads the label from the path; _RealPath gives the real one back.
                scope = {**scope, "path": label, _REAL_PATH: scope["path"]}
        await super().__call__(scope, receive, send)


class _RealPath:
    """ASGI: restores the path :class:`RouteLabelledMetrics` replaced with its label."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if _REAL_PATH in scope:
            scope = {**scope, "path": scope[_REAL_PATH]}
            del scope[_REAL_PATH]
        await self.app(scope, receive, send)


def label_by_route() -> None:
    """Have BentoML build :class:`RouteLabelledMetrics` into the apps it builds from now on."""
    instruments.RunnerTrafficMetricsMiddleware = RouteLabelledMetrics  # type: ignore[assignment,misc]
