# Two commands for a fresh machine with only Python 3 and make:
#   make demo   run the daemon on ./demo against the built-in emulator (no key, fake answers)
#   make test   run the whole test suite: the unit, integration and system tiers, in that order
#   make test-fast  only the unit tier (under 30 s), while you work
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO := demo

.PHONY: demo test test-fast test-integration test-system lint typecheck check bench bench-quick clean

# The demo installs only what running needs, as a user would (a regular install: again after a change to
# the code); the test targets add the development tools ($(BIN)/pytest) and make the install editable.
$(BIN)/batchd: pyproject.toml $(shell find daemon -name '*.py')
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet .
	touch $@

$(BIN)/pytest: pyproject.toml
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# The examples are dropped on the first run only (no state yet): a restart goes on where it stopped.
demo: $(BIN)/batchd
	mkdir -p $(DEMO)/pending_upload/azure
	[ -d $(DEMO)/state ] || for f in config/examples/*.jsonl; do \
	  [ -e "$(DEMO)/pending_upload/$$(basename $$f)" ] || cp "$$f" "$(DEMO)/pending_upload/"; done
	[ -d $(DEMO)/state ] || for f in config/examples/azure/*.jsonl; do \
	  [ -e "$(DEMO)/pending_upload/azure/$$(basename $$f)" ] || cp "$$f" "$(DEMO)/pending_upload/azure/"; done
	$(BIN)/batchd run --emulator --root $(DEMO) --poll-interval 2 --config config/demo.toml

# One tier after the other, quickest first, so a broken unit stops the run before the slow tiers start.
# Each tier runs on several pytest-xdist processes, sized by how much of a test is waiting: an
# integration test waits on the daemon and the emulator nine tenths of its time (4 processes on 2 cores);
# a system test starts a daemon process per step, each import of the SDK half a second of CPU, and
# waits about half its time (3 processes on 2 cores).
WORKERS ?= 2
INTEGRATION_WORKERS ?= 4
SYSTEM_WORKERS ?= 3
test: test-fast test-integration test-system

test-fast: $(BIN)/pytest
	$(BIN)/python -m pytest -n $(WORKERS) tests/unit

test-integration: $(BIN)/pytest
	$(BIN)/python -m pytest -n $(INTEGRATION_WORKERS) tests/integration

test-system: $(BIN)/pytest
	$(BIN)/python -m pytest -n $(SYSTEM_WORKERS) tests/system

lint: $(BIN)/pytest
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/pytest
	$(BIN)/mypy

check: lint typecheck test

# Every script in bench/__main__.py, each in its own process, then one PASS/MISS table; fails on any MISS.
bench: $(BIN)/pytest
	$(BIN)/python -m bench

# The same at small sizes (a few minutes less): a quick look, not the figures of the README.
bench-quick: $(BIN)/pytest
	$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) $(DEMO) .mypy_cache .ruff_cache .pytest_cache
