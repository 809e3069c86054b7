# sovstack: the two commands a newcomer needs are `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TOOLS_VENV ?= .venv-tools
STAMP := $(VENV)/.installed
# sovstack/ links components/, infra/ and policies/: lint them once, through their own folders.
PY_SOURCES := sovstack/__init__.py components infra policies tests benchmarks toolchain

.PHONY: demo test lint typecheck unit bench golden constraints tools promtool e2e-tools e2e clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# Re-pin every package to what the venv holds now (after changing pyproject.toml and testing).
constraints: $(STAMP)
	{ sed -n '/^#/p' constraints.txt; $(BIN)/pip freeze --all --exclude-editable | grep -v '^sovstack\|^pip==' | LC_ALL=C sort -f; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

# checkov pins old dependencies that clash with ours: it lives in a venv of its own.
$(TOOLS_VENV)/bin/checkov:
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install --quiet 'checkov==3.3.30'

# promtool for the alerting-rule tests (tests/components/test_observability.py), built from its Go module
# into the tool cache (about 12 minutes the first time, seconds after); tests never build it themselves.
promtool: $(STAMP)
	$(BIN)/python -m toolchain.build promtool

tools: $(TOOLS_VENV)/bin/checkov promtool

# The end-to-end suite's tools (Pulumi CLI, Kubernetes provider, etcd, kube-apiserver, controller
# manager, kubectl), built from their Go modules into ~/.cache/sovstack/e2e-tools (tens of minutes the
# first time on two cores; kept per pinned version, so later runs take seconds). See docs/testing.md.
e2e-tools: $(STAMP)
	$(BIN)/python -m toolchain.build

# The real Pulumi engine against a loopback Kubernetes API server: tests/e2e.
e2e: e2e-tools
	$(BIN)/pytest -q -m e2e tests/e2e

demo: $(STAMP)
	$(BIN)/sovstack validate industrial-eu
	$(BIN)/sovstack render industrial-eu --out build/demo/industrial-eu --demo --repo-root . \
	  --repo-url https://git.example.invalid/platform/sovstack.git   # offline: no remote needed
	@echo "Rendered manifests, Argo CD applications and the residency report are in build/demo/industrial-eu"

lint: $(STAMP)
	$(BIN)/ruff check $(PY_SOURCES)
	$(BIN)/ruff format --check $(PY_SOURCES)

typecheck: $(STAMP)
	$(BIN)/mypy sovstack

unit: $(STAMP) tools
	SOVSTACK_CHECKOV=$(abspath $(TOOLS_VENV))/bin/checkov $(BIN)/pytest -q

test: lint typecheck unit

# Refresh the committed render snapshots after an intended change; review the diff like code.
golden: $(STAMP)
	SOVSTACK_UPDATE_GOLDEN=1 $(BIN)/pytest -q tests/infra/test_golden.py

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
