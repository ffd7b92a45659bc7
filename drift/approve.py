"""``drift promote``: ship a version a person approved, with the loop's own last steps.

A challenger trained with ``--no-promote`` is registered and gated but waits for a person (the
Airflow approval task in ``dags/``). Once approved, this promotes it and ships it exactly as
``drift retrain`` ships a promotion (:func:`drift.deploy.ship`: import, build, reload), so a
failing step puts the production alias, the store and the service back.

Before promoting, it reads the live evidence (:mod:`drift.shadow`, over the whole monitoring
folder): a version the service scored in shadow and found **worse** than the current Production
on the feedback labels is refused (exit 4), even if it won offline. The reason goes where the
gate writes its reasons (the version's ``promotion`` tags, its pipeline run's ``decision`` tag,
its model card) and the challenger alias leaves it. Any other verdict (better, undecided, not
enough evidence) lets the person's approval stand, and is said.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from drift import shadow
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
from lifeboat import exits

if TYPE_CHECKING:
    from mlflow import MlflowClient

EXIT_REFUSED = exits.REFUSED  # the live evidence says the version is worse than Production


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
        error (no such version, no admin token for the reload, another retrain running), 3
        refused: scored in shadow beside Production, it did worse on live labels (nothing
        changed but the version's recorded outcome and its challenger alias).
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
                judged = shadow.judge_version(version, previous, settings, settings.logs_dir)
                state.step("shadow", judged.sentence())
                if judged.worse:
                    return _refuse(client, settings, version, judged, complain)
                registry.promote(client, settings.model_name, settings.production_alias, version)
                state.step("promote", f"v{version} promoted (Production was v{previous})")
                registry.settle(
                    client,
                    settings,
                    version,
                    passed_gate=True,
                    promoted=True,
                    reason=f"approved, promoted with drift promote (Production was "
                    f"v{previous}); live evidence: {judged.verdict} ({judged.why})",
                )
            state.reloaded = ship(
                state.shipment(), promoted_now=previous != version, previous=previous
            )
    except DriftDataError as exc:
        complain(f"error: {exc}")
        return EXIT_DATA_ERROR
    except StepFailed as exc:
        registry.after_undo(
            client, settings, version, f"drift promote failed and was undone: {exc}"
        )
        complain(f"error: {exc}")
        return EXIT_STEP_FAILED
    return EXIT_DONE


def _refuse(
    client: MlflowClient,
    settings: DriftSettings,
    version: str,
    judged: shadow.Judgement,
    complain: Callable[[str], None],
) -> int:
    """Record the refusal where the gate writes its reasons; the version is no challenger."""
    from training import registry

    reason = (
        f"not promoted: on live traffic v{version} did worse than Production "
        f"v{judged.production} ({judged.why}), though it won offline"
    )
    registry.record_outcome(client, settings, version, registry.REFUSED, reason)
    registry.clear_challenger(client, settings, version)
    complain(f"refused: {reason}")
    return EXIT_REFUSED
