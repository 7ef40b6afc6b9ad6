# swimstream: every target installs what it needs into .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.DEFAULT_GOAL := help
.PHONY: help demo test check bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@echo "==> creating $(VENV) and installing swimstream with its test dependencies"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --progress-bar on -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP) ## embedded broker, simulated fleet, the towers app and its dashboard (DURATION=s to stop)
	$(PY) -m swimstream demo $(if $(DURATION),--duration $(DURATION),) $(DEMO_ARGS)

test: $(STAMP) ## run the whole test suite (unit, property and integration tests)
	bash scripts/ensure-chromium
	$(PY) -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

check: $(STAMP) ## ruff, mypy --strict (package and tests) and the layer import rule
	$(VENV)/bin/ruff check swimstream connectors tests integration bench examples
	$(VENV)/bin/ruff format --check swimstream connectors tests integration bench examples
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --strict tests integration bench examples
	$(PY) -m pytest -q tests/test_layers.py

bench: $(STAMP) ## run the benchmarks and rewrite their sections of BENCHMARKS.md
	$(PY) bench/crdt_bench.py
	$(PY) bench/agents_bench.py
	$(PY) bench/pipeline_bench.py
	$(PY) bench/instructions_bench.py
	$(PY) bench/e2e_bench.py --rounds 3
	$(PY) bench/scaleout_bench.py
	$(PY) bench/scaleout_bench.py --durable
	$(PY) bench/latency_bench.py

clean: ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
