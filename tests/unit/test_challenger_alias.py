"""The challenger alias follows each version's promotion outcome (training.registry.settle), in a
real MLflow registry (SQLite)."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from lifeboat.settings import Settings
from training import registry


@pytest.fixture
def store(tmp_path) -> tuple[MlflowClient, Settings]:
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client.create_registered_model("titanic")
    for _ in range(3):
        client.create_model_version("titanic", (tmp_path / "model").as_uri())
    return client, Settings(_env_file=None)


def _aliases(client: MlflowClient) -> dict[str, str]:
    return {k: str(v) for k, v in client.get_registered_model("titanic").aliases.items()}


def test_a_held_winner_becomes_the_challenger_and_promotion_clears_it(store):
    client, settings = store
    outcome = registry.settle(client, settings, "1", True, False, "held for approval")
    assert outcome == registry.CHALLENGER and _aliases(client) == {"challenger": "1"}
    # a newer held winner takes the alias over; a refused one changes nothing
    registry.settle(client, settings, "2", True, False, "held for approval")
    assert _aliases(client) == {"challenger": "2"}
    assert registry.settle(client, settings, "3", False, False, "loses") == registry.REFUSED
    assert _aliases(client) == {"challenger": "2"}
    # promoting another version leaves the challenger; promoting the challenger clears it
    registry.promote(client, "titanic", "production", "1")
    registry.settle(client, settings, "1", True, True, "approved")
    assert _aliases(client) == {"challenger": "2", "production": "1"}
    registry.promote(client, "titanic", "production", "2")
    registry.settle(client, settings, "2", True, True, "approved")
    assert _aliases(client) == {"production": "2"}
    tags = {v: client.get_model_version("titanic", v).tags for v in ("1", "2", "3")}
    assert [tags[v]["promotion"] for v in ("1", "2", "3")] == ["promoted", "promoted", "refused"]
    assert tags["3"]["promotion_reason"] == "loses"


def test_an_undone_promotion_makes_it_the_challenger_again(store):
    client, settings = store
    registry.promote(client, "titanic", "production", "1")
    registry.after_undo(client, settings, "2", "the reload failed and was undone")
    assert _aliases(client) == {"production": "1", "challenger": "2"}
    assert client.get_model_version("titanic", "2").tags["promotion"] == "challenger"
    registry.after_undo(client, settings, "1", "nothing was undone: it is Production")
    assert "promotion" not in client.get_model_version("titanic", "1").tags
