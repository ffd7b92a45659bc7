#!/usr/bin/env python3
"""Smoke-check a running Lifeboat stack: MLflow up, Bento up and ready, one sane prediction.

Standard library only, so it runs from any Python 3.9+ without the project installed:

    python docker/smoke.py                                   # the compose defaults
    python docker/smoke.py --wait 180                        # retry while the stack starts
    python docker/smoke.py --bento-url http://host:3000 --mlflow-url http://host:5000

Prints one PASS/FAIL line per check and a summary; exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

SAMPLE = {
    "Pclass": 3,
    "Sex": "male",
    "Age": 22,
    "SibSp": 1,
    "Parch": 0,
    "Fare": 7.25,
    "Embarked": "S",
}


class CheckFailed(Exception):
    """A check ran and the answer was wrong."""


@dataclass
class Response:
    status: int
    body: bytes

    def json(self) -> object:
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise CheckFailed(f"not JSON: {self.body[:200]!r}") from exc


def request(
    url: str, *, payload: object = None, token: str = "", timeout: float = 10.0
) -> Response:
    """GET (or POST when payload is given) and return the status and body, even for 4xx/5xx."""
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, method="GET" if data is None else "POST")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return Response(resp.status, resp.read())
    except urllib.error.HTTPError as exc:
        return Response(exc.code, exc.read())
    except (urllib.error.URLError, OSError) as exc:
        raise CheckFailed(f"{url}: {getattr(exc, 'reason', exc)}") from exc


def expect_ok(resp: Response, url: str) -> None:
    if resp.status != 200:
        raise CheckFailed(f"{url} answered HTTP {resp.status}: {resp.body[:200]!r}")


def check_mlflow_health(args: argparse.Namespace) -> str:
    url = f"{args.mlflow_url}/health"
    resp = request(url, timeout=args.timeout)
    expect_ok(resp, url)
    return resp.body.decode(errors="replace").strip()[:40]


def check_bento_health(args: argparse.Namespace) -> str:
    url = f"{args.bento_url}/health"
    resp = request(url, timeout=args.timeout)
    expect_ok(resp, url)
    return resp.body.decode(errors="replace").strip()[:80]


def check_bento_ready(args: argparse.Namespace) -> str:
    url = f"{args.bento_url}/readyz"
    expect_ok(request(url, timeout=args.timeout), url)
    return "ready"


def check_prediction(args: argparse.Namespace) -> str:
    url = f"{args.bento_url}/predict_titanic"
    resp = request(url, payload=SAMPLE, token=args.api_token, timeout=args.timeout)
    expect_ok(resp, url)
    body = resp.json()
    if not isinstance(body, dict):
        raise CheckFailed(f"expected a JSON object, got {body!r}")
    survived, probability = body.get("survived"), body.get("probability")
    # bool is an int in Python; a JSON `true` is not the 0/1 the contract promises.
    if isinstance(survived, bool) or survived not in (0, 1):
        raise CheckFailed(f"survived={survived!r}, expected 0 or 1")
    if isinstance(probability, bool) or not isinstance(probability, (int, float)):
        raise CheckFailed(f"probability={probability!r}, expected a number")
    if not 0.0 <= probability <= 1.0:
        raise CheckFailed(f"probability={probability!r}, expected 0 <= p <= 1")
    return f"survived={survived} probability={probability:.3f}"


def check_metrics(args: argparse.Namespace) -> str:
    url = f"{args.bento_url}/metrics"
    resp = request(url, timeout=args.timeout)
    expect_ok(resp, url)
    if b"bentoml_service_request_total" not in resp.body:
        raise CheckFailed("no bentoml_service_request_total in /metrics after a prediction")
    return "bentoml_service_request_total present"


CHECKS: list[tuple[str, Callable[[argparse.Namespace], str]]] = [
    ("mlflow /health", check_mlflow_health),
    ("bento /health", check_bento_health),
    ("bento /readyz", check_bento_ready),
    ("bento /predict_titanic", check_prediction),
    ("bento /metrics", check_metrics),
]


def run_check(
    check: Callable[[argparse.Namespace], str], args: argparse.Namespace, deadline: float
) -> str:
    """Run one check, retrying while the stack may still be starting (until `deadline`)."""
    while True:
        try:
            return check(args)
        except CheckFailed:
            if time.monotonic() >= deadline:
                raise
            time.sleep(2)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--mlflow-url",
        default=os.environ.get(
            "SMOKE_MLFLOW_URL", f"http://localhost:{os.environ.get('MLFLOW_PORT', '5000')}"
        ),
    )
    parser.add_argument(
        "--bento-url",
        default=os.environ.get(
            "SMOKE_BENTO_URL", f"http://localhost:{os.environ.get('BENTO_PORT', '3000')}"
        ),
    )
    parser.add_argument(
        "--api-token",
        default=os.environ.get("LIFEBOAT_API_TOKEN", ""),
        help="bearer token for /predict_titanic (default: $LIFEBOAT_API_TOKEN)",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        help="retry failing checks until this many seconds after the start",
    )
    args = parser.parse_args(argv)
    args.mlflow_url = args.mlflow_url.rstrip("/")
    args.bento_url = args.bento_url.rstrip("/")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # One deadline for the whole run: --wait is how long the stack may take to come up.
    deadline = time.monotonic() + args.wait
    passed = failed = 0
    for name, check in CHECKS:
        try:
            detail = run_check(check, args, deadline)
        except CheckFailed as exc:
            failed += 1
            print(f"FAIL  {name}: {exc}")
        else:
            passed += 1
            print(f"PASS  {name}: {detail}")
    print(f"smoke: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
