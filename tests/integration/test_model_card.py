"""A trained version's model card, in its MLflow run and in the store; the gate's slice check."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lifeboat.artifact import CARD_ARTIFACTS, CARD_FILES, CARD_HTML, CARD_MARKDOWN
from lifeboat.passenger import LABEL
from tests.harness import DATA
from training import slices

pytestmark = [pytest.mark.spark, pytest.mark.integration]


@pytest.fixture(scope="module")
def held_out(spark, trained, settings) -> pd.DataFrame:
    """The held-out rows of the session's training run, as the pipeline splits them."""
    from training.data import load_passengers
    from training.spark import shared_folder
    from training.train import held_out_frame, prepare

    with shared_folder("inputs-") as inputs:
        loaded = load_passengers(
            spark, DATA, quarantine_dir=settings.quarantine_dir, staging=inputs
        )
        return held_out_frame(prepare(loaded.df, 42, 0.2, 3))


@pytest.fixture(scope="module")
def card_text(trained, settings, tmp_path_factory) -> str:
    from mlflow import MlflowClient

    client = MlflowClient(settings.tracking_uri)
    run_id = client.get_model_version(settings.model_name, trained.version).run_id
    logged = {Path(a.path).name for a in client.list_artifacts(run_id, CARD_ARTIFACTS)}
    assert logged == set(CARD_FILES)
    folder = client.download_artifacts(run_id, CARD_ARTIFACTS, str(tmp_path_factory.mktemp("c")))
    return (Path(folder) / CARD_MARKDOWN).read_text()


def slice_rows(markdown: str) -> dict[str, int]:
    """Slice name → row count, from the card's slice table."""
    return {
        m[1]: int(m[2]) for m in re.finditer(r"^\| (\S[^|=]*=[^|]+) \| (\d+) \|", markdown, re.M)
    }


def test_card_has_every_slice_with_rows_adding_up(card_text, held_out):
    rows = slice_rows(card_text)
    expected = slices.by_slice(held_out, held_out[LABEL], np.zeros(len(held_out)))
    assert {s.name: s.figures.rows for s in expected} == rows
    for dimension in slices.DIMENSIONS:
        in_dimension = [n for name, n in rows.items() if name.startswith(f"{dimension}=")]
        assert sum(in_dimension) == len(held_out)
    assert "age band=unknown" in rows  # the held-out set has passengers of unknown age


def test_card_records_data_code_and_choice(card_text, trained, settings, held_out):
    from mlflow import MlflowClient

    parent = MlflowClient(settings.tracking_uri).get_run(trained.run_id)
    assert parent.data.tags["dataset_sha256"] in card_text
    assert f"| code version | {parent.data.tags['git_commit']} |" in card_text
    assert f"{len(held_out)} held out" in card_text
    for family, figures in trained.families.items():
        assert f"| {family} | {figures['cv_auc']:.3f} | {figures['heldout_auc']:.3f} |" in card_text
    assert f"{trained.challenger} won on cross-validated AUC" in card_text
    assert f"| {len(held_out)} | {trained.heldout_auc:.3f} |" in card_text  # the whole set
    assert "![reliability plot" in card_text


def test_the_store_model_carries_the_card(trained, settings):
    from lifeboat.serving.store import import_production

    model, _ = import_production(settings.tracking_uri)
    folder = Path(model.path)
    assert (folder / CARD_HTML).read_text().startswith("<!doctype html>")
    assert f"v{model.info.labels['registry_version']}:" in (folder / CARD_MARKDOWN).read_text()


def worse_on(held_out: pd.DataFrame, production: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Better than Production everywhere (nudged towards the truth) except on ``mask``, where
    its ranking is reversed around the slice's mean."""
    y = held_out[LABEL].to_numpy()
    better = 0.3 * production + 0.7 * y
    backwards = np.clip(2 * production[mask].mean() - production, 0, 1)
    return np.where(mask, backwards, better)


def test_gate_refuses_a_challenger_much_worse_on_one_slice(trained, settings, held_out):
    from sklearn.metrics import roc_auc_score

    from training import registry

    client = registry.configure(settings)
    current = registry.production_version(client, settings.model_name, settings.production_alias)
    production = registry.score_version(settings.model_name, current.version, held_out)
    y = held_out[LABEL].to_numpy()
    first_class = (held_out["Pclass"] == 1).to_numpy()
    assert first_class.sum() >= settings.slice_min_rows
    challenger = worse_on(held_out, production, first_class)
    auc = float(roc_auc_score(y, challenger))
    assert auc > roc_auc_score(y, production)  # on AUC alone it would be promoted

    decision = registry.compare_with_production(client, settings, auc, 0.5, held_out, challenger)
    assert not decision.promote
    assert f"trails Production v{current.version} by more than 0.10" in decision.reason
    assert f"Pclass=1 ({first_class.sum()} rows): AUC" in decision.reason

    fine = worse_on(held_out, production, np.zeros(len(y), dtype=bool))
    fine_auc = float(roc_auc_score(y, fine))
    assert registry.compare_with_production(client, settings, fine_auc, 0.5, held_out, fine).promote
    off = settings.model_copy(update={"gate_slice_max_drop": 1.0})
    assert registry.compare_with_production(client, off, auc, 0.5, held_out, challenger).promote
