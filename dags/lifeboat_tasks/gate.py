"""The approval gate both DAGs end with: a challenger that won the promotion gate waits for a
person, who sees its and Production's held-out figures, the live (shadow) evidence when there is
any, and its MLflow run, then approves (promote, import, build, reload: ``python -m drift
promote VERSION``, which refuses a version the live evidence finds worse) or rejects (nothing
changes).

Configured by the environment Airflow runs in: ``LIFEBOAT_APPROVAL_TIMEOUT_HOURS`` (24: the
default of a run's ``approval_timeout_hours``; no answer by then counts as a rejection: the
scheduler answers the default, Reject), ``LIFEBOAT_MLFLOW_UI_URL`` (the MLflow UI the run link
points at; default the tracking server, else ``http://127.0.0.1:5000``, what ``mlflow ui``
serves) and ``LIFEBOAT_BUILD_BENTO`` (``false``: no ``bentoml build`` after the import, as in the
compose stack, whose replicas follow the registry). A DAG run's ``auto_approve`` parameter skips
the person.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Param, TriggerRule, get_current_context, task

from lifeboat_tasks import project

EXIT_REFUSED = 4  # `drift promote`'s exit status when the live evidence says worse

PARAMS = {
    "auto_approve": Param(
        False,
        type="boolean",
        description="Promote a challenger that wins the promotion gate without asking a person.",
    ),
    "approval_timeout_hours": Param(
        float(os.environ.get("LIFEBOAT_APPROVAL_TIMEOUT_HOURS", "24")),
        type="number",
        exclusiveMinimum=0,
        description="How long the approval waits for a person; then it counts as a rejection "
        "(LIFEBOAT_APPROVAL_TIMEOUT_HOURS sets the default).",
    ),
    "build": Param(
        os.environ.get("LIFEBOAT_BUILD_BENTO", "true").lower() == "true",
        type="boolean",
        description="bentoml build after the import (LIFEBOAT_BUILD_BENTO sets the default).",
    ),
}


class Approval(ApprovalOperator):
    """The standard provider's approval, waiting as long as the run's ``approval_timeout_hours``,
    whose answer is also its XCom ``answer``: the option, who chose it (None when the timeout
    chose the default) and whether it timed out."""

    def execute(self, context) -> Any:
        # Airflow 3.3 parks the task in awaiting_input with this timeout; the scheduler's sweep
        # answers the default (Reject) once it has passed.
        self.response_timeout = approval_timeout(context["params"])
        return super().execute(context)

    def execute_complete(self, context, event: dict[str, Any]) -> Any:
        if event.get("timedout"):
            self.log.info(
                "Timed out: no answer within %s, so the default %s applies",
                # (a resumed task is a fresh operator: the run's timeout, not execute's)
                said(approval_timeout(context["params"])), event["chosen_options"][0],
            )  # fmt: skip
        # Pushed first: on a rejection the parent skips the downstream tasks by raising.
        who = event.get("responded_by_user") or {}
        context["ti"].xcom_push(
            key="answer",
            value={
                "option": event["chosen_options"][0],
                "by": who.get("name") if isinstance(who, dict) else getattr(who, "name", None),
                "timed_out": bool(event.get("timedout")),
            },
        )
        return super().execute_complete(context, event)


def approval_timeout(params=None) -> timedelta:
    """The run's ``approval_timeout_hours``; without a run, the parameter's default."""
    hours = params["approval_timeout_hours"] if params else PARAMS["approval_timeout_hours"].value
    return timedelta(hours=float(hours))


def said(wait: timedelta) -> str:
    """``24 h``, ``30 min``, ``20 s``: a wait as the form and the verdict say it."""
    seconds = wait.total_seconds()
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


def run_link(outcome: dict[str, Any]) -> str:
    """The challenger's MLflow run page, as the person's browser reaches it."""
    ui = os.environ.get("LIFEBOAT_MLFLOW_UI_URL")
    if not ui and outcome.get("run_url"):  # the tracking server, as the tasks reach it
        return outcome["run_url"]
    ui = (ui or "http://127.0.0.1:5000").rstrip("/")
    return f"{ui}/#/experiments/{outcome['experiment_id']}/runs/{outcome['run_id']}"


def figure(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def live_evidence(outcome: dict[str, Any]) -> list[str]:
    """The shadow evidence beside the offline figures (``drift.shadow``; the outcome of
    ``drift retrain --outcome`` carries it). ``drift promote`` reads it again when approved and
    refuses a version it finds worse, so a person's approval cannot ship one."""
    judged = outcome.get("shadow")
    if not judged:
        return [
            "**Live traffic (shadow)**: no evidence in this outcome; approving runs `drift "
            "promote`, which reads the logs again and refuses a version found worse."
        ]
    line = f"**Live traffic (shadow)**: {judged['verdict']} — {judged['why']}."
    c = judged.get("comparison")
    if not c or not c.get("difference"):
        return [line]
    return [
        line,
        "",
        f"| live labels, {c['labelled_rows']} rows scored by both | AUC | accuracy |",
        "|---|--:|--:|",
        *(
            f"| {who} | {figure(c[side]['auc'])} | {figure(c[side]['accuracy'])} |"
            for who, side in (
                (f"shadow v{c['shadow_version']}", "shadow"),
                (f"Production v{c['production_version']}", "production"),
                ("difference", "difference"),
            )
        ),
        "",
        f"Agreement {figure(c['agreement'])} on {c['rows']} requests.",
    ]


def describe(outcome: dict[str, Any], build: bool, wait: timedelta) -> dict[str, str]:
    """The approval form's subject and Markdown body."""
    name, version = outcome["model_name"], outcome["version"]
    production = outcome["production_version"]
    rows = [
        f"| challenger v{version} ({outcome['challenger']}) | {figure(outcome['heldout_auc'])} |",
        f"| Production v{production} | {figure(outcome['production_auc'])} |"
        if production
        else "| Production | none yet |",
        f"| Sex-only baseline | {figure(outcome['baseline_auc'])} |",
    ]
    body = "\n".join(
        [
            f"**{name} v{version}** won the promotion gate: {outcome['reason']}.",
            "",
            "| held-out AUC, same rows | |",
            "|---|--:|",
            *rows,
            "",
            *live_evidence(outcome),
            "",
            f"MLflow run: [{outcome['run_id']}]({run_link(outcome)})",
            "",
            "**Approve**: promote it, import it into the BentoML store, "
            + ("build the Bento, " if build else "")
            + "reload the service. **Reject**, or no answer within "
            f"{said(wait)}: Production stays " + (f"v{production}." if production else "empty."),
        ]
    )
    return {"subject": f"Promote {name} v{version} to Production?", "body": body}


def approval_gate(outcome_task_id: str):
    """decide → approve (a person) → promote → conclude, for the outcome of ``outcome_task_id``.

    Returns the first and last tasks, to chain after the task that trained the challenger.
    """
    approve_id, promote_id = "approve", "promote"

    @task.branch(task_id="decide")
    def decide(outcome: dict[str, Any]) -> str | list[str]:
        """Ask a person only for a challenger that won the gate; auto_approve skips them."""
        if not outcome.get("passed_gate"):
            print(f"nothing to approve: {outcome.get('reason')}")
            return []
        context = get_current_context()
        params = context["params"]
        form = describe(outcome, params["build"], approval_timeout(params))
        context["ti"].xcom_push(key="approval", value=form)
        return promote_id if context["params"]["auto_approve"] else approve_id

    approve = Approval(
        task_id=approve_id,
        subject="{{ ti.xcom_pull(task_ids='decide', key='approval')['subject'] }}",
        body="{{ ti.xcom_pull(task_ids='decide', key='approval')['body'] }}",
        defaults="Reject",  # what a timeout answers
        response_timeout=approval_timeout(),
        retries=0,
    )

    @task(
        task_id=promote_id,
        trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS,
        execution_timeout=timedelta(minutes=30),
    )
    def promote(outcome: dict[str, Any]) -> dict[str, str]:
        """Promote the approved version and ship it; a failed step is rolled back by the CLI."""
        build = get_current_context()["params"]["build"]
        flags = [] if build else ["--no-build"]
        # Exit 4: refused, the live evidence says worse (drift.approve); nothing was shipped.
        done = project.run("drift", "promote", outcome["version"], *flags, ok=(0, EXIT_REFUSED))
        refused = done.last_line("refused:") if done.returncode == EXIT_REFUSED else None
        return {"version": outcome["version"], "steps": done.output, "refused": refused}

    @task(task_id="conclude", trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    def conclude(outcome: dict[str, Any]) -> dict[str, Any]:
        """Say what became of the challenger: promoted, rejected, timed out or not eligible."""
        context = get_current_context()
        ti = context["ti"]
        answer = ti.xcom_pull(task_ids=approve_id, key="answer") or {}
        shipped = ti.xcom_pull(task_ids=promote_id)
        production = outcome.get("production_version")
        kept = f"Production v{production} left alone" if production else "Production left empty"
        if shipped and shipped.get("refused"):
            verdict = f"v{outcome['version']} refused at promotion: {shipped['refused']}; {kept}"
        elif shipped:
            how = f"approved by {answer['by']}" if answer else "auto-approved"
            verdict = f"v{outcome['version']} {how}: promoted, imported and served"
        elif not outcome.get("passed_gate"):
            verdict = f"not eligible ({outcome.get('reason')}); {kept}"
        elif answer.get("timed_out"):
            wait = said(approval_timeout(context["params"]))
            verdict = f"v{outcome['version']} timed out: no answer within {wait}; {kept}"
        else:
            verdict = f"v{outcome['version']} rejected by {answer.get('by')}; {kept}"
        print(verdict)
        return {"promoted": bool(shipped and not shipped.get("refused")), "verdict": verdict}

    def chain_after(outcome) -> tuple[Any, Any]:
        decided = decide(outcome)
        shipped = promote(outcome)
        concluded = conclude(outcome)
        decided >> [approve, shipped]
        approve >> shipped >> concluded
        return decided, concluded

    return chain_after
