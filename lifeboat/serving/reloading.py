"""Which model each worker serves: one validated pointer that every worker follows.

Production is resolved from the MLflow registry's ``<model>@<alias>`` when
``MLFLOW_TRACKING_URI`` is set (imported into the BentoML store once per registry version),
else it is the store's ``titanic:latest``. A candidate is loaded and smoke-tested in the worker
that resolves it, and only then named in the **pointer**, a file private to this server
(written atomically). Every worker polls the pointer and loads what it names. So:

- at start, ``bentoml serve`` chooses the model once, before its workers start (see
  ``lifeboat.serving.lifecycle``): the pointer's if this server has one, else Production, else
  (registry unreachable) the model the Bento was built with, loudly; a worker restarted
  later serves what the pointer names;
- ``POST /reload`` re-resolves Production in the worker it reaches, and the others follow;
- with ``LIFEBOAT_REGISTRY_POLL_SECONDS``, every worker asks the registry where the alias
  points and reloads when it moved, so replicas converge on a promotion without being called;
- a rejected candidate changes nothing: a model imported for it is deleted from the store
  again, the pointer keeps naming the last good model, and a batch keeps the model it started
  with. An unreadable pointer keeps the current model and shows in ``/health``.

Resolving and importing hold an exclusive lock beside the pointer, so the workers of one server
never import the same version twice.

**The shadow** (issue 14's shadow scoring) follows the same rules: the challenger
(``models:/<model>@<LIFEBOAT_CHALLENGER_ALIAS>``, imported as ``titanic_shadow``; without a
registry, the store's ``titanic_shadow:latest``) is resolved with Production, at start, on
``POST /reload`` and when the registry poll sees either alias move, and the pointer names it
beside Production, so every worker scores the same shadow. Unlike Production it is optional:
none configured means no shadow, and one that cannot be found, loaded or smoke-tested is dropped
with one log line (an import made for it deleted again) while Production serves on; one of
Production's own version is not loaded twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from starlette.responses import JSONResponse

from lifeboat.artifact import ModelMetadata
from lifeboat.prediction import LoadedModel, ModelRejected, load_model
from lifeboat.serving.pointer import (
    InvalidPointer,
    Pointer,
    marker_path,
    pointer_lock,
    read_pointer,
    write_pointer,
)
from lifeboat.serving.sources import (
    NO_SHADOW,
    Absent,
    Candidate,
    InvalidCandidate,
    Production,
    Serving,
    Shadow,
    challenger_source,
    load_stored,
    production_source,
    resolve,
)
from lifeboat.serving.store import open_store
from lifeboat.settings import Settings

logger = logging.getLogger("bentoml.lifeboat.reloading")


class ShadowInfo(BaseModel):
    """The shadow a worker scores beside Production (clients never see its answers)."""

    loaded: bool
    version: str | None = None
    tag: str | None = None
    loaded_at: str | None = None
    source: str | None = Field(None, description="Where it is looked for; null: shadowing off")
    dropped: str | None = Field(None, description="Why a challenger that exists is not scored")


class ReloadResult(BaseModel):
    """What ``POST /reload`` did in the worker that received it."""

    reloaded: bool
    model_tag: str
    model_version: str
    previous_tag: str | None = None
    source: str
    error: str | None = None
    shadow: ShadowInfo | None = None


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
    registry_error: str | None = None
    shadow: ShadowInfo | None = None
    workers: dict[str, str] = Field(
        default_factory=dict, description="Every worker of this server by id: serving or not, why"
    )


class ModelInfo(BaseModel):
    """The serving model's tag and metadata."""

    model_tag: str
    metadata: ModelMetadata
    shadow: ShadowInfo | None = None
    shadow_metadata: ModelMetadata | None = None


class ModelHolder:
    """The model one worker serves, swapped whole; the workers agree through the pointer."""

    def __init__(
        self,
        model: LoadedModel,
        pointer: Path,
        store: Any,
        production: Production,
        challenger: Production | None = None,
        shadow: Shadow = NO_SHADOW,
    ) -> None:
        """Hold ``model``.

        Args:
            model: What the worker serves until a reload.
            pointer: The pointer file every worker of this server polls.
            store: The BentoML ``ModelStore`` that tags resolve in.
            production: Where ``/reload`` and the registry poll find Production.
            challenger: Where they find the shadow; None: shadow scoring is off.
            shadow: The shadow scored beside ``model`` until a reload.
        """
        self.pointer = pointer
        self.store = store
        self.production = production
        self.challenger = challenger
        self._shadow = shadow
        self.reload_error: str | None = None
        self.registry_error: str | None = None
        self._model = model
        self._lock = threading.Lock()
        self._pointer_mtime: int | None = None
        # Registry versions that failed to load or smoke-test here: the poll does not retry
        # them (a registry that was merely unreachable is retried at the next poll).
        self._rejected: set[str] = set()
        self._last_invalid = False

    @property
    def model(self) -> LoadedModel:
        return self._model

    @property
    def shadow(self) -> LoadedModel | None:
        """The model scored beside Production, if any."""
        return self._shadow.model

    @property
    def source(self) -> str:
        return self.production.source

    def _swap(self, tag: str) -> LoadedModel:
        stored = resolve(self.store, tag)
        if str(stored.tag) != self._model.tag:
            self._model = load_model(stored.path, str(stored.tag))
            logger.info("now serving %s (v%s)", self._model.tag, self._model.metadata.version)
        return self._model

    def reload_latest(self) -> ReloadResult:
        """Resolve Production, swap it in here once it loads, then point every worker at it."""
        previous = self._model
        self._last_invalid = False
        try:
            with self._lock, pointer_lock(self.pointer):
                current = swap_in_candidate(self.production.resolve, self.store, self._swap)
                self._shadow = choose_shadow(self.challenger, self.store, current, self._shadow)
                write_pointer(self.pointer, current, self._shadow)
        except ModelRejected as exc:
            self._last_invalid = isinstance(exc, InvalidCandidate)
            logger.error("reload rejected, still serving %s: %s", previous.tag, exc)
            return ReloadResult(
                reloaded=False,
                model_tag=previous.tag,
                model_version=previous.metadata.version,
                source=self.source,
                error=str(exc),
                shadow=self.shadow_info(),
            )
        self.reload_error = None
        self._pointer_mtime = None  # our own write: let follow_pointer confirm it
        return ReloadResult(
            reloaded=current is not previous,
            model_tag=current.tag,
            model_version=current.metadata.version,
            previous_tag=previous.tag,
            source=self.source,
            shadow=self.shadow_info(),
        )

    def follow_pointer(self) -> None:
        """Load the model the pointer names, if the pointer changed since the last look.

        Never raises: whatever is wrong with the pointer or its model is logged and shown in
        ``/health``, and the worker keeps serving what it serves.
        """
        try:
            mtime = self.pointer.stat().st_mtime_ns
        except OSError:
            return
        if mtime == self._pointer_mtime:
            return
        self._pointer_mtime = mtime
        try:
            pointer = read_pointer(self.pointer)
            with self._lock:
                if pointer is not None:
                    self._swap(pointer.tag)
                    if self.challenger is not None:
                        self._shadow = shadow_from_pointer(pointer, self.store, self._shadow)
            self.reload_error = None
        except Exception as exc:  # a bad pointer must never stop the follower
            self.reload_error = f"pointer {self.pointer}: {type(exc).__name__}: {exc}"
            logger.error("keeping %s: %s", self._model.tag, self.reload_error)

    def follow_registry(self) -> None:
        """Reload when the registry's alias names another version than the one served, or the
        challenger alias another than the shadow resolved last.

        Never raises: an unreachable registry is logged once per distinct error and shown in
        ``/health``; a version that failed to load is not retried until its alias moves.
        """
        if self.production.alias_version is None:
            return
        try:
            version = self.production.alias_version()
            challenger = self._challenger_version()
        except Exception as exc:  # the registry down, the alias gone ...
            error = f"{self.source}: {type(exc).__name__}: {exc}"
            if error != self.registry_error:
                logger.warning("registry poll failed, still serving %s: %s", self._model.tag, error)
            self.registry_error = error
            return
        self.registry_error = None
        moved = version != self._model.metadata.version and version not in self._rejected
        if moved:
            logger.info("%s now names v%s: reloading", self.source, version)
        elif self.challenger is not None and challenger != self._shadow.version:
            logger.info("%s now names v%s: reloading", self.challenger.source, challenger)
        else:
            return
        if self.reload_latest().error and self._last_invalid and moved:
            self._rejected.add(version)

    def _challenger_version(self) -> str | None:
        if self.challenger is None or self.challenger.alias_version is None:
            return None
        try:
            return self.challenger.alias_version()
        except Absent:
            return None

    def shadow_info(self) -> ShadowInfo:
        """The shadow's state, as ``/health`` and ``/model_info`` show it."""
        shadow = self._shadow
        source = self.challenger.shown(self.challenger.source) if self.challenger else None
        if shadow.model is None:
            dropped = shadow.note
            if dropped is not None and self.challenger is not None:
                dropped = self.challenger.shown(dropped)
            return ShadowInfo(loaded=False, version=shadow.version, source=source, dropped=dropped)
        return ShadowInfo(
            loaded=True,
            version=shadow.model.version,
            tag=shadow.model.tag,
            loaded_at=shadow.model.loaded_at,
            source=source,
        )

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
            registry_error=self.registry_error,
            shadow=self.shadow_info(),
        )

    def info(self) -> ModelInfo:
        shadow = self._shadow.model
        return ModelInfo(
            model_tag=self._model.tag,
            metadata=self._model.metadata,
            shadow=self.shadow_info(),
            shadow_metadata=shadow.metadata if shadow else None,
        )


def swap_in_candidate(
    find: Callable[[], Candidate], store: Any, swap: Callable[[str], LoadedModel]
) -> LoadedModel:
    """Resolve a candidate and swap it in; a model imported for a rejected one is deleted.

    So a candidate that fails its load or smoke test never stays in the store, where it would
    become ``titanic:latest`` for the next server that starts.

    Raises:
        ModelRejected: The candidate could not be resolved.
        InvalidCandidate: It was resolved but failed to load or its smoke test.
    """
    candidate = find()
    try:
        return swap(candidate.tag)
    except ModelRejected as exc:
        if candidate.imported:
            with contextlib.suppress(Exception):
                store.delete(candidate.tag)
            logger.error("deleted rejected candidate %s from the store", candidate.tag)
        raise InvalidCandidate(str(exc)) from exc


def choose_shadow(
    challenger: Production | None, store: Any, production: LoadedModel, current: Shadow = NO_SHADOW
) -> Shadow:
    """Resolve the challenger and load it to score beside ``production``; never raises.

    ``current`` is kept when the challenger is the model it holds. One that cannot be found,
    loaded or smoke-tested is dropped with one log line, and a copy imported for it is deleted.
    """
    if challenger is None:
        return NO_SHADOW
    # Asked first, so that Production's own version is not even imported a second time.
    try:
        named = challenger.alias_version() if challenger.alias_version else None
    except Absent:
        return NO_SHADOW
    except Exception:  # the registry down ...: resolving it says so
        named = None
    if named is not None and named == production.version:
        return Shadow(version=named, note=same_as_production(named))
    try:
        candidate = challenger.resolve()
    except Absent:
        return NO_SHADOW
    except ModelRejected as exc:
        logger.error("shadow dropped, Production %s unaffected: %s", production.tag, exc)
        return Shadow(note=f"dropped: {exc}")
    if candidate.version is not None and candidate.version == production.version:
        return Shadow(version=candidate.version, note=same_as_production(candidate.version))
    if current.model is not None and current.model.tag == candidate.tag:
        return current
    try:
        model = load_stored(store, candidate.tag)
    except ModelRejected as exc:
        if candidate.imported:  # not left for the next resolve to find
            with contextlib.suppress(Exception):
                store.delete(candidate.tag)
        logger.error(
            "shadow %s dropped, Production %s unaffected: %s", candidate.tag, production.tag, exc
        )
        return Shadow(version=candidate.version, note=f"dropped: {exc}")
    if model.version == production.version:
        return Shadow(version=model.version, note=same_as_production(model.version))
    logger.info("shadowing %s with %s (v%s)", production.tag, model.tag, model.version)
    return Shadow(model, model.version)


def same_as_production(version: str) -> str:
    return f"v{version} is Production's own version: not loaded twice"


def shadow_from_pointer(named: Pointer, store: Any, current: Shadow = NO_SHADOW) -> Shadow:
    """The shadow the pointer names (already validated where it was resolved); a shadow this
    worker cannot load is dropped with one log line, Production unaffected."""
    if named.shadow_tag is None:
        return Shadow(version=named.shadow_version, note=named.shadow_note)
    if current.model is not None and current.model.tag == named.shadow_tag:
        return current
    try:
        model = load_stored(store, named.shadow_tag)
    except ModelRejected as exc:
        logger.error(
            "shadow %s dropped, Production %s unaffected: %s", named.shadow_tag, named.tag, exc
        )
        return Shadow(version=named.shadow_version, note=f"dropped: {exc}")
    return Shadow(model, model.version)


def startup_model(
    stored: Any,
    pointer: Path,
    store: Any,
    production: Production,
    challenger: Production | None = None,
) -> Serving:
    """What a starting worker serves: the pointer's models, else Production (and the challenger
    resolved now), else the Bento's own model.

    Falling back never goes to an unvalidated candidate: the pointer names only models that
    passed their smoke test, and a Production candidate that fails it is deleted again.
    """
    try:
        if (named := read_pointer(pointer)) is not None:
            model = load_stored(store, named.tag)
            if challenger is None:
                return Serving(model, NO_SHADOW)
            return Serving(model, shadow_from_pointer(named, store))
    except (InvalidPointer, ModelRejected, OSError) as exc:
        logger.error("pointer %s unusable, resolving Production instead: %s", pointer, exc)
    if production.alias_version is not None:
        try:
            model = swap_in_candidate(
                production.resolve, store, lambda tag: load_stored(store, tag)
            )
        except ModelRejected as exc:
            logger.error(
                "Production unavailable (%s); serving the Bento's own model %s until it is",
                exc,
                stored.tag,
            )
        else:
            shadow = choose_shadow(challenger, store, model)
            write_pointer(pointer, model, shadow)
            return Serving(model, shadow)
    model = load_model(stored.path, str(stored.tag))
    return Serving(model, choose_shadow(challenger, store, model))


def open_holder(stored: Any, settings: Settings) -> ModelHolder:
    """A starting worker's holder (see :func:`startup_model` for which model it serves).

    A worker that circus restarts after a reload so rejoins its siblings instead of loading
    whatever the store now calls latest.
    """
    pointer, store = marker_path(settings), open_store(settings.model_store)
    production = production_source(settings, store)
    challenger = challenger_source(settings, store)
    with pointer_lock(pointer):
        model, shadow = startup_model(stored, pointer, store, production, challenger)
    return ModelHolder(model, pointer, store, production, challenger, shadow)


async def follow_reloads(
    holder: ModelHolder, interval: float, registry_interval: float = 0.0
) -> None:
    """Poll the pointer every ``interval`` seconds, and the registry every ``registry_interval``
    (0: never), until cancelled (one task per worker)."""
    loop = asyncio.get_running_loop()
    next_registry = loop.time() + registry_interval
    while True:
        await asyncio.sleep(interval)
        await asyncio.to_thread(holder.follow_pointer)
        if registry_interval and loop.time() >= next_registry:
            next_registry = loop.time() + registry_interval
            await asyncio.to_thread(holder.follow_registry)


def reload_response(result: ReloadResult) -> JSONResponse:
    """200 when Production serves (new or unchanged), 409 when it was rejected."""
    return JSONResponse(result.model_dump(), status_code=409 if result.error else 200)
