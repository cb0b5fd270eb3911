# brainmri: the two commands a newcomer runs (see README.md).
#   make demo   set up a virtualenv and run the main job (synthetic data, ~1-2 min on CPU)
#   make test   set up the same virtualenv and run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Where torch's CPU build comes from. Empty: the configured package index (here it serves the CPU
# build). On plain PyPI, torch==2.13.0 for Linux is the CUDA build: make setup TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=

.PHONY: setup demo test test-all bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned (a looser spec pulls a newer multi-GB CUDA build); TORCH_INDEX above picks the CPU build elsewhere
	$(BIN)/pip install -q torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/brainmri demo --out demo_out

test: setup
	$(BIN)/python -m pytest -q

test-all: setup
	$(BIN)/python -m pytest -q -m "slow or not slow"

clean:
	rm -rf demo_out runs .pytest_cache
