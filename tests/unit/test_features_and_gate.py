"""Derived features (numpy backend), the promotion gate and the Sex-only baseline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lifeboat.features import DERIVED_FEATURES, derive
from training.evaluate import sex_only_auc
from training.registry import gate


def test_derived_features_numpy():
    out = derive(
        {"SibSp": np.array([0, 1, 3]), "Parch": np.array([0, 2, 0])},
        lambda x: np.asarray(x, dtype=np.float32),
    )
    assert list(out) == list(DERIVED_FEATURES)
    np.testing.assert_array_equal(out["FamilySize"], [1, 4, 4])
    np.testing.assert_array_equal(out["IsAlone"], [1, 0, 0])


def test_gate_promotes_a_better_challenger_over_nothing():
    decision = gate(0.88, 0.77, None, None)
    assert decision.promote and "no Production version yet" in decision.reason


def test_gate_refuses_a_challenger_no_better_than_the_baseline():
    decision = gate(0.70, 0.77, None, None)
    assert not decision.promote and "baseline" in decision.reason


@pytest.mark.parametrize("challenger", [0.85, 0.86])
def test_gate_refuses_a_challenger_not_better_than_production(challenger):
    decision = gate(challenger, 0.77, 0.86, "3")
    assert not decision.promote
    assert "Production v3" in decision.reason


def test_gate_promotes_over_a_weaker_production():
    decision = gate(0.87, 0.77, 0.86, "3")
    assert decision.promote and "Production v3 scored 0.8600" in decision.reason


def test_sex_only_baseline_matches_the_indicator_auc():
    train = pd.DataFrame({"Sex": ["female", "male", "male", "female"], "Survived": [1, 0, 0, 1]})
    test = pd.DataFrame({"Sex": ["female", "male", "female", "male"], "Survived": [1, 0, 0, 1]})
    assert sex_only_auc(train, test) == pytest.approx(0.5)
    test_perfect = pd.DataFrame({"Sex": ["female", "male"], "Survived": [1, 0]})
    assert sex_only_auc(train, test_perfect) == pytest.approx(1.0)
