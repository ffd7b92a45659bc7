"""The training pipeline end to end: load → split → CV per family → ONNX → MLflow → promote."""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from pyspark.sql import functions as F
from sklearn.metrics import roc_auc_score

from lifeboat.passenger import CATEGORICAL_FEATURES, FEATURES, LABEL, NUMERIC_FEATURES
from lifeboat.settings import PROJECT_ROOT, Settings
from training import evaluate, model_card, registry, runs
from training.data import load_passengers
from training.features import feature_names
from training.java import java_version
from training.onnx_export import ConversionError, edge_rows, parity, to_onnx
from training.spark import get_spark, require_scratch, shared_folder
from training.train import FAMILIES, TEST, FamilyResult, Prepared, cross_validate, prepare

log = logging.getLogger(__name__)

PARITY_TOLERANCE = 1e-6
HELD = "; held for approval, not promoted"
LIBRARIES = (
    "pyspark",
    "mlflow",
    "onnxmltools",
    "onnxruntime",
    "scikit-learn",
    "pandas",
    "numpy",
    "bentoml",
    "evidently",
)


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


def git_commit() -> str:
    """The project's commit (``-dirty`` with uncommitted changes), ``unknown`` outside git.

    ``LIFEBOAT_GIT_COMMIT`` wins: an image has no ``.git``, so its build records the commit.
    """
    if recorded := os.environ.get("LIFEBOAT_GIT_COMMIT"):
        return recorded
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    if out.returncode != 0:
        return "unknown"
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version(), "java": str(java_version())}
    for name in LIBRARIES:
        try:
            versions[name] = package_version(name)
        except Exception:
            versions[name] = "absent"
    return versions


def held_out_frame(prepared: Prepared) -> pd.DataFrame:
    return prepared.frame.filter(F.col(TEST)).select(*FEATURES, LABEL).toPandas()


def reference_frame(prepared: Prepared) -> pd.DataFrame:
    """The training rows as clients would send them: the drift reference."""
    return prepared.frame.filter(~F.col(TEST)).select(*FEATURES, LABEL).toPandas()


def sex_only_auc(train: pd.DataFrame, test: pd.DataFrame) -> float:
    """Held-out AUC of the trivial baseline: each sex's survival rate in training."""
    rates = train.groupby("Sex")[LABEL].mean()
    p = test["Sex"].map(rates).fillna(train[LABEL].mean()).to_numpy(dtype=float)
    return float(roc_auc_score(test[LABEL].astype(int), p))


def feature_profile(reference: pd.DataFrame) -> dict[str, Any]:
    """Ranges and categories seen in training: served with the model for per-request alerts."""
    ranges = {c: [float(reference[c].min()), float(reference[c].max())] for c in NUMERIC_FEATURES}
    categories = {c: sorted(reference[c].dropna().unique().tolist()) for c in CATEGORICAL_FEATURES}
    return {"feature_ranges": ranges, "categories": categories}


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


def _run(options: TrainOptions, settings: Settings, inputs: Path) -> Outcome:
    started = time.perf_counter()
    client = registry.configure(settings)
    at_start = registry.production_number(client, settings.model_name, settings.production_alias)
    spark = get_spark()
    loaded = load_passengers(
        spark, options.data, quarantine_dir=settings.quarantine_dir, staging=inputs
    )
    extra = None
    if options.extra_data is not None:
        extra = load_passengers(
            spark, options.extra_data, quarantine_dir=settings.quarantine_dir, staging=inputs
        )
    load_seconds = time.perf_counter() - started
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    with runs.tracked_run(run_name=f"pipeline-{stamp}") as parent:
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
                "load_seconds": load_seconds,
            }
        )
        if loaded.quarantine_file:
            mlflow.log_artifact(str(loaded.quarantine_file), "quarantine")
        if extra is not None:
            mlflow.set_tags({"extra_data": str(extra.path), "extra_data_sha256": extra.sha256})
            mlflow.log_metrics(
                {"rows_extra": extra.valid_rows, "rows_extra_quarantined": extra.quarantined_rows}
            )

        prepared = prepare(
            loaded.df,
            options.seed,
            options.test_fraction,
            options.folds,
            extra.df if extra is not None else None,
        )
        names = feature_names(prepared.prep_model)
        parity_rows = loaded.df.unionByName(edge_rows(spark), allowMissingColumns=True).cache()
        results: list[tuple[FamilyResult, bytes, str, dict[str, float]]] = []
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
            onnx_start = time.perf_counter()
            onnx_bytes = to_onnx(result.pipeline)
            diff = parity(result.pipeline, onnx_bytes, parity_rows)
            onnx_seconds = time.perf_counter() - onnx_start
            log.info(
                "%s %s: ONNX parity max |Δp| = %.2e on %d rows",
                progress,
                family.label,
                diff,
                parity_rows.count(),
            )
            with runs.tracked_run(run_name=family.name, nested=True) as child:
                mlflow.set_tags({"dataset_sha256": loaded.sha256, "stage": "family"})
                figures = log_family(result, names, diff, onnx_seconds)
            if not diff <= PARITY_TOLERANCE:
                raise ConversionError(
                    f"{family.label}: ONNX and Spark disagree by {diff:.2e} "
                    f"in probability (tolerance {PARITY_TOLERANCE:g})"
                )
            results.append((result, onnx_bytes, child.info.run_id, figures))

        best, onnx_bytes, child_id, figures = max(results, key=lambda r: r[0].cv_auc_mean)
        reference = reference_frame(prepared)
        held_out = held_out_frame(prepared)
        baseline = sex_only_auc(reference, held_out)
        heldout_auc = figures["heldout_auc"]
        metadata = {
            "model_name": settings.model_name,
            "family": best.family.name,
            "params": best.best_params,
            "run_id": child_id,
            "pipeline_run_id": parent.info.run_id,
            "dataset_sha256": loaded.sha256,
            "heldout_auc": heldout_auc,
            "heldout_accuracy": figures["heldout_accuracy"],
            "cv_auc_mean": best.cv_auc_mean,
            "baseline_auc": baseline,
            "trained_at": datetime.now(UTC).isoformat(),
            "threshold": evaluate.THRESHOLD,
            "parity_max_abs_diff": figures["parity_max_abs_diff"],
            "rows_used": loaded.valid_rows,
            **feature_profile(reference),
        }
        with runs.tracked_run(run_id=child_id, nested=True):
            model_uri = registry.log_served_model(onnx_bytes, best.pipeline, metadata, reference)
        challenger_p = registry.score_uri(model_uri, held_out)  # as Production is scored
        decision = registry.compare_with_production(
            client, settings, heldout_auc, baseline, held_out, challenger_p
        )
        version = registry.register(
            client,
            settings.model_name,
            model_uri,
            child_id,
            {
                "heldout_auc": f"{heldout_auc:.6f}",
                "dataset_sha256": loaded.sha256,
                "run_id": child_id,
                "family": best.family.name,
            },
        )
        evidence = model_card.Evidence(
            title=f"{settings.model_name} v{version.version}: {best.family.label}",
            facts={
                "MLflow run": f"{child_id} (pipeline run {parent.info.run_id})",
                "trained at": metadata["trained_at"],
                "data": f"{options.data}, sha256 {loaded.sha256}",
                "rows": f"{loaded.total_rows} read, {loaded.valid_rows} used, "
                f"{loaded.quarantined_rows} quarantined; {prepared.train_rows} training, "
                f"{prepared.test_rows} held out",
                "training command": runs.command_line(),
                "code version": git_commit(),
                "promotion gate": decision.reason,
            },
            families={
                r.family.name: {"cv_auc": r.cv_auc_mean, "heldout_auc": f["heldout_auc"]}
                for r, _, _, f in results
            },
            chosen=best.family.name,
            passengers=held_out,
            y=held_out[LABEL].to_numpy(),
            p=challenger_p,
        )
        model_card.record(child_id, evidence)
        promoted = decision.promote and options.promote
        reason = decision.reason + (HELD if decision.promote and not promoted else "")
        if promoted:
            try:
                with registry.unmoved(client, settings, at_start):
                    registry.promote(
                        client, settings.model_name, settings.production_alias, version.version
                    )
            except registry.ProductionMoved as moved:
                promoted, reason = False, f"{moved} (the gate had passed: {decision.reason})"
        registry.settle(client, settings, version.version, decision.promote, promoted, reason)
        log.info(
            "challenger %s v%s: %s — %s",
            best.family.label,
            version.version,
            "PROMOTED" if promoted else "not promoted",
            reason,
        )
        mlflow.set_tags(
            {
                "challenger": best.family.name,
                "registered_version": version.version,
                "promoted": str(promoted),
                "decision": reason,
                "production_at_start": at_start or "none",
            }
        )
        mlflow.log_metrics(
            {
                "baseline_auc": baseline,
                "challenger_heldout_auc": heldout_auc,
                "total_seconds": time.perf_counter() - started,
                **(
                    {"production_auc": decision.production_auc}
                    if decision.production_auc is not None
                    else {}
                ),
            }
        )
        parity_rows.unpersist()
    return Outcome(
        run_id=parent.info.run_id,
        challenger=best.family.name,
        heldout_auc=heldout_auc,
        baseline_auc=baseline,
        version=version.version,
        promoted=promoted,
        reason=reason,
        families={
            r.family.name: {
                "cv_auc": r.cv_auc_mean,
                "heldout_auc": f["heldout_auc"],
                "parity": f["parity_max_abs_diff"],
            }
            for r, _, _, f in results
        },
        gate=decision,
        production_at_start=at_start,
    )
