# rezeption — the two commands that matter: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_SALON := salons/friseur1.yaml

CALCOM_SALON := salons/friseur1-calcom.yaml

.PHONY: run demo-calcom test bench lint format install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# What serving needs, and no more (the test and benchmark tools come with `make test` / `make bench`).
$(VENV)/.installed-serve: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed-serve

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $@ $(VENV)/.installed-test $(VENV)/.installed-serve

install: $(VENV)/.installed-serve
install-dev: $(VENV)/.installed-test

# Migrates, loads the demo salon file (again: edits to it take effect), serves on 127.0.0.1:8000.
run: install
	$(BIN)/rezeption db upgrade
	$(BIN)/rezeption tenants load $(DEMO_SALON)
	$(BIN)/rezeption serve

# The Cal.com path in one command: the emulator (127.0.0.1:8765) set up as the Cal.com demo salon's
# account, that salon loaded, and a server for it on 127.0.0.1:8001; Ctrl-C stops both.
demo-calcom: install
	$(BIN)/rezeption db upgrade
	$(BIN)/rezeption tenants load $(CALCOM_SALON)
	$(BIN)/rezeption calcom-emulator --port 8765 --salon $(CALCOM_SALON) & \
	emulator=$$!; trap 'kill $$emulator 2>/dev/null' EXIT INT TERM; \
	$(BIN)/rezeption serve --port 8001

# Two worker processes (TEST_WORKERS=0: one process); a test file stays in one worker, so its
# servers and module fixtures are its own. Each worker has its own PostgreSQL database and Redis dbs.
TEST_WORKERS ?= 2
test: install-dev
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

bench: $(VENV)/.installed-bench
	$(BIN)/python bench/run_all.py

lint: install-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

format: install-dev
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
