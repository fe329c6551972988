# Every target sets up what it needs (scripts/setup_env.sh is idempotent).
PY := .venv/bin/python
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1

.PHONY: setup test e2e demo demo-ui bench lint train-demo

setup:
	bash scripts/setup_env.sh

test: setup
	$(PY) -m ruff check .
	$(PY) -m pytest --ignore=tests/test_browser.py $(PYTEST_ARGS)

# Browser test: every workflows/*.json dropped on the real ComfyUI frontend in headless Chromium.
# Installs Debian's chromium (apt, when missing and root) and Playwright's Python package (its
# bundled driver only: never `playwright install`). `make test` skips tests/test_browser.py
# while either is missing (and `make test` leaves it to this target).
CHROMIUM ?= /usr/bin/chromium
PLAYWRIGHT_VERSION ?= 1.65.2
e2e: setup
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; \
	  else \
	    echo "e2e: no $(CHROMIUM); install Debian's chromium (apt-get install chromium) as root" >&2; exit 1; \
	  fi; \
	fi
	@$(PY) -c "import playwright.sync_api" 2>/dev/null || $(PY) -m pip install -q playwright==$(PLAYWRIGHT_VERSION)
	P2P_CHROMIUM=$(CHROMIUM) $(PY) -m pytest tests/test_browser.py $(PYTEST_ARGS)

demo: setup
	$(PY) scripts/demo.py

demo-ui: setup
	$(PY) scripts/demo.py --ui

bench: setup
	$(PY) benchmarks/run.py $(BENCH_ARGS)

lint: setup
	$(PY) -m ruff check .
