"""``drift report``: logs → reference of the serving version → Evidently + PSI → files and MLflow.

Input: the monitoring logs. Output: ``reports/drift/<time>/{report.html, summary.json}`` (with
live figures by the model card's slices when feedback labels came back, and the shadow evidence
of :mod:`drift.shadow` when a shadow scored the traffic too), the
same two files and the figures in a ``titanic-drift`` MLflow run, the verdict as gauges on a
Prometheus Pushgateway when one is configured, and an exit status (0 no
drift, 42 drift, 2 a usage or data error).
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from drift import shadow
from drift.compare import Comparison, compare, selection_rule
from drift.config import DriftSettings
from drift.logs import DEFAULT_SAMPLE_SIZE, LogScan, NoLogs, scan_logs
from drift.pushgateway import push_summary
from drift.reference import Reference, UnknownModelVersion, load_reference
from drift.stats import performance, performance_by_slice
from drift.tracking import DriftRun
from lifeboat import exits
from lifeboat.passenger import LABEL
from training import model_card, slices

log = logging.getLogger(__name__)

EXIT_NO_DRIFT, EXIT_DRIFT, EXIT_DATA_ERROR = exits.OK, exits.DRIFT, exits.DATA_ERROR
HTML_FILE, SUMMARY_FILE = "report.html", "summary.json"


class DriftDataError(ValueError):
    """The report cannot be made: no logs, too few rows, an unknown model version."""


@dataclass(frozen=True)
class ReportOptions:
    """What to compare and how strictly (the CLI's options)."""

    logs: Path
    since: datetime | None = None
    model_version: str | None = None  # None: the version that served the newest record
    min_rows: int = 100
    psi_threshold: float = 0.2
    drift_share: float = 0.25
    sample_size: int = DEFAULT_SAMPLE_SIZE
    seed: int = 0
    inline_labels: bool = False  # also trust labels claimed inside prediction requests


@dataclass
class ReportOutcome:
    """The summary (what summary.json holds) and where it went."""

    summary: dict[str, Any]
    comparison: Comparison
    reference: Reference
    folder: Path | None = None
    run_id: str | None = None
    files: list[Path] = field(default_factory=list)

    @property
    def drift_detected(self) -> bool:
        return bool(self.summary["drift_detected"])

    @property
    def exit_code(self) -> int:
        return EXIT_DRIFT if self.drift_detected else EXIT_NO_DRIFT


def analyse(options: ReportOptions, settings: DriftSettings) -> ReportOutcome:
    """Read the logs and compare them with the reference; writes nothing.

    Raises:
        DriftDataError: No logs, no rows of the version, fewer than ``min_rows``, or a version
            neither the BentoML store nor the registry knows.
    """
    try:
        scan = scan_logs(
            options.logs, options.since, options.sample_size, options.seed, options.inline_labels
        )
    except NoLogs as exc:
        raise DriftDataError(str(exc)) from exc
    version = options.model_version or scan.newest_version
    if version is None:
        window = f" since {options.since:%Y-%m-%d %H:%M}" if options.since else ""
        raise DriftDataError(
            f"no readable prediction records{window} in {scan.data_dir} "
            f"({scan.lines} lines, {scan.unreadable} unreadable)"
        )
    rows = scan.versions[version].rows if version in scan.versions else 0
    if rows < options.min_rows:
        raise DriftDataError(
            f"{rows} logged rows of model version {version}, fewer than --min-rows "
            f"{options.min_rows}"
        )
    try:
        reference = load_reference(version, settings)
    except UnknownModelVersion as exc:
        raise DriftDataError(str(exc)) from exc
    current = scan.versions[version].frame()
    comparison = compare(reference.frame, current, options.psi_threshold, options.drift_share)
    live = performance(current, LABEL, reference.metadata)
    summary = summarise(options, scan, version, reference, comparison, len(current))
    summary["performance"] = None if live is None else live.as_dict()
    live_slices = performance_by_slice(current, LABEL)
    summary["performance_by_slice"] = (
        None if live_slices is None else [s.as_dict() for s in live_slices]
    )
    # A second pass over the same logs: every request a shadow scored too (drift.shadow).
    summary["shadow"] = shadow.evidence(
        options.logs, options.since, settings, options.inline_labels
    )
    return ReportOutcome(summary, comparison, reference)


def summarise(
    options: ReportOptions,
    scan: LogScan,
    version: str,
    reference: Reference,
    comparison: Comparison,
    sampled: int,
) -> dict[str, Any]:
    """The JSON summary: verdicts per feature, counts, thresholds and which tests ran."""
    served = scan.versions[version]
    features = {name: f.as_dict() for name, f in comparison.features.items()}
    return {
        "created_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "model_version": version,
        "drift_detected": comparison.share >= options.drift_share,
        "drifted_features": comparison.drifted_features,
        "share_drifted": comparison.share,
        "thresholds": {"drift_share": options.drift_share, "psi": options.psi_threshold},
        "rule": "a feature drifts when Evidently's test or its PSI says so; the logs drift when "
        "the share of drifted features reaches drift_share",
        "tests": {
            "ran": sorted({f.test for f in comparison.features.values()}),
            "selection": selection_rule(),
        },
        "features": features,
        "evidently": {
            "drifted_columns": comparison.evidently_count,
            "share": comparison.evidently_share,
        },
        "rows": {
            "current": served.rows,
            "sampled": sampled,
            "labelled": served.labelled,
            "reference": len(reference.frame),
            "by_version": {v: s.rows for v, s in sorted(scan.versions.items())},
        },
        "feedback": scan.feedback.as_dict(),
        "logs": {
            "dir": str(scan.data_dir),
            "files": [str(p.relative_to(scan.data_dir)) for p in scan.files],
            "lines": scan.lines,
            "unreadable_lines": scan.unreadable,
            "outside_window": scan.outside_window,
            "since": options.since.isoformat() if options.since else None,
            "first": served.first.isoformat() if served.first else None,
            "last": served.last.isoformat() if served.last else None,
        },
        "reference": {"source": reference.source, "rows": len(reference.frame)},
    }


def new_folder(parent: Path) -> Path:
    """A fresh ``<parent>/<YYYYmmdd-HHMMSS>[-n]`` folder."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in range(1000):
        folder = parent / (stamp if n == 0 else f"{stamp}-{n}")
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            continue
    raise FileExistsError(f"no free report folder for {stamp} under {parent}")


def write(
    outcome: ReportOutcome,
    settings: DriftSettings,
    options: ReportOptions,
    track: bool = True,
    parent: DriftRun | None = None,
) -> ReportOutcome:
    """Write report.html and summary.json to a new folder; log both and the figures to MLflow;
    push the verdict to the Pushgateway when ``LIFEBOAT_PUSHGATEWAY_URL`` is set."""
    outcome.folder = new_folder(settings.drift_reports_dir)
    run = None
    try:
        if track:
            name = f"report-v{outcome.summary['model_version']}-{outcome.folder.name}"
            run = DriftRun(settings, name, {"stage": "report"}, parent)
            outcome.run_id = run.run_id
    except Exception as exc:  # an unreachable MLflow must not hide the verdict or the files
        log.warning("report not logged to MLflow: %s", exc)
    outcome.summary["mlflow_run_id"] = outcome.run_id
    html, summary = outcome.folder / HTML_FILE, outcome.folder / SUMMARY_FILE
    outcome.comparison.snapshot.save_html(str(html))
    # Evidently's page, with the live figures by slice and the shadow evidence at its end.
    sections = ""
    if content := live_slice_blocks(outcome.summary):
        sections += (
            '<section id="slices" style="font-family:sans-serif;margin:2em">'
            f"{model_card.html_body(content, top='h2')}</section>"
        )
    if "shadow" in outcome.summary:
        sections += shadow.html(outcome.summary["shadow"])
    if sections:
        page = html.read_text(encoding="utf-8")
        at = page.rfind("</body>")
        html.write_text(page[:at] + sections + page[at:] if at >= 0 else page + sections)
    summary.write_text(json.dumps(outcome.summary, indent=2))
    outcome.files = [html, summary]
    if run is not None:
        try:
            log_to_mlflow(run, outcome, options)
        except Exception as exc:
            log.warning("report only partly logged to MLflow run %s: %s", run.run_id, exc)
            with contextlib.suppress(Exception):
                run.finish(ok=False)
    if settings.pushgateway_url:
        try:
            push_summary(settings.pushgateway_url, outcome.summary, settings.model_name)
            log.info("verdict pushed to %s", settings.pushgateway_url)
        except Exception as exc:  # as with MLflow: a dashboard outage must not hide the verdict
            log.warning("verdict not pushed to %s: %s", settings.pushgateway_url, exc)
    return outcome


def live_slice_blocks(summary: dict[str, Any]) -> list[model_card.Block]:
    """The live figures by slice as the model card shows its held-out ones (none without
    feedback labels): the report page's section and the console's table."""
    if not summary.get("performance_by_slice"):
        return []
    found = [slices.Slice.from_dict(d) for d in summary["performance_by_slice"]]
    min_rows, worse_by = slices.limits()
    labelled = summary["performance"]["labelled_rows"]
    return [
        model_card.Heading(f"Live figures by slice (v{summary['model_version']})"),
        f"On the {labelled} logged predictions whose outcome came back; the same slices as the "
        "version's model card, classified at the serving threshold.",
        *model_card.slice_blocks(found, min_rows, worse_by, f"all {labelled} labelled rows"),
    ]


def log_to_mlflow(run: DriftRun, outcome: ReportOutcome, options: ReportOptions) -> None:
    """Params, figures per feature, the verdict as tags, and both files as artifacts."""
    s = outcome.summary
    run.params(
        {
            "logs": s["logs"]["dir"],
            "since": s["logs"]["since"],
            "model_version": s["model_version"],
            "reference_source": s["reference"]["source"],
            "min_rows": options.min_rows,
            "psi_threshold": options.psi_threshold,
            "drift_share": options.drift_share,
            "sample_size": options.sample_size,
            "inline_labels": options.inline_labels,
        }
    )
    figures: dict[str, float | int | None] = {
        "share_drifted": s["share_drifted"],
        "drifted_features": len(s["drifted_features"]),
        "rows_current": s["rows"]["current"],
        "rows_sampled": s["rows"]["sampled"],
        "rows_labelled": s["rows"]["labelled"],
        "feedback_joined": s["feedback"]["joined"],
        "feedback_unmatched": s["feedback"]["unmatched"],
        "feedback_duplicates": s["feedback"]["duplicates"],
        "rows_reference": s["rows"]["reference"],
        "unreadable_lines": s["logs"]["unreadable_lines"],
    }
    for name, f in s["features"].items():
        figures.update(
            {f"score.{name}": f["score"], f"psi.{name}": f["psi"], f"drifted.{name}": f["drifted"]}
        )
    for key, value in (s["performance"] or {}).items():
        figures[key] = value
    for found in map(slices.Slice.from_dict, s["performance_by_slice"] or []):
        for name in ("rows", "auc", "accuracy"):
            figures[f"live_slice/{found.metric_key}/{name}"] = getattr(found.figures, name)
    run.metrics(figures)
    run.tags(
        {
            "model_version": s["model_version"],
            "drift_detected": s["drift_detected"],
            "drifted_features": ",".join(s["drifted_features"]) or "-",
            "tests": "; ".join(s["tests"]["ran"]),
            "shadow": "; ".join(
                f"v{c['shadow_version']} beside v{c['production_version']}: {c['verdict']}"
                for c in s["shadow"]["comparisons"]
            )
            or "-",
        }
    )
    for path in outcome.files:
        run.artifact(path)
    run.finish()
