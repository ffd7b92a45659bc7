"""Locust load test of TitanicSurvival: passengers from data/titanic.csv, every answer checked.

Run from the project root (Locust puts the working directory on ``sys.path``):

* web UI: ``locust -f loadtest/locustfile.py`` then http://127.0.0.1:8089
* headless: ``make loadtest`` (``locust --config loadtest/headless.conf``)

Most requests are single passengers (``POST /predict_titanic``, tag ``single``); one in eleven
is a batch (``POST /predict_titanic_batch``, tag ``batch``); ``--tags single`` or
``--tags batch`` runs one kind only. A wrong answer (see ``loadtest.checks``) is a failure in
Locust's statistics, as an HTTP error is. Options of our own, also in the web UI's form:

--batch-size      passengers per batch request (LIFEBOAT_BATCH_SIZE, default 32, at most 1000)
--drift-share     share of passengers drawn from a drifted population (LIFEBOAT_DRIFT_SHARE);
                  drifted single requests are reported as ``/predict_titanic (drifted)``
--drift-source    ``module:factory`` of a drifted-passenger sampler (LIFEBOAT_DRIFT_SOURCE);
                  default ``drift.traffic``'s drifted population
--labelled        report each passenger's Survived later, as a client that learns outcomes
                  would: POST /feedback with the prediction's request_id, --feedback-delay
                  seconds after the answer (LIFEBOAT_LABELLED); ``python -m drift retrain``
                  learns from these labels
--feedback-token  bearer token for POST /feedback (LIFEBOAT_FEEDBACK_TOKEN, else
                  LIFEBOAT_ADMIN_TOKEN from the environment)
--feedback-delay  seconds between an answer and its outcome's report (default 2)
--api-token       bearer token, when the service sets one (LIFEBOAT_API_TOKEN)
--think-time      a user waits uniformly 0..this many seconds between requests (0: none)
--max-p99-ms      exit non-zero when the overall p99 is above this (0: no bound)
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from locust import FastHttpUser, events, tag, task
from locust.runners import WorkerRunner

from lifeboat.routes import BATCH_ROUTE, FEEDBACK_ROUTE, PREDICT_ROUTE
from loadtest.checks import batch_problem, feedback_problem, prediction_problem
from loadtest.outcomes import Outcomes
from loadtest.passengers import DATA, LABEL, Traffic, drift_sampler, load

SLO_EXIT_CODE = 3  # p99 above --max-p99-ms (failed requests exit with --exit-code-on-error)

log = logging.getLogger("lifeboat.loadtest")


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument(
        "--batch-size",
        type=int,
        default=32,
        env_var="LIFEBOAT_BATCH_SIZE",
        help="Passengers per /predict_titanic_batch request (1-1000).",
    )
    parser.add_argument(
        "--drift-share",
        type=float,
        default=0.0,
        env_var="LIFEBOAT_DRIFT_SHARE",
        help="Share of passengers drawn from the drifted population (0-1).",
    )
    parser.add_argument(
        "--drift-source",
        default="",
        env_var="LIFEBOAT_DRIFT_SOURCE",
        help="module:factory returning a sampler of drifted passengers. "
        "Default: drift.traffic's drifted population.",
    )
    parser.add_argument(
        "--labelled",
        action="store_true",
        default=False,
        env_var="LIFEBOAT_LABELLED",
        help="Report each passenger's Survived later through POST /feedback, as a client "
        "learning outcomes would.",
    )
    parser.add_argument(
        "--feedback-token",
        default="",
        env_var="LIFEBOAT_FEEDBACK_TOKEN",
        is_secret=True,
        help="Bearer token for POST /feedback (default: LIFEBOAT_ADMIN_TOKEN).",
    )
    parser.add_argument(
        "--feedback-delay",
        type=float,
        default=2.0,
        help="Seconds between a prediction and the report of its outcome.",
    )
    parser.add_argument(
        "--api-token",
        default="",
        env_var="LIFEBOAT_API_TOKEN",
        is_secret=True,
        help="Bearer token for the prediction routes, when the service requires one.",
    )
    parser.add_argument(
        "--think-time",
        type=float,
        default=0.5,
        help="Each user waits a uniform 0..think-time seconds between requests.",
    )
    parser.add_argument(
        "--max-p99-ms",
        type=float,
        default=0.0,
        help="Exit with status 3 when the overall p99 exceeds this many ms (0: no bound).",
    )
    parser.add_argument(
        "--passengers-csv",
        default=str(DATA),
        include_in_web_ui=False,
        help="Where to sample passengers from (Kaggle columns).",
    )


def think_time(user: Any) -> float:
    """A wait of 0..--think-time seconds (Locust's ``wait_time``)."""
    return random.uniform(0, user.environment.parsed_options.think_time)


class Passengers(FastHttpUser):
    """A client of TitanicSurvival: mostly one passenger at a time, now and then a batch."""

    host = "http://127.0.0.1:3000"
    wait_time = think_time

    def on_start(self) -> None:
        # Options are read per user, so values changed in the web UI's form apply to the run.
        options = self.environment.parsed_options
        if not 0 <= options.drift_share <= 1:
            raise ValueError(f"--drift-share {options.drift_share} is not in [0, 1]")
        self.traffic = Traffic(
            passengers=load(Path(options.passengers_csv), options.labelled),
            drifted=drift_sampler(options.drift_source) if options.drift_share > 0 else None,
            drift_share=options.drift_share,
            labelled=options.labelled,
        )
        self.batch_size = max(1, options.batch_size)
        self.headers = {"Authorization": f"Bearer {options.api_token}"} if options.api_token else {}
        self.outcomes = Outcomes(max(0.0, options.feedback_delay))
        self.next_report = 0.0
        token = options.feedback_token or os.environ.get("LIFEBOAT_ADMIN_TOKEN", "")
        if options.labelled and not token:
            raise ValueError("--labelled needs --feedback-token (or LIFEBOAT_FEEDBACK_TOKEN)")
        self.feedback_headers = {"Authorization": f"Bearer {token}"}

    def on_stop(self) -> None:
        # Outcomes still waiting are reported now: a stopping client does not lose them.
        while items := self.outcomes.due(time.monotonic(), everything=True):
            self._report(items)

    def _remember(self, response: Any, labels: list[int | None]) -> None:
        """Queue the outcomes of an answered request, by the request_id of each prediction."""
        body = response.json()
        now = time.monotonic()
        for prediction, label in zip(body.get("predictions", [body]), labels, strict=True):
            if label is None:
                continue
            if "request_id" not in prediction:
                raise RuntimeError("the answer has no request_id to report the outcome with")
            self.outcomes.add(now, prediction["request_id"], label)
        # What is due goes as one list, at most once per delay, as a client reporting in bulk.
        if now >= self.next_report and (items := self.outcomes.due(now)):
            self.next_report = now + self.outcomes.delay
            self._report(items)

    def _report(self, items: list[dict[str, Any]]) -> None:
        with self.client.post(
            FEEDBACK_ROUTE, json=items, headers=self.feedback_headers, catch_response=True
        ) as response:
            judge(response, lambda body: feedback_problem(body, len(items)))

    @tag("single")
    @task(10)
    def predict_one(self) -> None:
        passenger, drifted = self.traffic.one()
        label = passenger.pop(LABEL, None)
        with self.client.post(
            PREDICT_ROUTE,
            json=passenger,
            headers=self.headers,
            name=f"{PREDICT_ROUTE} (drifted)" if drifted else PREDICT_ROUTE,
            catch_response=True,
        ) as response:
            answered = judge(response, prediction_problem)
        if answered and label is not None:
            self._remember(response, [label])

    @tag("batch")
    @task(1)
    def predict_batch(self) -> None:
        passengers = self.traffic.many(self.batch_size)
        labels = [p.pop(LABEL, None) for p in passengers]
        with self.client.post(
            BATCH_ROUTE, json=passengers, headers=self.headers, catch_response=True
        ) as response:
            answered = judge(response, lambda body: batch_problem(body, len(passengers)))
        if answered and any(label is not None for label in labels):
            self._remember(response, labels)


def judge(response: Any, problem: Callable[[Any], str | None]) -> bool:
    """Mark a ``catch_response`` response failed unless it is a 200 with a correct JSON body;
    whether it was correct."""
    if response.status_code != 200:
        # the service's own words when it sent any; the client's error when it did not answer
        detail = (response.text or "")[:120] or response.error
        response.failure(f"HTTP {response.status_code}: {detail}")
        return False
    try:
        body = response.json()
    except ValueError:
        response.failure("answer is not JSON")
        return False
    if (message := problem(body)) is not None:
        response.failure(message)
        return False
    response.success()
    return True


@events.quitting.add_listener
def _check_p99(environment: Any, **_: Any) -> None:
    """Fail the run (exit status 3) when it made no request or its p99 broke the bound."""
    if isinstance(environment.runner, WorkerRunner) or environment.parsed_options is None:
        return
    total = environment.stats.total
    bound = environment.parsed_options.max_p99_ms
    if total.num_requests == 0 and environment.parsed_options.headless:
        log.error("no request was made")
        environment.process_exit_code = SLO_EXIT_CODE
    elif bound > 0 and (p99 := total.get_response_time_percentile(0.99)) > bound:
        log.error("p99 %.0f ms is above the %.0f ms bound", p99, bound)
        environment.process_exit_code = SLO_EXIT_CODE
