"""The real pipeline (quick grids) into a temporary MLflow store: runs, registry, promotion."""

from __future__ import annotations

import json

import mlflow
import pytest
from mlflow import MlflowClient

from lifeboat.passenger import BY_NAME, EXAMPLE, FEATURES
from tests.harness import DATA
from training.data import file_sha256

pytestmark = [pytest.mark.spark, pytest.mark.integration]


@pytest.fixture(scope="module")
def client(trained, settings):
    mlflow.set_tracking_uri(settings.tracking_uri)
    return MlflowClient()


def test_first_run_registers_and_promotes(trained, client, settings):
    assert trained.promoted, trained.reason
    by_alias = client.get_model_version_by_alias("titanic", "production")
    assert by_alias.version == trained.version
    latest_prod = client.get_latest_versions("titanic", stages=["Production"])
    assert [v.version for v in latest_prod] == [trained.version]
    assert trained.heldout_auc > trained.baseline_auc


def test_alias_and_stage_uris_resolve_to_the_same_model(trained, settings):
    a = mlflow.pyfunc.load_model("models:/titanic@production")
    b = mlflow.pyfunc.load_model("models:/titanic/Production")
    assert a.metadata.model_uuid == b.metadata.model_uuid


def test_version_is_tagged(trained, client):
    version = client.get_model_version("titanic", trained.version)
    assert version.tags["dataset_sha256"] == file_sha256(DATA)
    assert float(version.tags["heldout_auc"]) == pytest.approx(trained.heldout_auc, abs=1e-6)
    assert version.tags["run_id"] == version.run_id


def test_parent_and_nested_runs_carry_what_the_issue_names(trained, client):
    parent = client.get_run(trained.run_id)
    assert parent.data.tags["dataset_sha256"] == file_sha256(DATA)
    assert parent.data.tags["git_commit"]
    assert parent.data.tags["version.pyspark"].startswith("4.")
    assert parent.data.metrics["rows_used"] == 1309
    assert parent.data.metrics["rows_quarantined"] == 0
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{trained.run_id}'"
    )
    assert sorted(r.data.tags["mlflow.runName"] for r in children) == [
        "gbt",
        "logistic_regression",
        "random_forest",
    ]
    for child in children:
        m = child.data.metrics
        for key in (
            "cv_auc_mean",
            "cv_auc_std",
            "heldout_auc",
            "heldout_accuracy",
            "heldout_precision",
            "heldout_recall",
            "heldout_f1",
            "cv_seconds",
            "refit_seconds",
            "parity_max_abs_diff",
        ):
            assert key in m, (child.data.tags["mlflow.runName"], key)
        assert m["parity_max_abs_diff"] <= 1e-6
        files = {a.path for a in client.list_artifacts(child.info.run_id)}
        assert {
            "roc.png",
            "confusion_matrix.png",
            "confusion_matrix.json",
            "cv_results.csv",
        } <= files
        assert {"coefficients.csv", "coefficients.png"} <= files or {
            "importances.csv",
            "importances.png",
        } <= files


def test_served_model_carries_metadata_and_reference(trained, settings):
    local = mlflow.artifacts.download_artifacts("models:/titanic@production")
    import pathlib

    artifacts = pathlib.Path(local) / "artifacts"
    meta = json.loads((artifacts / "metadata.json").read_text())
    assert meta["heldout_auc"] == pytest.approx(trained.heldout_auc)
    assert meta["dataset_sha256"] == file_sha256(DATA)
    assert set(meta["feature_ranges"]) == {"Pclass", "Age", "SibSp", "Parch", "Fare"}
    assert meta["categories"]["Embarked"] == ["C", "Q", "S"]
    assert (artifacts / "model.onnx").stat().st_size > 0
    assert (artifacts / "spark_pipeline" / "metadata").is_dir()
    reference = (artifacts / "reference.csv").read_text().splitlines()
    assert reference[0].split(",")[: len(FEATURES)] == list(FEATURES)
    assert len(reference) - 1 == meta["rows_used"] - round(meta["rows_used"] * 0.2)


def test_worse_challenger_is_not_promoted(trained, client, settings, spark, tmp_path):
    """A challenger trained on 12% of the data must not replace the Production model."""
    from training.pipeline import TrainOptions, run

    small = tmp_path / "small.csv"
    lines = DATA.read_text().splitlines()
    small.write_text("\n".join([lines[0], *lines[1::8]]) + "\n")
    outcome = run(TrainOptions(data=small, quick=True), settings)
    assert not outcome.promoted, outcome.reason
    assert int(outcome.version) == int(trained.version) + 1
    assert client.get_model_version_by_alias("titanic", "production").version == trained.version
    assert client.get_model_version("titanic", outcome.version).current_stage == "None"
    parent = client.get_run(outcome.run_id)
    assert parent.data.tags["promoted"] == "False"
    assert parent.data.tags["decision"] == outcome.reason


def test_extra_rows_join_training_only(spark):
    """Labelled rows from elsewhere must not change the held-out set the gate compares on."""
    from pyspark.sql import functions as F

    from training.data import load_passengers
    from training.train import TEST, prepare

    base = load_passengers(spark, DATA, quarantine_dir=DATA.parent).df
    extra = base.limit(100).withColumn("PassengerId", F.col("PassengerId") + 10_000)
    alone = prepare(base, 42, 0.2, 3)
    more = prepare(base, 42, 0.2, 3, extra)

    def held_out_ids(prepared):
        rows = prepared.frame.filter(F.col(TEST)).select("PassengerId").collect()
        return sorted(r.PassengerId for r in rows)

    assert held_out_ids(more) == held_out_ids(alone)
    assert more.train_rows == alone.train_rows + 100


def test_the_registered_model_has_a_signature_and_an_input_example(trained, settings):
    mlflow.set_tracking_uri(settings.tracking_uri)
    model = mlflow.pyfunc.load_model(f"models:/titanic/{trained.version}")
    [row] = model.metadata.signature.inputs.to_dict()  # a list of passengers: one object
    kinds = {"int": "long", "float": "double", "category": "string"}
    assert row["properties"] == {
        name: {"type": kinds[BY_NAME[name].kind], "required": BY_NAME[name].required}
        for name in FEATURES
    }
    assert model.input_example == [EXAMPLE]
    assert 0 < model.predict(model.input_example)["probability"][0] < 1


def test_the_registered_model_refuses_a_bad_row_naming_the_field(trained, settings):
    mlflow.set_tracking_uri(settings.tracking_uri)
    model = mlflow.pyfunc.load_model("models:/titanic@production")
    with pytest.raises(mlflow.exceptions.MlflowException, match="Pclass"):
        model.predict([{**EXAMPLE, "Pclass": 3.5}])
    with pytest.raises(mlflow.exceptions.MlflowException, match="Embarked"):
        model.predict([{**EXAMPLE, "Embarked": "X"}])
