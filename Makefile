# nowplaying: real-time streaming features and inference for Now Playing recommendations.
# `make` lists the targets. A fresh machine needs Python 3.11, Java 17 and Maven; `make setup`
# installs the rest (the virtualenv, redis-server and chromium from Debian, the Kafka jars).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PACKAGES := nowplaying features models streams serving devtools tests
SERVICES := scripts/services.sh
# Extra pytest arguments, e.g. `make test PYTEST_ARGS="-k topics -x"`.
PYTEST_ARGS ?=
PYTEST_DEFAULTS := -m "not soak and not stress" --timeout=900 --durations=25
SOAK_ARGS ?=
# How many times `make stress` repeats the two-worker SIGKILL scenario.
STRESS_RUNS ?= 20
# Benchmark suite and options, e.g. `make bench BENCH_ARGS="e2e"` (python -m devtools.bench -h).
BENCH_ARGS ?=

.PHONY: help setup system-packages kafka-jars up down status cluster-up cluster-down \
	cluster-status test test-unit lint format demo bench soak stress clean

help: ## List the targets
	@echo "nowplaying: make <target>"
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' \
		$(MAKEFILE_LIST)

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) is not on PATH" >&2; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,train]'
	@touch $@

setup: $(STAMP) system-packages kafka-jars ## Virtualenv + deps, redis-server/chromium, Kafka jars

system-packages: ## apt-get install what is missing: redis-server, chromium (Java/Maven too)
	@missing=(); \
	command -v redis-server >/dev/null || missing+=(redis-server); \
	command -v openssl >/dev/null || missing+=(openssl); \
	command -v chromium >/dev/null || missing+=(chromium); \
	command -v java >/dev/null || missing+=(openjdk-17-jre-headless); \
	command -v mvn >/dev/null || missing+=(maven); \
	if (( $${#missing[@]} )); then \
		sudo=""; [[ $$(id -u) == 0 ]] || sudo="sudo"; \
		echo "Installing Debian packages: $${missing[*]}"; \
		$$sudo apt-get update -qq; \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends \
			"$${missing[@]}"; \
	fi

kafka-jars: $(STAMP) ## Download and cache the Kafka broker jars (Maven Central, first run only)
	@$(SERVICES) fetch

up: $(STAMP) ## Start Kafka (127.0.0.1:9092) and Redis (127.0.0.1:6380); no-op when running
	@$(SERVICES) up

down: ## Stop Kafka and Redis (their data stays under var/)
	@if [[ -x $(PY) ]]; then $(SERVICES) down; fi

status: $(STAMP) ## Show whether Kafka and Redis are running
	@$(SERVICES) status

cluster-up: $(STAMP) ## Start a 3-broker Kafka cluster (127.0.0.1:19092-19094); no-op when running
	@$(SERVICES) cluster up

cluster-down: ## Stop the 3-broker Kafka cluster (its data stays under var/kafka-cluster)
	@if [[ -x $(PY) ]]; then $(SERVICES) cluster down; fi

cluster-status: $(STAMP) ## Show whether each node of the 3-broker Kafka cluster runs
	@$(SERVICES) cluster status

# Full check, as CI runs it: services up, lint, the whole suite (soak excluded), services down
# again when this run started them (a developer's running services are left alone). The exit
# status is pytest's when pytest fails, else lint's.
test: setup ## Setup, start services, lint, run the whole test suite, stop the services
	@started=(); for s in kafka redis; do \
		$(SERVICES) status $$s >/dev/null 2>&1 || started+=($$s); \
	done; \
	$(SERVICES) up || exit 1; \
	lint_status=0; $(MAKE) --no-print-directory lint || lint_status=$$?; \
	test_status=0; $(PY) -m pytest $(PYTEST_DEFAULTS) $(PYTEST_ARGS) || test_status=$$?; \
	for s in "$${started[@]}"; do $(SERVICES) down $$s || true; done; \
	if (( lint_status )); then echo "lint failed (exit $$lint_status)" >&2; fi; \
	if (( test_status )); then exit $$test_status; fi; \
	exit $$lint_status

test-unit: $(STAMP) ## Unit tests only (no services needed)
	$(PY) -m pytest tests/unit -m "not integration and not soak and not stress" $(PYTEST_ARGS)

lint: $(STAMP) ## ruff check, ruff format --check, mypy (strict) over the packages
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy $(PACKAGES)

demo: setup ## The end-to-end demo (services, model, worker, API, replay)
	scripts/demo.sh

bench: up ## The benchmark harness (results under devtools/bench/results)
	$(PY) -m devtools.bench $(BENCH_ARGS)

soak: up ## Long steady-rate run (not part of `make test`)
	$(PY) -m pytest -m soak -rA $(SOAK_ARGS)

stress: up ## Two workers, one SIGKILLed mid-replay, STRESS_RUNS times (default 20); not in `make test`
	STRESS_RUNS=$(STRESS_RUNS) $(PY) -m pytest -m stress --timeout=900 -rA \
		tests/integration/test_faults_workers.py $(PYTEST_ARGS)

clean: down ## Stop the services; remove runtime state (var/) and tool caches (not .cache/)
	rm -rf var build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis test-artifacts
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
