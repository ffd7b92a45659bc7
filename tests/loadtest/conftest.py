"""Load-test fixtures: a stand-in that misbehaves (the real service is the session's ``served``,
tests/conftest.py)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

STAND_IN_TOKEN = "stand-in-token"


class _StandIn(BaseHTTPRequestHandler):
    """Answers like TitanicSurvival, wrongly or slowly as the first path segment says:

    ``/wrong/...``: probability 1.7, and one prediction short on the batch route;
    ``/slow/...``: correct answers after 30 ms.

    Every prediction route wants ``Authorization: Bearer stand-in-token``.
    """

    good = {"survived": 1, "probability": 0.9, "model_version": "7", "drift_alerts": []}

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        mode, _, route = self.path.strip("/").partition("/")
        if self.headers.get("Authorization") != f"Bearer {STAND_IN_TOKEN}":
            return self._send(401, {"error": "missing or wrong API token"})
        answer: dict[str, Any] = dict(self.good)
        if mode == "slow":
            time.sleep(0.03)
        elif mode == "wrong":
            answer["probability"] = 1.7
        if route == "predict_titanic":
            return self._send(200, answer)
        count = len(body) - (1 if mode == "wrong" else 0)
        return self._send(200, {"predictions": [self.good] * count})

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: Any) -> None:  # keep pytest's output clean
        pass


@pytest.fixture(scope="session")
def stand_in() -> Iterator[str]:
    """A stand-in TitanicSurvival on 127.0.0.1 (see :class:`_StandIn`); yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StandIn)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
