"""``oracle.snapshots``: a recorded derivation, compared later, names the input that drifted and
by how much, with nothing but the hand-derived backward (no JAX, no finite differences).

Truth from construction: each drift below is planted (one input's gradient scaled by
1 + 1e-7, a changed forward, other inputs), and so is the absence of drift (the same code, or a
change of a few ulps). Comparing needs no JAX: shown in fresh interpreters where importing JAX
fails.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("jax")

from oracle import check_vjp  # noqa: E402
from oracle.snapshots import (  # noqa: E402
    RTOL,
    UPDATE_ENV,
    SnapshotMismatch,
    compare_snapshot,
    fingerprints,
    read_snapshot,
)
from oracle.testing import assert_snapshot  # noqa: E402


def affine(x, w, b):
    return x @ w + b


def affine_backward(dout, x, w, b):
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)


def scaled(which: int, factor: float):
    """affine_backward with gradient number ``which`` multiplied by ``factor``."""
    def backward(dout, x, w, b):
        grads = list(affine_backward(dout, x, w, b))
        grads[which] = grads[which] * factor
        return tuple(grads)
    return backward


@pytest.fixture
def point():
    rng = np.random.default_rng(0)
    return rng.normal(size=(4, 3)), rng.normal(size=(3, 5)), rng.normal(size=5)


@pytest.fixture
def recorded(tmp_path, point):
    path = tmp_path / "affine.json"
    result = compare_snapshot(path, affine, affine_backward, point, update=True)
    assert result.status == "recorded" and path.exists()
    return path


def test_a_snapshot_is_a_small_text_file_with_the_verdict(recorded):
    text = recorded.read_text(encoding="utf-8")
    assert len(text) < 2000 and len(text.splitlines()) < 25
    data = read_snapshot(recorded)
    assert data["verdict"].startswith("OK") and data["verdict"].endswith(
        "[judged by JAX and finite differences]")  # check_vjp's headline when recorded
    assert data["inputs"] == {"x": "float64 (4, 3)", "w": "float64 (3, 5)", "b": "float64 (5,)"}
    assert data["rtol"] == RTOL and data["pairs"] == 3
    assert set(data["gradients"]) == {"x", "w", "b"}
    assert data["forward_function"].endswith("test_snapshots.affine")


def test_the_same_backward_matches_its_snapshot(recorded, point):
    result = compare_snapshot(recorded, affine, affine_backward, point)
    assert result.ok and result.status == "match" and not result.drifts
    assert str(result).startswith("OK: the gradients match their snapshot")


def test_a_change_of_1e_7_relative_in_one_inputs_gradient_is_named_with_its_size(recorded,
                                                                                point):
    result = compare_snapshot(recorded, affine, scaled(1, 1 + 1e-7), point)
    assert not result.ok and result.status == "drift"
    moved = result.drifted()
    assert list(moved) == ["w"]  # only w: x and b are unchanged, and so is the forward
    assert moved["w"] == pytest.approx(1e-7, rel=1e-3)
    assert result.headline.startswith("SNAPSHOT DRIFT: w drifted by 1.0e-07 relative")
    assert "the forward is unchanged, so the hand-derived backward changed" in str(result)


def test_a_change_of_a_few_ulps_is_rounding_not_drift(recorded, point):
    eps = np.finfo(float).eps
    assert compare_snapshot(recorded, affine, scaled(0, 1 + 4 * eps), point).ok


def test_a_change_in_one_entry_is_caught_too(recorded, point):
    def one_entry(dout, x, w, b):
        dx, dw, db = affine_backward(dout, x, w, b)
        dx[2, 1] *= 1 + 1e-5  # a rel. change of ~1e-6 of dx's norm, in one entry
        return dx, dw, db

    result = compare_snapshot(recorded, affine, one_entry, point)
    assert list(result.drifted()) == ["x"]


def test_a_changed_forward_is_told_apart_from_a_changed_backward(recorded, point):
    def affine_shifted(x, w, b):
        return x @ w + b + 1e-3

    result = compare_snapshot(recorded, affine_shifted, affine_backward, point)
    assert list(result.drifted()) == ["forward"]
    assert result.headline.startswith("SNAPSHOT DRIFT: the forward changed")
    assert "the forward's output changed too" in str(result)


def test_other_inputs_are_not_compared_against_the_snapshot(recorded, point):
    x, w, b = point
    other = compare_snapshot(recorded, affine, affine_backward, (x + 1.0, w, b))
    assert other.status == "changed" and "SHA-256 differs" in other.detail
    shape = compare_snapshot(recorded, affine, affine_backward, (x[:2], w, b))
    assert shape.status == "changed" and "not those recorded" in shape.detail


def test_a_missing_snapshot_fails_and_says_how_to_record_it(tmp_path, point):
    result = compare_snapshot(tmp_path / "none.json", affine, affine_backward, point)
    assert result.status == "missing" and not result.ok
    assert "--gradcheck-update-snapshots" in str(result)
    assert not (tmp_path / "none.json").exists()  # never recorded silently


def test_the_environment_variable_records_on_purpose(tmp_path, point, monkeypatch):
    monkeypatch.setenv(UPDATE_ENV, "1")
    path = tmp_path / "env.json"
    assert compare_snapshot(path, affine, affine_backward, point).status == "recorded"
    monkeypatch.setenv(UPDATE_ENV, "0")
    assert compare_snapshot(path, affine, scaled(2, 2.0), point).status == "drift"


def test_a_gradient_the_oracle_calls_wrong_is_not_recorded(tmp_path, point):
    path = tmp_path / "wrong.json"
    result = compare_snapshot(path, affine, scaled(2, 0.25), point, update=True)
    assert result.status == "refused" and not path.exists()
    assert result.verdict.startswith("FAIL: db")


def test_assert_snapshot_raises_an_assertion_naming_the_drift(recorded, point):
    assert assert_snapshot(recorded, affine, affine_backward, point).ok
    with pytest.raises(SnapshotMismatch) as caught:
        assert_snapshot(recorded, affine, scaled(1, 1 + 1e-7), point)
    assert isinstance(caught.value, AssertionError)
    assert str(caught.value).startswith("SNAPSHOT DRIFT: w drifted by 1.0e-07 relative")


def test_a_file_that_is_not_a_snapshot_is_refused(tmp_path, point):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"format": 99}), encoding="utf-8")
    with pytest.raises(ValueError, match="not a gradient snapshot"):
        compare_snapshot(path, affine, affine_backward, point)


def test_fingerprints_come_from_the_backward_alone(point):
    # The fingerprints are <u, backward(c)>: computed here by hand from the same draws.
    prints = fingerprints(affine, affine_backward, point, pairs=2, seed=4)
    changed = fingerprints(affine, scaled(0, 3.0), point, pairs=2, seed=4)
    assert changed["gradients"]["x"]["norms"] == pytest.approx(
        [3 * n for n in prints["gradients"]["x"]["norms"]])
    assert changed["gradients"]["w"] == prints["gradients"]["w"]


# --- where JAX cannot trace and finite differences are weak -------------------------------------


def float32_tanh_layer(x, w):
    """tanh(x @ w), computed entry by entry through float32 and Python's math: JAX cannot trace
    it, and its float32 rounding leaves finite differences a resolution of ~1e-2."""
    out = np.empty((x.shape[0], w.shape[1]))
    for i in range(x.shape[0]):
        for j in range(w.shape[1]):
            out[i, j] = math.tanh(float(np.float32(x[i] @ w[:, j])))
    return out


def float32_tanh_layer_backward(dout, x, w):
    dv = dout * (1 - np.tanh(x @ w) ** 2)
    return dv @ w.T, x.T @ dv


def float32_tanh_layer_regressed(dout, x, w):
    dx, dw = float32_tanh_layer_backward(dout, x, w)
    return dx, dw * (1 + 1e-7)


def test_a_regression_is_caught_where_jax_cannot_trace_and_finite_differences_are_weak(tmp_path):
    rng = np.random.default_rng(0)
    point = (rng.normal(size=(4, 3)), rng.normal(size=(3, 2)))
    # The premise: the oracle itself cannot tell the regressed backward from the right one
    # here (no JAX; finite differences resolve ~1e-2 of a forward rounded through float32).
    before = check_vjp(float32_tanh_layer, float32_tanh_layer_backward, point)
    after = check_vjp(float32_tanh_layer, float32_tanh_layer_regressed, point)
    assert "JAX could not trace forward" in before.headline
    assert before.ok and after.ok and after.count("FAIL") == 0
    # ... the snapshot can.
    path = tmp_path / "float32_tanh.json"
    compare_snapshot(path, float32_tanh_layer, float32_tanh_layer_backward, point, update=True)
    assert "JAX could not trace forward" in read_snapshot(path)["verdict"]
    result = compare_snapshot(path, float32_tanh_layer, float32_tanh_layer_regressed, point)
    assert list(result.drifted()) == ["w"]
    assert result.drifted()["w"] == pytest.approx(1e-7, rel=1e-3)


# --- comparing without JAX ----------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
NO_JAX = "import sys; sys.modules['jax'] = None  # as if JAX were not installed\n"
"""``import jax`` then raises ModuleNotFoundError, as in a CI job without JAX."""
PACKAGE_SHELL = (
    "import types; from pathlib import Path\n"
    "shell = types.ModuleType('oracle'); shell.__path__ = [str(Path('oracle').resolve())]\n"
    "sys.modules['oracle'] = shell  # the package without its __init__, which loads JAX\n")
COMPARE = """
import numpy as np
from oracle.snapshots import compare_snapshot
from oracle.testing import assert_snapshot

def affine(x, w, b):
    return x @ w + b

def affine_backward(dout, x, w, b):
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)

def regressed(dout, x, w, b):
    dx, dw, db = affine_backward(dout, x, w, b)
    return dx, dw * (1 + 1e-7), db

rng = np.random.default_rng(0)
point = rng.normal(size=(4, 3)), rng.normal(size=(3, 5)), rng.normal(size=5)
assert_snapshot(PATH, affine, affine_backward, point)
result = compare_snapshot(PATH, affine, regressed, point)
assert list(result.drifted()) == ["w"], result
assert sys.modules["jax"] is None and not any(m.startswith("jax.") for m in sys.modules)
print("compared without JAX")
"""


def run_without_jax(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_the_comparison_itself_needs_no_jax(recorded):
    # oracle.snapshots and oracle.testing load without JAX once the package's __init__ does
    # not load it (the shell below stands in for it): no module they import needs JAX.
    code = NO_JAX + PACKAGE_SHELL + f"PATH = {str(recorded)!r}\n" + COMPARE
    done = run_without_jax(code, ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "compared without JAX"


def test_the_block_does_keep_jax_out():
    # The premise of the tests here: with the block, importing JAX fails.
    done = run_without_jax(NO_JAX + "import jax", ROOT)
    assert done.returncode == 1 and "ModuleNotFoundError" in done.stderr


def test_the_pytest_plugin_imports_without_jax():
    done = run_without_jax(NO_JAX + "import simple_net_gradcheck\n"
                           "assert 'oracle' not in sys.modules", ROOT)
    assert done.returncode == 0, done.stderr


def test_a_snapshot_is_compared_where_jax_is_not_installed(recorded):
    done = run_without_jax(NO_JAX + f"PATH = {str(recorded)!r}\n" + COMPARE, ROOT)
    assert done.returncode == 0, done.stderr


SNAPSHOT_TEST = '''
import numpy as np


def affine(x, w, b):
    return x @ w + b


def affine_backward(dout, x, w, b):
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)


def test_affine_snapshot(gradcheck):
    rng = np.random.default_rng(0)
    point = rng.normal(size=(4, 3)), rng.normal(size=(3, 5)), rng.normal(size=5)
    gradcheck.snapshot("affine", affine, affine_backward, point)
'''


def test_pytest_with_the_plugin_compares_a_snapshot_where_jax_is_not_installed(recorded,
                                                                              tmp_path):
    (tmp_path / "gradient_snapshots").mkdir()
    (tmp_path / "gradient_snapshots" / "affine.json").write_text(
        recorded.read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "test_snap.py").write_text(SNAPSHOT_TEST, encoding="utf-8")
    code = NO_JAX + ("import pytest\n"
                     "sys.exit(pytest.main(['-p', 'simple_net_gradcheck', '-p', "
                     "'no:cacheprovider', '-q', 'test_snap.py']))")
    done = run_without_jax(code, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 snapshot compared, 0 drifted" in done.stdout
