# cycleml developer tasks. Run `make help` for the list.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(VENV)/bin
RUFF := $(BIN)/ruff

# Extra arguments for pytest, e.g. `make test PYTEST_ARGS="-k foo -x"`.
PYTEST_ARGS ?=

# Keep BLAS/OpenMP thread pools small and non-spinning while tests run.
TEST_ENV := OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1

.PHONY: help install quickstart test lint format bench clean

help: ## show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

install: ## create .venv and pip install -e ".[dev]" (skipped if pyproject.toml unchanged)
	@bash scripts/ensure-venv.sh

quickstart: install ## run `cycleml quickstart` into ./demo-project
	OMP_WAIT_POLICY=PASSIVE $(BIN)/cycleml quickstart --dir demo-project

# Lint (needs no database), then pytest against a throwaway PostgreSQL that
# test-services.sh starts, exports as CYCLEML_TEST_PG_URL, and always stops
# afterwards. Lint problems don't hide test results: pytest runs anyway, and
# the target fails if either failed (pytest's status is reported first).
test: install ## lint, then pytest with a throwaway PostgreSQL (CYCLEML_TEST_PG_URL)
	@lint=0; \
	$(RUFF) check . || lint=1; \
	$(RUFF) format --check . || lint=1; \
	status=0; \
	$(TEST_ENV) bash scripts/test-services.sh run -- $(BIN)/pytest $(PYTEST_ARGS) || status=$$?; \
	if [ $$status -ne 0 ]; then echo "make test: pytest failed (exit $$status)" >&2; exit $$status; fi; \
	if [ $$lint -ne 0 ]; then echo "make test: ruff found problems (see above)" >&2; exit 1; fi

lint: install ## ruff check + ruff format --check
	$(RUFF) check .
	$(RUFF) format --check .

format: install ## ruff format + ruff check --fix
	$(RUFF) format .
	$(RUFF) check --fix .

bench: ## run benchmarks/run.sh if present
	@if [ -f benchmarks/run.sh ]; then \
		bash benchmarks/run.sh; \
	else \
		echo "No benchmarks yet (benchmarks/run.sh does not exist)."; \
	fi

clean: ## remove .venv, demo-project and caches
	rm -rf $(VENV) demo-project .pytest_cache .ruff_cache .hypothesis build dist src/*.egg-info
	find . -path ./.git -prune -o -type d -name __pycache__ -prune -exec rm -rf {} +
