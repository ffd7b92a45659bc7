"""Shadow evidence statistics on constructed data: AUC with weights, the paired bootstrap, the
verdict rule, and reading the shadow columns of a record (drift.shadow)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from drift import shadow
from drift.shadow import BETTER, NOT_ENOUGH, UNDECIDED, WORSE, Rules


def labelled(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Labels, a good Production model (its probabilities and classes) and a shadow that is
    Production plus noise: deliberately worse."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    production = np.clip(0.3 + 0.4 * y + rng.normal(0, 0.25, n), 0, 1)
    worse = np.clip(production + rng.normal(0, 0.2, n), 0, 1)
    return y, production, (production >= 0.5).astype(int), worse


def test_weighted_auc_is_sklearns_with_ties_and_repeated_rows():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    p = np.round(rng.random(300), 1)  # many ties
    values, groups = np.unique(p, return_inverse=True)
    assert shadow.auc_weighted(groups, len(values), y, np.ones(300)) == pytest.approx(
        roc_auc_score(y, p)
    )
    w = rng.integers(0, 4, 300).astype(float)  # a resample's counts: rows repeated or left out
    repeated = np.repeat(np.arange(300), w.astype(int))
    assert shadow.auc_weighted(groups, len(values), y, w) == pytest.approx(
        roc_auc_score(y[repeated], p[repeated])
    )
    assert shadow.auc_weighted(groups, len(values), np.ones(300), np.ones(300)) is None


def test_a_worse_shadow_is_worse_with_enough_labels():
    y, production, classes, worse = labelled(2000)
    rules = Rules()
    figures = shadow.paired_bootstrap(y, production, classes, worse, rules)
    assert figures["production"]["auc"] == pytest.approx(roc_auc_score(y, production))
    assert figures["shadow"]["auc"] == pytest.approx(roc_auc_score(y, worse))
    low, high = figures["difference"]["auc_ci"]
    assert low < figures["difference"]["auc"] < high < 0
    for side in ("production", "shadow"):
        low, high = figures[side]["auc_ci"]
        assert low < figures[side]["auc"] < high
    assert figures["production"]["accuracy"] == pytest.approx(np.mean(classes == y))
    assert figures["shadow"]["accuracy"] == pytest.approx(np.mean((worse >= 0.5) == y))
    decided, why = shadow.verdict(2000, figures, rules)
    assert decided == WORSE and "wholly below 0" in why
    # the same evidence read the other way round: the better one is recognised as better
    flipped = shadow.paired_bootstrap(y, worse, (worse >= 0.5).astype(int), production, rules)
    assert shadow.verdict(2000, flipped, rules)[0] == BETTER


def test_the_same_shadow_is_undecided_or_not_enough_evidence_with_few_labels():
    y, production, classes, worse = labelled(40)
    few = Rules(min_labelled=20)
    figures = shadow.paired_bootstrap(y, production, classes, worse, few)
    assert figures["difference"]["auc"] < 0  # worse on these rows, but not surely
    assert shadow.verdict(40, figures, few)[0] == UNDECIDED
    decided, why = shadow.verdict(40, figures, Rules(min_labelled=200))
    assert decided == NOT_ENOUGH and "fewer than the 200" in why


def test_one_class_of_labels_is_not_enough_evidence():
    y = np.ones(300)
    figures = shadow.paired_bootstrap(
        y, np.full(300, 0.7), np.ones(300), np.full(300, 0.2), Rules()
    )
    assert figures["difference"]["auc"] is None
    assert figures["one_class_resamples"] == 1000
    assert shadow.verdict(300, figures, Rules())[0] == NOT_ENOUGH


def test_the_bootstrap_is_reproducible_for_a_seed():
    y, production, classes, worse = labelled(500)
    first = shadow.paired_bootstrap(y, production, classes, worse, Rules(seed=7))
    assert shadow.paired_bootstrap(y, production, classes, worse, Rules(seed=7)) == first
    other = shadow.paired_bootstrap(y, production, classes, worse, Rules(seed=8))
    assert other["difference"]["auc_ci"] != first["difference"]["auc_ci"]
    assert other["difference"]["auc"] == first["difference"]["auc"]  # the point estimate


def test_agreement_and_shift_per_pair():
    pair = shadow.Pair("3", "4")
    pair.add(0.8, 1, 0.6, 1, 0.5)  # same class
    pair.add(0.4, 0, 0.7, None, 0.5)  # the shadow says survived
    judged = shadow.judge(pair, Rules())
    assert judged["rows"] == 2 and judged["labelled_rows"] == 1
    assert judged["agreement"] == 0.5
    assert judged["mean_shift"] == pytest.approx((-0.2 + 0.3) / 2)
    assert judged["mean_abs_shift"] == pytest.approx(0.25)
    assert judged["verdict"] == NOT_ENOUGH and judged["difference"] is None


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({}, None),  # an older record: no shadow
        ({"shadow_version": None, "shadow_probability": None}, None),
        ({"shadow_version": "4", "shadow_probability": 0.25}, ("4", 0.25)),
        ({"shadow_version": 4, "shadow_probability": 1}, ("4", 1.0)),
        ({"shadow_version": "4", "shadow_probability": None}, False),
        ({"shadow_version": None, "shadow_probability": 0.3}, False),
        ({"shadow_version": "4", "shadow_probability": 1.5}, False),
        ({"shadow_version": "4", "shadow_probability": True}, False),
        ({"shadow_version": "", "shadow_probability": 0.3}, False),
    ],
)
def test_shadow_columns_of_a_record(record, expected):
    assert shadow.shadow_of(record) == expected
