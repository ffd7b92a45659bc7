"""Outcomes a client reports later: labels queued by request id, sent to ``POST /feedback``
once they are ``delay`` seconds old, a list at a time, as a real client reporting what happened
would (not inside the prediction request, where the service would not trust them)."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

MAX_PER_REQUEST = 1000  # the route's limit (lifeboat.serving.feedback.MAX_FEEDBACK_ITEMS)


@dataclass
class Outcomes:
    """Labels waiting to be reported, oldest first."""

    delay: float
    pending: collections.deque[tuple[float, str, int]] = field(default_factory=collections.deque)

    def add(self, now: float, request_id: str, label: int) -> None:
        """Report ``label`` for the prediction ``request_id`` once ``delay`` has passed."""
        self.pending.append((now + self.delay, request_id, label))

    def due(self, now: float, everything: bool = False) -> list[dict[str, Any]]:
        """The bodies' items of the labels due by ``now`` (all of them with ``everything``),
        at most one request's worth, taken off the queue."""
        items: list[dict[str, Any]] = []
        while self.pending and len(items) < MAX_PER_REQUEST:
            when, request_id, label = self.pending[0]
            if when > now and not everything:
                break
            self.pending.popleft()
            items.append({"request_id": request_id, "Survived": label})
        return items
