"""Shadow evidence: Production and the shadow it served beside, compared on the same logged traffic.

The serving side scores every request with Production and, when one is loaded, with a shadow
model (the registry's ``challenger`` alias) in the same batch; each prediction record then carries
``shadow_version`` and ``shadow_probability`` (:mod:`lifeboat.streams` owns the contract). Per pair
(Production version, shadow version) this module reports:

* ``rows``: records scored by both; ``agreement``: the share where both give the same class (the
  client's ``prediction`` against the shadow's probability at the serving threshold, the
  ``threshold`` every version's metadata carries, :data:`training.slices.THRESHOLD`); the mean
  and mean absolute probability shift (shadow minus Production);
* on the rows whose ``prediction_id`` has a feedback label (``POST /feedback``; claimed inline
  labels only with ``inline_labels``): AUC and accuracy of each model, each with a percentile
  bootstrap confidence interval, and a **paired** bootstrap interval of the difference (shadow
  minus Production; both models on the same resampled rows), seeded, so the same logs give the
  same figures.

**Verdict** (:data:`RULE`): fewer labelled rows than ``LIFEBOAT_SHADOW_MIN_LABELLED``, or labels
of one class only, is ``not enough evidence``; otherwise the interval of the AUC difference
decides: wholly above 0 ``better``, wholly below 0 ``worse``, else ``undecided``. A ``worse``
shadow is not promoted (``drift promote``), whatever it scored offline.

Reads the logs in one streamed pass; memory holds counts per pair and the labelled rows only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from drift.logs import NoLogs, open_scan, valid_records
from lifeboat import exits
from lifeboat.passenger import FEATURES
from lifeboat.settings import Settings
from lifeboat.streams import SHADOW_PROBABILITY, SHADOW_VERSION
from training.slices import THRESHOLD

BETTER, WORSE, UNDECIDED, NOT_ENOUGH = "better", "worse", "undecided", "not enough evidence"
RULE = (
    "on labelled rows scored by both models: fewer than min_labelled, or one class only, is "
    "'not enough evidence'; else the paired bootstrap interval of AUC(shadow) - AUC(Production) "
    "decides: wholly above 0 'better', wholly below 0 'worse', else 'undecided'"
)
EXIT_OK, EXIT_DATA_ERROR, EXIT_WORSE = exits.OK, exits.DATA_ERROR, exits.REFUSED


@dataclass(frozen=True)
class Rules:
    """How the evidence is weighed (settings ``LIFEBOAT_SHADOW_*`` and ``LIFEBOAT_SEED``)."""

    min_labelled: int = 200
    resamples: int = 1000
    confidence: float = 0.95
    seed: int = 42
    threshold: float = THRESHOLD

    @classmethod
    def of(cls, settings: Settings) -> Rules:
        return cls(
            settings.shadow_min_labelled,
            settings.shadow_bootstrap,
            settings.shadow_confidence,
            settings.seed,
        )


def shadow_of(record: dict[str, Any]) -> tuple[str, float] | None | bool:
    """``(shadow_version, shadow_probability)`` of a record; None when it has no shadow (the
    columns absent or both null); False when they are malformed (one null, a bad type, a
    probability outside [0, 1])."""
    version, probability = record.get(SHADOW_VERSION), record.get(SHADOW_PROBABILITY)
    if version is None and probability is None:
        return None
    if not isinstance(version, str | int) or isinstance(version, bool) or version == "":
        return False
    if not isinstance(probability, int | float) or isinstance(probability, bool):
        return False
    if not (math.isfinite(probability) and 0.0 <= probability <= 1.0):
        return False
    return str(version), float(probability)


@dataclass
class Pair:
    """What the logs hold for one (Production version, shadow version) pair."""

    production_version: str
    shadow_version: str
    rows: int = 0
    agree: int = 0
    shift: float = 0.0  # sum of shadow - Production probability
    abs_shift: float = 0.0
    # Labelled rows: Production's probability and class, the shadow's probability, the label.
    labelled: list[tuple[float, int, float, int]] = field(default_factory=list)

    def add(self, p: float, predicted: int, shadow_p: float, label: int | None, threshold: float):
        self.rows += 1
        self.agree += int(shadow_p >= threshold) == predicted
        self.shift += shadow_p - p
        self.abs_shift += abs(shadow_p - p)
        if label is not None:
            self.labelled.append((p, predicted, shadow_p, label))


def auc_weighted(groups: np.ndarray, n_groups: int, y: np.ndarray, w: np.ndarray) -> float | None:
    """ROC AUC with row weights (a bootstrap resample's counts), ties counted half.

    ``groups`` ranks the probabilities (``np.unique(p, return_inverse=True)``), so each call is
    two ``bincount``s and a cumulative sum. None when the weighted rows hold one class only.
    """
    positive = np.bincount(groups, weights=w * y, minlength=n_groups)
    negative = np.bincount(groups, weights=w * (1 - y), minlength=n_groups)
    total_pos, total_neg = positive.sum(), negative.sum()
    if total_pos == 0 or total_neg == 0:
        return None
    below = np.cumsum(negative) - negative
    return float((positive * (below + 0.5 * negative)).sum() / (total_pos * total_neg))


def _interval(values: list[float], confidence: float) -> list[float] | None:
    if not values:
        return None
    tail = (1 - confidence) / 2
    low, high = np.quantile(np.asarray(values), [tail, 1 - tail])
    return [float(low), float(high)]


def paired_bootstrap(
    y: np.ndarray,
    production_p: np.ndarray,
    production_class: np.ndarray,
    shadow_p: np.ndarray,
    rules: Rules,
) -> dict[str, Any]:
    """Point figures and bootstrap intervals of both models and of their difference.

    Every resample draws ``len(y)`` rows with replacement (``numpy.random.default_rng(seed)``)
    and scores both models on those same rows, so the difference's interval accounts for their
    correlation. Resamples with one class only have no AUC and are left out of the AUC
    intervals (counted in ``one_class_resamples``).
    """
    y = np.asarray(y, dtype=float)
    n = len(y)
    ranks = []
    for p in (production_p, shadow_p):
        values, groups = np.unique(np.asarray(p, dtype=float), return_inverse=True)
        ranks.append((groups, len(values)))
    correct = (
        np.asarray(production_class) == y,
        (np.asarray(shadow_p) >= rules.threshold).astype(int) == y,
    )
    ones = np.ones(n)

    def figures(w: np.ndarray) -> tuple[float | None, float | None, float, float]:
        auc_p, auc_s = (auc_weighted(g, k, y, w) for g, k in ranks)
        total = w.sum()
        return (
            auc_p,
            auc_s,
            float((w * correct[0]).sum() / total),
            float((w * correct[1]).sum() / total),
        )

    point = figures(ones)
    rng = np.random.default_rng(rules.seed)
    draws: dict[str, list[float]] = {k: [] for k in ("pa", "sa", "da", "pc", "sc", "dc")}
    one_class = 0
    for _ in range(rules.resamples):
        w = np.bincount(rng.integers(0, n, n), minlength=n).astype(float)
        auc_p, auc_s, acc_p, acc_s = figures(w)
        if auc_p is None or auc_s is None:
            one_class += 1
        else:
            draws["pa"].append(auc_p)
            draws["sa"].append(auc_s)
            draws["da"].append(auc_s - auc_p)
        draws["pc"].append(acc_p)
        draws["sc"].append(acc_s)
        draws["dc"].append(acc_s - acc_p)
    ci = {k: _interval(v, rules.confidence) for k, v in draws.items()}
    auc_p, auc_s, acc_p, acc_s = point
    both = auc_p is not None and auc_s is not None
    return {
        "production": {
            "auc": auc_p,
            "auc_ci": ci["pa"],
            "accuracy": acc_p,
            "accuracy_ci": ci["pc"],
        },
        "shadow": {"auc": auc_s, "auc_ci": ci["sa"], "accuracy": acc_s, "accuracy_ci": ci["sc"]},
        "difference": {
            "auc": auc_s - auc_p if both else None,
            "auc_ci": ci["da"],
            "accuracy": acc_s - acc_p,
            "accuracy_ci": ci["dc"],
        },
        "one_class_resamples": one_class,
    }


def verdict(labelled: int, figures: dict[str, Any] | None, rules: Rules) -> tuple[str, str]:
    """The verdict and one sentence why (:data:`RULE`)."""
    if labelled < rules.min_labelled:
        return NOT_ENOUGH, (
            f"{labelled} labelled rows scored by both, fewer than the {rules.min_labelled} "
            "needed (LIFEBOAT_SHADOW_MIN_LABELLED)"
        )
    assert figures is not None
    diff = figures["difference"]
    if diff["auc"] is None or diff["auc_ci"] is None:
        return NOT_ENOUGH, f"the {labelled} labelled rows hold one class only: no AUC"
    low, high = diff["auc_ci"]
    level = f"{rules.confidence:.0%}"
    said = (
        f"AUC shadow - Production {diff['auc']:+.4f}, {level} interval [{low:+.4f}, {high:+.4f}] "
        f"on {labelled} labelled rows"
    )
    if low > 0:
        return BETTER, f"{said}: wholly above 0"
    if high < 0:
        return WORSE, f"{said}: wholly below 0"
    return UNDECIDED, f"{said}: it includes 0"


def judge(pair: Pair, rules: Rules) -> dict[str, Any]:
    """One pair's figures and verdict, as the report's ``shadow`` block lists them."""
    n = len(pair.labelled)
    figures = None
    if n >= rules.min_labelled:
        table = np.asarray(pair.labelled, dtype=float)
        figures = paired_bootstrap(table[:, 3], table[:, 0], table[:, 1], table[:, 2], rules)
    decided, why = verdict(n, figures, rules)
    return {
        "production_version": pair.production_version,
        "shadow_version": pair.shadow_version,
        "rows": pair.rows,
        "agreement": pair.agree / pair.rows if pair.rows else None,
        "mean_shift": pair.shift / pair.rows if pair.rows else None,
        "mean_abs_shift": pair.abs_shift / pair.rows if pair.rows else None,
        "labelled_rows": n,
        **(figures or {"production": None, "shadow": None, "difference": None}),
        "verdict": decided,
        "why": why,
    }


@dataclass
class ShadowScan:
    """Every pair found in the logs, and the rows without a (valid) shadow."""

    pairs: dict[tuple[str, str], Pair] = field(default_factory=dict)
    without: int = 0
    malformed: int = 0


def scan(
    logs: Path, since: datetime | None, rules: Rules, inline_labels: bool = False
) -> ShadowScan:
    """Read the prediction logs once, labels joined by prediction id as the report joins them.

    Raises:
        NoLogs: No prediction log file under ``logs``.
    """
    found = ShadowScan()
    logged = open_scan(logs, since, inline_labels)
    label_at = len(FEATURES)
    for record, version, _, row, prediction_id in valid_records(logged.files, since, logged):
        shadow = shadow_of(record)
        if not shadow:
            found.malformed += shadow is False
            found.without += 1
            continue
        shadow_version, shadow_p = shadow
        label = logged.feedback.label(prediction_id, row[label_at])
        pair = found.pairs.setdefault((version, shadow_version), Pair(version, shadow_version))
        pair.add(row[label_at + 1], row[label_at + 2], shadow_p, label, rules.threshold)
    return found


def block(found: ShadowScan, rules: Rules) -> dict[str, Any]:
    """The report's ``shadow`` block: the rule, its settings and every pair judged."""
    return {
        "rule": RULE,
        "min_labelled": rules.min_labelled,
        "resamples": rules.resamples,
        "confidence": rules.confidence,
        "seed": rules.seed,
        "threshold": rules.threshold,
        "rows_with_shadow": sum(p.rows for p in found.pairs.values()),
        "rows_without_shadow": found.without,
        "malformed_shadow_columns": found.malformed,
        "comparisons": [judge(found.pairs[key], rules) for key in sorted(found.pairs)],
    }


def evidence(
    logs: Path, since: datetime | None, settings: Settings, inline_labels: bool = False
) -> dict[str, Any]:
    """:func:`block` of the logs under ``logs``, the rules from ``settings``.

    Raises:
        NoLogs: No prediction log file under ``logs``.
    """
    rules = Rules.of(settings)
    return block(scan(logs, since, rules, inline_labels), rules)


@dataclass(frozen=True)
class Judgement:
    """What the live traffic says about one version against one Production version."""

    version: str
    production: str | None
    verdict: str
    why: str
    comparison: dict[str, Any] | None = None

    @property
    def worse(self) -> bool:
        return self.verdict == WORSE

    def sentence(self) -> str:
        against = f"Production v{self.production}" if self.production else "no Production"
        return f"shadow v{self.version} vs {against}: {self.verdict} ({self.why})"


def judge_version(
    version: str, production: str | None, settings: Settings, logs: Path
) -> Judgement:
    """The live evidence on ``version`` shadowing ``production``, from the whole logs under
    ``logs``; ``not enough evidence`` when there is none."""
    where = logs
    if production is None:
        return Judgement(version, None, NOT_ENOUGH, "no Production version to compare with")
    try:
        found = evidence(where, None, settings)
    except NoLogs:
        return Judgement(version, production, NOT_ENOUGH, f"no prediction logs under {where}")
    for comparison in found["comparisons"]:
        if (comparison["shadow_version"], comparison["production_version"]) == (
            version,
            production,
        ):
            return Judgement(
                version, production, comparison["verdict"], comparison["why"], comparison
            )
    return Judgement(
        version,
        production,
        NOT_ENOUGH,
        f"no logged request was scored by both (logs under {where})",
    )


def _ci(values: list[float] | None) -> str:
    return "" if values is None else f" [{values[0]:.4f}, {values[1]:.4f}]"


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def lines(shadow: dict[str, Any]) -> list[str]:
    """The block for a terminal, one paragraph per pair."""
    if not shadow["comparisons"]:
        return [
            f"shadow: no logged request was scored by a shadow "
            f"({shadow['rows_without_shadow']} rows without one)"
        ]
    out = [f"shadow ({shadow['rows_without_shadow']} rows without one): {shadow['rule']}"]
    for c in shadow["comparisons"]:
        out.append(
            f"  shadow v{c['shadow_version']} beside Production v{c['production_version']}: "
            f"{c['rows']} rows, agreement {_figure(c['agreement'])}, mean shift "
            f"{c['mean_shift']:+.4f}; {c['labelled_rows']} labelled"
        )
        for side in ("production", "shadow", "difference"):
            if f := c[side]:
                out.append(
                    f"    {side:<10} AUC {_figure(f['auc'])}{_ci(f['auc_ci'])}  accuracy "
                    f"{_figure(f['accuracy'])}{_ci(f['accuracy_ci'])}"
                )
        out.append(f"    verdict: {c['verdict'].upper()} ({c['why']})")
    return out


def html(shadow: dict[str, Any]) -> str:
    """The block as an HTML section, for the drift report's page."""
    import html as escape

    head = (
        "<tr><th>Production</th><th>shadow</th><th>rows</th><th>agreement</th>"
        "<th>mean shift</th><th>labelled</th><th>AUC Production</th><th>AUC shadow</th>"
        "<th>AUC difference</th><th>accuracy difference</th><th>verdict</th></tr>"
    )
    rows = []
    for c in shadow["comparisons"]:
        cells = [
            f"v{c['production_version']}",
            f"v{c['shadow_version']}",
            str(c["rows"]),
            _figure(c["agreement"]),
            f"{c['mean_shift']:+.4f}",
            str(c["labelled_rows"]),
        ]
        for side, key in (("production", "auc"), ("shadow", "auc"), ("difference", "auc")):
            f = c[side]
            cells.append("n/a" if not f else _figure(f[key]) + _ci(f[f"{key}_ci"]))
        f = c["difference"]
        cells.append("n/a" if not f else _figure(f["accuracy"]) + _ci(f["accuracy_ci"]))
        cells.append(f"{c['verdict']}: {c['why']}")
        rows.append("<tr>" + "".join(f"<td>{escape.escape(x)}</td>" for x in cells) + "</tr>")
    body = "".join(rows) or (
        f'<tr><td colspan="11">no logged request was scored by a shadow '
        f"({shadow['rows_without_shadow']} rows without one)</td></tr>"
    )
    return (
        '<section id="shadow" style="font-family:sans-serif;margin:2em">'
        "<h2>Shadow evidence</h2>"
        f"<p>{escape.escape(shadow['rule'])}; intervals at {shadow['confidence']:.0%} from "
        f"{shadow['resamples']} paired resamples (seed {shadow['seed']}).</p>"
        f"<table>{head}{body}</table></section>"
    )
