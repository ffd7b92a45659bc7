"""`python -m training`: train, batch-score and leaderboard commands."""

from __future__ import annotations

from pathlib import Path

import typer

from lifeboat import exits
from lifeboat.cli import fail, setup_logging
from lifeboat.settings import get_settings

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Lifeboat training on Spark, tracked and registered in MLflow.",
)


@app.command()
def train(
    data: Path = typer.Option(
        None, help="Passenger CSV (Kaggle columns). Default: LIFEBOAT_DATA or data/titanic.csv."
    ),
    folds: int = typer.Option(3, min=2, max=10, help="Cross-validation folds."),
    test_fraction: float = typer.Option(0.2, min=0.05, max=0.5, help="Held-out share."),
    seed: int = typer.Option(None, help="Split and model seed. Default: LIFEBOAT_SEED or 42."),
    quick: bool = typer.Option(False, help="One grid point per family (smoke runs, tests)."),
    extra_data: Path = typer.Option(
        None,
        help="Labelled rows (e.g. from monitoring logs) that "
        "join the training side only; the held-out set is unchanged.",
    ),
    parallelism: int = typer.Option(8, min=1, help="Model fits in flight at once."),
    skip_if_production: bool = typer.Option(
        False, help="Do nothing when the registry already has a Production version (make run)."
    ),
    promote: bool = typer.Option(
        True,
        help="--no-promote: register and gate only; a winning challenger waits for a person "
        "(python -m drift promote VERSION).",
    ),
    outcome_json: Path = typer.Option(
        None, "--outcome", help="Also write the outcome (figures, gate verdict, run) as JSON here."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Train LR, RF and GBT with CV on Spark; log to MLflow; register and maybe promote.

    One train or retrain at a time per LIFEBOAT_HOME; a promotion happens only if the production
    alias is still where it was at the start. Exit 0 done (promoted or not), 1 ONNX export
    failed, 2 bad data or another train or retrain running, 3 no Java, 130/143 interrupted
    (SIGINT/SIGTERM; the MLflow runs end KILLED).
    """
    setup_logging(verbose)
    if skip_if_production:
        from training import registry

        settings = get_settings()
        client = registry.configure(settings)
        current = registry.production_version(
            client, settings.model_name, settings.production_alias
        )
        if current is not None:
            typer.echo(
                f"{settings.model_name} v{current.version} is in Production already; "
                "not training (`make train` retrains)"
            )
            return
    from training.data import DataError
    from training.java import JavaMissingError
    from training.onnx_export import ConversionError
    from training.pipeline import TrainOptions, run
    from training.runs import INTERRUPTS, Busy, describe, exit_code, sigterm_raises
    from training.spark import ScratchError

    settings = get_settings()
    options = TrainOptions(
        data=data or settings.data_path,
        folds=folds,
        test_fraction=test_fraction,
        seed=settings.seed if seed is None else seed,
        quick=quick,
        extra_data=extra_data,
        parallelism=parallelism,
        promote=promote,
    )
    try:
        with sigterm_raises():
            outcome = run(options, settings)
    except JavaMissingError as exc:
        fail(exits.MISSING, str(exc))
    except (DataError, ScratchError, Busy) as exc:
        fail(exits.DATA_ERROR, str(exc))
    except ConversionError as exc:
        fail(exits.STEP_FAILED, f"ONNX export failed: {exc}")
    except (Exception, *INTERRUPTS) as exc:
        if (code := exit_code(exc)) is None:
            raise
        # The runs have ended KILLED; exit as the signal would have.
        fail(code, f"{describe(exc)}; its MLflow runs ended KILLED")
    typer.echo(f"\n{'family':<22}{'CV AUC':>8}{'held-out AUC':>14}{'ONNX |Δp|':>12}")
    for name, figures in outcome.families.items():
        typer.echo(
            f"{name:<22}{figures['cv_auc']:>8.4f}{figures['heldout_auc']:>14.4f}"
            f"{figures['parity']:>12.1e}"
        )
    typer.echo(f"\nSex-only baseline held-out AUC {outcome.baseline_auc:.4f}")
    verdict = "promoted to production" if outcome.promoted else "NOT promoted"
    typer.echo(
        f"challenger {outcome.challenger} → {settings.model_name} v{outcome.version}, "
        f"{verdict}: {outcome.reason}"
    )
    typer.echo(f"MLflow run {outcome.run_id} at {settings.tracking_uri}")
    if outcome_json is not None:
        from training.outcome import write

        write(outcome_json, outcome, settings)


@app.command()
def score(
    input_csv: Path = typer.Argument(..., help="Passengers to score (Kaggle columns)."),
    output_csv: Path = typer.Argument(..., help="Where to write rows with survived, probability."),
    model_uri: str = typer.Option(None, help="Default: models:/titanic@production."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Score a CSV with Spark and the registered Production model (for data too big for HTTP)."""
    setup_logging(verbose)
    from mlflow.exceptions import MlflowException

    from training.batch import production_uri
    from training.batch import score as batch_score
    from training.data import DataError
    from training.spark import ScratchError

    settings = get_settings()
    uri = model_uri or production_uri(settings)
    try:
        loaded = batch_score(input_csv, output_csv, uri, settings)
    except (DataError, ScratchError) as exc:
        fail(exits.DATA_ERROR, str(exc))
    except MlflowException as exc:
        fail(
            exits.DATA_ERROR,
            f"cannot load {uri}: {exc.message}. Train one first: python -m training train",
        )
    note = (
        f", {loaded.quarantined_rows} quarantined in {loaded.quarantine_file}"
        if (loaded.quarantined_rows)
        else ""
    )
    typer.echo(f"{loaded.valid_rows} rows scored with {uri} → {output_csv}{note}")


@app.command("import-model")
def import_model(
    alias: str = typer.Option(
        None,
        help="The registry alias to import: the production alias (default) as titanic, or the "
        "challenger alias (LIFEBOAT_CHALLENGER_ALIAS) as titanic_shadow, the shadow a server "
        "without MLflow scores beside Production.",
    ),
) -> None:
    """Import models:/titanic@production into the BentoML store (the first half of make build)."""
    setup_logging(False)
    from lifeboat.artifact import BENTO_MODEL
    from lifeboat.serving.store import SHADOW_BENTO_MODEL, NoProductionModel, import_production

    settings = get_settings()
    names = {settings.production_alias: BENTO_MODEL, settings.challenger_alias: SHADOW_BENTO_MODEL}
    alias = alias or settings.production_alias
    if alias not in names or not alias:
        fail(exits.DATA_ERROR, f"--alias {alias!r}: not one of {sorted(filter(None, names))}")
    try:
        model, created = import_production(
            settings.tracking_uri, settings.model_name, alias, names[alias]
        )
    except NoProductionModel as exc:
        fail(exits.DATA_ERROR, str(exc))
    state = "imported" if created else "already in the store, not imported again"
    typer.echo(f"{model.tag}: registry version {model.info.labels['registry_version']}, {state}")


@app.command()
def leaderboard(
    out: Path = typer.Option(
        None, help="Folder for the table and figure. Default: reports/leaderboard."
    ),
) -> None:
    """Write a leaderboard of every family run (CSV, Markdown, PNG)."""
    setup_logging(False)
    from training.leaderboard import leaderboard as build
    from training.leaderboard import markdown, write

    settings = get_settings()
    table = build(settings)
    if table.empty:
        fail(
            exits.DATA_ERROR,
            f"no training runs in experiment {settings.experiment!r}; run training first",
        )
    files = write(table, out or settings.reports_dir / "leaderboard")
    typer.echo(markdown(table.drop(columns=["run_id", "dataset_sha256", "started"])))
    typer.echo("written: " + ", ".join(str(f) for f in files))


if __name__ == "__main__":
    app()
