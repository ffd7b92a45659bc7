"""The model card of a trained version, as Markdown and as self-contained HTML.

One list of blocks (headings, paragraphs, tables, the reliability plot) is rendered twice, so
the two forms cannot disagree. Figures come from :mod:`training.slices`; matplotlib draws the
plot. Neither Spark nor MLflow is imported: the pipeline passes values in.
"""

from __future__ import annotations

import base64
import html
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lifeboat.artifact import CARD_ARTIFACTS, CARD_HTML, CARD_MARKDOWN, RELIABILITY_PLOT
from training import slices


@dataclass(frozen=True)
class Table:
    headers: Sequence[str]
    rows: Sequence[Sequence[str]]


@dataclass(frozen=True)
class Heading:
    text: str


@dataclass(frozen=True)
class Image:
    path: Path
    alt: str


@dataclass(frozen=True)
class Outcome:
    """The version's promotion outcome: marked in both renderings, so it can be rewritten when
    the outcome changes after training (:func:`set_outcome`)."""

    text: str


Block = Heading | Table | Image | Outcome | str  # a str is a paragraph
# Around the outcome in both files (an HTML comment, invisible in rendered Markdown too).
OUTCOME_START, OUTCOME_END = "<!-- promotion outcome -->", "<!-- /promotion outcome -->"
PENDING = "not decided yet: the card was written before the promotion step"


def number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def figure_cells(f: slices.Figures) -> list[str]:
    cells = [f.auc, f.accuracy, f.precision, f.recall, f.brier, f.survival_rate]
    return [str(f.rows), *map(number, cells)]


FIGURE_HEADERS = ["rows", "AUC", "accuracy", "precision", "recall", "Brier", "survival rate"]


@dataclass(frozen=True)
class Evidence:
    """What a card reports: the version, its making, and its held-out probabilities."""

    title: str
    facts: Mapping[str, str]  # shown as a two-column table, in order
    families: Mapping[str, Mapping[str, float]]  # each family tried: cv_auc and heldout_auc
    chosen: str
    passengers: pd.DataFrame  # the held-out rows' raw columns
    y: np.ndarray
    p: np.ndarray
    outcome: str = PENDING  # promoted / kept as challenger / refused, with the reason


def blocks(evidence: Evidence, plot: Path) -> list[Block]:
    """The card's content, the reliability plot already drawn at ``plot``."""
    e = evidence
    whole = slices.figures(e.y, e.p)
    min_rows, worse_by = slices.limits()
    by_slice = slices.by_slice(e.passengers, e.y, e.p, min_rows, worse_by)
    return [
        Heading(e.title),
        Table(["", ""], [[k, v] for k, v in e.facts.items()]),
        Heading("Promotion"),
        Outcome(e.outcome),
        Heading("Families tried"),
        Table(
            ["family", "cross-validated AUC", "held-out AUC"],
            [[n, number(f["cv_auc"]), number(f["heldout_auc"])] for n, f in e.families.items()],
        ),
        why_chosen(e.families, e.chosen),
        Heading("Held-out figures"),
        f"Classified at p ≥ {slices.THRESHOLD}. Brier score: mean squared error of p "
        "(0 is perfect; 0.25 is always answering 0.5).",
        Table(FIGURE_HEADERS, [figure_cells(whole)]),
        Heading("Calibration"),
        Image(plot, "reliability plot: observed survival against predicted probability"),
        Heading("By slice"),
        *slice_blocks(by_slice, min_rows, worse_by, "the whole held-out set's"),
    ]


def slice_blocks(
    by_slice: Sequence[slices.Slice], min_rows: int, worse_by: float, whole: str
) -> list[Block]:
    """What the slices mean, their table and the flagged ones: the card's held-out slices and
    the drift report's live ones (``whole`` names what a slice is compared with)."""
    return [
        f"Age bands in years; a missing Age or port is its own slice ({slices.MISSING}). "
        f"family: alone means SibSp + Parch = 0. Flags: *too small* under {min_rows} "
        f"rows (shown, not judged); *worse* when AUC or accuracy is more than "
        f"{worse_by:.2f} below {whole}.",
        Table(
            ["slice", *FIGURE_HEADERS, "flag"],
            [[s.name, *figure_cells(s.figures), ", ".join(s.flags)] for s in by_slice],
        ),
        "Flagged worse: "
        + (", ".join(s.name for s in by_slice if "worse" in s.flags) or "none")
        + ". Too small to judge: "
        + (", ".join(s.name for s in by_slice if "too small" in s.flags) or "none")
        + ".",
    ]


def why_chosen(families: Mapping[str, Mapping[str, float]], chosen: str) -> str:
    """One sentence on the choice: the best cross-validated AUC; the held-out set only reports."""
    ranked = sorted(families, key=lambda n: families[n]["cv_auc"], reverse=True)
    runner_up = next((n for n in ranked if n != chosen), None)
    against = f", ahead of {runner_up} ({families[runner_up]['cv_auc']:.4f})" if runner_up else ""
    return (
        f"{chosen} won on cross-validated AUC ({families[chosen]['cv_auc']:.4f}{against}); "
        "the held-out rows played no part in the choice."
    )


def record(run_id: str, evidence: Evidence) -> None:
    """Write the card and log its files under ``model_card/`` of the MLflow run ``run_id``.

    The store import (``lifeboat.serving.store``) copies them from there beside the model.
    """
    from mlflow import MlflowClient

    with tempfile.TemporaryDirectory() as tmp:
        write_card(Path(tmp), evidence)
        MlflowClient().log_artifacts(run_id, tmp, CARD_ARTIFACTS)


def set_outcome(run_id: str, outcome: str, tracking_uri: str | None = None) -> bool:
    """Rewrite the promotion outcome in the card logged to run ``run_id`` (both files).

    Returns:
        False when the run carries no card (logged before cards existed), True otherwise.
    """
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        for name, render in ((CARD_MARKDOWN, markdown), (CARD_HTML, _html_fragment)):
            try:
                path = Path(client.download_artifacts(run_id, f"{CARD_ARTIFACTS}/{name}", tmp))
            except Exception:  # MlflowException or OSError: no card in this run
                return False
            text = path.read_text(encoding="utf-8")
            if OUTCOME_START not in text:  # a card from before outcomes were shown
                return False
            start, end = text.index(OUTCOME_START), text.index(OUTCOME_END) + len(OUTCOME_END)
            fragment = render([Outcome(outcome)]).strip()
            path.write_text(text[:start] + fragment + text[end:], encoding="utf-8")
            client.log_artifact(run_id, str(path), CARD_ARTIFACTS)
    return True


def _html_fragment(content: Sequence[Block]) -> str:
    page = to_html([Heading(""), *content])
    return page[page.index(OUTCOME_START) : page.index(OUTCOME_END) + len(OUTCOME_END)]


def plot_reliability(y: np.ndarray, p: np.ndarray, out: Path) -> Path:
    """Observed survival per bin of predicted probability, against the diagonal."""
    from training.evaluate import plt, save_figure  # matplotlib with the Agg backend

    table = slices.reliability(y, p)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8, label="calibrated")
    ax.plot(table["predicted"], table["observed"], marker="o", label="this model")
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1),
        xlabel="predicted P(survived)",
        ylabel="observed survival rate",
        title=f"Reliability (Brier {slices.figures(y, p).brier:.3f})",
    )
    ax.legend(loc="upper left")
    return save_figure(fig, out)


def markdown(content: Sequence[Block]) -> str:
    lines: list[str] = []
    for block in content:
        if isinstance(block, Heading):
            lines += [f"{'#' if not lines else '##'} {block.text}", ""]
        elif isinstance(block, Table):
            lines.append("| " + " | ".join(block.headers) + " |")
            lines.append("|" + "---|" * len(block.headers))
            lines += ["| " + " | ".join(row) + " |" for row in block.rows]
            lines.append("")
        elif isinstance(block, Image):
            lines += [f"![{block.alt}]({block.path.name})", ""]
        elif isinstance(block, Outcome):
            lines += [OUTCOME_START, block.text, OUTCOME_END, ""]
        else:
            lines += [block, ""]
    return "\n".join(lines)


def to_html(content: Sequence[Block]) -> str:
    """The same blocks as one HTML page, the plot embedded so the page stands alone."""
    title = html.escape(next(b.text for b in content if isinstance(b, Heading)))
    style = "body{font-family:sans-serif;max-width:60em}td,th{padding:2px 8px;text-align:right}"
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{style}</style></head><body>{html_body(content)}</body></html>\n"
    )


def html_body(content: Sequence[Block], top: str = "h1") -> str:
    """The blocks as HTML elements: the first heading a ``top``, the others ``h2``."""
    parts = []
    for block in content:
        if isinstance(block, Heading):
            tag = "h2" if parts else top
            parts.append(f"<{tag}>{html.escape(block.text)}</{tag}>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{html.escape(h)}</th>" for h in block.headers)
            body = "".join(
                "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                for row in block.rows
            )
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif isinstance(block, Image):
            data = base64.b64encode(block.path.read_bytes()).decode()
            alt = html.escape(block.alt)
            parts.append(f'<img alt="{alt}" src="data:image/png;base64,{data}">')
        elif isinstance(block, Outcome):
            parts.append(f"{OUTCOME_START}<p>{html.escape(block.text)}</p>{OUTCOME_END}")
        else:
            parts.append(f"<p>{html.escape(block).replace('*', '')}</p>")
    return "".join(parts)


def write_card(folder: Path, evidence: Evidence) -> list[Path]:
    """Write the card's three files into ``folder``.

    Returns:
        The Markdown, HTML and PNG paths (:data:`lifeboat.artifact.CARD_FILES`).
    """
    folder.mkdir(parents=True, exist_ok=True)
    plot = plot_reliability(evidence.y, evidence.p, folder / RELIABILITY_PLOT)
    card = blocks(evidence, plot)
    (folder / CARD_MARKDOWN).write_text(markdown(card), encoding="utf-8")
    (folder / CARD_HTML).write_text(to_html(card), encoding="utf-8")
    return [folder / CARD_MARKDOWN, folder / CARD_HTML, plot]
