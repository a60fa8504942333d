# Pantau: developer and CI entry points. `make test` is the gate (see CONVENTIONS.md, 17).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_ARGS ?=

.DEFAULT_GOAL := test
.PHONY: venv test lint fmt demo

# Re-install only when pyproject.toml is newer than the stamp (or the venv is missing).
venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

fmt: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

demo: venv
	$(BIN)/pantau demo $(DEMO_ARGS)

# Probe-engine budget (DESIGN.md, Budgets): prints figures, PASS/FAIL and a JSON line; exits 0.
# BENCH_ARGS=--quick for a ~40 s smoke run.
BENCH_ARGS ?=
.PHONY: bench
bench: venv
	$(BIN)/python bench/probe_throughput.py $(BENCH_ARGS)
