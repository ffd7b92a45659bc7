"""Exit codes of the project's commands and of ``bentoml serve``: one meaning per number, for
scripts, CI and the Airflow DAGs (whose own venv cannot import this, so they repeat the three they
branch on; ``tests/unit/test_exits.py`` checks they agree).

An interrupted run exits 128 + the signal's number (130 Ctrl-C, 143 SIGTERM;
``training.runs.exit_code``).
"""

OK = 0  # done (promoted or not, no drift, nothing to do)
STEP_FAILED = 1  # a step failed; what the call changed was undone where it says so
DATA_ERROR = 2  # bad input data, a usage error, or the state forbids it (another run busy)
MISSING = 3  # a prerequisite is missing: Java for Spark, a valid model for the server
REFUSED = 4  # refused on evidence: a shadow that did worse than Production on live labels
DRIFT = 42  # the drift report found drift
