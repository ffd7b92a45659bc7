"""The drift job's settings: the shared ones, where the logs are, how to reach the service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from lifeboat.settings import PROJECT_ROOT, Settings, env_file

EXPERIMENT = "titanic-drift"
# Where `bentoml serve`, run from the project, writes them when LIFEBOAT_MONITORING_DIR is unset
# (service.py's monitoring log_path is relative to the serving process's folder).
DEFAULT_MONITORING_DIR = PROJECT_ROOT / "monitoring"


class DriftSettings(Settings):
    """The shared settings plus the service's address (``LIFEBOAT_SERVICE_URL``) and a
    Prometheus Pushgateway for the verdict (``LIFEBOAT_PUSHGATEWAY_URL``; unset: no push)."""

    service_url: str = Field("http://127.0.0.1:3000", alias="LIFEBOAT_SERVICE_URL")
    pushgateway_url: str | None = Field(None, alias="LIFEBOAT_PUSHGATEWAY_URL")

    @property
    def logs_dir(self) -> Path:
        """The monitoring folder the service writes (``LIFEBOAT_MONITORING_DIR``)."""
        return self.monitoring_dir or DEFAULT_MONITORING_DIR

    @property
    def drift_reports_dir(self) -> Path:
        """Where each report gets its timestamped folder."""
        return self.reports_dir / "drift"

    def bento_store(self) -> Any | None:
        """The BentoML model store the service reloads from: ``LIFEBOAT_MODEL_STORE`` if set,
        else None (BentoML's own, ``BENTOML_HOME``)."""
        if self.model_store is None:
            return None
        from bentoml._internal.models import ModelStore

        return ModelStore(self.model_store / "models")


def get_drift_settings() -> DriftSettings:
    """Fresh settings (cheap; read at call time so tests and CLIs see the current environment)."""
    return DriftSettings(_env_file=env_file())
