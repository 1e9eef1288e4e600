# PruneLab: `make run` starts the app, `make test` runs every test; both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8501
PROCESSES ?= 2

.PHONY: setup run workshop test test-fast bench lint format train clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	# PruneLab itself, editable: the prunelab command and imports from any directory.
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

run: setup
	$(BIN)/python -m ui.serve --server.port $(PORT)

workshop: setup  # PROCESSES app processes behind nginx on PORT, sharing one results cache
	$(BIN)/python -m deploy.run_workshop --processes $(PROCESSES) --port $(PORT)

test: setup lint
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not e2e"

bench: setup
	$(BIN)/python -m benchmarks.run

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

train: setup
	$(BIN)/python -m sample_models.train all

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .ruff_cache
