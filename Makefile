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

.PHONY: demo test acceptance lint bench render prompts validate clean help

help:
	@echo "make demo    - set up and run the call center against the simulated PBX"
	@echo "make test    - set up, lint (ruff, mypy --strict, import-linter) and run the whole suite"
	@echo "make acceptance - the center on a real Asterisk 22 with SIPp phones (needs ASTERISK_BIN)"
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

# Each module on its own Asterisk, one after the other, niced (a 2-core machine): the asterisk-marked
# tests (rendered config, replays against the simulator) and the acceptance scenarios.
ACCEPTANCE_MODULES := tests/test_real_asterisk.py tests/test_real_ami_privileges.py tests/test_real_phones.py \
	tests/asterisk/test_agi_trust_asterisk.py tests/inbound/test_ivr_asterisk.py \
	tests/supervision/test_monitor_asterisk.py tests/commands/test_doctor.py \
	tests/sim/test_sim_replay.py tests/sim/test_sim_unanswered.py tests/test_acceptance.py \
	tests/test_acceptance_outbound.py

acceptance: $(STAMP)
	@if [ -z "$${ASTERISK_BIN:-}" ]; then \
	  echo "make acceptance: skipped: ASTERISK_BIN is not set (the path of a real Asterisk 22 binary; see README, Acceptance on a real Asterisk)"; \
	  exit 0; \
	fi; \
	command -v sipp >/dev/null || { echo "make acceptance: sipp not found (apt-get install sip-tester)"; exit 1; }; \
	for m in $(ACCEPTANCE_MODULES); do \
	  echo "== $$m"; \
	  nice -n 10 $(BIN)/python -m pytest -q -p no:cacheprovider --acceptance -m "asterisk or acceptance" $(PYTEST_ARGS) $$m; \
	done

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
