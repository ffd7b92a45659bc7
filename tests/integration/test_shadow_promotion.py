"""A held challenger gets the challenger alias, and live evidence that it is worse refuses its
promotion (issue 14).

Real MLflow (a private copy of the session's registry, SQLite), a real ``--quick`` training run
through the CLI, real monitoring files with the shadow columns and feedback labels, and
``python -m drift promote`` as a person (or the Airflow approval) runs it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from drift.traffic import write_shadowed
from lifeboat.artifact import CARD_ARTIFACTS, CARD_MARKDOWN
from tests.harness import ROOT
from tests.integration.registry_home import FAST, client, environment, private_home, production
from tests.integration.test_registry_cas import _register_coin_flip

pytestmark = [pytest.mark.spark, pytest.mark.integration]


@pytest.fixture(scope="module")
def home(trained, session_home, tmp_path_factory) -> Path:
    return private_home(session_home, tmp_path_factory.mktemp("shadow-promotion"))


def _run(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT, env={**environment(home), **env}, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


def _card(home: Path, version: str) -> str:
    store = client(home)
    run_id = store.get_model_version("titanic", version).run_id
    folder = store.download_artifacts(run_id, CARD_ARTIFACTS, str(home / f"card-{version}"))
    return (Path(folder) / CARD_MARKDOWN).read_text()


def test_a_held_challenger_is_shadowed_and_refused_when_live_labels_say_worse(home):
    # Production: a coin flip any trained model beats offline.
    coin_flip = _register_coin_flip(home)
    store = client(home)
    store.set_registered_model_alias("titanic", "production", coin_flip)
    outcome_file = home / "outcome.json"
    trained = _run(home, "training", "train", *FAST, "--no-promote", "--outcome", str(outcome_file))
    assert trained.returncode == 0, trained.stderr[-3000:]
    outcome = json.loads(outcome_file.read_text())
    version = outcome["version"]
    assert outcome["passed_gate"] is True and outcome["promoted"] is False
    assert outcome["challenger_alias"] == "challenger"
    assert str(store.get_model_version_by_alias("titanic", "challenger").version) == version
    tags = store.get_model_version("titanic", version).tags
    assert tags["promotion"] == "challenger"
    assert tags["promotion_reason"].endswith("held for approval, not promoted")
    assert "Kept as challenger (alias challenger, to be scored in shadow" in _card(home, version)
    assert "not decided yet" not in _card(home, version)

    # The service scored it in shadow beside the coin flip: 600 requests, all labelled later,
    # the shadow deliberately worse than what Production answered.
    logs = home / "monitoring"
    write_shadowed(logs, coin_flip, version, 600, seed=5, shadow_noise=0.25)
    judged = _run(home, "drift", "shadow", "--logs", str(logs), "--out", str(home / "s.json"))
    assert judged.returncode == 4, judged.stdout + judged.stderr
    (comparison,) = json.loads((home / "s.json").read_text())["comparisons"]
    assert (comparison["production_version"], comparison["shadow_version"]) == (coin_flip, version)
    assert comparison["labelled_rows"] == 600 and comparison["verdict"] == "worse"

    promoted = _run(
        home, "drift", "promote", version, "--no-build", "--no-reload",
        LIFEBOAT_MONITORING_DIR=str(logs),
    )  # fmt: skip
    assert promoted.returncode == 4, promoted.stdout + promoted.stderr
    reason = f"not promoted: on live traffic v{version} did worse than Production v{coin_flip}"
    assert f"refused: {reason}" in promoted.stderr
    assert f"[shadow] shadow v{version} vs Production v{coin_flip}: worse" in promoted.stdout
    assert production(home) == coin_flip  # nothing promoted
    assert "challenger" not in store.get_registered_model("titanic").aliases  # not shadowed now
    tags = store.get_model_version("titanic", version).tags
    assert tags["promotion"] == "refused" and tags["promotion_reason"].startswith(reason)
    run_id = store.get_model_version("titanic", version).run_id
    parent = store.get_run(store.get_run(run_id).data.tags["mlflow.parentRunId"])
    assert parent.data.tags["decision"].startswith(reason)  # where the gate writes its reasons
    card = _card(home, version)
    assert f"Refused: {reason}" in card and "Kept as challenger" not in card


def test_evidence_that_is_not_worse_lets_the_approval_stand(home, tmp_path):
    # A coin flip as the challenger this time, shadowed beside the same coin flip: the same
    # answers, so the evidence is undecided and drift promote goes on to promote it.
    production_now = production(home)
    challenger = _register_coin_flip(home)
    logs = tmp_path / "monitoring"
    write_shadowed(logs, production_now, challenger, 300, seed=6, shadow_noise=0.0)
    done = _run(
        home, "drift", "promote", challenger, "--no-build", "--no-reload",
        LIFEBOAT_MONITORING_DIR=str(logs),
    )  # fmt: skip
    said = done.stdout + done.stderr
    assert f"[shadow] shadow v{challenger} vs Production v{production_now}: undecided" in said
    assert "refused" not in said
    # Promoted, then the import of a model that is no ONNX model fails and is undone: the
    # version waits again as the challenger, which its tags and alias say.
    assert done.returncode == 1, said
    assert production(home) == production_now
    store = client(home)
    assert str(store.get_model_version_by_alias("titanic", "challenger").version) == challenger
    tags = store.get_model_version("titanic", challenger).tags
    assert tags["promotion"] == "challenger"
    assert tags["promotion_reason"].startswith("drift promote failed and was undone")
