"""Where the served models come from: Production and the challenger, as store tags to load.

Production is the registry's ``<model>@<alias>`` when ``MLFLOW_TRACKING_URI`` is set (imported
into the BentoML store once per registry version), else the store's ``titanic:latest``. The
challenger (the shadow) is ``<model>@<LIFEBOAT_CHALLENGER_ALIAS>``, imported as
``titanic_shadow``; without a registry, the store's ``titanic_shadow:latest``.
:mod:`lifeboat.serving.reloading` decides which of them a worker serves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from lifeboat.artifact import BENTO_MODEL, public_uri, without_credentials
from lifeboat.prediction import LoadedModel, ModelRejected, load_model
from lifeboat.serving.store import (
    NOT_FOUND,
    SHADOW_BENTO_MODEL,
    NoProductionModel,
    import_production,
)
from lifeboat.settings import Settings

MODEL_TAG = f"{BENTO_MODEL}:latest"
SHADOW_TAG = f"{SHADOW_BENTO_MODEL}:latest"


class InvalidCandidate(ModelRejected):
    """Production was found but does not serve: it failed to load or its smoke test."""


class Absent(ModelRejected):
    """No version carries the alias (or the store holds no such model): for the shadow, none."""


@dataclass(frozen=True)
class Candidate:
    """A model ``/reload`` could serve: its store tag, whether resolving it imported it, and
    the registry version it comes from when known."""

    tag: str
    imported: bool = False
    version: str | None = None


@dataclass(frozen=True)
class Shadow:
    """The challenger a worker scores beside Production, or why it scores none."""

    model: LoadedModel | None = None
    version: str | None = None
    """The challenger version last resolved, loaded or not: the registry poll compares it."""
    note: str | None = None
    """Why none is scored although one was found: dropped, or Production's own version."""


NO_SHADOW = Shadow()


class Serving(NamedTuple):
    """What a starting worker serves: Production and its shadow."""

    model: LoadedModel
    shadow: Shadow


@dataclass(frozen=True)
class Production:
    """Where Production comes from, for one server."""

    resolve: Callable[[], Candidate]
    """Finds Production's store tag, importing it from the registry first if need be."""
    source: str
    """Where ``resolve`` looks, for responses and logs."""
    alias_version: Callable[[], str] | None = None
    """The registry version the alias names now (a cheap call; raises :class:`Absent` when it
    names none); None without a registry."""
    public: str = ""
    """``source`` as ``/health`` and ``/model_info`` may show it: no credentials, no server
    paths (a registry in local files is ``embedded``); empty: ``source`` is public already."""

    def shown(self, text: str) -> str:
        """``text`` (a message naming ``source``) fit for a public route."""
        return text.replace(self.source, self.public) if self.public else text


def load_stored(store: Any, tag: str) -> LoadedModel:
    """Load and smoke-test the stored model ``tag``.

    Raises:
        ModelRejected: Not in the store, unreadable, or failing its smoke test.
    """
    return load_model(resolve(store, tag).path, tag)


def resolve(store: Any, tag: str) -> Any:
    """The stored BentoML model for ``tag``.

    Raises:
        ModelRejected: The tag is not in the store.
    """
    try:
        return store.get(tag)
    except Exception as exc:
        raise ModelRejected(f"{tag}: {type(exc).__name__}: {exc}") from exc


def production_source(settings: Settings, store: Any) -> Production:
    """Where this server finds Production.

    With ``MLFLOW_TRACKING_URI``: the registry's ``<model>@<alias>``, imported into ``store``
    (once per registry version). Without: the store's ``titanic:latest``.
    """
    uri = settings.mlflow_tracking_uri
    if not uri:
        return Production(lambda: Candidate(MODEL_TAG), f"BentoML store {MODEL_TAG}")
    return registry_source(uri, settings.model_name, settings.production_alias, BENTO_MODEL, store)


def challenger_source(settings: Settings, store: Any) -> Production | None:
    """Where this server finds the shadow; None when shadow scoring is off.

    With ``MLFLOW_TRACKING_URI``: the registry's ``<model>@<challenger alias>``, imported into
    ``store`` as ``titanic_shadow`` (never ``titanic``, whose latest is Production without a
    registry). Without: the store's ``titanic_shadow:latest`` (``python -m training
    import-model --alias challenger`` puts one there).
    """
    if not settings.shadow_scoring or not settings.challenger_alias:
        return None
    uri = settings.mlflow_tracking_uri
    if uri:
        name, alias = settings.model_name, settings.challenger_alias
        return registry_source(uri, name, alias, SHADOW_BENTO_MODEL, store)

    def latest() -> Candidate:
        try:
            stored = store.get(SHADOW_TAG)
        except Exception as exc:  # bentoml.exceptions.NotFound: no shadow in the store
            raise Absent(f"{SHADOW_TAG}: {type(exc).__name__}: {exc}") from exc
        return Candidate(str(stored.tag), version=stored.info.labels.get("registry_version"))

    return Production(latest, f"BentoML store {SHADOW_TAG}")


def registry_source(uri: str, name: str, alias: str, bento_name: str, store: Any) -> Production:
    """``models:/<name>@<alias>`` from the registry at ``uri``, imported into ``store`` as
    ``bento_name`` once per registry version."""
    source = f"models:/{name}@{alias} at {without_credentials(uri)}"
    # Import MLflow now, while the worker starts, not in the middle of traffic: BentoML's batcher
    # checks each batch against lazily named types (pandas.core.frame.DataFrame), which fails
    # with a 500 while a reload thread has pandas half-imported.
    import mlflow.artifacts  # noqa: F401
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    def imported() -> Candidate:
        try:
            model, created = import_production(uri, name, alias, bento_name, store=store)
        except NoProductionModel as exc:
            raise Absent(f"{source}: {type(exc).__name__}: {exc}") from exc
        except Exception as exc:  # the registry down, a missing artifact ...
            raise ModelRejected(f"{source}: {type(exc).__name__}: {exc}") from exc
        return Candidate(str(model.tag), created, model.info.labels.get("registry_version"))

    def alias_version() -> str:
        client = MlflowClient(tracking_uri=uri)
        try:
            return str(client.get_model_version_by_alias(name, alias).version)
        except MlflowException as exc:
            if exc.error_code in NOT_FOUND:
                raise Absent(f"no {name}@{alias}") from exc
            raise

    public = f"models:/{name}@{alias} at {public_uri(uri)}"
    return Production(imported, source, alias_version, public)
