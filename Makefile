# Partage — everything starts here. `make demo` and `make test` create .venv and install what they need.
PYTHON ?= python3
CKAN_HOME ?= $(HOME)/.cache/ckan-test
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast bench bench-validate bench-warehouse bench-api serve ckan ckan-stop install clean-warehouse help

help:
	@echo "make demo             harvest the demo catalog into warehouse/ (run it twice: the second run is all 'unchanged')"
	@echo "make test             run the whole test suite (same command as CI); starts a local CKAN for the publishing tests"
	@echo "                      (PARTAGE_NO_CKAN=1 make test: without CKAN; those tests are then skipped, with the reason)"
	@echo "make test-fast        the tests that need no Prefect run, subprocess or CKAN (seconds)"
	@echo "make ckan / ckan-stop start / stop the local CKAN (PostgreSQL, Redis, CKAN on 127.0.0.1; first start ~90 s)"
	@echo "make install          create .venv and install Partage with its test dependencies"
	@echo "make bench            harvest benchmarks: cold start, orchestration overhead per source, requests per portal resource (tables)"
	@echo "make bench-validate   validation benchmark: frictionless-py vs DuckDB load floor vs Partage, 1M and 5M rows (minutes)"
	@echo "make bench-warehouse  analysts' queries on a stored 1M-row dataset, sorted by key vs unsorted (table)"
	@echo "make bench-api        load benchmark of partage serve: 1M rows, 30 s of filtered pages, idle and while harvesting"
	@echo "make serve            the tabular API on http://127.0.0.1:8000 over warehouse/ (docs at /docs)"
	@echo "make clean-warehouse  delete warehouse/ data (keeps its README)"

$(STAMP): pyproject.toml scripts/ensure-python.sh
	@./scripts/ensure-python.sh $(PYTHON)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@

install: $(STAMP)

# The demo's partner files contain errors on purpose: the first run exits 1 ("some rejected"),
# which the demo accepts; any other failure stops it.
demo: $(STAMP)
	$(BIN)/partage catalog check
	$(BIN)/partage harvest; code=$$?; [ $$code -le 1 ] || exit $$code
	$(BIN)/partage status
	$(BIN)/partage publish --target dcat --target public
	$(BIN)/partage sql "select count(*) as bornes, count(*) filter (where code_insee_commune like '2%') as en_corse from bornes_irve"

test: $(STAMP)
	@./scripts/ensure-chromium.sh
ifeq ($(PARTAGE_NO_CKAN),)
	@$(MAKE) --no-print-directory ckan
	set -a; . "$(CKAN_HOME)/ckan.env"; set +a; $(BIN)/python -m pytest
else
	$(BIN)/python -m pytest
endif

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

# A real CKAN (PostgreSQL + Redis from Debian, CKAN from PyPI) for the publishing tests, and
# ckanext-dcat in its venv: the DCAT parser CKAN portals use, to check our DCAT output.
ckan:
	CKAN_HOME="$(CKAN_HOME)" scripts/ckan-server.sh start
	@"$(CKAN_HOME)/venv/bin/python" -c "import ckanext.dcat" 2>/dev/null || \
	  "$(CKAN_HOME)/venv/bin/python" -m pip install --quiet --disable-pip-version-check ckanext-dcat

ckan-stop:
	CKAN_HOME="$(CKAN_HOME)" scripts/ckan-server.sh stop

bench: $(STAMP)
	$(BIN)/python bench/harvest_overhead.py
	$(BIN)/python bench/portal_requests.py

bench-validate: $(STAMP)
	$(BIN)/python bench/validate.py

bench-warehouse: $(STAMP)
	$(BIN)/python bench/warehouse_scan.py

# wrk (Debian) is the load generator; without it the benchmark falls back to a Python client.
bench-api: $(STAMP)
	@command -v wrk >/dev/null || (command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk >/dev/null) || true
	$(BIN)/python bench/api.py

serve: $(STAMP)
	$(BIN)/partage serve

clean-warehouse:
	find warehouse -mindepth 1 ! -name README.md -exec rm -rf {} +
