"""TitanicSurvival: the BentoML service. A thin adapter over the ``lifeboat`` package.

Run it with BentoML's own commands: ``bentoml serve`` (from this directory) and ``bentoml build``.
"""

from __future__ import annotations

import asyncio

import bentoml
from fastapi import Depends, FastAPI
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from lifeboat import routes
from lifeboat.passenger import Passenger
from lifeboat.prediction import Scored
from lifeboat.serving import (
    bodies,
    card,
    feedback,
    guards,
    lifecycle,
    metric_labels,
    predicting,
    reloading,
    sources,
    traffic,
)
from lifeboat.serving.bodies import Prediction
from lifeboat.serving.predicting import Received
from lifeboat.serving.reloading import Health, ModelInfo
from lifeboat.settings import get_settings

admin = FastAPI(title="TitanicSurvival operations")


@bentoml.asgi_app(admin)
@bentoml.service(
    # One worker per core (cgroup limits count). Override without editing this file:
    # BENTOML_CONFIG_OPTIONS="services.TitanicSurvival.workers=2".
    workers="cpu_count",
    traffic={"timeout": 30},
    # Records go to <log_path>/titanic/data/data.<worker>.log. LIFEBOAT_MONITORING_DIR, if set,
    # replaces log_path; so does services.TitanicSurvival.monitoring.options.log_path=... in
    # BENTOML_CONFIG_OPTIONS. A relative path is relative to the server's working directory.
    monitoring={"enabled": True, "type": "default", "options": {"log_path": "monitoring"}},
    # The Bento image (`bentoml containerize`): the stack's pinned slim Python plus wheels, with
    # distro=None so that BentoML adds no `apt-get install build-essential git` (633 MB; it does
    # for every distro it knows, custom base image or not): nothing here builds from source.
    # tests/serving/test_build.py fails if a BentoML upgrade brings the tools back.
    image=bentoml.images.Image(base_image="python:3.11.14-slim-bookworm", distro=None),
)
class TitanicSurvival:
    """Titanic survival predictions from the titanic model in the BentoML store."""

    model = bentoml.models.BentoModel(sources.MODEL_TAG)

    def __init__(self) -> None:
        self.settings = get_settings()
        guards.quiet_validation_errors()
        traffic.cancel_finished_timers()  # BentoML keeps each timer for the whole timeout
        self.holder, self.roster = lifecycle.start_worker(self.model, self.settings)

    @bentoml.on_deployment
    def _choose_model() -> None:
        # Once per `bentoml serve`, before the port is bound: a valid model, or exit.
        workers = lifecycle.configured_workers(TitanicSurvival.name)
        lifecycle.prepare_server(TitanicSurvival.inner.model.resolve(), get_settings(), workers)

    def __is_ready__(self) -> bool:
        """/readyz: every worker of this server serves, and this one is not draining."""
        return self.roster.ready()

    @bentoml.on_startup
    def _drain_on_sigterm(self) -> None:
        lifecycle.drain_on_sigterm(self.settings.shutdown_grace_seconds)

    @bentoml.on_startup
    def _follow_reloads(self) -> None:
        follow = reloading.follow_reloads(
            self.holder, self.settings.reload_poll_seconds, self.settings.registry_follow_seconds
        )
        self._follower = asyncio.create_task(follow)

    @bentoml.on_startup
    def _settle_heap(self) -> None:
        predicting.freeze_startup_heap()

    @bentoml.on_shutdown
    def _stop_following(self) -> None:
        self._follower.cancel()

    # max_latency_ms is a deadline, not a wait target: the dispatcher answers 503 to a queued
    # request it expects to miss it. max_batch_size stays above the concurrency we expect
    # (tested to 128 connections), since a smaller cap also sheds requests.
    @bentoml.api(
        route=routes.PREDICT_ROUTE,
        batchable=True,
        max_batch_size=256,
        max_latency_ms=1000,
        input_spec=bodies.PredictTitanicRequest,
        output_spec=bodies.PredictionResponse,
    )
    def predict_titanic(self, passengers: list[Received]) -> list[Prediction]:
        """Predict survival for one passenger (flat JSON object)."""
        scored = predicting.predict_received(self.holder.model, passengers, self.holder.shadow)
        return bodies.predictions(scored)

    @bentoml.api(
        route=routes.BATCH_ROUTE,
        input_spec=bodies.PredictTitanicBatchRequest,
        output_spec=bodies.BatchPredictionsResponse,
    )
    def predict_titanic_batch(self, passengers: list[Passenger]) -> Scored:
        """Predict survival for a JSON list of up to 1000 passengers, in order."""
        return predicting.predict_and_log(self.holder.model, passengers, self.holder.shadow)

    @admin.post(
        routes.FEEDBACK_ROUTE,
        response_model=feedback.FeedbackAccepted,
        openapi_extra=feedback.openapi_body(),
    )
    async def give_feedback(
        self, request: Request, sender: str = Depends(guards.feedback_sender)
    ) -> Response:
        """Record outcomes of earlier predictions: {request_id, Survived}, one or a list."""
        return await feedback.receive(request, sender)

    @admin.get(routes.HEALTH_ROUTE)
    def health(self) -> Health:
        """Which model this worker serves, and the state of every worker of this server."""
        return self.roster.health(self.holder.health())

    @admin.get(routes.MODEL_INFO_ROUTE)
    def model_info(self) -> ModelInfo:
        """The serving model's tag and metadata."""
        return self.holder.info()

    @admin.get(routes.MODEL_CARD_ROUTE, response_class=HTMLResponse)
    def model_card(self, request: Request) -> Response:
        """The serving version's model card: HTML, or Markdown with ?format=md."""
        return card.serving_card(self.holder, request)

    @admin.post(routes.RELOAD_ROUTE, dependencies=[Depends(guards.require_admin)])
    def reload(self) -> JSONResponse:
        """Serve Production (MLflow registry if MLFLOW_TRACKING_URI, else the store) everywhere."""
        return reloading.reload_response(self.holder.reload_latest())


# Outermost first: close connections while draining, whatever answers; reject unauthenticated
# requests before reading their bodies.
TitanicSurvival.add_asgi_middleware(lifecycle.CloseWhenDraining)
TitanicSurvival.add_asgi_middleware(guards.PredictionRoutesMiddleware)
TitanicSurvival.add_asgi_middleware(guards.BodyLimitMiddleware)
# Before BentoML builds the app: label its HTTP metrics by route, not by the client's path.
metric_labels.label_by_route()
