# Every target sets up what it needs (scripts/setup_env.sh is idempotent).
PY := .venv/bin/python
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1

.PHONY: setup test demo demo-ui bench lint train-demo

setup:
	bash scripts/setup_env.sh

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest $(PYTEST_ARGS)

demo: setup
	$(PY) scripts/demo.py

demo-ui: setup
	$(PY) scripts/demo.py --ui

bench: setup
	$(PY) benchmarks/run.py $(BENCH_ARGS)

lint: setup
	$(PY) -m ruff check .
