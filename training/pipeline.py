"""The training pipeline end to end: load → split → CV per family → ONNX → MLflow → promote.

:func:`run` is the sequence; each stage below it takes what the one before produced.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from pyspark.sql import DataFrame, SparkSession

from lifeboat.artifact import ModelMetadata
from lifeboat.passenger import LABEL
from lifeboat.settings import Settings
from training import evaluate, model_card, registry, runs
from training.data import Loaded, load_passengers
from training.features import feature_names
from training.onnx_export import ConversionError, edge_rows, parity, to_onnx
from training.provenance import git_commit, library_versions
from training.spark import get_spark, require_scratch, shared_folder
from training.train import (
    FAMILIES,
    FamilyResult,
    Prepared,
    cross_validate,
    held_out_frame,
    prepare,
    reference_frame,
)

log = logging.getLogger(__name__)

PARITY_TOLERANCE = 1e-6
HELD = "; held for approval, not promoted"


@dataclass(frozen=True)
class TrainOptions:
    data: Path
    folds: int = 3
    test_fraction: float = 0.2
    seed: int = 42
    quick: bool = False
    parallelism: int = 8
    extra_data: Path | None = None  # labelled rows that join the training side only
    promote: bool = True  # False: register and gate only; a person approves (`drift promote`)


@dataclass(frozen=True)
class Outcome:
    """What a training run produced, for the CLI and for tests."""

    run_id: str
    challenger: str
    heldout_auc: float
    baseline_auc: float
    version: str
    promoted: bool
    reason: str
    families: dict[str, dict[str, float]]
    gate: registry.Decision | None = None  # the promotion gate's verdict, promoted or held
    production_at_start: str | None = None  # the version a promotion expected to replace


@dataclass(frozen=True)
class Inputs:
    """The data a run trains on, read and checked."""

    data: Loaded
    extra: Loaded | None
    seconds: float


@dataclass(frozen=True)
class Trained:
    """One family cross-validated, converted to ONNX and logged in its nested run."""

    result: FamilyResult
    onnx_bytes: bytes
    run_id: str
    figures: dict[str, float]


@dataclass(frozen=True)
class Candidate:
    """The best family, logged as the served model, gated and registered."""

    trained: Trained
    metadata: ModelMetadata
    baseline_auc: float
    held_out: pd.DataFrame
    probabilities: object  # the challenger's held-out probabilities, as Production's are scored
    decision: registry.Decision
    version: ModelVersion


def run(options: TrainOptions, settings: Settings) -> Outcome:
    """Train every family, log them under one parent run, register and maybe promote.

    Holds the writers' lock of ``LIFEBOAT_HOME`` throughout, and promotes only if the production
    alias still points where it did at the start (:func:`training.registry.unmoved`). An
    interrupt ends the runs KILLED, an error FAILED.

    Raises:
        ScratchError: A cluster master without a shared scratch directory (before any work).
        training.runs.Busy: Another train or retrain holds the lock (before any work).
    """
    require_scratch(settings)
    # The frames read from the CSVs stay lazy: the copies the executors read must outlive them.
    with runs.exclusive(settings.state_dir), shared_folder("inputs-") as inputs:
        return _run(options, settings, inputs)


def _run(options: TrainOptions, settings: Settings, staging: Path) -> Outcome:
    started = time.perf_counter()
    client = registry.configure(settings)
    at_start = registry.production_number(client, settings.model_name, settings.production_alias)
    spark = get_spark()
    inputs = load_inputs(spark, options, settings, staging)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    with runs.tracked_run(run_name=f"pipeline-{stamp}") as parent:
        track_inputs(inputs, options, settings)
        prepared = prepare(
            inputs.data.df,
            options.seed,
            options.test_fraction,
            options.folds,
            inputs.extra.df if inputs.extra is not None else None,
        )
        trained = train_families(spark, prepared, inputs, options)
        candidate = register_best(client, settings, trained, prepared, inputs, parent.info.run_id)
        decision = candidate.decision
        promoted = decision.promote and options.promote
        reason = decision.reason + (HELD if decision.promote and not promoted else "")
        write_card(candidate, trained, prepared, inputs, options, parent.info.run_id)
        if promoted:
            promoted, reason = promote(client, settings, candidate, at_start)
        registry.settle(
            client, settings, candidate.version.version, decision.promote, promoted, reason
        )
        record_outcome(candidate, promoted, reason, at_start, started)
    return Outcome(
        run_id=parent.info.run_id,
        challenger=candidate.trained.result.family.name,
        heldout_auc=candidate.metadata.heldout_auc,
        baseline_auc=candidate.baseline_auc,
        version=candidate.version.version,
        promoted=promoted,
        reason=reason,
        families={
            t.result.family.name: {
                "cv_auc": t.result.cv_auc_mean,
                "heldout_auc": t.figures["heldout_auc"],
                "parity": t.figures["parity_max_abs_diff"],
            }
            for t in trained
        },
        gate=decision,
        production_at_start=at_start,
    )


def load_inputs(
    spark: SparkSession, options: TrainOptions, settings: Settings, staging: Path
) -> Inputs:
    """Read and check the training CSV and the extra labelled rows, if any."""
    started = time.perf_counter()

    def load(path: Path) -> Loaded:
        return load_passengers(spark, path, quarantine_dir=settings.quarantine_dir, staging=staging)

    data = load(options.data)
    extra = load(options.extra_data) if options.extra_data is not None else None
    return Inputs(data, extra, time.perf_counter() - started)


def track_inputs(inputs: Inputs, options: TrainOptions, settings: Settings) -> None:
    """Tag the parent run with the data's fingerprint, the code and libraries; log the options,
    the row counts, the quarantine and the datasets (``mlflow.log_input``)."""
    loaded, extra = inputs.data, inputs.extra
    mlflow.set_tags(
        {
            "dataset_sha256": loaded.sha256,
            "git_commit": git_commit(),
            "stage": "pipeline",
            **{f"version.{k}": v for k, v in library_versions().items()},
        }
    )
    mlflow.log_params(
        {
            "data": str(options.data),
            "folds": options.folds,
            "test_fraction": options.test_fraction,
            "seed": options.seed,
            "quick": options.quick,
            "spark_master": settings.spark_master,
        }
    )
    mlflow.log_metrics(
        {
            "rows_total": loaded.total_rows,
            "rows_used": loaded.valid_rows,
            "rows_quarantined": loaded.quarantined_rows,
            "load_seconds": inputs.seconds,
        }
    )
    registry.log_dataset(loaded, "training")
    if loaded.quarantine_file:
        mlflow.log_artifact(str(loaded.quarantine_file), "quarantine")
    if extra is not None:
        mlflow.set_tags({"extra_data": str(extra.path), "extra_data_sha256": extra.sha256})
        mlflow.log_metrics(
            {"rows_extra": extra.valid_rows, "rows_extra_quarantined": extra.quarantined_rows}
        )
        registry.log_dataset(extra, "training-extra")


def train_families(
    spark: SparkSession, prepared: Prepared, inputs: Inputs, options: TrainOptions
) -> list[Trained]:
    """Cross-validate each family, convert it to ONNX, check parity, log its nested run.

    Raises:
        ConversionError: ONNX and Spark disagree beyond ``PARITY_TOLERANCE`` for a family.
    """
    names = feature_names(prepared.prep_model)
    parity_rows = inputs.data.df.unionByName(edge_rows(spark), allowMissingColumns=True).cache()
    trained: list[Trained] = []
    for i, family in enumerate(FAMILIES, start=1):
        progress = f"[{i}/{len(FAMILIES)}]"
        result = cross_validate(
            family,
            prepared,
            options.folds,
            options.seed,
            options.quick,
            progress,
            options.parallelism,
        )
        trained.append(_convert_and_log(result, names, parity_rows, inputs, progress))
    parity_rows.unpersist()
    return trained


def _convert_and_log(
    result: FamilyResult, names: list[str], parity_rows: DataFrame, inputs: Inputs, progress: str
) -> Trained:
    onnx_start = time.perf_counter()
    onnx_bytes = to_onnx(result.pipeline)
    diff = parity(result.pipeline, onnx_bytes, parity_rows)
    onnx_seconds = time.perf_counter() - onnx_start
    label = result.family.label
    log.info(
        "%s %s: ONNX parity max |Δp| = %.2e on %d rows", progress, label, diff, parity_rows.count()
    )
    with runs.tracked_run(run_name=result.family.name, nested=True) as child:
        mlflow.set_tags({"dataset_sha256": inputs.data.sha256, "stage": "family"})
        figures = log_family(result, names, diff, onnx_seconds)
    if not diff <= PARITY_TOLERANCE:
        raise ConversionError(
            f"{label}: ONNX and Spark disagree by {diff:.2e} "
            f"in probability (tolerance {PARITY_TOLERANCE:g})"
        )
    return Trained(result, onnx_bytes, child.info.run_id, figures)


def register_best(
    client: MlflowClient,
    settings: Settings,
    trained: list[Trained],
    prepared: Prepared,
    inputs: Inputs,
    pipeline_run_id: str,
) -> Candidate:
    """Log the family with the best CV AUC as the served model, gate it against Production on
    the held-out rows, and register it (promoted or not)."""
    best = max(trained, key=lambda t: t.result.cv_auc_mean)
    reference = reference_frame(prepared)
    held_out = held_out_frame(prepared)
    baseline = evaluate.sex_only_auc(reference, held_out)
    heldout_auc = best.figures["heldout_auc"]
    metadata = ModelMetadata(
        model_name=settings.model_name,
        family=best.result.family.name,
        params=best.result.best_params,
        run_id=best.run_id,
        pipeline_run_id=pipeline_run_id,
        dataset_sha256=inputs.data.sha256,
        heldout_auc=heldout_auc,
        heldout_accuracy=best.figures["heldout_accuracy"],
        cv_auc_mean=best.result.cv_auc_mean,
        baseline_auc=baseline,
        trained_at=datetime.now(UTC).isoformat(),
        threshold=evaluate.THRESHOLD,
        parity_max_abs_diff=best.figures["parity_max_abs_diff"],
        rows_used=inputs.data.valid_rows,
        **evaluate.feature_profile(reference),
    )
    with runs.tracked_run(run_id=best.run_id, nested=True):
        model_uri = registry.log_served_model(
            best.onnx_bytes, best.result.pipeline, metadata, reference
        )
    probabilities = registry.score_uri(model_uri, held_out)  # as Production is scored
    decision = registry.compare_with_production(
        client, settings, heldout_auc, baseline, held_out, probabilities
    )
    version = registry.register(
        client,
        settings.model_name,
        model_uri,
        best.run_id,
        {
            "heldout_auc": f"{heldout_auc:.6f}",
            "dataset_sha256": inputs.data.sha256,
            "run_id": best.run_id,
            "family": best.result.family.name,
        },
    )
    return Candidate(best, metadata, baseline, held_out, probabilities, decision, version)


def write_card(
    candidate: Candidate,
    trained: list[Trained],
    prepared: Prepared,
    inputs: Inputs,
    options: TrainOptions,
    pipeline_run_id: str,
) -> None:
    """The registered version's model card, logged to its run (``training.model_card``)."""
    loaded, best = inputs.data, candidate.trained
    evidence = model_card.Evidence(
        title=f"{candidate.metadata.model_name} v{candidate.version.version}: "
        f"{best.result.family.label}",
        facts={
            "MLflow run": f"{best.run_id} (pipeline run {pipeline_run_id})",
            "trained at": candidate.metadata.trained_at,
            "data": f"{options.data}, sha256 {loaded.sha256}",
            "rows": f"{loaded.total_rows} read, {loaded.valid_rows} used, "
            f"{loaded.quarantined_rows} quarantined; {prepared.train_rows} training, "
            f"{prepared.test_rows} held out",
            "training command": runs.command_line(),
            "code version": git_commit(),
            "promotion gate": candidate.decision.reason,
        },
        families={
            t.result.family.name: {
                "cv_auc": t.result.cv_auc_mean,
                "heldout_auc": t.figures["heldout_auc"],
            }
            for t in trained
        },
        chosen=best.result.family.name,
        passengers=candidate.held_out,
        y=candidate.held_out[LABEL].to_numpy(),
        p=candidate.probabilities,
    )
    model_card.record(best.run_id, evidence)


def promote(
    client: MlflowClient, settings: Settings, candidate: Candidate, at_start: str | None
) -> tuple[bool, str]:
    """Point the production alias at the candidate if it still points where it did at the start.

    Returns:
        Whether it was promoted, and why (or why not).
    """
    try:
        with registry.unmoved(client, settings, at_start):
            registry.promote(
                client, settings.model_name, settings.production_alias, candidate.version.version
            )
    except registry.ProductionMoved as moved:
        return False, f"{moved} (the gate had passed: {candidate.decision.reason})"
    return True, candidate.decision.reason


def record_outcome(
    candidate: Candidate, promoted: bool, reason: str, at_start: str | None, started: float
) -> None:
    """Log the decision on the parent run: tags for what happened, metrics for the figures."""
    best, decision = candidate.trained, candidate.decision
    log.info(
        "challenger %s v%s: %s — %s",
        best.result.family.label,
        candidate.version.version,
        "PROMOTED" if promoted else "not promoted",
        reason,
    )
    mlflow.set_tags(
        {
            "challenger": best.result.family.name,
            "registered_version": candidate.version.version,
            "promoted": str(promoted),
            "decision": reason,
            "production_at_start": at_start or "none",
        }
    )
    mlflow.log_metrics(
        {
            "baseline_auc": candidate.baseline_auc,
            "challenger_heldout_auc": candidate.metadata.heldout_auc,
            "total_seconds": time.perf_counter() - started,
            **(
                {"production_auc": decision.production_auc}
                if decision.production_auc is not None
                else {}
            ),
        }
    )


def importances(result: FamilyResult, names: list[str]) -> list[float]:
    model = result.pipeline.stages[-1]
    if hasattr(model, "coefficients"):
        return model.coefficients.toArray().tolist()
    return model.featureImportances.toArray().tolist()


def log_family(
    result: FamilyResult, names: list[str], parity_diff: float, onnx_seconds: float
) -> dict[str, float]:
    """Log one family's nested run: params, CV and held-out metrics, plots, timings."""
    label = result.family.label
    held = evaluate.metrics(result.y_test, result.p_test)
    counts = evaluate.confusion(result.y_test, result.p_test)
    weights = importances(result, names)
    mlflow.log_params({"family": result.family.name, **result.best_params})
    mlflow.log_dict(result.family.grid, "grid.json")
    figures = {
        "cv_auc_mean": result.cv_auc_mean,
        "cv_auc_std": result.cv_auc_std,
        **{f"heldout_{k}": v for k, v in held.items()},
        **{f"confusion_{k}": float(v) for k, v in counts.items()},
        "parity_max_abs_diff": parity_diff,
        "onnx_seconds": onnx_seconds,
        **result.timings,
    }
    mlflow.log_metrics(figures)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        pd.DataFrame(result.cv_table).to_csv(out / "cv_results.csv", index=False)
        kind = (
            "coefficient" if hasattr(result.pipeline.stages[-1], "coefficients") else "importance"
        )
        pd.DataFrame({"feature": names, kind: weights}).to_csv(out / f"{kind}s.csv", index=False)
        evaluate.plot_importances(names, weights, f"{label}: {kind}s", out / f"{kind}s.png")
        evaluate.plot_roc(result.y_test, result.p_test, f"{label}: held-out ROC", out / "roc.png")
        evaluate.plot_confusion(counts, f"{label}: held-out", out / "confusion_matrix.png")
        (out / "confusion_matrix.json").write_text(json.dumps(counts))
        mlflow.log_artifacts(str(out))
    return figures
