# Two entry points: `make demo` and `make test`. Each builds .venv from scratch when needed.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test tools lint typecheck unit integration e2e bench fuzz clean

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

# Prometheus and promtool (Debian's package `prometheus`; it starts no service) for the alert rules'
# tests: installed when missing if run as root, as CI is. Elsewhere those tests skip; with CI=true they fail.
tools:
	@command -v promtool >/dev/null && command -v prometheus >/dev/null || { [ "$$(id -u)" = 0 ] && \
		{ DEBIAN_FRONTEND=noninteractive apt-get install -y -q prometheus >/dev/null || \
		{ apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q prometheus >/dev/null; }; } || \
		echo "prometheus is not installed (not root): its tests skip, or fail with CI=true"; }

test: lint typecheck tools
	$(BIN)/pytest -q -p no:cacheprovider --durations=20

# The API fuzzed longer than in `make test` (docs/reliability.md): FUZZ_SECONDS per server, FUZZ_SEED.
FUZZ_SECONDS ?= 300
fuzz: $(STAMP)
	FEDERATION_FUZZ_SECONDS=$(FUZZ_SECONDS) $(if $(FUZZ_SEED),FEDERATION_FUZZ_SEED=$(FUZZ_SEED)) \
		$(BIN)/pytest -q -p no:cacheprovider -s tests/e2e/test_fuzz.py

bench: $(STAMP)
	$(BIN)/python -m tests.bench.api

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
