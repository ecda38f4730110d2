# The two commands a newcomer needs (see README.md):
#   make demo   set everything up and run the demo clinic
#   make test   lint, type-check and run the whole test suite
# Both create .venv and install Bordin into it first.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEV_STAMP := $(VENV)/.installed-dev-stamp
PORT ?= 8000

.PHONY: demo test lint typecheck security pytest bench install clean messages

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(DEV_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

# Compiled translations (docs/translating.md): built from each committed .po by msgfmt (Debian
# `gettext`), never committed; every target that runs Bordin depends on them.
PO_FILES := $(wildcard src/bordin/web/locale/*/LC_MESSAGES/django.po)
MO_FILES := $(PO_FILES:.po=.mo)

%.mo: %.po
	msgfmt --check -o $@ $<

messages: $(MO_FILES)

install: $(DEV_STAMP) $(MO_FILES)

demo: $(STAMP) $(MO_FILES)
	$(BIN)/bordin demo --port $(PORT)

lint: $(DEV_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

# Security static analysis: no medium or high findings allowed.
security: $(DEV_STAMP)
	$(BIN)/bandit -r src --severity-level medium --quiet

PG_URL := postgres://postgres@127.0.0.1:5432/test
AXE := build/npm/node_modules/axe-core/axe.min.js

$(AXE):
	npm install --silent --no-audit --no-fund --prefix build/npm axe-core@4.14.1

# The whole suite on SQLite, then the database-backed tests again on PostgreSQL.
pytest: $(DEV_STAMP) $(AXE) $(MO_FILES)
	@echo "== whole suite on SQLite =="
	BORDIN_TEST_DB=sqlite $(BIN)/python -m pytest
	@if $(BIN)/python -c "import psycopg; psycopg.connect('$(PG_URL)', connect_timeout=3).close()" 2>/dev/null; then \
		echo "== web tests on PostgreSQL (127.0.0.1:5432) =="; \
		BORDIN_TEST_DB=postgres $(BIN)/python -m pytest tests/web; \
	else \
		echo "== PostgreSQL at 127.0.0.1:5432 not reachable: PostgreSQL run SKIPPED (CI fails here) =="; \
	fi

test: lint typecheck security pytest

bench: $(DEV_STAMP) $(MO_FILES)
	$(BIN)/python bench/bench_analyze.py
	$(BIN)/python bench/bench_web.py

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache .hypothesis $(MO_FILES)
