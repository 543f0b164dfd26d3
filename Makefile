# Partage — everything starts here. `make demo` and `make test` create .venv and install what they need.
PYTHON ?= python3
CKAN_HOME ?= $(HOME)/.cache/ckan-test
PARTAGE_PG_HOME ?= $(HOME)/.cache/partage-pg
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: lock demo test test-fast bench bench-validate bench-warehouse bench-api bench-lake serve ckan ckan-stop pg pg-stop install clean-warehouse help

help:
	@echo "make demo             harvest the demo catalog into warehouse/ (run it twice: the second run downloads and validates nothing; the partner file rejected on purpose stays rejected)"
	@echo "make test             run the whole test suite (same command as CI); starts a local CKAN for the publishing tests"
	@echo "                      (PARTAGE_NO_CKAN=1 make test: without CKAN; those tests are then skipped, with the reason)"
	@echo "make test-fast        the tests that need no Prefect run, subprocess or CKAN (seconds)"
	@echo "make ckan / ckan-stop start / stop the local CKAN (PostgreSQL, Redis, CKAN on 127.0.0.1; first start ~90 s)"
	@echo "make pg / pg-stop     start / stop the local PostgreSQL for the lake's multi-machine tests (127.0.0.1:55433)"
	@echo "make install          create .venv and install Partage with its test dependencies, from uv.lock"
	@echo "make lock             upgrade the locked versions on purpose (PACKAGE=name for one), then make test"
	@echo "make bench            harvest benchmarks: cold start, orchestration overhead per source, requests per portal resource (tables)"
	@echo "make bench-validate   validation benchmark: frictionless-py vs DuckDB load floor vs Partage, 1M and 5M rows (minutes)"
	@echo "make bench-warehouse  analysts' queries on a stored 1M-row dataset, sorted by key vs unsorted (table)"
	@echo "make bench-api        load benchmark of partage serve: 1M rows, 30 s of filtered pages, idle and while harvesting"
	@echo "make bench-lake       DuckLake commits on a SQLite vs a PostgreSQL catalog, S3 (moto); the lake vs the old layout"
	@echo "                      (0798d75): harvests of 200 datasets, commits, a reader, 2 workers vs 1, DuckDB 1.5.5 vs 2.0.1"
	@echo "make serve            the tabular API on http://127.0.0.1:8000 over warehouse/ (docs at /docs)"
	@echo "make clean-warehouse  delete warehouse/ data (keeps its README)"

UV_VERSION := 0.13.9
# uv never downloads a Python of its own: the venv uses the machine's python3 (Debian 12: 3.11).
UV := UV_PROJECT_ENVIRONMENT="$(abspath $(VENV))" UV_PYTHON_DOWNLOADS=never $(BIN)/uv

# The bootstrap: a venv holding the locked uv (the lock's dev group keeps it there).
$(BIN)/uv:
	@./scripts/ensure-python.sh $(PYTHON)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# Everything installed comes from uv.lock (versions and hashes); pyproject.toml keeps only the
# lower bounds, for those who install Partage as a library. `--locked` refuses a lock that no
# longer matches pyproject.toml (run `make lock`), so an edit can never install unpinned versions.
$(STAMP): pyproject.toml uv.lock | $(BIN)/uv
	$(UV) sync --locked --extra test --python $(BIN)/python
	@touch $@

install: $(STAMP)

# Upgrade every locked version on purpose (then run `make test` and commit uv.lock).
# `make lock PACKAGE=duckdb` upgrades one package only.
lock: | $(BIN)/uv
	$(UV) lock $(if $(PACKAGE),--upgrade-package $(PACKAGE),--upgrade)

# The demo's partner files contain errors on purpose: the first run exits 1 ("some rejected"),
# which the demo accepts; any other failure stops it.
demo: $(STAMP)
	$(BIN)/partage catalog check
	$(BIN)/partage harvest; code=$$?; [ $$code -le 1 ] || exit $$code
	$(BIN)/partage status
	$(BIN)/partage publish --target dcat --target public
	$(BIN)/partage sql "select count(*) as bornes, count(*) filter (where code_insee_commune like '2%') as en_corse from bornes_irve"

# The lake's PostgreSQL catalog tests read PARTAGE_TEST_PG_URL from pg.env. Where PostgreSQL cannot
# be started (not root, no apt) they skip with the reason; under CI=true that is a failure.
PG_ENV := if [ -f "$(PARTAGE_PG_HOME)/pg.env" ]; then . "$(PARTAGE_PG_HOME)/pg.env"; fi

test: $(STAMP)
	@./scripts/ensure-chromium.sh
	@$(MAKE) --no-print-directory pg || [ "$$CI" != true ]
ifeq ($(PARTAGE_NO_CKAN),)
	@$(MAKE) --no-print-directory ckan
	set -a; . "$(CKAN_HOME)/ckan.env"; $(PG_ENV); set +a; $(BIN)/python -m pytest
else
	set -a; $(PG_ENV); set +a; $(BIN)/python -m pytest
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

# A private PostgreSQL (Debian's package) for the lake's catalog when several machines write:
# database partage_lake on 127.0.0.1:55433 (PARTAGE_PG_PORT), URL in $(PARTAGE_PG_HOME)/pg.env.
pg:
	PARTAGE_PG_HOME="$(PARTAGE_PG_HOME)" scripts/postgres-server.sh start

pg-stop:
	PARTAGE_PG_HOME="$(PARTAGE_PG_HOME)" scripts/postgres-server.sh stop

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

# The lake against the old layout (the code of 0798d75 in BENCH_OLD, built once by bench/build-old.sh):
# harvests, commits, a reader, two workers, validation on both DuckDBs; each table is also added to
# bench/RESULTS.md. Without PostgreSQL (`make pg` cannot start it) the PostgreSQL rows are left out.
# BENCH_RUNS: runs per cell (median); a 200-dataset harvest of the lake takes minutes on a busy 2-core machine.
BENCH_OLD ?= $(HOME)/.cache/partage-bench-old
BENCH_RUNS ?= 3

bench-lake: $(STAMP)
	@$(MAKE) --no-print-directory pg || true
	bench/build-old.sh "$(BENCH_OLD)"
	set -a; $(PG_ENV); set +a; [ -z "$$PARTAGE_TEST_PG_URL" ] || $(BIN)/python bench/lake_engine.py
	set -a; $(PG_ENV); set +a; $(BIN)/python bench/lake_harvest.py --old "$(BENCH_OLD)" --runs $(BENCH_RUNS) --results bench/RESULTS.md
	set -a; $(PG_ENV); set +a; $(BIN)/python bench/lake_worker.py --old "$(BENCH_OLD)" --runs $(BENCH_RUNS) --results bench/RESULTS.md

serve: $(STAMP)
	$(BIN)/partage serve

clean-warehouse:
	find warehouse -mindepth 1 ! -name README.md -exec rm -rf {} +
