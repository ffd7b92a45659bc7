"""Talk to a running service: which model it serves, and ``POST /reload`` to swap in the latest.

``/reload`` reaches one worker, which loads the current Production model (from the MLflow
registry when the service has ``MLFLOW_TRACKING_URI``, else the store's latest ``titanic``) and
names it in the pointer the other workers follow within a poll interval; so after a 200 this module
keeps asking ``/health`` until several answers in a row name the new version.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import requests

from lifeboat.routes import HEALTH_ROUTE, RELOAD_ROUTE

AGREEING_ANSWERS = 5  # /health answers in a row that must name the new version


class ReloadError(RuntimeError):
    """The service answered but did not end up serving the expected version."""


@dataclass(frozen=True)
class ReloadOutcome:
    """What the service said: reached at all, and the version it serves afterwards."""

    reached: bool
    version: str | None = None
    previous_version: str | None = None
    detail: str = ""


def serving_version(url: str, timeout: float = 5.0) -> str | None:
    """The model version ``GET /health`` reports, or None if nothing answers at ``url``."""
    try:
        response = requests.get(f"{url.rstrip('/')}{HEALTH_ROUTE}", timeout=timeout)
    except requests.RequestException:
        return None
    if response.status_code != 200:
        return None
    return str(response.json().get("model_version"))


def reload_service(
    url: str, token: str, expected_version: str, timeout: float = 60.0
) -> ReloadOutcome:
    """Ask the service at ``url`` to serve the Production model, and wait until it does.

    Args:
        url: The service's base URL, e.g. ``http://127.0.0.1:3000``.
        token: ``LIFEBOAT_ADMIN_TOKEN``.
        expected_version: The registry version of the Production model.
        timeout: Seconds to wait for every answering worker to report it.

    Returns:
        ``reached=False`` when no service answers (nothing to reload; a service started later
        loads the Production model anyway).

    Raises:
        ReloadError: The service refused (wrong token, rejected model) or never reported
            ``expected_version``.
    """
    base = url.rstrip("/")
    previous = serving_version(base)
    if previous is None:
        return ReloadOutcome(reached=False, detail=f"no service answers at {base}{HEALTH_ROUTE}")
    if previous == expected_version:
        return ReloadOutcome(True, previous, previous, "already serving it; not reloaded")
    try:
        response = requests.post(
            f"{base}{RELOAD_ROUTE}", headers={"Authorization": f"Bearer {token}"}, timeout=timeout
        )
    except requests.RequestException as exc:
        raise ReloadError(f"POST {base}{RELOAD_ROUTE} failed: {exc}") from exc
    body: Any = _json(response)
    if response.status_code != 200:
        reason = (body.get("error") or body.get("detail")) if isinstance(body, dict) else body
        raise ReloadError(f"POST {base}{RELOAD_ROUTE} answered {response.status_code}: {reason}")
    deadline = time.monotonic() + timeout
    agreeing = 0
    seen: str | None = None
    while time.monotonic() < deadline:
        seen = serving_version(base)
        agreeing = agreeing + 1 if seen == expected_version else 0
        if agreeing >= AGREEING_ANSWERS:
            return ReloadOutcome(True, seen, previous, f"reloaded: {body}")
        time.sleep(0.2)
    raise ReloadError(
        f"after POST {base}{RELOAD_ROUTE} the service still reports v{seen}, "
        f"not v{expected_version}"
    )


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {"error": response.text[:300]}
