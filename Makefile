# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
TK     := $(VENV)/bin/tunekeeper

.PHONY: setup demo test bench lint clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,operator,dev]"
	touch $@

setup: $(VENV)/.installed

# The main job from nothing: validate, plan, train and deploy the Clippy example on the embedded
# emulator (state in .tunekeeper/), then ask the deployment a question.
demo: setup
	$(TK) validate manifests/examples/clippy
	$(TK) plan manifests/examples/clippy
	$(TK) apply manifests/examples/clippy --wait
	$(TK) status manifests/examples/clippy
	$(TK) chat clippy "What is the capital of France?" manifests/examples/clippy

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) bench/run.py

lint: setup
	$(VENV)/bin/ruff check controller tests bench
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) .tunekeeper
