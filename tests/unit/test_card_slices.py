"""Slice figures, flags and the gate's slice comparison; the card's two renderings; its route."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from starlette.requests import Request

from lifeboat import artifact
from lifeboat.serving import card
from tests.harness import packages_imported_by
from training import slices
from training.model_card import Evidence, write_card


def passengers(n: int, **columns) -> pd.DataFrame:
    base = {
        "Pclass": [3] * n,
        "Sex": ["male"] * n,
        "Age": [30.0] * n,
        "SibSp": [0] * n,
        "Parch": [0] * n,
        "Fare": [8.0] * n,
        "Embarked": ["S"] * n,
    }
    return pd.DataFrame({**base, **columns})


def test_figures_by_hand():
    f = slices.figures(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.4, 0.9]))
    assert (f.rows, f.survival_rate, f.auc, f.accuracy) == (4, 0.5, 0.75, 0.5)
    assert (f.precision, f.recall) == (0.5, 0.5)
    assert f.brier == pytest.approx((0.01 + 0.36 + 0.36 + 0.01) / 4)


def test_figures_undefined_on_one_class_are_none():
    f = slices.figures(np.array([0, 0, 0]), np.array([0.2, 0.3, 0.1]))
    assert f.auc is None and f.recall is None and f.precision is None
    assert f.accuracy == 1.0


def test_age_bands_keep_missing_age_apart():
    ages = pd.Series([None, 5, 12.9, 13, 17, 18, 29.5, 30, 44, 45, 59, 60, 80])
    assert slices.age_band(ages).tolist() == [
        "unknown",
        "0-12",
        "0-12",
        "13-17",
        "13-17",
        "18-29",
        "18-29",
        "30-44",
        "30-44",
        "45-59",
        "45-59",
        "60+",
        "60+",
    ]


def test_labels_of_port_and_family():
    frame = passengers(3, Embarked=["C", None, "S"], SibSp=[0, 1, 0], Parch=[0, 0, 2])
    labels = slices.slice_labels(frame)
    assert list(labels) == list(slices.DIMENSIONS)
    assert labels["port"].tolist() == ["C", "unknown", "S"]
    assert labels["family"].tolist() == ["alone", "with family", "with family"]


def mixed(n: int = 200, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Half women; a good model everywhere; ten passengers from Queenstown."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = np.clip(0.25 + 0.5 * y + rng.normal(0, 0.15, n), 0, 1)
    sex = np.where(np.arange(n) % 2 == 0, "female", "male")
    port = np.where(np.arange(n) < 10, "Q", "S")
    return passengers(n, Sex=sex, Embarked=port), y, p


def test_a_much_worse_slice_is_flagged_and_a_small_one_is_not_judged():
    frame, y, p = mixed()
    women = (frame["Sex"] == "female").to_numpy()
    p = np.where(women, 1 - p, p)  # the model is backwards for women
    flagged = {s.name: s.flags for s in slices.by_slice(frame, y, p)}
    assert flagged["Sex=female"] == ("worse",)
    assert flagged["Sex=male"] == ()
    assert flagged["port=Q"] == ("too small",)
    assert flagged["port=S"] == ()  # diluted by the women, but still within LIFEBOAT_SLICE_WORSE_BY


@pytest.fixture
def slice_settings(monkeypatch):
    """Set LIFEBOAT_SLICE_* for one test; the settings are read afresh before and after."""
    from lifeboat.settings import get_settings

    def apply(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    yield apply
    monkeypatch.undo()
    get_settings.cache_clear()


def test_slice_thresholds_are_settings(slice_settings):
    frame, y, p = mixed()
    women = (frame["Sex"] == "female").to_numpy()
    p = np.where(women, 1 - p, p)
    slice_settings(LIFEBOAT_SLICE_MIN_ROWS="5", LIFEBOAT_SLICE_WORSE_BY="1")
    flagged = {s.name: s.flags for s in slices.by_slice(frame, y, p)}
    assert flagged["port=Q"] == ()  # 10 rows are enough now
    assert flagged["Sex=female"] == ()  # nothing trails by more than 1
    slice_settings(LIFEBOAT_SLICE_MIN_ROWS="150")
    assert {s.name for s in slices.by_slice(frame, y, p) if s.flags == ("too small",)} >= {
        "Sex=female",
        "Sex=male",
        "port=Q",
    }
    # the gate's minimum too: the women's 100 rows are no longer judged, all 200 still are
    good = mixed()[2]
    found = slices.regressions(frame, y, p, good, 0.05)
    assert not any(line.startswith("Sex=female") for line in found)
    assert any(line.startswith("Pclass=3 (200 rows)") for line in found)


def test_slice_rows_add_up_per_dimension():
    frame, y, p = mixed()
    frame.loc[:4, "Age"] = None
    found = slices.by_slice(frame, y, p)
    for dimension in slices.DIMENSIONS:
        assert sum(s.figures.rows for s in found if s.dimension == dimension) == len(frame)
    assert any(s.name == "age band=unknown" and s.figures.rows == 5 for s in found)


def test_regressions_name_the_slice_that_got_worse():
    frame, y, production = mixed()
    women = (frame["Sex"] == "female").to_numpy()
    challenger = np.where(women, 1 - production, production)
    assert slices.regressions(frame, y, production, production, 0.05) == []
    found = slices.regressions(frame, y, challenger, production, 0.05)
    # the women, and the slices everyone shares (all 3rd class, all aged 30); never the men
    assert found[0].startswith("Sex=female (100 rows): AUC")
    assert "Production's" in found[0]
    assert "Pclass=3 (200 rows)" in found[1]
    assert not any(line.startswith("Sex=male") for line in found)
    # off with a drop no AUC can exceed
    assert slices.regressions(frame, y, challenger, production, 1.0) == []


def test_regressions_ignore_slices_too_small_to_judge():
    frame, y, production = mixed()
    queenstown = (frame["Embarked"] == "Q").to_numpy()
    challenger = np.where(queenstown, 1 - production, production)
    # Queenstown's ten rows go from AUC 1 to 0, and move no slice of 30 rows or more by 0.1
    assert slices.regressions(frame, y, challenger, production, 0.1) == []
    (small,) = slices.regressions(frame, y, challenger, production, 0.1, min_rows=10)
    assert small.startswith("port=Q (10 rows): AUC 0.0000")


def test_card_files_show_every_slice(tmp_path):
    frame, y, p = mixed()
    families = {
        "logreg": {"cv_auc": 0.84, "heldout_auc": 0.85},
        "gbt": {"cv_auc": 0.8, "heldout_auc": 0.9},
    }
    evidence = Evidence("titanic v3", {"data": "abc"}, families, "logreg", frame, y, p)
    paths = write_card(tmp_path, evidence)
    assert [p.name for p in paths] == list(artifact.CARD_FILES)
    md = (tmp_path / artifact.CARD_MARKDOWN).read_text()
    page = (tmp_path / artifact.CARD_HTML).read_text()
    for s in slices.by_slice(frame, y, p):
        assert f"| {s.name} | {s.figures.rows} |" in md
        assert f"<td>{s.name}</td><td>{s.figures.rows}</td>" in page
    assert "| gbt | 0.800 | 0.900 |" in md
    assert "Too small to judge: port=Q." in md
    assert "logreg won on cross-validated AUC (0.8400, ahead of gbt (0.8000))" in md
    assert (tmp_path / artifact.RELIABILITY_PLOT).read_bytes().startswith(b"\x89PNG")
    assert "data:image/png;base64," in page and "<h1>titanic v3</h1>" in page


def request(query: str = "", accept: str = "*/*") -> Request:
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/model_card",
        "query_string": query.encode(),
        "headers": [(b"accept", accept.encode())],
    }
    return Request(scope)


def test_card_route_answers_html_markdown_or_404(tmp_path):
    (tmp_path / artifact.CARD_HTML).write_text("<h1>card</h1>")
    (tmp_path / artifact.CARD_MARKDOWN).write_text("# card")
    assert card.card_response(tmp_path, "3", request()).body == b"<h1>card</h1>"
    answer = card.card_response(tmp_path, "3", request(accept="text/markdown"))
    assert answer.body == b"# card" and answer.media_type.startswith("text/markdown")
    assert card.card_response(tmp_path, "3", request("format=md")).body == b"# card"
    missing = card.card_response(tmp_path / "none", "2", request())
    assert missing.status_code == 404 and b"version 2 carries no model card" in missing.body


def test_card_modules_need_neither_spark_nor_mlflow():
    code = "import training.slices, training.model_card, lifeboat.artifact"
    assert packages_imported_by(code, ["pyspark", "mlflow", "bentoml"]) == []


def test_the_card_shows_the_promotion_outcome_and_it_is_rewritten_in_the_logged_card(tmp_path):
    """Training writes the card before the promotion step; the outcome is set after it, and
    again when ``drift promote`` decides, in the files logged to the run (a real SQLite store)."""
    from mlflow import MlflowClient

    from training.model_card import PENDING, set_outcome

    frame, y, p = mixed()
    families = {"logreg": {"cv_auc": 0.84, "heldout_auc": 0.85}}
    evidence = Evidence("titanic v3", {"data": "abc"}, families, "logreg", frame, y, p)
    write_card(tmp_path / "card", evidence)
    md = (tmp_path / "card" / artifact.CARD_MARKDOWN).read_text()
    assert f"## Promotion\n\n<!-- promotion outcome -->\n{PENDING}\n" in md

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("cards", artifact_location=(tmp_path / "art").as_uri())
    run_id = client.create_run(experiment).info.run_id
    client.log_artifacts(run_id, str(tmp_path / "card"), artifact.CARD_ARTIFACTS)
    for outcome in ("Kept as challenger (alias challenger): held", "Refused: <worse> & live"):
        assert set_outcome(run_id, outcome, uri) is True
        got = Path(
            client.download_artifacts(run_id, artifact.CARD_ARTIFACTS, str(tmp_path / "got"))
        )
        md = (got / artifact.CARD_MARKDOWN).read_text()
        page = (got / artifact.CARD_HTML).read_text()
        assert md.count("<!-- promotion outcome -->") == 1 and PENDING not in md
        assert f"<!-- promotion outcome -->\n{outcome}\n<!-- /promotion outcome -->" in md
        escaped = outcome.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        assert f"<!-- promotion outcome --><p>{escaped}</p><!-- /promotion outcome -->" in page
        assert "data:image/png;base64," in page and "| logreg |" in md  # the rest is kept
    assert "Kept as challenger" not in md
    # a run whose card predates outcomes, or that has none, is left alone
    bare = client.create_run(experiment).info.run_id
    assert set_outcome(bare, "Refused: x", uri) is False
