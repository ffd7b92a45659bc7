"""`lifeboat`: the installed console command (pyproject's [project.scripts]).

One command for the pipeline's stages: the commands of ``python -m training`` at the top
(``lifeboat train``, ``lifeboat score``, ``lifeboat import-model``, ``lifeboat leaderboard``)
and ``python -m drift`` as a group (``lifeboat drift report``, ``lifeboat drift retrain`` …).
The typer apps stay where they are, so ``python -m training …`` and ``python -m drift …`` keep
working and both spellings run the same code.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperGroup

HELP = "Lifeboat: train on Spark, register in MLflow, serve with BentoML, watch for drift."


def _training() -> TyperGroup:
    # Imported here, not at the top: lifeboat is the core that training/ and drift/ build on,
    # and it must not import them when it is imported (an import-graph test allows this module
    # alone to reach up, and only lazily). `lifeboat drift …` so never loads training's app.
    import typer.main

    from training.__main__ import app

    group = typer.main.get_group(app)
    assert isinstance(group, TyperGroup)
    return group


def _drift() -> TyperGroup:
    import typer.main

    from drift.__main__ import app  # lazily, as above

    group = typer.main.get_group(app)
    assert isinstance(group, TyperGroup)
    return group


class Lifeboat(TyperGroup):
    """Training's commands at the top level, drift's under ``drift``, loaded on first use."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [*_training().list_commands(ctx), "drift"]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name == "drift":
            drift = _drift()
            drift.name = "drift"
            return drift
        return _training().get_command(ctx, cmd_name)


def main() -> None:
    """Entry point of the ``lifeboat`` console script."""
    Lifeboat(name="lifeboat", help=HELP, no_args_is_help=True)(prog_name="lifeboat")
