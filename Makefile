# Lifeboat — `make help` lists the targets. Every target installs what it needs first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.DEFAULT_GOAL := help
.PHONY: help java install run train train-quick score leaderboard test test-fast lint format clean

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

java: ## Stop at once, with install instructions, when Java 17+ is missing
	@$(PYTHON) training/java.py

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install the pinned dependencies (constraints.txt)

run: java install ## The main job: train on Spark, track and register in MLflow, promote
	$(PY) -m training train

train: java install ## Train with the full grids (same as run, for now)
	$(PY) -m training train

train-quick: java install ## Train with one grid point per family (a smoke run)
	$(PY) -m training train --quick

score: java install ## Batch-score IN=passengers.csv into OUT=scored.csv with the Production model
	$(PY) -m training score $(IN) $(OUT)

leaderboard: install ## Write the leaderboard of all training runs to reports/leaderboard/
	$(PY) -m training leaderboard

test: java install ## Run the whole test suite
	$(PY) -m pytest

lint: install ## ruff lint and format check
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: install ## ruff format and fix
	$(VENV)/bin/ruff format . && $(VENV)/bin/ruff check --fix .

clean: ## Remove local state: MLflow store, artifacts, quarantine, reports (keeps .venv)
	rm -rf mlflow.db mlartifacts mlruns quarantine reports spark-warehouse .pytest_cache
