"""``drift retrain``: drift → labelled logs as training rows → train → promote → import → reload.

Each step is a tag ``step.<name>`` on one ``retrain`` run in the ``titanic-drift`` experiment
(the report is a nested run; training logs its own runs in the training experiment). The
promotion gate is training's own. A step failing after this call promoted a version undoes what
this call changed: the service is reloaded back, the imported store model deleted and the
production alias restored, so Production and the service stay as they were.

Idempotent: the labelled rows are written byte for byte the same for the same logs, and a
training run that already used a file with that SHA-256 is not repeated; its version is
imported and reloaded only if it is still Production and not yet served.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from drift import report as drift_report
from drift.config import DriftSettings
from drift.deploy import Shipment, StepFailed, ship
from drift.logs import export_labelled
from drift.tracking import DriftRun
from lifeboat import exits
from training import runs

log = logging.getLogger(__name__)

EXIT_DONE, EXIT_STEP_FAILED, EXIT_DATA_ERROR = exits.OK, exits.STEP_FAILED, exits.DATA_ERROR
LABELLED_FILE = "labelled.csv"


@dataclass(frozen=True)
class RetrainOptions:
    """The report's options plus what the loop may do."""

    report: drift_report.ReportOptions
    force: bool = False
    dry_run: bool = False
    quick: bool = False
    folds: int = 3
    build: bool = True
    reload: bool = True
    service_url: str = "http://127.0.0.1:3000"
    admin_token: str | None = None
    reload_timeout: float = 60.0
    promote: bool = True  # False: a winning challenger is held for a person (`drift promote`)
    outcome_json: Path | None = None  # where to write training's outcome (training.outcome)


@dataclass
class Retrain:
    """The loop's state as it goes: what each step did, for MLflow and for the caller."""

    options: RetrainOptions
    settings: DriftSettings
    say: Callable[[str], None]
    run: DriftRun | None = None
    steps: dict[str, str] = field(default_factory=dict)
    version: str | None = None
    promoted: bool = False
    reloaded: bool = False

    def step(self, name: str, status: str) -> None:
        self.steps[name] = status
        self.say(f"[{name}] {status}")
        if self.run is not None:
            self.run.tags({f"step.{name}": status})

    def shipment(self) -> Shipment:
        """The current version, to ship as the options say, reporting to :meth:`step`."""
        options = self.options
        return Shipment(
            self.settings,
            str(self.version),
            build=options.build,
            reload=options.reload,
            service_url=options.service_url,
            admin_token=options.admin_token,
            reload_timeout=options.reload_timeout,
            step=self.step,
        )


@contextmanager
def exclusive(state_dir: Path) -> Iterator[None]:
    """The writers' lock (:func:`training.runs.exclusive`, which ``training train`` holds too),
    refused as a :class:`~drift.report.DriftDataError` (exit 2) when another one holds it."""
    try:
        with runs.exclusive(state_dir):
            yield
    except runs.Busy as exc:
        raise drift_report.DriftDataError(str(exc)) from None


def retrain(
    options: RetrainOptions,
    settings: DriftSettings,
    say: Callable[[str], None],
    complain: Callable[[str], None] | None = None,
) -> int:
    """Run the loop once and return its exit status.

    Args:
        options: What to compare and what the loop may do.
        settings: Where MLflow, the BentoML store and the reports are.
        say: Receives one line per step.
        complain: Receives the one-line reason of a failure (default: ``say``).

    Returns:
        0 done (promoted or not, or nothing to do), 1 a step failed and what this call changed
        was undone, 2 a usage or data error (also: another train or retrain is running), 130 or
        143 interrupted by SIGINT or SIGTERM (the MLflow runs end KILLED, after the undo of a
        promotion this call made).
    """
    complain = complain or say
    state = Retrain(options, settings, say)
    if options.reload and not options.dry_run and not options.admin_token:
        complain("error: LIFEBOAT_ADMIN_TOKEN is not set (needed for POST /reload; or --no-reload)")
        return EXIT_DATA_ERROR
    killed = False
    try:
        with (
            runs.sigterm_raises(),
            contextlib.nullcontext() if options.dry_run else exclusive(settings.state_dir),
        ):
            if not options.dry_run:
                stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
                state.run = DriftRun(settings, f"retrain-{stamp}", {"stage": "retrain"})
                state.run.params(_params(options))
            code = _loop(state)
    except drift_report.DriftDataError as exc:
        code, reason = EXIT_DATA_ERROR, str(exc)
    except StepFailed as exc:
        code, reason = EXIT_STEP_FAILED, str(exc)
    except BaseException as exc:
        if (signalled := runs.exit_code(exc)) is None:  # unexpected: record it, then surface it
            if state.run is not None:
                state.step("failed", f"{type(exc).__name__}: {exc}")
                state.run.finish(ok=False)
            raise
        # SIGINT or SIGTERM: exit as the signal would have, the runs ended KILLED.
        code, reason, killed = signalled, runs.describe(exc), True
    if code != EXIT_DONE:
        if state.run is not None:
            state.step("interrupted" if killed else "failed", reason)
        complain(f"error: {reason}")
    if state.run is not None:
        state.run.tags({"promoted": state.promoted, "reloaded": state.reloaded})
        state.run.finish(ok=code == EXIT_DONE, killed=killed)
    return code


def _loop(state: Retrain) -> int:
    options, settings = state.options, state.settings
    outcome = drift_report.analyse(options.report, settings)
    if not options.dry_run:
        drift_report.write(outcome, settings, options.report, parent=state.run)
    drifted = ", ".join(outcome.summary["drifted_features"]) or "none"
    state.step("report", f"drift={outcome.drift_detected} (drifted: {drifted})")
    if judged := outcome.summary["shadow"]["comparisons"]:  # what the live traffic said
        state.step(
            "shadow",
            "; ".join(
                f"v{c['shadow_version']} beside Production "
                f"v{c['production_version']}: {c['verdict']}"
                for c in judged
            ),
        )
    if not outcome.drift_detected and not options.force:
        state.step("done", "no drift; nothing to retrain (--force to retrain anyway)")
        return EXIT_DONE
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) if options.dry_run else outcome.folder
        return _train_and_ship(state, folder / LABELLED_FILE)


def _train_and_ship(state: Retrain, csv_path: Path) -> int:
    from training.data import file_sha256

    options, settings = state.options, state.settings
    report = options.report
    rows, scan = export_labelled(report.logs, report.since, csv_path, report.inline_labels)
    feedback = scan.feedback
    if rows == 0:
        unused = f"; {feedback.claimed} labels claimed inline not used (--inline-labels)"
        hint = "" if report.inline_labels else unused
        raise drift_report.DriftDataError(
            f"no labelled rows to retrain on: {len(feedback.joined)} feedback labels joined to "
            f"logged predictions{hint}"
        )
    sha = file_sha256(csv_path)
    source = f"{len(feedback.joined)} joined from feedback"
    if report.inline_labels:
        source += f", {feedback.claimed_used} claimed inline"
    state.step("export", f"{rows} labelled rows ({source}) → {csv_path.name} (sha256 {sha[:12]})")
    if state.run is not None:
        state.run.artifact(csv_path)
        state.run.tags({"extra_data_sha256": sha})
    client = _client(settings)
    previous = _production(client, settings)
    prior = _prior_training(client, settings, sha)
    if prior is not None:
        state.version, state.promoted = prior
        state.step("train", f"already trained on these rows: v{state.version}, skipped")
        if not state.promoted or previous != state.version:
            state.step("done", f"v{state.version} is not Production; nothing to ship")
        elif options.dry_run:
            state.step("done", f"would make sure v{state.version} is imported and served")
        else:
            state.reloaded = ship(state.shipment(), promoted_now=False, previous=previous)
        return EXIT_DONE
    if options.dry_run:
        then = ["import into the BentoML store"]
        then += ["bentoml build"] * options.build
        then += [f"POST {options.service_url}/reload"] * options.reload
        state.step(
            "train",
            f"would train with {rows} extra rows, promote only if better than Production "
            f"v{previous}, then: {', '.join(then)}",
        )
        return EXIT_DONE
    from training.pipeline import TrainOptions, run

    try:
        trained = run(
            TrainOptions(
                data=settings.data_path,
                seed=settings.seed,
                quick=options.quick,
                folds=options.folds,
                extra_data=csv_path,
                promote=options.promote,
            ),
            settings,
        )
    except Exception as exc:  # any training failure leaves Production as it was
        if runs.exit_code(exc):  # a Ctrl-C that py4j's clean-up turned into its own error
            raise
        state.step("train", f"failed: {type(exc).__name__}: {exc}")
        raise StepFailed(f"training failed; Production v{previous} unchanged") from exc
    state.version, state.promoted = str(trained.version), trained.promoted
    state.step(
        "train",
        f"v{trained.version} (run {trained.run_id}) held-out AUC "
        f"{trained.heldout_auc:.4f}: {'PROMOTED' if trained.promoted else 'not promoted'}"
        f" — {trained.reason}",
    )
    if state.run is not None:
        state.run.tags({"training_run_id": trained.run_id, "registered_version": trained.version})
        state.run.metrics({"challenger_heldout_auc": trained.heldout_auc})
    if options.outcome_json is not None:
        from drift.shadow import judge_version
        from training.outcome import write

        # A version registered just now has not been scored in shadow yet: the form says so.
        judged = judge_version(str(trained.version), previous, settings, report.logs)
        write(options.outcome_json, trained, settings, shadow=asdict(judged))
    if not trained.promoted:
        if trained.gate is not None and trained.gate.promote:
            state.step(
                "challenger",
                f"v{trained.version} is now {settings.challenger_alias!r}: scored in shadow "
                f"where the service loads it; drift promote {trained.version} refuses it if the "
                "live evidence says worse",
            )
        state.step("done", f"Production v{previous} and the service left as they were")
        return EXIT_DONE
    # What the training's compare-and-set replaced, which an undo puts back.
    try:
        state.reloaded = ship(
            state.shipment(), promoted_now=True, previous=trained.production_at_start
        )
    except StepFailed as exc:
        from training.registry import after_undo

        after_undo(client, settings, state.version, f"drift retrain's promotion was undone: {exc}")
        raise
    return EXIT_DONE


def _params(options: RetrainOptions) -> dict[str, object]:
    flags = {k: v for k, v in vars(options).items() if k not in ("report", "admin_token")}
    return {**vars(options.report), **flags}


def _client(settings: DriftSettings):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=settings.tracking_uri)


def _production(client, settings: DriftSettings) -> str | None:
    from training.registry import production_version

    current = production_version(client, settings.model_name, settings.production_alias)
    return None if current is None else str(current.version)


def _prior_training(client, settings: DriftSettings, sha: str) -> tuple[str, bool] | None:
    """(version, promoted) of a finished training run that already used these rows."""
    experiment = client.get_experiment_by_name(settings.experiment)
    if experiment is None:
        return None
    runs = client.search_runs(
        [experiment.experiment_id],
        f"tags.extra_data_sha256 = '{sha}' and tags.stage = 'pipeline'",
        order_by=["attributes.start_time DESC"],
    )
    for found in runs:
        tags = found.data.tags
        if found.info.status == "FINISHED" and "registered_version" in tags:
            return tags["registered_version"], tags.get("promoted") == "True"
    return None
