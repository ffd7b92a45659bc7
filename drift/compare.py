"""Per-feature drift: Evidently's statistical test and PSI, combined into one verdict.

Evidently 0.7 picks each column's test from its non-missing reference values: up to 1000,
Kolmogorov-Smirnov for numeric columns and chi-square (Z-test for two categories) for
categorical ones, both drifting when p < 0.05; above 1000 rows, normed Wasserstein distance for
numeric and Jensen-Shannon distance for categorical columns, both drifting when the distance
reaches 0.1. Numeric columns with at most five distinct values are tested as categorical.
Results are read by metric type and column from the snapshot, never by position.

A feature has drifted when Evidently's test or its PSI says so; the logs have drifted when the
share of drifted features reaches ``drift_share``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from drift.stats import psi
from lifeboat.passenger import BY_NAME, FEATURES

# Pclass is an int but a class mix is a categorical distribution; Evidently must see it so.
CATEGORICAL = tuple(name for name in FEATURES if BY_NAME[name].choices is not None)
NUMERICAL = tuple(name for name in FEATURES if name not in CATEGORICAL)
EVIDENTLY_SMALL_REFERENCE = 1000  # Evidently's switch from p-value tests to distances


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's verdict and the numbers behind it."""

    feature: str
    kind: str
    test: str
    reference_values: int  # non-missing: what Evidently's choice of test counts
    score: float
    threshold: float
    test_drifted: bool
    psi: float
    psi_drifted: bool

    @property
    def drifted(self) -> bool:
        return self.test_drifted or self.psi_drifted

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "drifted": self.drifted}


@dataclass(frozen=True)
class Comparison:
    """The Evidently snapshot (for its HTML page) and the per-feature verdicts."""

    snapshot: Any
    features: dict[str, FeatureDrift]
    evidently_share: float
    evidently_count: int

    @property
    def drifted_features(self) -> list[str]:
        return [name for name, f in self.features.items() if f.drifted]

    @property
    def share(self) -> float:
        return len(self.drifted_features) / len(self.features)


def selection_rule() -> str:
    """How Evidently chose the tests (the per-feature ``test`` says which one ran)."""
    return (
        f"Evidently chooses per feature from its non-missing reference values: up to "
        f"{EVIDENTLY_SMALL_REFERENCE}, Kolmogorov-Smirnov (numerical) or chi-square / Z-test "
        "(categorical), drift when p < 0.05; above, normed Wasserstein (numerical) or "
        "Jensen-Shannon (categorical) distance, drift when >= 0.1"
    )


def _by_column(snapshot: Any) -> tuple[dict[str, dict], dict[str, str], dict[str, Any]]:
    """ValueDrift results and test statuses keyed by column, DriftedColumnsCount's value."""
    result = snapshot.dict()
    values: dict[str, dict] = {}
    count: dict[str, Any] = {}
    for metric in result["metrics"]:
        kind = metric["config"]["type"].rsplit(":", 1)[-1]
        if kind == "ValueDrift":
            values[metric["config"]["column"]] = metric
        elif kind == "DriftedColumnsCount":
            count = metric["value"]
    statuses = {
        test["metric_config"]["params"]["column"]: test["status"]
        for test in result["tests"]
        if test["metric_config"]["params"]["type"].endswith(":ValueDrift")
    }
    return values, statuses, count


def compare(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    psi_threshold: float = 0.2,
    drift_share: float = 0.25,
) -> Comparison:
    """Run Evidently's DataDriftPreset on the features and add PSI per feature.

    Args:
        reference: The serving model's training rows.
        current: The logged rows (or a sample of them).
        psi_threshold: PSI at or above which a feature has drifted.
        drift_share: Share of drifted features at which Evidently's page calls the data drifted.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(
        numerical_columns=list(NUMERICAL), categorical_columns=list(CATEGORICAL)
    )
    columns = list(FEATURES)
    report = Report([DataDriftPreset(columns=columns, drift_share=drift_share)], include_tests=True)
    snapshot = report.run(
        Dataset.from_pandas(current[columns], data_definition=definition),
        Dataset.from_pandas(reference[columns], data_definition=definition),
    )
    values, statuses, count = _by_column(snapshot)
    missing = [c for c in columns if c not in values or c not in statuses]
    if missing:
        raise RuntimeError(f"Evidently returned no drift result for {missing}")
    features = {}
    for name in columns:
        config = values[name]["config"]
        score = psi(reference[name], current[name], categorical=name in CATEGORICAL)
        features[name] = FeatureDrift(
            feature=name,
            kind="categorical" if name in CATEGORICAL else "numerical",
            test=config["method"],
            reference_values=int(reference[name].notna().sum()),
            score=float(values[name]["value"]),
            threshold=float(config["threshold"]),
            test_drifted=statuses[name] == "FAIL",
            psi=score,
            psi_drifted=score >= psi_threshold,
        )
    return Comparison(
        snapshot=snapshot,
        features=features,
        evidently_share=float(count.get("share", 0.0)),
        evidently_count=int(count.get("count", 0)),
    )
