# callcenter: every target bootstraps what it needs; nothing is done by hand.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_DIR ?= .run
MINUTES ?=
SPEED ?=
SEED ?=
NAME ?=
PYTEST_ARGS ?=

.PHONY: demo test lint bench render prompts validate clean help

help:
	@echo "make demo    - set up and run the call center against the simulated PBX"
	@echo "make test    - set up, lint (ruff, mypy --strict, import-linter) and run the whole suite"
	@echo "make lint    - the gates only"
	@echo "make bench   - benchmarks (NAME=ami_parse for one); JSON in bench/results/"
	@echo "make render  - validate dialplans/ and render Asterisk config into .run/asterisk"
	@echo "make prompts - synthesise ivr_prompts/ audio (needs espeak-ng and sox)"

# The virtualenv is rebuilt only when pyproject.toml changes (incremental bootstrap).
$(STAMP): pyproject.toml
	@if [ ! -x $(BIN)/python ]; then $(PYTHON) -m venv $(VENV); fi
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

DEMO_ARGS := $(if $(MINUTES),--minutes $(MINUTES)) $(if $(SPEED),--speed $(SPEED)) $(if $(SEED),--seed $(SEED))

demo: $(STAMP)
	$(BIN)/callcenter --run-dir $(RUN_DIR) demo $(DEMO_ARGS)

test: $(STAMP)
	$(MAKE) --no-print-directory lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check callcenter tests bench
	$(BIN)/ruff format --check callcenter tests bench
	$(BIN)/mypy --strict callcenter
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python -m bench $(NAME)

validate: $(STAMP)
	$(BIN)/callcenter validate dialplans --allow-demo-secrets  # the example center's secrets are demo values

render: $(STAMP)
	$(BIN)/callcenter render dialplans --allow-demo-secrets --out $(RUN_DIR)/asterisk

prompts: $(STAMP)
	$(BIN)/python -m callcenter.prompts ivr_prompts

clean:
	rm -rf $(RUN_DIR) .mypy_cache .pytest_cache .ruff_cache
