"""Where settings come from when the process does not run in the project (a served Bento)."""

from __future__ import annotations

import subprocess

from lifeboat.settings import Settings, env_file
from tests.harness import ROOT


def test_lifeboat_env_file_names_the_env_file_read(tmp_path, monkeypatch):
    (tmp_path / "project.env").write_text("LIFEBOAT_ADMIN_TOKEN=from-the-project\n")
    monkeypatch.delenv("LIFEBOAT_ADMIN_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env here: only the named file can supply the token
    monkeypatch.setenv("LIFEBOAT_ENV_FILE", str(tmp_path / "project.env"))
    settings = Settings(_env_file=env_file())
    assert settings.admin_token.get_secret_value() == "from-the-project"
    monkeypatch.delenv("LIFEBOAT_ENV_FILE")
    assert env_file() == ".env" and Settings(_env_file=env_file()).admin_token is None


def test_make_serve_keeps_logs_and_env_in_the_project():
    # `bentoml serve <bento>` runs in the Bento's own folder: relative defaults would land there.
    dry = subprocess.run(
        ["make", "-n", "serve"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    line = next(x for x in dry.splitlines() if "bentoml serve" in x)
    assert f"LIFEBOAT_ENV_FILE={ROOT}/.env" in line
    assert f"LIFEBOAT_MONITORING_DIR=${{LIFEBOAT_MONITORING_DIR:-{ROOT}/monitoring}}" in line
