# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Each creates .venv when missing and installs the project into it (idempotent: the install
# re-runs only when pyproject.toml changes).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.simple-net-installed
OUT    ?= out

.PHONY: demo test lint bench mutation clean

# bash with pipefail: an install piped through the filter below still fails when pip fails.
SHELL       := /bin/bash
.SHELLFLAGS := -o pipefail -c

# pip's warning for each package a configured local index lacks ("Location 'file:///...' is
# ignored: it is neither a file nor a directory": some machines' pip.conf lists a local mirror
# holding only some packages); harmless, one line per package, so kept off the screen. Every
# other line pip prints still shows.
PIP_NOISE := is ignored: it is neither a file nor a directory\.$$

$(PY):
	$(PYTHON) -m venv $(VENV)

# The editable install runs the checkout's own reference/ and oracle/ (the flat layout is
# deliberate). setuptools' build backend says so in a boxed "Editable installation" warning on
# every install (a caution about folders named like the packages: that is the point here), which
# the filter below keeps off the screen; every other warning still shows.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip 2>&1 | { grep -v "$(PIP_NOISE)" || true; }
	PYTHONWARNINGS="ignore:Editable install:UserWarning" $(PY) -m pip install --quiet -e ".[dev]" \
		2>&1 | { grep -v "$(PIP_NOISE)" || true; }
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) -m oracle.demo --out $(OUT)

# Tests run on every core (pytest-xdist; WORKERS=0 for one process): on 2 cores the whole
# suite takes ~60 s instead of ~90 s from a cold start.
WORKERS ?= auto

test: $(STAMP)
	$(PY) -m ruff check .
	HYPOTHESIS_PROFILE=ci $(PY) -m pytest -p no:cacheprovider -n $(WORKERS)

lint: $(STAMP)
	$(PY) -m ruff check .

# Speed and memory against JAX and torch (when installed), in one process; writes
# benchmarks/results.md. Not part of `make test`: timings are reported, never asserted.
bench: $(STAMP)
	$(PY) -m benchmarks.run

# Mutation testing of reference/ (mutmut; configured in pyproject.toml [tool.mutmut]), in two
# passes: the numerical core against the property suite, then the rest of reference/ against the
# example-based tests, from mutants/rest/ with the `rest_*` keys as its configuration. Slow (tens
# of minutes), so not part of `make test`. Results stay in mutants/ and mutants/rest/mutants/:
# `$(PY) -m mutmut browse`, run in mutants/ or mutants/rest/, shows each survivor.
# MUTMUT_ARGS is passed to both runs, e.g. MUTMUT_ARGS="--max-children 1" on a shared machine.
mutation: $(STAMP)
	$(PY) -m pip install --quiet -e ".[mutation]" 2>&1 | { grep -v "$(PIP_NOISE)" || true; }
	HYPOTHESIS_PROFILE=mutation $(PY) -m mutmut run $(MUTMUT_ARGS)
	$(PY) -m mutmut results
	mkdir -p mutants/rest
	rm -rf mutants/rest/reference mutants/rest/tests
	cp -a reference tests mutants/rest/
	$(PY) -c 'import json, re, tomllib; text = open("pyproject.toml").read(); \
	conf = tomllib.loads(text)["tool"]["mutmut"]; \
	conf = {**conf, **{k[5:]: v for k, v in conf.items() if k.startswith("rest_")}}; \
	body = "".join(f"{k} = {json.dumps(v)}\n" for k, v in conf.items() if k[:5] != "rest_"); \
	text = re.sub(r"(?ms)^\[tool\.mutmut\]\n.*?(?=^\[|\Z)", lambda m: "[tool.mutmut]\n" + body, text); \
	open("mutants/rest/pyproject.toml", "w").write(text)'
	cd mutants/rest && $(abspath $(PY)) -m mutmut run $(MUTMUT_ARGS)
	cd mutants/rest && $(abspath $(PY)) -m mutmut results

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache .hypothesis *.egg-info
