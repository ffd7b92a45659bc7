"""``drift promote``: ship a version a person approved, with the loop's own last steps.

A challenger trained with ``--no-promote`` is registered and gated but waits for a person (the
Airflow approval task in ``dags/``). Once approved, this promotes it and ships it exactly as
``drift retrain`` ships a promotion (:func:`drift.deploy.ship`: import, build, reload), so a
failing step puts the production alias, the store and the service back.
"""

from __future__ import annotations

from collections.abc import Callable

from drift.config import DriftSettings
from drift.deploy import StepFailed, ship
from drift.report import DriftDataError
from drift.retrain import (
    EXIT_DATA_ERROR,
    EXIT_DONE,
    EXIT_STEP_FAILED,
    Retrain,
    RetrainOptions,
    exclusive,
)


def promote_approved(
    version: str,
    options: RetrainOptions,
    settings: DriftSettings,
    say: Callable[[str], None],
    complain: Callable[[str], None],
) -> int:
    """Promote registered ``version``, import it, build the Bento and reload the service.

    Returns:
        0 done (also when ``version`` already is Production: then it is only made sure to be
        imported and served), 1 a step failed and what this call changed was undone, 2 a usage
        error (no such version, no admin token for the reload, another retrain running).
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from training import registry

    if options.reload and not options.admin_token:
        complain("error: LIFEBOAT_ADMIN_TOKEN is not set (needed for POST /reload; or --no-reload)")
        return EXIT_DATA_ERROR
    client = MlflowClient(settings.tracking_uri)
    try:
        client.get_model_version(settings.model_name, version)
    except MlflowException:
        complain(f"error: {settings.model_name} has no registered version {version!r}")
        return EXIT_DATA_ERROR
    state = Retrain(options, settings, say, version=version, promoted=True)
    try:
        with exclusive(settings.state_dir):
            current = registry.production_version(
                client, settings.model_name, settings.production_alias
            )
            previous = None if current is None else str(current.version)
            if previous == version:
                state.step("promote", f"v{version} is Production already")
            else:
                registry.promote(client, settings.model_name, settings.production_alias, version)
                state.step("promote", f"v{version} promoted (Production was v{previous})")
            state.reloaded = ship(
                state.shipment(), promoted_now=previous != version, previous=previous
            )
    except DriftDataError as exc:
        complain(f"error: {exc}")
        return EXIT_DATA_ERROR
    except StepFailed as exc:
        complain(f"error: {exc}")
        return EXIT_STEP_FAILED
    return EXIT_DONE
