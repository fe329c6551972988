# Every target sets up what it needs (scripts/setup_env.sh is idempotent).
PY := .venv/bin/python
export OMP_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1

.PHONY: setup test test-pinned e2e demo demo-ui bench lint train-demo setup-current test-current e2e-current chromium

setup:
	bash scripts/setup_env.sh

# The current upstream ComfyUI (0.33.0, .comfyui-current/ComfyUI in its own .venv-current) under
# the same tests: COMFYUI_PATH points the suite at that tree for these targets only.
PY_CURRENT := .venv-current/bin/python
CURRENT := COMFYUI_PATH=$(CURDIR)/.comfyui-current/ComfyUI
setup-current:
	bash scripts/setup_env.sh current

# The whole suite, what CI runs (.ci/run): pytest and the browser test on the pinned ComfyUI 0.3.75,
# then both on the current upstream 0.33.0 (~33 min on 2 cores). Each part is a target of its own.
test: test-pinned e2e test-current e2e-current

test-pinned: setup
	$(PY) -m ruff check .
	$(PY) -m pytest --ignore=tests/browser/test_browser.py $(PYTEST_ARGS)

# Browser test: every workflows/*.json dropped on the real ComfyUI frontend in headless Chromium.
# Installs Debian's chromium (apt, when missing and root) and Playwright's Python package (its
# bundled driver only: never `playwright install`). `make test-pinned` skips tests/browser/test_browser.py
# while either is missing (and leaves it to this target).
CHROMIUM ?= /usr/bin/chromium
PLAYWRIGHT_VERSION ?= 1.65.2
chromium:
	@if [ ! -x "$(CHROMIUM)" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; \
	  else \
	    echo "e2e: no $(CHROMIUM); install Debian's chromium (apt-get install chromium) as root" >&2; exit 1; \
	  fi; \
	fi

e2e: setup chromium
	@$(PY) -c "import playwright.sync_api" 2>/dev/null || $(PY) -m pip install -q playwright==$(PLAYWRIGHT_VERSION)
	P2P_CHROMIUM=$(CHROMIUM) $(PY) -m pytest tests/browser/test_browser.py $(PYTEST_ARGS)

# `make test-pinned` and `make e2e` on ComfyUI 0.33.0 (its own frontend, comfyui-frontend-package 1.49.6).
test-current: setup-current
	$(PY_CURRENT) -m ruff check .
	$(CURRENT) $(PY_CURRENT) -m pytest --ignore=tests/browser/test_browser.py $(PYTEST_ARGS)

e2e-current: setup-current chromium
	@$(PY_CURRENT) -c "import playwright.sync_api" 2>/dev/null || $(PY_CURRENT) -m pip install -q playwright==$(PLAYWRIGHT_VERSION)
	$(CURRENT) P2P_CHROMIUM=$(CHROMIUM) $(PY_CURRENT) -m pytest tests/browser/test_browser.py $(PYTEST_ARGS)

demo: setup
	$(PY) scripts/demo.py

demo-ui: setup
	$(PY) scripts/demo.py --ui

# NULL_TEXT_ARGS=--skip leaves out null-text's own run (bench_null_text.py: its goals, ~10 min of CPU);
# FLOW_ARGS=--skip the flow-model inversion's (bench_flow_inversion.py, ~1 min; FLOW_ARGS=--wide adds full width)
bench: setup
	$(PY) benchmarks/run.py $(BENCH_ARGS)
	$(if $(filter --skip,$(NULL_TEXT_ARGS)),,$(PY) benchmarks/bench_null_text.py $(NULL_TEXT_ARGS))
	$(if $(filter --skip,$(FLOW_ARGS)),,$(PY) benchmarks/bench_flow_inversion.py $(FLOW_ARGS))

lint: setup
	$(PY) -m ruff check .

# The MM-DiT demo model (a tiny Flux.1-schnell architecture, models/demo/p2p_demo_flux_tiny.safetensors):
# one command, fixed seeds, one CPU thread (training/train_dit_demo.py; TRAIN_DIT_ARGS for its options).
.PHONY: train-demo-dit
train-demo-dit: setup
	OMP_NUM_THREADS=1 $(PY) training/train_dit_demo.py --fresh $(TRAIN_DIT_ARGS)
