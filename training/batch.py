"""Batch scoring with Spark: the registered Production model over a CSV too large for HTTP."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import mlflow
from pyspark.ml import PipelineModel
from pyspark.ml.functions import vector_to_array
from pyspark.sql import functions as F

from lifeboat.passenger import COLUMNS
from lifeboat.settings import Settings
from training.data import Loaded, load_passengers
from training.features import with_derived
from training.spark import get_spark, shared_folder, written

log = logging.getLogger(__name__)


def production_uri(settings: Settings) -> str:
    return f"models:/{settings.model_name}@{settings.production_alias}"


def download_spark_pipeline(model_uri: str, into: Path) -> PipelineModel:
    """Fetch the Spark pipeline that is logged beside the served ONNX form and load it.

    ``into`` must be a ``training.spark.shared_folder``: Spark's executors read the files.
    """
    local = mlflow.artifacts.download_artifacts(
        f"{model_uri}/artifacts/spark_pipeline", dst_path=str(into)
    )
    return PipelineModel.load(local)


def score(
    input_csv: Path, output_csv: Path, model_uri: str, settings: Settings, threshold: float = 0.5
) -> Loaded:
    """Write every valid input row with ``survived`` and ``probability``; quarantine the rest.

    The output has the passenger schema's columns (empty where the input lacked one; a
    ``Survived`` already present is kept as is) and is written by Spark, then gathered into one
    CSV file.
    """
    spark = get_spark()  # first: it refuses a cluster without shared scratch
    mlflow.set_tracking_uri(settings.tracking_uri)
    # Every file Spark touches here (the input, the pipeline, the output parts) is read or
    # written by the executors, and the driver must see the same files.
    with shared_folder("score-") as tmp:
        loaded = load_passengers(
            spark,
            input_csv,
            require_label=False,
            quarantine_dir=settings.quarantine_dir,
            staging=tmp,
        )
        pipeline = download_spark_pipeline(model_uri, tmp)
        probability = vector_to_array("probability")[1]
        scored = pipeline.transform(with_derived(loaded.df)).select(
            # integer columns were read as doubles for Spark ML; write them back as integers
            *[
                F.col(c.name).cast("long").alias(c.name) if c.kind == "int" else F.col(c.name)
                for c in COLUMNS
            ],
            (probability >= threshold).cast("int").alias("survived"),
            probability.alias("probability"),
        )
        parts = tmp / "parts"
        scored.coalesce(1).write.option("header", True).csv(str(parts))
        part = written(parts, "part-*.csv")[0]
        output_csv.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(part), output_csv)
    log.info("scored %d rows with %s → %s", loaded.valid_rows, model_uri, output_csv)
    return loaded
