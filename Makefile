# Two entry points: `make demo` and `make test`. Each builds .venv from scratch when needed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit integration e2e bench clean

$(BIN)/uv:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv

$(STAMP): pyproject.toml $(BIN)/uv
	VIRTUAL_ENV=$(abspath $(VENV)) $(BIN)/uv pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/fedctl demo

lint: $(STAMP)
	$(BIN)/ruff check federation tests migrations
	$(BIN)/ruff format --check federation tests migrations
	$(BIN)/lint-imports
	$(BIN)/python -m tests.lint_module_size
	$(BIN)/python -m tests.lint_public_imports

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python -m tests.bench.api

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
