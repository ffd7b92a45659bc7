"""The driver side of ``test_spark_cluster``: run in its own process against a real cluster.

Reads ``SPARK_MASTER`` and ``LIFEBOAT_SPARK_SCRATCH`` (and a private ``LIFEBOAT_HOME``) from the
environment, like the training CLI, and prints one JSON object of facts for the test to check.
A process of its own because a process holds one SparkSession, and the test session's is local.

The CSV is read from a folder in the driver's /tmp, which the test's worker cannot see, so
every step passes only if what Spark touches goes through the shared scratch directory.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from pyspark.ml import PipelineModel
from pyspark.ml.classification import RandomForestClassifier

from lifeboat.artifact import ModelMetadata
from lifeboat.passenger import FEATURES, LABEL
from lifeboat.scoring import OnnxScorer
from lifeboat.settings import get_settings
from training import batch, registry
from training.data import load_passengers
from training.features import FEATURES_COL, preprocessing, strip_ml_metadata, with_derived
from training.onnx_export import edge_rows, parity, to_onnx
from training.onnx_trees import saved_data
from training.spark import ScratchError, get_spark, shared_folder

TREES = 10


def executors_see(spark: Any, path: Path) -> bool:
    """Whether a task on an executor finds ``path``."""
    name = str(path)
    return all(spark.sparkContext.parallelize([0], 1).map(lambda _: os.path.exists(name)).collect())


def files_by_stage(folder: Path) -> dict[str, dict[str, int]]:
    """Per pipeline stage, how many files each of its parts (metadata, data, ...) holds."""
    return {
        stage.name: {
            part.name: sum(1 for f in part.iterdir() if f.name.startswith("part-"))
            for part in sorted(stage.iterdir())
        }
        for stage in sorted((folder / "stages").iterdir())
    }


def main(data: Path) -> dict[str, Any]:
    settings = get_settings()
    spark = get_spark("lifeboat-cluster-test")
    private = Path(tempfile.mkdtemp(prefix="driver-only-"))
    facts: dict[str, Any] = {"master": spark.sparkContext.master}
    try:
        csv_path = private / data.name
        shutil.copyfile(data, csv_path)
        facts["executors_see_driver_tmp"] = executors_see(spark, csv_path)
        with shared_folder("probe-") as probe:
            facts["executors_see_scratch"] = executors_see(spark, probe)

        with shared_folder("inputs-") as inputs:
            loaded = load_passengers(
                spark, csv_path, quarantine_dir=private / "quarantine", staging=inputs
            )
            prep = preprocessing().fit(with_derived(loaded.df))
            train = strip_ml_metadata(prep.transform(with_derived(loaded.df))).cache()
            forest = RandomForestClassifier(
                featuresCol=FEATURES_COL, labelCol=LABEL, numTrees=TREES, maxDepth=5, seed=7
            ).fit(train)
            pipeline = PipelineModel(stages=[*prep.stages, forest])
            facts["trees"] = len(forest.trees)

            # What the old code did: a save into the driver's own temp folder.
            try:
                saved_data(forest, private / "forest")
                facts["driver_tmp_save"] = "read back"
            except ScratchError as exc:
                facts["driver_tmp_save"] = str(exc)

            onnx_bytes = to_onnx(pipeline)
            rows = loaded.df.unionByName(edge_rows(spark), allowMissingColumns=True)
            facts["parity_rows"] = rows.count()
            facts["parity"] = parity(pipeline, onnx_bytes, rows)

            client = registry.configure(settings)
            reference = loaded.df.limit(20).toPandas()
            with mlflow.start_run() as run:
                metadata = ModelMetadata(
                    run_id=run.info.run_id,
                    dataset_sha256=loaded.sha256,
                    heldout_auc=0.5,  # not evaluated: this job checks where files go
                    trained_at="2026-11-25T00:00:00+00:00",
                )
                logged_uri = registry.log_served_model(onnx_bytes, pipeline, metadata, reference)
            name, alias = settings.model_name, settings.production_alias
            version = registry.register(client, name, logged_uri, run.info.run_id, {})
            registry.promote(client, name, alias, version.version)
            model_uri = batch.production_uri(settings)  # what `python -m training score` uses
            logged = Path(
                mlflow.artifacts.download_artifacts(
                    f"{model_uri}/artifacts/spark_pipeline", dst_path=str(private / "logged")
                )
            )
            facts["logged_stages"] = files_by_stage(logged)
            facts["logged_metadata_parts"] = len(list((logged / "metadata").glob("part-*")))

            out = private / "scored.csv"
            scored_rows = batch.score(csv_path, out, model_uri, settings).valid_rows
            with out.open(newline="") as fh:
                scored = list(csv.DictReader(fh))
            facts["scored_rows"] = [scored_rows, len(scored)]
            columns = {
                name: [None if r[name] == "" else r[name] for r in scored] for name in FEATURES
            }
            for name in ("Pclass", "Age", "SibSp", "Parch", "Fare"):
                columns[name] = [None if v is None else float(v) for v in columns[name]]
            expected = OnnxScorer(onnx_bytes).predict_proba(columns)
            got = np.array([float(r["probability"]) for r in scored])
            facts["scored_vs_onnx"] = float(np.max(np.abs(got - expected)))
    finally:
        shutil.rmtree(private, ignore_errors=True)
    facts["scratch_left"] = sorted(os.listdir(settings.spark_scratch))
    return facts


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
