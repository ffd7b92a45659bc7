"""The loop's last steps, after a promotion: import into the store, build, reload, or undo.

A failure here must not leave Production ahead of the service: when this call promoted the
version, :func:`undo` deletes the store model it imported, points the production alias back and,
if the service had already swapped, reloads it back. An interrupt (SIGINT, SIGTERM) is undone
the same way before it goes on. The alias goes back only if it still points at this call's
version (:func:`training.registry.unmoved`): a promotion made meanwhile by someone else stays.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from drift.reload import ReloadError, reload_service, serving_version
from training.runs import INTERRUPTS, exit_code

if TYPE_CHECKING:
    from drift.retrain import Retrain


class StepFailed(RuntimeError):
    """A step failed; what this call changed has been undone."""


def ship(state: Retrain, promoted_now: bool, previous: str | None) -> None:
    """Import, optionally build, reload; on failure undo what this call changed."""
    from lifeboat.model_store import import_production

    options, settings = state.options, state.settings
    created_tag: str | None = None
    reload_sent = False
    try:
        model, created = import_production(
            settings.tracking_uri,
            settings.model_name,
            settings.production_alias,
            store=settings.bento_store(),
        )
        created_tag = str(model.tag) if created else None
        state.step("import", f"{model.tag} ({'imported' if created else 'already in the store'})")
        if options.build and created:
            state.step("build", bento_build())
        elif options.build:  # imported, and so built, by an earlier run
            state.step("build", "skipped: the model was already in the store")
        if not options.reload:
            state.step("reload", "skipped (--no-reload)")
        else:
            reload_sent = True
            done = reload_service(
                options.service_url,
                options.admin_token or "",
                str(state.version),
                options.reload_timeout,
            )
            state.reloaded = done.reached and done.version != done.previous_version
            state.step(
                "reload",
                done.detail
                if not done.reached
                else f"service now serves v{done.version} ({done.detail})",
            )
    except (Exception, *INTERRUPTS) as exc:
        state.step("failed", f"{type(exc).__name__}: {exc}")
        if exit_code(exc) and not promoted_now:
            raise
        if not promoted_now:
            raise StepFailed(f"{exc}; nothing was promoted by this call") from exc
        undone = undo(state, previous, created_tag, reload_sent)
        if exit_code(exc):
            raise
        raise StepFailed(f"{exc}; {undone}") from exc
    state.step("done", f"v{state.version} in Production and served")


def undo(state: Retrain, previous: str | None, created_tag: str | None, reload_sent: bool) -> str:
    """Put the store, the alias and the service back as they were before this call.

    The alias goes back only if it still points at ``state.version``, the one this call
    promoted; if someone moved it meanwhile it is left, and so is the service.

    Returns:
        What was put back, for the error message.
    """
    import bentoml
    from mlflow import MlflowClient

    from training import registry

    settings = state.settings
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    removed = f"; store model {created_tag} removed" if created_tag else ""
    if created_tag is not None:
        store = settings.bento_store()
        bentoml.models.delete(created_tag, **({} if store is None else {"_model_store": store}))
    try:
        with registry.unmoved(client, settings, state.version):
            if previous is not None:
                registry.promote(client, settings.model_name, settings.production_alias, previous)
            else:  # this call made the first Production version: there is none to go back to
                client.delete_registered_model_alias(settings.model_name, settings.production_alias)
                client.transition_model_version_stage(
                    settings.model_name, state.version, "Archived"
                )
    except registry.ProductionMoved as moved:
        state.step("undo", f"{moved}; the service was not reloaded back{removed}")
        return f"{moved}; the service was not reloaded back"
    if reload_sent and previous and serving_version(state.options.service_url) != previous:
        try:
            reload_service(state.options.service_url, state.options.admin_token or "", previous)
        except ReloadError as exc:
            state.step("undo", f"service did not go back to v{previous}: {exc}")
            return f"production alias back on v{previous}, but the service did not go back"
    state.step("undo", f"production alias back on v{previous}{removed}")
    return "Production and the service rolled back"


def bento_build() -> str:
    """``bentoml build`` in the project; returns the Bento tag line it printed."""
    from lifeboat.settings import PROJECT_ROOT

    bentoml_cli = Path(sys.executable).with_name("bentoml")
    env = dict(os.environ)
    env["PATH"] = f"{bentoml_cli.parent}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(
        [str(bentoml_cli), "build", str(PROJECT_ROOT)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bentoml build failed: {(done.stderr or done.stdout).strip()[-500:]}")
    return next(
        (line for line in done.stdout.splitlines() if "Successfully built" in line),
        done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "built",
    )
