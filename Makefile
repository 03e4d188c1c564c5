# pbrl set-up and everyday commands. `make demo` and `make test` are the two commands in the README.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
# The VLM reward needs open_clip -> torchvision, whose PyPI wheels only import beside PyPI's (CUDA) torch
# build; that environment lives apart from the CPU-torch one (it runs on the CPU as well).
VLM_VENV ?= .venv-vlm
VLM_BIN  := $(VLM_VENV)/bin
# hydra-ray-launcher pins cloudpickle<3 (for its AWS launcher) and boto3 pins python-dateutil<3: both older than
# the main environment's, so the Ray launcher gets its own environment too.
RAY_VENV ?= .venv-ray
RAY_BIN  := $(RAY_VENV)/bin
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages for headless MuJoCo rendering (EGL from Mesa, OSMesa as fallback).
SYSPKGS := libegl1 libgl1 libgl1-mesa-dri libosmesa6
# Debian packages the test suite needs on top: chromium for the viewer's browser tests (driven by Playwright).
TEST_SYSPKGS := chromium
# Wait (seconds) for another apt/dpkg process (unattended-upgrades, a second `make`) instead of failing at once:
# dpkg's lock through apt's own timeout; `apt-get update`'s lists lock has none (apt 2.6), so apt-update retries.
APT_LOCK_WAIT ?= 600
APT     := $(SUDO) apt-get -o DPkg::Lock::Timeout=$(APT_LOCK_WAIT)
# The suites run on pytest-xdist workers, one per CPU core and at most 4 (each holds torch, JAX and MuJoCo:
# ~1 GB); PYTEST_WORKERS= (empty) runs them in one process.
PYTEST_WORKERS ?= -n auto --maxprocesses=4

.PHONY: setup setup-vlm setup-ray setup-imitation system-deps apt-update demo test test-main test-vlm test-ray test-slow bench clean

system-deps:
	@missing=""; for p in $(SYSPKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing system packages:$$missing"; \
	  $(MAKE) --no-print-directory apt-update && DEBIAN_FRONTEND=noninteractive $(APT) install -y -qq $$missing; fi

apt-update:  ## apt-get update, waiting up to APT_LOCK_WAIT s while another process holds apt's lists lock
	@waited=0; while ! out=$$($(APT) update -qq 2>&1); do \
	  if ! echo "$$out" | grep -q "lock"; then echo "$$out" >&2; exit 1; fi; \
	  if [ $$waited -ge $(APT_LOCK_WAIT) ]; then echo "$$out" >&2; echo "apt is still locked after $$waited s" >&2; exit 1; fi; \
	  echo "apt is locked by another process; waiting ($$waited s)"; sleep 5; waited=$$((waited + 5)); done

# $(call pbrl-venv,DIR,TORCH PACKAGES,EXTRAS): a virtualenv with torch first (the CPU wheel must come before
# the rest, or pip pulls a CUDA build), then pbrl editable with EXTRAS (a comma-separated list).
define pbrl-venv
	$(MAKE) system-deps
	[ -x $(1)/bin/python ] || $(PY) -m venv $(1)
	$(1)/bin/pip install -q --upgrade pip
	$(1)/bin/pip install -q $(2)
	$(1)/bin/pip install -q -e '.[$(3)]'
	touch $(1)/bin/.pbrl-installed
endef
comma := ,

$(BIN)/.pbrl-installed: pyproject.toml setup.py
	$(call pbrl-venv,$(VENV),torch==2.13.0,dev)

setup: $(BIN)/.pbrl-installed

$(VLM_BIN)/.pbrl-installed: pyproject.toml setup.py   # torch 2.14.1 + torchvision 0.29.1: a matching PyPI pair
	$(call pbrl-venv,$(VLM_VENV),torch==2.14.1 torchvision==0.29.1,vlm$(comma)dev)

setup-vlm: $(VLM_BIN)/.pbrl-installed   ## the environment for reward.vlm / feedback=vlm (open_clip)

$(RAY_BIN)/.pbrl-installed: pyproject.toml setup.py
	$(call pbrl-venv,$(RAY_VENV),torch==2.13.0,ray$(comma)dev)

setup-ray: $(RAY_BIN)/.pbrl-installed   ## the environment for hydra/launcher=ray (hydra-ray-launcher + Ray)

# imitation 1.0.1 (the reference in bench/headline.py --cell prefppo and bench/reward_learning.py) pins
# gymnasium 0.29 and SB3 2.2: its own environment, with Hydra to sweep bench/imitation_pc.py.
.venv-imitation/bin/.installed:
	[ -x .venv-imitation/bin/python ] || $(PY) -m venv .venv-imitation
	.venv-imitation/bin/pip install -q --upgrade pip
	.venv-imitation/bin/pip install -q torch==2.13.0 imitation==1.0.1 'numpy<2' mujoco==3.3.0 \
	    'gymnasium[mujoco]~=0.29.1' hydra-core==1.3.8 hydra-joblib-launcher==1.2.0 \
	    'setuptools<81' 'datasets>=2.8,<3' 'pyarrow<20'   # sacred needs pkg_resources; pyarrow>=20 needs numpy 2
	touch $@

setup-imitation: .venv-imitation/bin/.installed

demo: setup          ## install everything, then the default short training run
	$(BIN)/pbrl train

test: test-main test-vlm test-ray   ## install everything, then the default (fast) test suite in both environments

test-main: setup
	$(MAKE) system-deps SYSPKGS="$(TEST_SYSPKGS)"
	PBRL_SYSTEM_DEPS=1 $(BIN)/python -m pytest -q $(PYTEST_WORKERS)

test-vlm: setup-vlm  ## the VLM tests again, with the real open_clip (tiny random model, no download)
	$(VLM_BIN)/python -m pytest -q tests/rewards/test_vlm_reward.py

test-ray: setup-ray  ## the sweep test through a local Ray head (`ray start --head`), in .venv-ray
	$(RAY_BIN)/python -m pytest -q -m 'slow or not slow' tests/run/test_sweep_ray.py

test-slow: setup     ## slow integration runs (minutes)
	$(MAKE) system-deps SYSPKGS="$(TEST_SYSPKGS)"
	PBRL_SYSTEM_DEPS=1 $(BIN)/python -m pytest -q -m slow $(PYTEST_WORKERS)

clean:
	rm -rf $(VENV) $(VLM_VENV) $(RAY_VENV) .venv-imitation build *.egg-info
