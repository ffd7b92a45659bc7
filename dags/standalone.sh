#!/usr/bin/env bash
# `make airflow`: Airflow standalone (scheduler, DAG processor, triggerer, API server and UI) on
# SQLite in AIRFLOW_HOME, with this project's dags/ and its commands run by its own Python.
# Usage: dags/standalone.sh AIRFLOW_VENV PROJECT_PYTHON PORT
set -euo pipefail
project="$(cd "$(dirname "$0")/.." && pwd)"
venv="$(cd "$1" && pwd)"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$project/.airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$project/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__API__PORT="$3"
# This machine only: the admin password is kept in plain text in AIRFLOW_HOME.
export AIRFLOW__API__HOST="${AIRFLOW__API__HOST:-127.0.0.1}"
# Where the tasks reach the Execution API (its default is port 8080 whatever the port is), and
# how long they wait for its answer (5 s by default: a busy machine failed tasks at their start).
export AIRFLOW__API__BASE_URL="${AIRFLOW__API__BASE_URL:-http://127.0.0.1:$3}"
export AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT="${AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT:-60}"
# Task slots (LocalExecutor worker processes; Airflow's default is 32): each task is a Spark job
# or a command, and each DAG runs one run at a time.
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"
export LIFEBOAT_PROJECT="$project"
export LIFEBOAT_PYTHON="${LIFEBOAT_PYTHON:-$(cd "$(dirname "$2")" && pwd)/$(basename "$2")}"
# standalone starts its components as `airflow …` from PATH; appended, so `python` stays as is.
export PATH="$PATH:$venv/bin"
mkdir -p "$AIRFLOW_HOME"
passwords="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
cat <<MSG
Airflow UI: http://127.0.0.1:$3  (user admin; its password is in $passwords,
written at the first start and printed below as "Password for user 'admin'")
DAGs: $AIRFLOW__CORE__DAGS_FOLDER (they start paused: switch one on to let it run);
tasks run $LIFEBOAT_PYTHON in $project. Ctrl+C stops every component.
MSG
# Its own session: Ctrl+C reaches only the launcher, which passes one SIGINT on (tools/foreground.py).
exec "$venv/bin/python" "$project/tools/foreground.py" "$venv/bin/airflow" standalone
