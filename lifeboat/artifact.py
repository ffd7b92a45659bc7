"""The served model's artifact: its files, its metadata, its reference sample.

One owner for the seam that crosses every wing: training writes a model folder here
(:func:`write_model_folder`), the store import copies it with the registry's identity added
(:meth:`ModelMetadata.imported`), serving loads it and drift reads its reference and metadata.
A folder holds:

- ``model.onnx``: the graph ``lifeboat.scoring`` runs;
- ``metadata.json``: :class:`ModelMetadata`;
- ``reference.csv``: the training rows (features and label), the drift report's reference;
- the model card (``model_card.md``, ``model_card.html``, ``reliability.png``), when training
  wrote one (versions trained before cards existed have none).

Imports neither BentoML nor MLflow nor pyspark, nor pandas (the Bento does not ship it): the
reference is read with pandas by drift (``drift.reference.read_frame``), which alone needs it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

BENTO_MODEL = "titanic"  # the model's name in the BentoML store
MODEL_FILE = "model.onnx"
METADATA_FILE = "metadata.json"
REFERENCE_FILE = "reference.csv"
# What the service and drift need from a registered version (its Spark pipeline stays out).
SERVED_FILES = (MODEL_FILE, METADATA_FILE, REFERENCE_FILE)

CARD_ARTIFACTS = "model_card"  # the card's folder among the training run's MLflow artifacts
CARD_MARKDOWN = "model_card.md"
CARD_HTML = "model_card.html"  # self-contained: the reliability plot is embedded
RELIABILITY_PLOT = "reliability.png"
CARD_FILES = (CARD_MARKDOWN, CARD_HTML, RELIABILITY_PLOT)

LOCAL_REGISTRY = "embedded"  # what /model_info shows for a registry in files of this machine


def without_credentials(uri: str) -> str:
    """A URI without its userinfo: what metadata may record of the registry it came from."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def public_uri(uri: str) -> str:
    """A tracking URI as the service may publish it: no server-side path, no credentials.

    A registry in local files (a path, ``file:`` or ``sqlite:``) is ``LOCAL_REGISTRY``; a
    server's URI keeps its scheme, host, port and path, and loses userinfo, query and fragment.
    """
    parts = urlsplit(uri)
    host = parts.netloc.rpartition("@")[2]
    if parts.scheme in ("", "file", "sqlite") or not host:
        return LOCAL_REGISTRY
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class ModelMetadata(BaseModel):
    """``metadata.json``: written by training, completed by the store import.

    Training knows the model and its data; the registry's identity (``version``,
    ``registered_model``, ``alias``, ``tracking_uri``) is added when a registered version is
    imported into the BentoML store, so a folder in the store always has a version.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    run_id: str
    dataset_sha256: str
    heldout_auc: float
    trained_at: str
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    feature_ranges: dict[str, tuple[float, float]] = Field(default_factory=dict)
    categories: dict[str, list[Any]] = Field(default_factory=dict)
    model_name: str | None = None
    family: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    pipeline_run_id: str | None = None
    heldout_accuracy: float | None = None
    cv_auc_mean: float | None = None
    baseline_auc: float | None = None
    parity_max_abs_diff: float | None = None
    rows_used: int | None = None
    version: str | None = Field(None, description="MLflow registered-model version")
    registered_model: str | None = None
    alias: str | None = None
    tracking_uri: str | None = Field(None, description="The registry the model was imported from")

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @field_serializer("tracking_uri")
    def _published_uri(self, uri: str | None) -> str | None:
        # Dumps of this model are for clients (/model_info); metadata.json keeps the URI as
        # imported (to_file), which drift uses to tell registries apart.
        return None if uri is None else public_uri(uri)

    def imported(
        self, version: str, registered_model: str, alias: str, tracking_uri: str
    ) -> ModelMetadata:
        """This metadata as the store holds it: with the registry version it came from."""
        return self.model_copy(
            update={
                "version": str(version),
                "registered_model": registered_model,
                "alias": alias,
                "tracking_uri": without_credentials(tracking_uri),
            }
        )

    def to_file(self, path: Path) -> None:
        """Write ``metadata.json`` (sorted keys, the registry URI as recorded)."""
        fields = self.model_dump(mode="json", exclude_none=True)
        if self.tracking_uri is not None:
            fields["tracking_uri"] = self.tracking_uri
        path.write_text(json.dumps(fields, indent=2, sort_keys=True))

    @classmethod
    def from_folder(cls, folder: Path) -> ModelMetadata:
        """Read a model folder's ``metadata.json``."""
        return cls.model_validate_json((folder / METADATA_FILE).read_bytes())


def write_model_folder(
    folder: Path, onnx_bytes: bytes, metadata: ModelMetadata, reference: Any
) -> None:
    """Write the served files of a freshly trained model into ``folder`` (``reference``: a pandas
    DataFrame of the training rows, features and label)."""
    (folder / MODEL_FILE).write_bytes(onnx_bytes)
    metadata.to_file(folder / METADATA_FILE)
    reference.to_csv(folder / REFERENCE_FILE, index=False)


def has_served_files(folder: Path) -> bool:
    """Whether ``folder`` holds every file of :data:`SERVED_FILES`."""
    return all((folder / name).is_file() for name in SERVED_FILES)
