"""Model families, hyper-parameter grids, the stratified split and k-fold cross-validation.

Cross-validation is written out rather than delegated to Spark's CrossValidator so that
preprocessing is fitted once on the training split (not once per fold and grid point), trees
are trained on a metadata-free vector (see ``features.strip_ml_metadata``), and progress is
reported per family and fold.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from pyspark.ml import PipelineModel
from pyspark.ml.classification import GBTClassifier, LogisticRegression, RandomForestClassifier
from pyspark.ml.functions import vector_to_array
from pyspark.sql import Window
from pyspark.sql import functions as F
from sklearn.metrics import roc_auc_score

from lifeboat.passenger import COLUMN_NAMES, FEATURES, LABEL
from training.features import FEATURES_COL, preprocessing, strip_ml_metadata, with_derived

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.ml import Estimator
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

TEST = "_is_test"
FOLD = "_fold"


@dataclass(frozen=True)
class Family:
    """A classifier family and its grid (parameter name → candidate values)."""

    name: str
    label: str
    grid: dict[str, list[Any]]
    quick_grid: dict[str, list[Any]]

    def estimator(self, seed: int, params: dict[str, Any]) -> Estimator:
        common = {"featuresCol": FEATURES_COL, "labelCol": LABEL}
        if self.name == "logistic_regression":
            return LogisticRegression(maxIter=50, **common, **params)
        if self.name == "random_forest":
            return RandomForestClassifier(seed=seed, **common, **params)
        return GBTClassifier(seed=seed, **common, **params)

    def points(self, quick: bool) -> list[dict[str, Any]]:
        """Every combination of the grid's values, in a fixed order."""
        grid = self.quick_grid if quick else self.grid
        combos: list[dict[str, Any]] = [{}]
        for key, values in grid.items():
            combos = [{**c, key: v} for c in combos for v in values]
        return combos


FAMILIES: tuple[Family, ...] = (
    Family(
        "logistic_regression",
        "Logistic Regression",
        # always regularised: a rare one-hot slot (a port-less passenger) must not get an
        # unbounded weight
        grid={"regParam": [0.01, 0.1], "elasticNetParam": [0.0]},
        quick_grid={"regParam": [0.01]},
    ),
    Family(
        "random_forest",
        "Random Forest",
        grid={"numTrees": [100], "maxDepth": [5, 8]},
        quick_grid={"numTrees": [20], "maxDepth": [5]},
    ),
    Family(
        "gbt",
        "Gradient-Boosted Trees",
        grid={"maxIter": [20], "maxDepth": [3, 5], "stepSize": [0.1]},
        quick_grid={"maxIter": [10], "maxDepth": [3]},
    ),
)
FAMILY_BY_NAME = {f.name: f for f in FAMILIES}


def split(df: DataFrame, seed: int, test_fraction: float, folds: int) -> DataFrame:
    """Mark a stratified held-out set and stratified CV folds, deterministically.

    Rows are ordered within each label by a seeded hash of their content, so the split depends
    only on the data and the seed, not on partitioning or row order.
    """
    key = F.xxhash64(*[F.col(c) for c in COLUMN_NAMES], F.lit(seed))
    by_label = Window.partitionBy(LABEL)
    ranked = df.withColumn("_rank", F.row_number().over(by_label.orderBy(key, *COLUMN_NAMES)))
    ranked = ranked.withColumn("_n", F.count(F.lit(1)).over(by_label))
    is_test = F.col("_rank") <= F.round(F.col("_n") * test_fraction)
    return ranked.select(
        *df.columns,
        is_test.alias(TEST),
        F.when(is_test, F.lit(-1)).otherwise(F.col("_rank") % folds).alias(FOLD),
    )


@dataclass
class Prepared:
    """Preprocessing fitted on the training split, and every row transformed by it."""

    prep_model: PipelineModel
    frame: DataFrame  # features (metadata-free), label, split columns, raw features
    train_rows: int
    test_rows: int


def prepare(
    df: DataFrame, seed: int, test_fraction: float, folds: int, extra: DataFrame | None = None
) -> Prepared:
    """Split, fit preprocessing on the training rows only, and cache the transformed frame.

    ``extra`` rows (for example labelled traffic from the monitoring logs) only ever join the
    training side, so the held-out set stays exactly the one ``df`` alone gives: a retrained
    challenger is compared with Production on the same rows as every earlier run.
    """
    marked = split(with_derived(df), seed, test_fraction, folds)
    if extra is not None:
        key = F.xxhash64(*[F.col(c) for c in COLUMN_NAMES], F.lit(seed))
        marked = marked.unionByName(
            with_derived(extra).select(
                "*",
                F.lit(False).alias(TEST),
                F.pmod(key, F.lit(folds)).cast("int").alias(FOLD),
            )
        )
    marked = marked.cache()
    train = marked.filter(~F.col(TEST))
    prep_model = preprocessing().fit(train)
    frame = strip_ml_metadata(prep_model.transform(marked)).coalesce(1).cache()
    n_train, n_test = train.count(), marked.filter(F.col(TEST)).count()
    frame.count()
    marked.unpersist()
    return Prepared(prep_model, frame, n_train, n_test)


def probabilities(model: Any, df: DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Labels and P(survived) for the rows of ``df`` (collected: the data is small)."""
    scored = (
        model.transform(df)
        .select(F.col(LABEL), vector_to_array("probability")[1].alias("p"))
        .toPandas()
    )
    return scored[LABEL].to_numpy(dtype=int), scored["p"].to_numpy(dtype=float)


@dataclass
class FamilyResult:
    """The outcome of one family's grid search and final fit."""

    family: Family
    best_params: dict[str, Any]
    cv_auc_mean: float
    cv_auc_std: float
    cv_table: list[dict[str, Any]]
    pipeline: PipelineModel
    y_test: np.ndarray
    p_test: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)


def cross_validate(
    family: Family,
    prepared: Prepared,
    folds: int,
    seed: int,
    quick: bool,
    progress: str,
    parallelism: int,
) -> FamilyResult:
    """Grid search with k-fold CV on the training split, then refit the best on all of it."""
    points = family.points(quick)
    train = prepared.frame.filter(~F.col(TEST))
    scores = np.zeros((len(points), folds))
    splits = [
        (train.filter(F.col(FOLD) != k).cache(), train.filter(F.col(FOLD) == k).cache())
        for k in range(folds)
    ]

    def fit_and_score(k: int, i: int) -> tuple[int, int, float]:
        model = family.estimator(seed, points[i]).fit(splits[k][0])
        y, p = probabilities(model, splits[k][1])
        return k, i, float(roc_auc_score(y, p))

    # Spark's per-job overhead, not computing, dominates on data this small, so several fits
    # in flight at once keep both cores busy.
    started = time.perf_counter()
    remaining = dict.fromkeys(range(folds), len(points))
    with ThreadPoolExecutor(max_workers=parallelism) as pool:
        jobs = [pool.submit(fit_and_score, k, i) for k in range(folds) for i in range(len(points))]
        try:
            for job in as_completed(jobs):
                k, i, auc = job.result()
                scores[i, k] = auc
                remaining[k] -= 1
                if remaining[k] == 0:
                    log.info(
                        "%s %s: fold %d/%d done, best AUC %.4f (%d grid points, %.1fs)",
                        progress,
                        family.label,
                        k + 1,
                        folds,
                        scores[:, k].max(),
                        len(points),
                        time.perf_counter() - started,
                    )
        except BaseException:  # a failed fit or an interrupt: the rest of the grid is not run
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    cv_seconds = time.perf_counter() - started
    for fit_on, held in splits:
        fit_on.unpersist()
        held.unpersist()
    means = scores.mean(axis=1)
    best = int(np.argmax(means))
    refit_start = time.perf_counter()
    classifier = family.estimator(seed, points[best]).fit(train)
    refit_seconds = time.perf_counter() - refit_start
    pipeline = PipelineModel(stages=[*prepared.prep_model.stages, classifier])
    y_test, p_test = probabilities(classifier, prepared.frame.filter(F.col(TEST)))
    log.info(
        "%s %s: best %s, CV AUC %.4f ± %.4f, held-out AUC %.4f",
        progress,
        family.label,
        points[best],
        means[best],
        scores[best].std(),
        roc_auc_score(y_test, p_test),
    )
    table = [
        {**params, "cv_auc_mean": float(means[i]), "cv_auc_std": float(scores[i].std())}
        for i, params in enumerate(points)
    ]
    return FamilyResult(
        family=family,
        best_params=points[best],
        cv_auc_mean=float(means[best]),
        cv_auc_std=float(scores[best].std()),
        cv_table=table,
        pipeline=pipeline,
        y_test=y_test,
        p_test=p_test,
        timings={"cv_seconds": cv_seconds, "refit_seconds": refit_seconds},
    )


def held_out_frame(prepared: Prepared) -> pd.DataFrame:
    """The held-out rows as clients would send them (features and label)."""
    return prepared.frame.filter(F.col(TEST)).select(*FEATURES, LABEL).toPandas()


def reference_frame(prepared: Prepared) -> pd.DataFrame:
    """The training rows as clients would send them: the drift reference."""
    return prepared.frame.filter(~F.col(TEST)).select(*FEATURES, LABEL).toPandas()
