"""``reference`` is numpy only: importing it (any of its modules) loads no JAX."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Each check runs in a fresh interpreter, so modules this test session imported cannot mask it.
JAX_LOADED = "any(m == 'jax' or m.startswith(('jax.', 'jaxlib')) for m in sys.modules)"


def run(code):
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize(
    "imports",
    [
        "import reference",
        "import reference.datasets, reference.serialization, reference.training, "
        "reference.initialization, reference.validation, reference.array_namespace",
    ],
)
def test_importing_reference_loads_no_jax(imports):
    result = run(f"import sys; {imports}; assert not {JAX_LOADED}, "
                 "sorted(m for m in sys.modules if m.startswith('jax'))")
    assert result.returncode == 0, result.stderr


def test_using_reference_loads_no_jax():
    code = (
        "import sys, tempfile, os, numpy as np; from reference import Network; "
        "net = Network([2, 3, 2], ['tanh', 'softmax'], 'cross_entropy'); "
        "x = np.ones((4, 2)); t = np.array([0, 1, 0, 1]); "
        "net.gradients(x, t); net.fit(x, t, epochs=2); "
        "p = os.path.join(tempfile.mkdtemp(), 'n.npz'); net.save(p); Network.load(p); "
        f"assert not {JAX_LOADED}"
    )
    result = run(code)
    assert result.returncode == 0, result.stderr


def test_the_isolation_check_does_see_jax_when_it_is_imported():
    # Proves the check above can fail: the same expression is true once jax is imported.
    pytest.importorskip("jax")
    result = run(f"import sys, jax; assert {JAX_LOADED}")
    assert result.returncode == 0, result.stderr
