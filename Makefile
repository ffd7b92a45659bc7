# Lifeboat — `make help` lists the targets. Every target installs what it needs first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# uv at uv.lock's version, installed by pip into a folder of its own (tools/bootstrap_uv.py).
UV := .tools/uv/bin/uv

.DEFAULT_GOAL := help
PORT ?= 3000
BENTOML := $(VENV)/bin/bentoml

HOST ?= http://127.0.0.1:$(PORT)
USERS ?= 20
SPAWN_RATE ?= 5
DURATION ?= 1m
P99_MS ?= 500
DRIFT_SHARE ?= 0
# LABELLED=1: Locust reports outcomes to POST /feedback with the token the service reads
# (LIFEBOAT_FEEDBACK_TOKEN, else LIFEBOAT_ADMIN_TOKEN; environment or .env).
FEEDBACK_TOKEN = $(shell $(PY) -c "from lifeboat.settings import get_settings as g; s = g(); t = s.feedback_token or s.admin_token; print(t.get_secret_value() if t else '')")
# Airflow in its own venv (it pins its own dependency set), calling the project's commands.
AIRFLOW_VENV := .airflow-venv
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.installed-stamp
AIRFLOW_PORT ?= 8080

.PHONY: help java install lock run train train-quick import-model build serve score leaderboard \
	test loadtest bench shadow-bench drift-report drift-retrain drift-bench lint format clean \
	images bento-image \
	test-stack stack-bench airflow-venv airflow

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

java: ## Stop at once, with install instructions, when Java 17+ is missing
	@$(PYTHON) training/java.py

$(UV): uv.lock
	$(PYTHON) tools/bootstrap_uv.py .tools/uv

$(STAMP): pyproject.toml uv.lock $(UV)
	$(UV) sync --locked --python $(PYTHON)
	@touch $(STAMP)

install: $(STAMP) ## Create .venv with exactly uv.lock's packages (uv sync --locked), the project editable

lock: $(UV) ## After editing pyproject's dependencies: uv lock, then export requirements/ from it
	$(UV) lock && UV=$(UV) requirements/export.sh

run: java install ## The main job: train (if no Production model yet), build, serve on PORT=3000
	$(PY) -m training train --skip-if-production
	$(MAKE) --no-print-directory build
	$(MAKE) --no-print-directory serve

train: java install ## Train on Spark, track and register in MLflow, promote if better
	$(PY) -m training train

train-quick: java install ## Train with one grid point per family (a smoke run)
	$(PY) -m training train --quick

import-model: install ## Import models:/titanic@production into the BentoML store
	$(PY) -m training import-model

build: import-model ## Import the Production model and build the Bento titanic_survival
	$(BENTOML) build

serve: install ## Serve the latest built Bento on PORT (default 3000); prediction logs in monitoring/
	LIFEBOAT_ENV_FILE=$(CURDIR)/.env LIFEBOAT_MONITORING_DIR=$${LIFEBOAT_MONITORING_DIR:-$(CURDIR)/monitoring} PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(BENTOML) serve titanic_survival:latest --port $(PORT)

score: java install ## Batch-score IN=passengers.csv into OUT=scored.csv with the Production model
	$(PY) -m training score $(IN) $(OUT)

leaderboard: install ## Write the leaderboard of all training runs to reports/leaderboard/
	$(PY) -m training leaderboard

loadtest: install ## Headless Locust against HOST (USERS, SPAWN_RATE, DURATION, P99_MS, DRIFT_SHARE, LABELLED=1); fails on any error or p99 > P99_MS
	$(if $(LABELLED),LIFEBOAT_FEEDBACK_TOKEN="$(FEEDBACK_TOKEN)") $(VENV)/bin/locust --config loadtest/headless.conf --host $(HOST) --users $(USERS) --spawn-rate $(SPAWN_RATE) --run-time $(DURATION) --max-p99-ms $(P99_MS) --drift-share $(DRIFT_SHARE) $(if $(LABELLED),--labelled)

bench: java install ## Serving benchmark on 127.0.0.1 (~15 min, idle machine): reports/bench/
	$(PY) -m loadtest.bench

shadow-bench: install ## req/s with and without a shadow model, 32 users, 3 interleaved pairs: reports/bench/shadow/
	$(PY) -m loadtest.shadow_bench

drift-report: install ## Drift report of the service's monitoring logs: reports/drift/; exit 0 none, 42 drift, 2 error
	$(PY) -m drift report

drift-retrain: java install ## On drift: retrain with the labelled logs, promote if better, import, POST /reload
	$(PY) -m drift retrain

drift-bench: install ## Benchmark drift report on 100,000 logged predictions: reports/bench/drift.json
	$(PY) -m drift.bench

test: java install lint ## Lint (ruff), then the whole test suite
	$(PY) -m pytest

images: install ## Build every image of the stack (stand-in base images where none can be pulled)
	docker/images.sh

bento-image: build ## Import Production, build the Bento and containerize it as titanic_survival:latest
	DOCKER_BUILDKIT=0 $(BENTOML) containerize titanic_survival:latest -t titanic_survival:$${BENTO_TAG:-latest}

stack-bench: install ## Against a running stack: gateway vs one replica at 32 users, Bento cold start
	$(PY) -m loadtest.stack_bench --gateway http://127.0.0.1:$(PORT)

test-stack: java install ## Only the container stack test (needs a Docker engine): images, compose, scale-out
	$(PY) -m pytest tests/containers

$(AIRFLOW_STAMP): dags/airflow-constraints.txt
	@test -x $(VENV)/bin/uv || $(MAKE) --no-print-directory install
	@test -x $(AIRFLOW_VENV)/bin/python || $(VENV)/bin/uv venv --quiet --python $(PYTHON) $(AIRFLOW_VENV)
	$(VENV)/bin/uv pip install --quiet --python $(AIRFLOW_VENV)/bin/python -c dags/airflow-constraints.txt apache-airflow==3.3.2 apache-airflow-providers-standard
	@touch $(AIRFLOW_STAMP)

airflow-venv: $(AIRFLOW_STAMP) ## Create Airflow's own venv .airflow-venv (pinned: dags/airflow-constraints.txt)

airflow: java install airflow-venv ## Airflow standalone on SQLite in AIRFLOW_HOME (.airflow) with dags/; UI on AIRFLOW_PORT=8080
	dags/standalone.sh $(AIRFLOW_VENV) $(PY) $(AIRFLOW_PORT)

lint: install ## ruff lint and format check, mypy (pyproject's [tool.mypy])
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/mypy

format: install ## ruff format and fix
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

clean: ## Remove local state: MLflow store, artifacts, quarantine, reports (keeps .venv)
	rm -rf mlflow.db mlartifacts mlruns quarantine reports spark-warehouse .pytest_cache
