# Two commands set everything up on a fresh Linux machine with Python 3.11:
#   make demo   -> creates .venv, installs mfmdp, runs the full demo pipeline
#   make test   -> creates .venv, installs mfmdp with all extras, runs the test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# torch first and pinned: on the project machines 2.13.0 resolves to a CPU build already on disk;
# an unpinned torch (pulled in by transformers/peft) would download several GB of CUDA packages.
TORCH  ?= torch==2.13.0

.PHONY: demo test install install-dev clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q "$(TORCH)"
	$(PIP) install -q -e ".[llm,distributed,dev]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/mfmdp demo --out demo-out

test: install
	$(PY) -m pytest tests

clean:
	rm -rf $(VENV) demo-out
