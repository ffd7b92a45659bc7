"""A BentoML endpoint that answers a constant: the ceiling ``make bench`` holds service.py to.

Same framework, route, JSON body parsing and worker count as service.py's ``/predict_titanic``;
no validation, model, batching, thread hop or monitoring: the least work BentoML can do for a
request. It has service.py's mend of BentoML's request timer (``lifeboat.serving.traffic``), so
that the two differ in that work only. Serve it from the project root:
``bentoml serve loadtest.constant_service:ConstantTitanic``.
"""

from __future__ import annotations

from typing import Any

import bentoml
from pydantic import BaseModel, ConfigDict

from lifeboat.serving import traffic

ANSWER: dict[str, Any] = {
    "survived": 0,
    "probability": 0.5,
    "model_version": "constant",
    "drift_alerts": [],
}


class AnyObject(BaseModel):
    """Any JSON object: parsed, like a passenger, but never checked."""

    model_config = ConfigDict(extra="allow")


@bentoml.service(workers="cpu_count", traffic={"timeout": 30})  # as service.py
class ConstantTitanic:
    """Answers every passenger with the same prediction."""

    def __init__(self) -> None:
        # As service.py: without it BentoML keeps every request's timeout timer for 30 s, which
        # costs this ceiling memory and tail latency that service.py no longer pays.
        traffic.cancel_finished_timers()

    @bentoml.api(route="/predict_titanic", input_spec=AnyObject)
    async def predict_titanic(self) -> dict[str, Any]:
        """The same answer for any passenger."""
        return ANSWER
