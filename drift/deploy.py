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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from drift.config import DriftSettings
from drift.service_client import ReloadError, reload_service, serving_version
from training.runs import INTERRUPTS, exit_code


class StepFailed(RuntimeError):
    """A step failed; what this call changed has been undone."""


def _silent(name: str, status: str) -> None:
    """A step reporter that reports nothing."""


@dataclass(frozen=True)
class Shipment:
    """A registry version to bring into the store, the Bento and the service, and how."""

    settings: DriftSettings
    version: str
    build: bool = True
    reload: bool = True
    service_url: str = "http://127.0.0.1:3000"
    admin_token: str | None = None
    reload_timeout: float = 60.0
    step: Callable[[str, str], None] = _silent  # told each step's name and what it did


def ship(shipment: Shipment, promoted_now: bool, previous: str | None) -> bool:
    """Import, optionally build, reload; on failure undo what this call changed.

    Returns:
        Whether the service swapped to another version.
    """
    from lifeboat.serving.store import import_production

    settings, step = shipment.settings, shipment.step
    swapped = False
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
        step("import", f"{model.tag} ({'imported' if created else 'already in the store'})")
        if shipment.build and created:
            step("build", bento_build())
        elif shipment.build:  # imported, and so built, by an earlier run
            step("build", "skipped: the model was already in the store")
        if not shipment.reload:
            step("reload", "skipped (--no-reload)")
        else:
            reload_sent = True
            done = reload_service(
                shipment.service_url,
                shipment.admin_token or "",
                shipment.version,
                shipment.reload_timeout,
            )
            swapped = done.reached and done.version != done.previous_version
            step(
                "reload",
                done.detail
                if not done.reached
                else f"service now serves v{done.version} ({done.detail})",
            )
    except (Exception, *INTERRUPTS) as exc:
        step("failed", f"{type(exc).__name__}: {exc}")
        if exit_code(exc) and not promoted_now:
            raise
        if not promoted_now:
            raise StepFailed(f"{exc}; nothing was promoted by this call") from exc
        undone = undo(shipment, previous, created_tag, reload_sent)
        if exit_code(exc):
            raise
        raise StepFailed(f"{exc}; {undone}") from exc
    step("done", f"v{shipment.version} in Production and served")
    return swapped


def undo(
    shipment: Shipment, previous: str | None, created_tag: str | None, reload_sent: bool
) -> str:
    """Put the store, the alias and the service back as they were before this call.

    The alias goes back only if it still points at ``shipment.version``, the one this call
    promoted; if someone moved it meanwhile it is left, and so is the service.

    Returns:
        What was put back, for the error message.
    """
    import bentoml
    from mlflow import MlflowClient

    from lifeboat.serving.store import using
    from training import registry

    settings, step, version = shipment.settings, shipment.step, shipment.version
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    removed = f"; store model {created_tag} removed" if created_tag else ""
    if created_tag is not None:
        bentoml.models.delete(created_tag, **using(settings.bento_store()))
    try:
        with registry.unmoved(client, settings, version):
            if previous is not None:
                registry.promote(client, settings.model_name, settings.production_alias, previous)
            else:  # this call made the first Production version: there is none to go back to
                client.delete_registered_model_alias(settings.model_name, settings.production_alias)
                client.transition_model_version_stage(settings.model_name, version, "Archived")
    except registry.ProductionMoved as moved:
        step("undo", f"{moved}; the service was not reloaded back{removed}")
        return f"{moved}; the service was not reloaded back"
    if reload_sent and previous and serving_version(shipment.service_url) != previous:
        try:
            reload_service(shipment.service_url, shipment.admin_token or "", previous)
        except ReloadError as exc:
            step("undo", f"service did not go back to v{previous}: {exc}")
            return f"production alias back on v{previous}, but the service did not go back"
    step("undo", f"production alias back on v{previous}{removed}")
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
