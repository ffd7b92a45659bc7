"""Request guards of ``service.py``: bearer tokens, a body-size limit, quiet 400s.

Plain ASGI middleware rather than FastAPI dependencies for the prediction routes: BentoML
serves those itself, and a guard must act before BentoML reads or parses the body.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Sequence
from typing import Any

from pydantic import SecretStr, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from lifeboat.routes import BATCH_ROUTE, PREDICT_ROUTE
from lifeboat.settings import get_settings

MAX_BODY_BYTES = 4 * 1024 * 1024  # 1000 passengers with 500-character texts are ~1.7 MB


def token_matches(authorization: str | None, secret: SecretStr) -> bool:
    """Constant-time check of an ``Authorization: Bearer <token>`` header."""
    scheme, _, token = (authorization or "").partition(" ")
    expected = secret.get_secret_value().encode()
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected)


def require_admin(request: Request) -> None:
    """FastAPI dependency of admin routes: 403 while disabled, 401 for a wrong token."""
    secret = get_settings().admin_token
    if secret is None:
        raise HTTPException(403, "admin routes are disabled: LIFEBOAT_ADMIN_TOKEN is not set")
    if not token_matches(request.headers.get("authorization"), secret):
        raise HTTPException(401, "missing or wrong admin token", {"WWW-Authenticate": "Bearer"})


def feedback_sender(request: Request) -> str:
    """FastAPI dependency of ``POST /feedback``: which token sent the labels ("feedback" or
    "admin"); 403 while both tokens are unset, 401 for any other token."""
    settings = get_settings()
    tokens = {"feedback": settings.feedback_token, "admin": settings.admin_token}
    if not any(tokens.values()):
        raise HTTPException(
            403, "feedback is disabled: set LIFEBOAT_FEEDBACK_TOKEN (or LIFEBOAT_ADMIN_TOKEN)"
        )
    authorization = request.headers.get("authorization")
    for sender, secret in tokens.items():
        if secret is not None and token_matches(authorization, secret):
            return sender
    raise HTTPException(401, "missing or wrong feedback token", {"WWW-Authenticate": "Bearer"})


class _DropValidationTracebacks(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ValidationError))


def quiet_validation_errors() -> None:
    """Stop BentoML logging a traceback for every rejected body.

    The access log already records each 400, and pydantic's messages quote the input (a
    too-long Name, say), which the error log should not keep.
    """
    logging.getLogger("bentoml._internal.server.http_app").addFilter(_DropValidationTracebacks())


def _json_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _header(scope: Any, name: bytes) -> str | None:
    return next((v.decode("latin-1") for k, v in scope["headers"] if k == name), None)


class PredictionRoutesMiddleware:
    """ASGI, prediction routes only: the bearer token when ``LIFEBOAT_API_TOKEN`` is set, and
    the body read as JSON whatever its declared type (BentoML would parse form types as forms,
    and ``curl -d`` sends one)."""

    def __init__(self, app: Any, paths: Sequence[str] = (PREDICT_ROUTE, BATCH_ROUTE)) -> None:
        self.app = app
        self.paths = frozenset(paths)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            return await self.app(scope, receive, send)
        secret = get_settings().api_token
        if secret is not None and not token_matches(_header(scope, b"authorization"), secret):
            unauthorized = _json_error(
                401, "missing or wrong API token", {"WWW-Authenticate": "Bearer"}
            )
            return await unauthorized(scope, receive, send)
        headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
        headers.append((b"content-type", b"application/json"))
        await self.app({**scope, "headers": headers}, receive, send)


class BodyLimitMiddleware:
    """ASGI: 413 for a body over ``max_bytes``, declared or streamed, before it is parsed."""

    def __init__(self, app: Any, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        too_large = _json_error(413, f"request body over {self.max_bytes} bytes")
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            return await too_large(scope, receive, send)
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_bytes:
                return await too_large(scope, receive, send)
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if replayed:
                return await receive()  # the disconnect, when it comes
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)
