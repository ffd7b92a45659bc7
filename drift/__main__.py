"""`python -m drift`: the drift report, the shadow evidence, the retrain loop and promotion."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from lifeboat.cli import fail, setup_logging

if TYPE_CHECKING:
    from drift.config import DriftSettings
    from drift.report import ReportOptions

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Compare the service's prediction logs with the serving model's training data.",
)

# Options shared by both commands: they choose what the report compares.
Logs = Annotated[
    Path | None,
    typer.Option(help="Monitoring folder the service writes. Default: LIFEBOAT_MONITORING_DIR, "
                 "else monitoring/ in the project."),
]  # fmt: skip
Since = Annotated[
    str | None,
    typer.Option(help="Only records of this window: 30m, 24h, 7d, 2w or an ISO date/time."),
]
ModelVersion = Annotated[
    str | None,
    typer.Option(help="Model version to compare. Default: the one that served the newest record."),
]
MinRows = Annotated[int, typer.Option(min=1, help="Fewer logged rows is an error (exit 2).")]
PsiThreshold = Annotated[float, typer.Option(min=0.0, help="PSI at which a feature drifts.")]
DriftShare = Annotated[
    float, typer.Option(min=0.01, max=1.0, help="Share of drifted features that means drift.")
]
SampleSize = Annotated[
    int, typer.Option(min=100, help="Rows per model version kept (reservoir) for the statistics.")
]
InlineLabels = Annotated[
    bool,
    typer.Option(
        help="Also trust labels clients claimed inside prediction requests (default: only "
        "labels sent to POST /feedback, joined by request id)."
    ),
]
Pushgateway = Annotated[
    str | None,
    typer.Option(
        help="Prometheus Pushgateway for the verdict's gauges, e.g. http://localhost:9091. "
        "Default: LIFEBOAT_PUSHGATEWAY_URL; unset: no push."
    ),
]
Verbose = Annotated[bool, typer.Option("--verbose", "-v")]
# Options of the loop's last steps (retrain and promote).
Build = Annotated[
    bool, typer.Option(help="`bentoml build` the Bento with the newly imported model.")
]
Reload = Annotated[bool, typer.Option(help="POST /reload to the running service.")]
ServiceUrl = Annotated[
    str | None, typer.Option(help="Default: LIFEBOAT_SERVICE_URL, else :3000 on localhost.")
]
ReloadTimeout = Annotated[float, typer.Option(min=1.0, help="Seconds for the swap.")]


@app.callback()
def main() -> None:
    """Compare the service's prediction logs with the serving model's training data."""


# The options both commands share: what the report compares (ReportOptions' fields).
REPORT_OPTIONS = (
    "logs", "since", "model_version", "min_rows", "psi_threshold", "drift_share", "sample_size",
    "inline_labels",
)  # fmt: skip


def _report_options(params: dict[str, Any]) -> tuple[ReportOptions, DriftSettings]:
    """ReportOptions from a command's parsed parameters, defaults filled from the settings;
    the settings with ``--pushgateway`` applied."""
    from drift.config import get_drift_settings
    from drift.logs import parse_since
    from drift.report import EXIT_DATA_ERROR, ReportOptions

    settings = get_drift_settings()
    chosen = {name: params[name] for name in REPORT_OPTIONS}
    try:
        chosen["since"] = parse_since(chosen["since"])
    except ValueError as exc:
        fail(EXIT_DATA_ERROR, str(exc))
    chosen["logs"] = chosen["logs"] or settings.logs_dir
    if params["pushgateway"]:
        settings = settings.model_copy(update={"pushgateway_url": params["pushgateway"]})
    return ReportOptions(**chosen, seed=settings.seed), settings


@app.command()
def report(
    ctx: typer.Context,
    logs: Logs = None,
    since: Since = None,
    model_version: ModelVersion = None,
    min_rows: MinRows = 100,
    psi_threshold: PsiThreshold = 0.2,
    drift_share: DriftShare = 0.25,
    sample_size: SampleSize = 50_000,
    inline_labels: InlineLabels = False,
    mlflow: Annotated[bool, typer.Option(help="Log to the titanic-drift experiment.")] = True,
    pushgateway: Pushgateway = None,
    verbose: Verbose = False,
) -> None:
    """Drift of logged traffic vs the serving model's reference. Exit 0 none, 42 drift, 2 error."""
    setup_logging(verbose)
    from drift.report import EXIT_DATA_ERROR, DriftDataError, analyse, write

    options, settings = _report_options(ctx.params)
    try:
        outcome = analyse(options, settings)
    except DriftDataError as exc:
        fail(EXIT_DATA_ERROR, str(exc))
    write(outcome, settings, options, track=mlflow)
    print_summary(outcome.summary)
    typer.echo(f"report: {outcome.folder}")
    raise typer.Exit(outcome.exit_code)


@app.command()
def retrain(
    ctx: typer.Context,
    logs: Logs = None,
    since: Since = None,
    model_version: ModelVersion = None,
    min_rows: MinRows = 100,
    psi_threshold: PsiThreshold = 0.2,
    drift_share: DriftShare = 0.25,
    sample_size: SampleSize = 50_000,
    inline_labels: InlineLabels = False,
    force: Annotated[bool, typer.Option(help="Retrain even if the report finds no drift.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Say what would be done; change nothing.")] = False,
    quick: Annotated[bool, typer.Option(help="Train one grid point per family.")] = False,
    folds: Annotated[int, typer.Option(min=2, max=10, help="Cross-validation folds.")] = 3,
    build: Build = True,
    reload: Reload = True,
    service_url: ServiceUrl = None,
    reload_timeout: ReloadTimeout = 60.0,
    pushgateway: Pushgateway = None,
    promote: Annotated[
        bool,
        typer.Option(
            help="--no-promote: register and gate only; a winning challenger waits for a "
            "person (python -m drift promote VERSION)."
        ),
    ] = True,
    outcome_json: Annotated[
        Path | None,
        typer.Option("--outcome", help="Write training's outcome (figures, gate, run) as JSON."),
    ] = None,
    verbose: Verbose = False,
) -> None:
    """Retrain on the labelled logs when they drifted; promote if better; import and reload.

    Exit 0 done (promoted or not), 1 a step failed and was undone, 2 a usage or data error or
    another train or retrain running, 130/143 interrupted (runs end KILLED).
    """
    setup_logging(verbose)
    from drift.retrain import RetrainOptions
    from drift.retrain import retrain as run_loop

    options, settings = _report_options(ctx.params)
    loop = RetrainOptions(
        report=options,
        force=force,
        dry_run=dry_run,
        quick=quick,
        folds=folds,
        build=build,
        reload=reload,
        service_url=service_url or settings.service_url,
        admin_token=settings.admin_token.get_secret_value() if settings.admin_token else None,
        reload_timeout=reload_timeout,
        promote=promote,
        outcome_json=outcome_json,
    )
    complain = partial(typer.secho, fg=typer.colors.RED, err=True)
    raise typer.Exit(run_loop(loop, settings, typer.echo, complain))


@app.command("shadow")
def shadow_evidence(
    logs: Logs = None,
    since: Since = None,
    inline_labels: InlineLabels = False,
    version: Annotated[
        str | None,
        typer.Option(help="Judge only this shadow version (exit 4 when it is worse)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Write the JSON here. Default: reports/shadow/<time>.json."),
    ] = None,
    verbose: Verbose = False,
) -> None:
    """Production vs the shadow on the same logged traffic: agreement, probability shift, and
    AUC and accuracy with bootstrap intervals on rows with feedback labels.

    Exit 0 no shadow judged worse (also: no shadow in the logs), 4 a shadow (or --version) judged
    worse than the Production it served beside, 2 a usage or data error (no logs).
    """
    setup_logging(verbose)
    import json
    from datetime import datetime

    from drift.config import get_drift_settings
    from drift.logs import NoLogs, parse_since
    from drift.shadow import EXIT_DATA_ERROR, EXIT_OK, EXIT_WORSE, WORSE, evidence, lines

    settings = get_drift_settings()
    try:
        window = parse_since(since)
        found = evidence(logs or settings.logs_dir, window, settings, inline_labels)
    except (ValueError, NoLogs) as exc:
        fail(EXIT_DATA_ERROR, str(exc))
    if version is not None:
        found["comparisons"] = [c for c in found["comparisons"] if c["shadow_version"] == version]
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = out or settings.reports_dir / "shadow" / f"{stamp}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(found, indent=2))
    for line in lines(found):
        typer.echo(line)
    typer.echo(f"evidence: {path}")
    worse = any(c["verdict"] == WORSE for c in found["comparisons"])
    raise typer.Exit(EXIT_WORSE if worse else EXIT_OK)


@app.command("promote")
def promote_version(
    version: Annotated[str, typer.Argument(help="The registered version a person approved.")],
    build: Build = True,
    reload: Reload = True,
    service_url: ServiceUrl = None,
    reload_timeout: ReloadTimeout = 60.0,
    verbose: Verbose = False,
) -> None:
    """Promote an approved version, import it, build the Bento and reload the service.

    A failing step puts the production alias, the store and the service back. A version the
    service scored in shadow and found worse than Production on live labels is refused. Exit 0
    done, 1 a step failed and was undone, 2 a usage error, 3 refused on the live evidence.
    """
    setup_logging(verbose)
    from drift.approve import promote_approved
    from drift.config import get_drift_settings
    from drift.report import ReportOptions
    from drift.retrain import RetrainOptions

    settings = get_drift_settings()
    options = RetrainOptions(
        report=ReportOptions(logs=settings.logs_dir),
        build=build,
        reload=reload,
        service_url=service_url or settings.service_url,
        admin_token=settings.admin_token.get_secret_value() if settings.admin_token else None,
        reload_timeout=reload_timeout,
    )
    complain = partial(typer.secho, fg=typer.colors.RED, err=True)
    raise typer.Exit(promote_approved(version, options, settings, typer.echo, complain))


def print_summary(summary: dict[str, Any]) -> None:
    """The per-feature table and the verdict, for a terminal."""
    rows = summary["rows"]
    typer.echo(
        f"model v{summary['model_version']}: {rows['current']} logged rows "
        f"({rows['sampled']} sampled, {rows['labelled']} labelled) vs {rows['reference']} "
        f"reference rows; {summary['logs']['unreadable_lines']} unreadable lines skipped"
    )
    fb = summary["feedback"]
    claimed = (
        f"{fb['claimed_used']} inline labels used"
        if fb["inline_labels_trusted"]
        else f"{fb['claimed_inline']} inline labels ignored (--inline-labels to use them)"
    )
    typer.echo(
        f"feedback: {fb['received']} labels received, {fb['joined']} joined to predictions, "
        f"{fb['unmatched']} unmatched, {fb['duplicates']} repeated; {claimed}"
    )
    typer.echo(summary["tests"]["selection"])
    typer.echo(f"\n{'feature':<10}{'test':<32}{'score':>9}{'PSI':>9}  drifted")
    for name, f in summary["features"].items():
        typer.echo(
            f"{name:<10}{f['test']:<32}{f['score']:>9.4f}{f['psi']:>9.4f}  "
            f"{'YES' if f['drifted'] else 'no'}"
        )
    if perf := summary.get("performance"):
        p = {k: "n/a" if v is None else f"{v:.4f}" for k, v in perf.items()}
        typer.echo(
            f"\nlive AUC {p['live_auc']} (held-out {p['heldout_auc']}), accuracy "
            f"{p['live_accuracy']} (held-out {p['heldout_accuracy']}) on "
            f"{perf['labelled_rows']} labelled rows"
        )
    from drift.report import live_slice_blocks

    if content := live_slice_blocks(summary):
        from training.model_card import markdown

        typer.echo("\n" + markdown(content).rstrip())
    if "shadow" in summary:
        from drift.shadow import lines

        typer.echo("")
        for line in lines(summary["shadow"]):
            typer.echo(line)
    verdict = "DRIFT" if summary["drift_detected"] else "no drift"
    drifted = ", ".join(summary["drifted_features"]) or "none"
    typer.echo(
        f"\n{verdict}: {len(summary['drifted_features'])}/{len(summary['features'])} features "
        f"drifted ({drifted}); threshold share {summary['thresholds']['drift_share']}"
    )


if __name__ == "__main__":
    app()
