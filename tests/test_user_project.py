"""``examples/user_project``: a user's own test suite with the assertion helpers, the pytest
plugin, the layer strategies and a snapshot, run by pytest as the user runs it.

Each run is a fresh ``python -m pytest`` on a copy of the project in a temporary folder (so no
cache, snapshot or Hypothesis file lands in the repository). The plugin is named with ``-p``:
installed, pytest loads it by its entry point anyway, and ``-p`` also covers a checkout whose
install predates it. Its one deliberately broken layer (``sigmoid_backward``: act' at the
output) must fail with the output asserted below; everything else must pass, with
``--gradcheck-strict`` too. Then the plugin's own promises, on small suites written here whose
outcomes are known by construction: its summary line counts each test as its outcome reads it,
``--gradcheck-no-strict`` overrides the ini file, and Hypothesis' explanation of a gradient
check's failure keeps the user's lines only.
"""

import doctest
import os
import re
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

pytest.importorskip("jax")
pytest.importorskip("hypothesis")

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ROOT / "examples" / "user_project"
PLUGIN = "simple_net_gradcheck"

EXPECTED_FAILURE = "\n".join([
    "    def test_sigmoid_backward():",
    "        # Fails on purpose (see my_layers.sigmoid_backward).",
    "        x = np.linspace(-2.0, 2.0, 8).reshape(2, 4)",
    ">       assert_vjp(L.sigmoid_forward, L.sigmoid_backward, (x,))",
    "E       oracle.testing.GradientCheckError: FAIL: dx (total): dx wrong [0, 0] (8 of 8 "
    "entries wrong) (got -0.0744017, expected -0.0313579; ...) [judged by JAX and finite "
    "differences]",
    "E       vjp check:",
    "E         layer  term  scope  sources  status  max abs err  max rel err  tolerance  kinks  "
    "worst entry",
    "E         -----  ...",
    "E         -      dx    total  jax+fd   FAIL    ...    [0,0] got -0.0744017 exp -0.0313579",
    "...",
    "E       Reproduce without the test suite:",
    "E       " + "-" * 72,
    "E       # Run where `my_layers` can be imported (your project's root, or its tests' folder).",
    "E       import numpy as np",
    "E",
    "E       from oracle import check_vjp",
    "E       from my_layers import sigmoid_forward, sigmoid_backward",
    "E",
    "E       inputs = (np.array([[-2.0, -1.4285714285714286, ..., 2.0]]),)",
    "E       print(check_vjp(sigmoid_forward, sigmoid_backward, inputs))",
    "E       " + "-" * 72,
    "",
    "test_my_layers.py:67: GradientCheckError",
    "",
])
"""What pytest prints for the broken layer (``...`` where only the oracle's numbers and notes
stand)."""


def pytest_in(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m pytest`` in ``folder`` with the plugin, as a user's CI runs it."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "HYPOTHESIS_", "COV_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["COLUMNS"] = "120"
    return subprocess.run([sys.executable, "-m", "pytest", "-p", PLUGIN, "-p", "no:cacheprovider",
                           *args], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.fixture
def project(tmp_path) -> Path:
    copy = tmp_path / "user_project"
    shutil.copytree(PROJECT, copy, ignore=shutil.ignore_patterns("__pycache__", ".hypothesis"))
    return copy


def failure_section(output: str, test: str) -> str:
    """The body of ``test``'s section in pytest's FAILURES block."""
    match = re.search(rf"^_+ {test} _+\n(?:\[gw\d+\] [^\n]*\n)?\n(.*?)"
                      r"(?=^_+ \w+ _+$|^gradcheck: |^-+ generated |^=+ )", output, re.M | re.S)
    assert match, output
    return match.group(1)


def test_the_user_project_passes_all_but_its_broken_layer_whose_failure_pytest_shows_whole(
        project):
    done = pytest_in(project, "-n", "2")  # as a CI runs it: the counts travel from 2 workers
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert "2 workers [7 items]" in out, out
    assert re.search(r"^=+ 1 failed, 6 passed in ", out, re.M), out
    assert "FAILED test_my_layers.py::test_sigmoid_backward - oracle.testing.GradientCheckError:" \
        " FAIL: dx (total)" in out
    got = failure_section(out, "test_sigmoid_backward")
    checker = doctest.OutputChecker()
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    assert checker.check_output(EXPECTED_FAILURE, got, flags), (
        checker.output_difference(doctest.Example("", EXPECTED_FAILURE), got, flags))
    assert "oracle/testing.py" not in out  # the helper's own frames are hidden
    summary = re.search(r"^gradcheck: (\d+) checks in 7 tests, 1 failed, .*; "
                        r"1 snapshot compared, 0 drifted$", out, re.M)
    assert summary and int(summary.group(1)) > 7, out


DOUBT_TEST = '''
import numpy as np
from oracle.testing import assert_gradient
from reference.array_namespace import namespace_of

NOISE = np.random.default_rng(1)


def noisy_sine_sum(x):
    """Evaluation noise of 1e-5: finite differences cannot confirm anything: doubt."""
    xp = namespace_of(x)
    return xp.sum(xp.sin(x)) + 1e-5 * NOISE.normal()


def test_doubt():
    assert_gradient(noisy_sine_sum, np.cos, np.linspace(-1, 1, 5))
'''


def test_strict_mode_junit_and_a_drifted_snapshot(project):
    # The dense layer's dw regresses by 1e-7 relative (its assert_vjp tests would catch that
    # too, against JAX; they are left out here); a right gradient is put in doubt.
    layers = project / "my_layers.py"
    layers.write_text(layers.read_text(encoding="utf-8").replace(
        "return dout @ w.T, x.T @ dout, dout.sum(axis=0)",
        "return dout @ w.T, (x.T @ dout) * (1 + 1e-7), dout.sum(axis=0)"), encoding="utf-8")
    (project / "test_doubt.py").write_text(DOUBT_TEST, encoding="utf-8")
    done = pytest_in(project, "--gradcheck-strict", "--junitxml", "out.xml",
                     "-k", "test_dense_backward_matches_its_snapshot or test_doubt")
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert re.search(r"^=+ 2 failed, 6 deselected in ", out, re.M), out
    drift = failure_section(out, "test_dense_backward_matches_its_snapshot")
    assert ("E       oracle.snapshots.SnapshotMismatch: SNAPSHOT DRIFT: w drifted by 1.0e-07 "
            "relative") in drift
    assert "the forward is unchanged, so the hand-derived backward changed" in drift
    assert "E       oracle.testing.GradientCheckError: FAIL (strict):" in failure_section(
        out, "test_doubt")
    assert re.search(r"^gradcheck: 1 check in 2 tests, 1 failed, 1 row in doubt \(failed: "
                     r"--gradcheck-strict\), 0 kink entries; 1 snapshot compared, 1 drifted$",
                     out, re.M), out
    properties = {case.get("name"): prop.get("value")
                  for case in ET.parse(project / "out.xml").getroot().iter("testcase")
                  for prop in case.iter("property") if prop.get("name") == "gradcheck"}
    assert '"doubtful": 1' in properties["test_doubt"] and '"failed": 1' in properties[
        "test_doubt"]


def test_the_plugin_is_registered_as_an_entry_point_that_imports_no_jax():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert config["project"]["entry-points"]["pytest11"] == {PLUGIN: PLUGIN}
    assert PLUGIN in config["tool"]["setuptools"]["py-modules"]
    code = (f"import sys; import {PLUGIN}; "
            "assert not any(m == 'jax' or m.startswith('jax.') for m in sys.modules); "
            "assert 'oracle' not in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_strict_mode_fails_only_the_broken_layer_and_finds_no_doubt(project):
    # The relu and max-pair properties draw entries exactly on their kinks and ties or well
    # clear of them (spread=0.05, plant=True), so nothing is left in doubt for strict to fail.
    done = pytest_in(project, "--gradcheck-strict")
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    assert re.search(r"^=+ 1 failed, 6 passed in ", out, re.M), out
    assert re.findall(r"^FAILED (\S+)", out, re.M) == ["test_my_layers.py::test_sigmoid_backward"]
    summary = re.search(r"^gradcheck: \d+ checks in 7 tests, 1 failed, 0 rows in doubt, "
                        r"(\d+) kink entries; 1 snapshot compared, 0 drifted$", out, re.M)
    assert summary and int(summary.group(1)) > 0, out  # the kinks were there, and passed


COUNTS_TEST = '''
import numpy as np
import pytest
from hypothesis import given, settings

import my_layers as L
from oracle.strategies import layer_inputs
from oracle.testing import GradientCheckError, assert_snapshot, assert_vjp


def dense_bias_averaged(dout, x, w, b):
    """The classic: wrong exactly when the batch has 2 or more samples."""
    dx, dw, db = L.dense_backward(dout, x, w, b)
    return dx, dw, db / len(x)


POINT = (np.ones((2, 1)), np.ones((1, 1)), np.ones(1))
DENSE = {"x": ("B", "n"), "w": ("n", "m"), "b": ("m",)}


@settings(max_examples=30, deadline=None, database=None, derandomize=True)
@given(layer_inputs(DENSE, sizes={"B": (1, 3)}))
def test_a_property_that_fails(inputs):
    assert_vjp(L.dense_forward, dense_bias_averaged, inputs)


def test_a_failure_the_test_expects():
    with pytest.raises(GradientCheckError):
        assert_vjp(L.dense_forward, dense_bias_averaged, POINT)


@pytest.mark.xfail(raises=GradientCheckError, strict=True)
def test_a_known_bug():
    assert_vjp(L.dense_forward, dense_bias_averaged, POINT)


def test_a_missing_snapshot(tmp_path):
    assert_snapshot(tmp_path / "none.json", L.dense_forward, L.dense_backward, POINT)


def test_a_right_gradient():
    assert_vjp(L.dense_forward, L.dense_backward, POINT)
'''


def test_the_summary_line_counts_each_test_as_its_outcome_reads_it(project):
    # By construction: the property fails from B = 2 on, so Hypothesis' search and shrinking
    # make many failing checks, but the test reports one minimal example: 1 check, 1 failed.
    # Two failures are caught by their own tests (pytest.raises, xfail): expected, not failed.
    # The snapshot was never recorded: missing, not drifted. The right gradient: 1 check.
    (project / "test_counts.py").write_text(COUNTS_TEST, encoding="utf-8")
    done = pytest_in(project, "test_counts.py")
    out = done.stdout
    assert re.search(r"^=+ 2 failed, 2 passed, 1 xfailed in ", out, re.M), out + done.stderr
    assert ("gradcheck: 4 checks in 5 tests, 1 failed, 0 rows in doubt, 0 kink entries; "
            "1 snapshot compared, 0 drifted, 1 missing; 2 more failed inside passing tests, "
            "as those tests expected") in out.splitlines(), out


EXPLAIN_TEST = '''
from hypothesis import Phase, Verbosity, given, settings

import my_layers as L
from oracle.strategies import layer_inputs
from oracle.testing import assert_vjp

DENSE = {"x": ("B", "n"), "w": ("n", "m"), "b": ("m",)}


def dense_bias_averaged_when_batched(dout, x, w, b):
    dx, dw, db = L.dense_backward(dout, x, w, b)
    if len(x) > 1:
        db = db / len(x)  # LINE ONLY FAILING EXAMPLES RUN
    return dx, dw, db


# The explain phase on (the project's profile has it off), and every line listed: Hypothesis
# shows five, local files first by path, and the oracle here is a local checkout whose path
# may sort before the test's (an installed oracle sorts after, with the libraries).
EXPLAIN = settings(max_examples=30, deadline=None, database=None, derandomize=True,
                   phases=tuple(Phase), verbosity=Verbosity.verbose)


@EXPLAIN
@given(layer_inputs(DENSE, sizes={"B": (1, 3)}))
def test_explained(inputs):
    assert_vjp(L.dense_forward, dense_bias_averaged_when_batched, inputs)


@EXPLAIN
@given(layer_inputs(DENSE, sizes={"B": (1, 3)}))
def test_nothing_of_yours_to_explain(inputs):
    assert_vjp(L.dense_forward, dense_bias_averaged_when_batched.__wrapped__, inputs)


def _averaged(dout, x, w, b):
    dx, dw, db = L.dense_backward(dout, x, w, b)
    return dx, dw, db / len(x)


dense_bias_averaged_when_batched.__wrapped__ = _averaged
'''


def test_hypothesis_explanation_of_a_gradient_failure_keeps_only_the_users_lines(project):
    # Hypothesis' explain phase (on by default) lists the lines only failing examples ran. B = 1
    # passes and B >= 2 fails: in the first test the user's `if` body is such a line; in both,
    # so is the oracle's whole failure path (building its report), which says nothing about
    # the user's code. The plugin keeps the first and drops the second.
    text = EXPLAIN_TEST
    marker = next(i for i, line in enumerate(text.splitlines(), 1)
                  if "LINE ONLY FAILING EXAMPLES RUN" in line)
    (project / "test_explain.py").write_text(text, encoding="utf-8")
    done = pytest_in(project, "test_explain.py")
    out = done.stdout
    assert re.search(r"^=+ 2 failed in ", out, re.M), out + done.stderr
    explained = failure_section(out, "test_explained")
    assert "Explanation:" in explained, explained
    listed = re.findall(r"^E +(/\S+|\S+\.py):(\d+)$", explained, re.M)
    assert listed == [(str(project / "test_explain.py"), str(marker))], explained
    assert "Explanation:" not in failure_section(out, "test_nothing_of_yours_to_explain")
    assert "/oracle/" not in out


DOUBT_INI = """
[tool.pytest.ini_options]
gradcheck_strict = true
"""


def test_no_strict_on_the_command_line_overrides_the_ini_file(project):
    (project / "test_doubt.py").write_text(DOUBT_TEST, encoding="utf-8")
    (project / "pyproject.toml").write_text(DOUBT_INI, encoding="utf-8")
    strict = pytest_in(project, "test_doubt.py")
    assert strict.returncode == 1 and "FAIL (strict)" in strict.stdout, strict.stdout
    relaxed = pytest_in(project, "test_doubt.py", "--gradcheck-no-strict")
    assert relaxed.returncode == 0, relaxed.stdout + relaxed.stderr
    assert ("gradcheck: 1 check in 1 test, 0 failed, 1 row in doubt (passed; "
            "--gradcheck-strict fails them), 0 kink entries") in relaxed.stdout.splitlines()
    again = pytest_in(project, "test_doubt.py", "--gradcheck-no-strict", "--gradcheck-strict")
    assert again.returncode == 1, again.stdout  # the last flag wins
