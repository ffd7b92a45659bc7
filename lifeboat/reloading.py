"""Which model each worker serves, and ``POST /reload``: swap in Production without a restart.

``/reload`` reaches one worker. That worker re-resolves Production — from the MLflow registry
when ``MLFLOW_TRACKING_URI`` is set (imported into the BentoML store first), else the store's
``titanic:latest`` — loads and smoke-tests it, swaps it in and names it in a marker file. Every
worker polls the marker and loads the model it names from the store. A batch keeps the model it
started with; a failed candidate changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from bentoml._internal.configuration.containers import BentoMLContainer
from bentoml._internal.models import ModelStore
from pydantic import BaseModel
from starlette.responses import JSONResponse

from lifeboat import model_store
from lifeboat.serving import LoadedModel, ModelMetadata, ModelRejected, load_model, logger
from lifeboat.settings import Settings

MODEL_TAG = f"{model_store.BENTO_MODEL}:latest"


class ReloadResult(BaseModel):
    """What ``POST /reload`` did in the worker that received it."""

    reloaded: bool
    model_tag: str
    model_version: str
    previous_tag: str | None = None
    source: str
    error: str | None = None


class Health(BaseModel):
    """One worker's view: its process and the model it serves."""

    status: str = "ok"
    model_loaded: bool
    model_name: str
    model_version: str
    model_tag: str
    loaded_at: str
    worker_pid: int
    reload_error: str | None


class ModelInfo(BaseModel):
    """The serving model's tag and metadata."""

    model_tag: str
    metadata: ModelMetadata


class ModelHolder:
    """The model one worker serves, swapped whole; the workers agree through a marker file."""

    def __init__(
        self,
        model: LoadedModel,
        marker: Path,
        store: Any,
        candidate: Callable[[], str],
        source: str,
    ) -> None:
        """Hold ``model``.

        Args:
            model: What the worker serves until a reload.
            marker: The file every worker of this server polls.
            store: The BentoML ``ModelStore`` that tags resolve in.
            candidate: Finds the tag ``/reload`` should serve (may import it first).
            source: Where ``candidate`` looks, for the reload response.
        """
        self.marker = marker
        self.store = store
        self.candidate = candidate
        self.source = source
        self.reload_error: str | None = None
        self._model = model
        self._lock = threading.Lock()
        self._marker_mtime: int | None = None

    @property
    def model(self) -> LoadedModel:
        return self._model

    def _swap(self, tag: str) -> LoadedModel:
        stored = resolve(self.store, tag)
        if str(stored.tag) != self._model.tag:
            self._model = load_model(stored.path, str(stored.tag))
            logger.info("now serving %s", self._model.tag)
        return self._model

    def reload_latest(self) -> ReloadResult:
        """Swap in the candidate here, then mark it for the other workers."""
        previous = self._model
        try:
            with self._lock:
                current = self._swap(self.candidate())
        except ModelRejected as exc:
            logger.error("reload rejected, still serving %s: %s", previous.tag, exc)
            return ReloadResult(
                reloaded=False,
                model_tag=previous.tag,
                model_version=previous.metadata.version,
                source=self.source,
                error=str(exc),
            )
        self.reload_error = None
        write_marker(self.marker, current.tag)
        return ReloadResult(
            reloaded=current is not previous,
            model_tag=current.tag,
            model_version=current.metadata.version,
            previous_tag=previous.tag,
            source=self.source,
        )

    def follow_marker(self) -> None:
        """Load the tag the marker names, if the marker changed since the last look."""
        try:
            mtime = self.marker.stat().st_mtime_ns
        except FileNotFoundError:
            return
        if mtime == self._marker_mtime:
            return
        self._marker_mtime = mtime
        try:
            with self._lock:
                self._swap(read_marker(self.marker) or self._model.tag)
            self.reload_error = None
        except (ModelRejected, OSError, ValueError, KeyError) as exc:
            self.reload_error = str(exc)
            logger.error("reload marker: keeping %s: %s", self._model.tag, exc)

    def health(self) -> Health:
        model = self._model
        return Health(
            model_loaded=True,
            model_name=model.tag.partition(":")[0],
            model_version=model.metadata.version,
            model_tag=model.tag,
            loaded_at=model.loaded_at,
            worker_pid=os.getpid(),
            reload_error=self.reload_error,
        )

    def info(self) -> ModelInfo:
        return ModelInfo(model_tag=self._model.tag, metadata=self._model.metadata)


def open_store(settings: Settings) -> Any:
    """``LIFEBOAT_MODEL_STORE``'s BentoML store if set, else the process's own."""
    if settings.model_store is None:
        return BentoMLContainer.model_store.get()
    return ModelStore(settings.model_store / "models")


def resolve(store: Any, tag: str) -> Any:
    """The stored BentoML model for ``tag``.

    Raises:
        ModelRejected: The tag is not in the store.
    """
    try:
        return store.get(tag)
    except Exception as exc:
        raise ModelRejected(f"{tag}: {type(exc).__name__}: {exc}") from exc


def production_candidate(settings: Settings, store: Any) -> tuple[Callable[[], str], str]:
    """What ``/reload`` serves, and where it comes from.

    With ``MLFLOW_TRACKING_URI``: the registry's ``<model>@<alias>``, imported into ``store``
    (once per registry version). Without: the store's ``titanic:latest``.
    """
    uri = settings.mlflow_tracking_uri
    if not uri:
        return (lambda: MODEL_TAG), f"BentoML store {MODEL_TAG}"
    name, alias = settings.model_name, settings.production_alias
    source = f"models:/{name}@{alias} at {model_store._public(uri)}"
    # Import MLflow now, while the worker starts, not in the middle of traffic: BentoML's batcher
    # checks each batch against lazily named types (pandas.core.frame.DataFrame), which fails
    # with a 500 while a reload thread has pandas half-imported.
    import mlflow.artifacts  # noqa: F401

    def imported() -> str:
        try:
            model, _ = model_store.import_production(uri, name, alias, store=store)
        except Exception as exc:  # the registry down, no alias, a missing artifact ...
            raise ModelRejected(f"{source}: {type(exc).__name__}: {exc}") from exc
        return str(model.tag)

    return imported, source


def marker_path(settings: Settings) -> Path:
    """``LIFEBOAT_RELOAD_MARKER``, else a file private to this ``bentoml serve``."""
    if settings.reload_marker is not None:
        return settings.reload_marker
    # The workers of one `bentoml serve` are children of one circus arbiter; its start time
    # keeps a later server that reuses the pid from reading this server's marker.
    arbiter = psutil.Process(os.getppid())
    name = f"lifeboat-reload-{arbiter.pid}-{arbiter.create_time():.0f}.json"
    return Path(tempfile.gettempdir()) / name


def open_holder(stored: Any, settings: Settings) -> ModelHolder:
    """A worker's holder: the marker's model after a reload, else the service's model.

    A worker that circus restarts after a reload so rejoins its siblings instead of loading
    whatever the store now calls latest, which may be a candidate that reload rejected.
    """
    marker, store = marker_path(settings), open_store(settings)
    if (tag := read_marker(marker)) is not None:
        stored = resolve(store, tag)
    candidate, source = production_candidate(settings, store)
    return ModelHolder(load_model(stored.path, str(stored.tag)), marker, store, candidate, source)


async def follow_reloads(holder: ModelHolder, interval: float) -> None:
    """Poll the reload marker every ``interval`` seconds until cancelled (one task per worker)."""
    while True:
        await asyncio.sleep(interval)
        await asyncio.to_thread(holder.follow_marker)


def read_marker(marker: Path) -> str | None:
    """The tag the last successful reload named, if any."""
    try:
        return json.loads(marker.read_text())["tag"]
    except FileNotFoundError:
        return None


def write_marker(marker: Path, tag: str) -> None:
    """Atomically record the tag every worker should serve."""
    marker.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps({"tag": tag, "written_at": datetime.now(UTC).isoformat()})
    with tempfile.NamedTemporaryFile("w", dir=marker.parent, delete=False) as tmp:
        tmp.write(body)
    os.replace(tmp.name, marker)


def reload_response(result: ReloadResult) -> JSONResponse:
    """200 when Production serves (new or unchanged), 409 when it was rejected."""
    return JSONResponse(result.model_dump(), status_code=409 if result.error else 200)
