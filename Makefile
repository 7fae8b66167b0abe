# The one entry point: CI and humans call these targets.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-fast lint typecheck bench soak browser screenshots clean

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

## browser: Debian's chromium and chromium-driver for the browser tests (apt-get, only when missing)
CHROMIUM     ?= /usr/bin/chromium
CHROMEDRIVER ?= /usr/bin/chromedriver
SUDO         := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@if [ ! -x $(CHROMIUM) ] || [ ! -x $(CHROMEDRIVER) ]; then \
	  echo "installing Debian's chromium and chromium-driver for the browser tests"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium chromium-driver; \
	fi

## test: the whole test suite against a real PostgreSQL (DATABASE_URL, or the embedded server),
## then the search tests again with the search speed paths off (plain Whoosh)
test: $(STAMP) browser
	$(BIN)/python -m pytest -q -p no:cacheprovider
	MAESTRO_SEARCH_SPEEDUPS=0 $(BIN)/python -m pytest -q -p no:cacheprovider tests/search

## test-fast: the suite without tests marked slow
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m 'not slow'

## screenshots: retake the README's web-interface pictures (tests/screenshots/) with the browser tests
screenshots: $(STAMP) browser
	MAESTRO_WEB_SCREENSHOTS=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/server/web/test_browser.py

## lint: ruff and mypy
lint: $(STAMP)
	$(BIN)/ruff check maestro_git tests scripts
	$(BIN)/mypy

# The peer that `maestro history` is timed against (issue 15): `git-history`, in a venv of its
# own so that its dependencies (GitPython, sqlite-utils, its own click) never meet maestro's.
PEER_VENV  ?= .venv-peer
PEER_STAMP := $(PEER_VENV)/.installed

$(PEER_STAMP):
	@test -x $(PEER_VENV)/bin/python || $(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/python -m pip install --quiet git-history==0.8
	@touch $(PEER_STAMP)

## bench: the benchmark suite, whole commands included; prints a table of figures
## (BENCH_ARGS="--no-peer" skips the git-history peer and its venv)
bench: $(STAMP) $(if $(findstring --no-peer,$(BENCH_ARGS)),,$(PEER_STAMP))
	$(BIN)/python scripts/bench.py $(if $(findstring --no-peer,$(BENCH_ARGS)),,--peer $(PEER_VENV)/bin/git-history) $(BENCH_ARGS)

## soak: the fault suite (daemon SIGKILLs, database restarts, write races, .maestro damage,
## property tests with many examples), bounded in count and time; prints a table of figures
soak: $(STAMP)
	$(BIN)/python scripts/soak.py $(SOAK_ARGS)

clean:
	rm -rf $(VENV) $(PEER_VENV) .maestro .pytest_cache .hypothesis *.egg-info
