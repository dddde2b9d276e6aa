# oddsuite — two commands: `make demo` and `make test`. Both set up .venv with plain pip.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PYOPENGL_PLATFORM ?= egl
export YOLO_OFFLINE := 1

.PHONY: setup test test-all demo bench clean sysdeps testdeps

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

# The default run leaves out the long real runs marked `slow` (minutes each on 2 cores);
# `make test-all` runs them too.
test: setup testdeps
	$(PY) -m pytest -q -m "not slow"

test-all: setup testdeps
	$(PY) -m pytest -q

demo: setup
	$(VENV)/bin/oddsuite demo --out demo

bench: setup
	for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf demo suites results .pytest_cache
