# Hutch — `make up` starts the stack, `make test` runs the whole test suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: deps up down test lint envd bench bench-quick clean

deps: $(STAMP)

$(STAMP): pyproject.toml scripts/install-deps.sh scripts/install-deploy-tools.sh
	bash scripts/install-deps.sh "$(PYTHON)" "$(VENV)"
	touch $@

up: deps
	$(VENV)/bin/hutch up

down: deps
	$(VENV)/bin/hutch down

lint: deps
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/ruff format --check src tests bench examples
	$(VENV)/bin/lint-imports

test: deps lint
	$(VENV)/bin/pytest

envd: deps
	$(PY) -m hutch.templates.envd_zipapp dist/envd.pyz

bench: deps
	$(PY) bench/envd_bench.py

# What a sandbox start costs, as ratios against podman and the goals (under three minutes).
bench-quick: deps
	$(PY) bench/quick.py

clean:
	rm -rf dist build .pytest_cache .ruff_cache
