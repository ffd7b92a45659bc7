"""Locust users for ``mlflow models serve`` of the Spark-flavour model: ``make bench``'s baseline.

The Spark pipeline reads the derived features as columns, so each request carries them
(``loadtest.passengers.spark_record``). The answer is the label alone; it is checked as such.
No drifted traffic here: this file measures speed, not the model.
"""

from __future__ import annotations

from pathlib import Path

from locust import FastHttpUser, tag, task

from loadtest.checks import invocations_problem

# Importing loadtest.locustfile also registers its options (--think-time, --max-p99-ms, ...);
# its user class stays out of this file's namespace, so Locust does not run it here.
from loadtest.locustfile import judge, think_time
from loadtest.passengers import Traffic, complete_categories, load, spark_record


class MlflowInvocations(FastHttpUser):
    """A client of ``POST /invocations``, one passenger per request."""

    host = "http://127.0.0.1:5001"
    wait_time = think_time

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.traffic = Traffic(complete_categories(load(Path(options.passengers_csv))))

    @tag("single")
    @task
    def invoke_one(self) -> None:
        passenger, _ = self.traffic.one()
        with self.client.post(
            "/invocations",
            json={"dataframe_records": [spark_record(passenger)]},
            catch_response=True,
        ) as response:
            judge(response, lambda body: invocations_problem(body, 1))
