# Partage — everything starts here. `make demo` and `make test` create .venv and install what they need.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test install deploy clean-warehouse help

help:
	@echo "make demo             harvest the demo catalog into warehouse/ (run it twice: the second run is all 'unchanged')"
	@echo "make test             run the test suite (same command as CI)"
	@echo "make install          create .venv and install Partage with its test dependencies"
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
	$(BIN)/partage sql "select count(*) as bornes, count(*) filter (where code_insee_commune like '2%') as en_corse from bornes_irve"

test: $(STAMP)
	$(BIN)/python -m pytest

clean-warehouse:
	find warehouse -mindepth 1 ! -name README.md -exec rm -rf {} +
