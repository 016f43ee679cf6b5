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

# The suite in two workers, each test file on one (stacks, subnets and namespaces are per worker), then the
# desktop tests on their own: a desktop's session starts slowly on a busy machine, and the SDKs wait for its
# processes but not for its window manager to be ready.
test: deps lint
	$(VENV)/bin/pytest -n 2 --dist loadfile --ignore=tests/desktop; status=$$?; \
	$(VENV)/bin/pytest tests/desktop && exit $$status

envd: deps
	$(PY) -m hutch.templates.envd_zipapp dist/envd.pyz

bench: deps
	$(PY) bench/envd_bench.py

# What a sandbox start costs, as ratios against podman and the goals (under three minutes).
bench-quick: deps
	$(PY) bench/quick.py

clean:
	rm -rf dist build .pytest_cache .ruff_cache
