"""One settings object, read from the environment (documented in .env.example)."""

from __future__ import annotations

import os
import socket
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Lifeboat settings; the ecosystem's own variable names where one exists."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    # MLflow. Unset means the embedded default: a SQLite file and a local artifact folder.
    mlflow_tracking_uri: str | None = Field(None, alias="MLFLOW_TRACKING_URI")
    experiment: str = Field("titanic", alias="LIFEBOAT_EXPERIMENT")
    model_name: str = Field("titanic", alias="LIFEBOAT_MODEL_NAME")
    production_alias: str = Field("production", alias="LIFEBOAT_PRODUCTION_ALIAS")
    # The alias training sets on a version that passed the offline gate but was not promoted
    # (--no-promote, or Production moved meanwhile): the version the service shadows.
    challenger_alias: str = Field("challenger", alias="LIFEBOAT_CHALLENGER_ALIAS")

    # Spark
    spark_master: str = Field("local[*]", alias="SPARK_MASTER")
    spark_driver_memory: str = Field("2g", alias="SPARK_DRIVER_MEMORY")
    # A directory mounted at this same path on the driver and on every Spark worker: where Spark
    # writes what the driver reads back (saved models, scored CSVs) and reads what the driver
    # wrote (input CSVs). Unset: the local temp directory, which only a local master can share.
    spark_scratch: Path | None = Field(None, alias="LIFEBOAT_SPARK_SCRATCH")

    # Data and local state
    data_path: Path = Field(PROJECT_ROOT / "data" / "titanic.csv", alias="LIFEBOAT_DATA")
    state_dir: Path = Field(PROJECT_ROOT, alias="LIFEBOAT_HOME")
    seed: int = Field(42, alias="LIFEBOAT_SEED")
    # The promotion gate refuses a challenger whose AUC on a held-out slice of at least
    # slice_min_rows rows is more than this below Production's (1 turns it off).
    gate_slice_max_drop: float = Field(0.10, ge=0, le=1, alias="LIFEBOAT_GATE_SLICE_MAX_DROP")
    # Model card and live slices: a slice with fewer rows is shown but not judged (nor used by
    # the gate); a judged slice whose AUC or accuracy trails the whole set's by more than
    # slice_worse_by is flagged "worse".
    slice_min_rows: int = Field(30, ge=1, alias="LIFEBOAT_SLICE_MIN_ROWS")
    slice_worse_by: float = Field(0.10, ge=0, le=1, alias="LIFEBOAT_SLICE_WORSE_BY")
    # Shadow evidence (drift.shadow): fewer labelled rows scored by both models than this is
    # "not enough evidence"; otherwise the verdict comes from a paired bootstrap confidence
    # interval (this many resamples, this level) of the shadow's AUC minus Production's.
    shadow_min_labelled: int = Field(200, ge=2, alias="LIFEBOAT_SHADOW_MIN_LABELLED")
    shadow_bootstrap: int = Field(1000, ge=100, alias="LIFEBOAT_SHADOW_BOOTSTRAP")
    shadow_confidence: float = Field(0.95, gt=0.5, lt=1, alias="LIFEBOAT_SHADOW_CONFIDENCE")

    # Serving (service.py). Tokens are Bearer tokens; unset leaves the prediction API open and
    # turns the admin routes off.
    api_token: SecretStr | None = Field(None, alias="LIFEBOAT_API_TOKEN")
    admin_token: SecretStr | None = Field(None, alias="LIFEBOAT_ADMIN_TOKEN")
    # POST /feedback (outcomes of earlier predictions) takes this token or the admin token;
    # with neither set, the route is off.
    feedback_token: SecretStr | None = Field(None, alias="LIFEBOAT_FEEDBACK_TOKEN")
    # A BentoML home the export stage writes to; reloads resolve there. Unset: the serving
    # process's own store, which inside a built Bento holds only the models it was built with.
    model_store: Path | None = Field(None, alias="LIFEBOAT_MODEL_STORE")
    # Where POST /reload tells the other workers what to serve. Unset: a per-server temp file.
    reload_marker: Path | None = Field(None, alias="LIFEBOAT_RELOAD_MARKER")
    reload_poll_seconds: float = Field(1.0, gt=0, alias="LIFEBOAT_RELOAD_POLL_SECONDS")
    # With MLFLOW_TRACKING_URI: how often each worker asks the registry where the production
    # alias points, reloading when it moved (replicas converge without a call). 0: only at start
    # and on POST /reload.
    registry_poll_seconds: float = Field(0.0, ge=0, alias="LIFEBOAT_REGISTRY_POLL_SECONDS")
    # Score the challenger (LIFEBOAT_CHALLENGER_ALIAS; without MLflow, the store's
    # titanic_shadow:latest) beside Production and log its probability; false: no shadow.
    shadow_scoring: bool = Field(True, alias="LIFEBOAT_SHADOW_SCORING")
    # On SIGTERM, how long a worker lets requests in flight finish before cancelling them; keep
    # it below the orchestrator's own (compose's stop_grace_period, Kubernetes' 30 s default).
    shutdown_grace_seconds: float = Field(25.0, gt=0, alias="LIFEBOAT_SHUTDOWN_GRACE_SECONDS")
    # Prediction records. Unset: BentoML's monitoring.options.log_path (see service.py).
    monitoring_dir: Path | None = Field(None, alias="LIFEBOAT_MONITORING_DIR")
    # Days of rotated prediction logs kept (one file per worker and day); 0 keeps them all.
    monitoring_retention_days: int = Field(30, ge=0, alias="LIFEBOAT_MONITORING_RETENTION_DAYS")
    # Replicas sharing one monitoring folder: each writes under <dir>/<its hostname>/.
    monitoring_per_host: bool = Field(False, alias="LIFEBOAT_MONITORING_PER_HOST")

    @field_validator(
        "mlflow_tracking_uri",
        "spark_scratch",
        "api_token",
        "admin_token",
        "feedback_token",
        "model_store",
        "reload_marker",
        "monitoring_dir",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        # `VAR=` in .env or compose's `${VAR:-}` mean "not set", not "the empty path".
        return None if value == "" else value

    @property
    def tracking_uri(self) -> str:
        """The MLflow tracking URI, falling back to the embedded SQLite store."""
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{(self.state_dir / 'mlflow.db').resolve()}"

    @property
    def registry_follow_seconds(self) -> float:
        """The registry poll interval; 0 when there is no registry to poll."""
        return self.registry_poll_seconds if self.mlflow_tracking_uri else 0.0

    @property
    def monitoring_log_path(self) -> Path | None:
        """Where this process writes prediction records (None: BentoML's configured path)."""
        if self.monitoring_dir is None or not self.monitoring_per_host:
            return self.monitoring_dir
        return self.monitoring_dir / socket.gethostname()

    @property
    def artifact_root(self) -> str:
        """Where the embedded store keeps artifacts (a server decides its own)."""
        return (self.state_dir / "mlartifacts").resolve().as_uri()

    @property
    def quarantine_dir(self) -> Path:
        return self.state_dir / "quarantine"

    @property
    def reports_dir(self) -> Path:
        return self.state_dir / "reports"


def env_file() -> str:
    """The ``.env`` file settings read: ``LIFEBOAT_ENV_FILE``, else ``.env`` in the working
    directory. ``make serve`` names the project's, since a served Bento runs in its own folder."""
    return os.environ.get("LIFEBOAT_ENV_FILE") or ".env"


def proxy_artifact_downloads() -> None:
    """Make this process's MLflow client download artifacts through the tracking server.

    A server that proxies an S3 store (``--serve-artifacts``) advertises presigned multipart
    downloads, and their URLs name the object store as the server sees it (``http://minio:9000``
    in the compose stack): a client outside that network retries unresolvable chunks for
    minutes. Proxied downloads need no route to the store, and our artifacts are small. A value
    the user set is kept.
    """
    os.environ.setdefault("MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD", "false")


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once on first use (never at import)."""
    return Settings(_env_file=env_file())
