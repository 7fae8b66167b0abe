# The one entry point: CI and humans call these targets.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-fast lint typecheck bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

## install: create .venv and install maestro-git with its development tools
install: $(STAMP)

## demo: mirror this repository's own personas into PostgreSQL, index them, and query
demo: $(STAMP)
	$(BIN)/python scripts/demo.py

## test: the whole test suite against a real PostgreSQL (DATABASE_URL, or the embedded server),
## then the search tests again with the search speed paths off (plain Whoosh)
test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider
	MAESTRO_SEARCH_SPEEDUPS=0 $(BIN)/python -m pytest -q -p no:cacheprovider tests/search

## test-fast: the suite without tests marked slow
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m 'not slow'

## lint: ruff and mypy
lint: $(STAMP)
	$(BIN)/ruff check maestro_git tests scripts
	$(BIN)/mypy

## bench: the benchmark suite; prints a table of figures
bench: $(STAMP)
	$(BIN)/python scripts/bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .maestro .pytest_cache .hypothesis *.egg-info
