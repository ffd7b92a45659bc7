"""The DAGs repeat three exit codes (Airflow's venv cannot import the project): they must agree."""

from __future__ import annotations

import ast
from pathlib import Path

from lifeboat import exits

DAGS = Path(__file__).resolve().parents[2] / "dags"


def constants(path: Path) -> dict[str, object]:
    tree = ast.parse(path.read_text())
    return {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name) and target.id.startswith("EXIT_")
    }


def test_the_dags_branch_on_the_projects_exit_codes():
    found = {
        **constants(DAGS / "lifeboat_monitor.py"),
        **constants(DAGS / "lifeboat_tasks" / "project.py"),
        **constants(DAGS / "lifeboat_tasks" / "gate.py"),
    }
    assert found == {
        "EXIT_DRIFT": exits.DRIFT,
        "EXIT_DATA_ERROR": exits.DATA_ERROR,
        "EXIT_REFUSED": exits.REFUSED,
    }


def test_every_code_means_one_thing():
    codes = [v for k, v in vars(exits).items() if k.isupper()]
    assert len(codes) == len(set(codes))
