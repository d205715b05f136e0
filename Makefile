# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Each creates .venv when missing and installs the project into it (idempotent: the install
# re-runs only when pyproject.toml changes).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.simple-net-installed
OUT    ?= out

.PHONY: demo test lint bench mutation clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) -m oracle.demo --out $(OUT)

test: $(STAMP)
	$(PY) -m ruff check .
	HYPOTHESIS_PROFILE=ci $(PY) -m pytest -p no:cacheprovider

lint: $(STAMP)
	$(PY) -m ruff check .

# Speed and memory against JAX and torch (when installed), in one process; writes
# benchmarks/results.md. Not part of `make test`: timings are reported, never asserted.
bench: $(STAMP)
	$(PY) -m benchmarks.run

# Mutation testing of reference/ against the property suite (mutmut; configured in
# pyproject.toml [tool.mutmut]). Slow (tens of minutes), so not part of `make test`.
# Results stay in mutants/: `$(PY) -m mutmut browse` shows each survivor.
mutation: $(STAMP)
	$(PY) -m pip install --quiet -e ".[mutation]"
	HYPOTHESIS_PROFILE=mutation $(PY) -m mutmut run
	$(PY) -m mutmut results

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .hypothesis *.egg-info
