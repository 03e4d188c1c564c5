# pbrl set-up and everyday commands. `make demo` and `make test` are the two commands in the README.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages for headless MuJoCo rendering (EGL from Mesa, OSMesa as fallback).
SYSPKGS := libegl1 libgl1 libgl1-mesa-dri libosmesa6
# Debian packages the test suite needs on top: chromium for the viewer's browser tests (driven by Playwright).
TEST_SYSPKGS := chromium

.PHONY: setup system-deps demo test test-slow bench clean

system-deps:
	@missing=""; for p in $(SYSPKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing system packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; fi

$(BIN)/.pbrl-installed: pyproject.toml setup.py
	$(MAKE) system-deps
	[ -x $(BIN)/python ] || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0          # CPU wheel; must come before the rest
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

setup: $(BIN)/.pbrl-installed

demo: setup          ## install everything, then the default short training run
	$(BIN)/pbrl train

test: setup          ## install everything, then the default (fast) test suite
	$(MAKE) system-deps SYSPKGS="$(TEST_SYSPKGS)"
	$(BIN)/python -m pytest -q

test-slow: setup     ## slow integration runs (minutes)
	$(MAKE) system-deps SYSPKGS="$(TEST_SYSPKGS)"
	$(BIN)/python -m pytest -q -m slow

clean:
	rm -rf $(VENV) build *.egg-info
