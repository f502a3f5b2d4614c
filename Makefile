# The two commands of the README:
#   make run   - create .venv, install, run the whole pipeline on the embedded defaults
#   make test  - create .venv, install, run the tests (what .ci/run calls); installs Debian's
#                chromium for the screenshot tests when it is missing and this runs as root
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)

.PHONY: setup chromium run test test-fast test-bench lint format bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch is pinned in pyproject.toml to the CPU wheel (a bare requirement pulls a multi-GB CUDA build)
	$(BIN)/python -m pip install -q -e ".[dev]"
	rm -f $(VENV)/.installed-* && touch $@

chromium:
	@scripts/ensure_chromium.sh

run: setup
	$(BIN)/rmcurate demo

test: setup chromium
	$(BIN)/python -m pytest -q -n auto --maxprocesses=4

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

test-bench: setup
	$(BIN)/python -m pytest -q -m bench

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

bench: setup
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/decompose.py
	$(BIN)/python benchmarks/train.py

clean:
	rm -rf data reports .prefect runs models
