# oddsuite — two commands: `make demo` and `make test`. Both set up .venv with plain pip.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PYOPENGL_PLATFORM ?= egl
export YOLO_OFFLINE := 1

CYCLES_VENV := .venv-cycles
CYCLES_STAMP := $(CYCLES_VENV)/.installed
CYCLES_PYTHON ?= python3.11
BPY := bpy==5.0.1

.PHONY: setup test test-all demo bench clean sysdeps testdeps cycles-venv

# System GL libraries for offscreen EGL rendering (Mesa llvmpipe on the CPU).
sysdeps:
	@if ! ldconfig -p | grep -q 'libEGL.so.1' || ! ls /usr/lib/*/dri/swrast_dri.so >/dev/null 2>&1; then \
	  echo "installing EGL/Mesa system libraries"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri libgles2 libglu1-mesa >/dev/null; \
	fi

# Headless Chromium, with which the tests open the HTML report (Debian's package).
testdeps:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  echo "installing chromium (headless report check)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; \
	fi

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory sysdeps
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# The Cycles engine: Blender as a Python module (bpy, ~820 MB) in a venv of its own, because
# bpy 5.0 is built for Python 3.11 and NumPy 1.x while oddsuite runs on NumPy 2. oddsuite
# starts it as a worker process (ODDSUITE_CYCLES_PYTHON overrides where it is found).
$(CYCLES_STAMP):
	$(CYCLES_PYTHON) -m venv $(CYCLES_VENV)
	$(CYCLES_VENV)/bin/python -m pip install -q --upgrade pip
	$(CYCLES_VENV)/bin/python -m pip install -q '$(BPY)'
	touch $(CYCLES_STAMP)

cycles-venv: $(CYCLES_STAMP)

# The default run leaves out the long real runs marked `slow` (minutes each on 2 cores);
# `make test-all` runs them too. Both install the Cycles venv, so the engine's tests run.
test: setup testdeps cycles-venv
	$(PY) -m pytest -q -m "not slow"

test-all: setup testdeps cycles-venv
	$(PY) -m pytest -q

demo: setup
	$(VENV)/bin/oddsuite demo --out demo

# benchmarks/engine_gap.py (two suites and two evaluations, about half an hour on 2 CPU
# cores) is run by hand: see the README
bench: setup cycles-venv
	for b in $$(ls benchmarks/*.py | grep -v engine_gap); do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf demo suites results .pytest_cache
