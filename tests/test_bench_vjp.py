"""Smoke test of the bench section "Checking users' own layers" (``benchmarks/vjp_checks.py``):
each checker's verdicts on two zoo layers whose verdicts are known by construction."""

import time
from types import SimpleNamespace

import pytest

pytest.importorskip("jax")
pytest.importorskip("torch")

from benchmarks.vjp_checks import CHECKERS, check_layer  # noqa: E402
from property_tests.layer_zoo import LAYERS  # noqa: E402


def _once(fns):
    """A stand-in for ``ctx.time``: one call each."""
    out = {}
    for name, fn in fns.items():
        t0 = time.perf_counter()
        fn()
        out[name] = SimpleNamespace(median=time.perf_counter() - t0)
    return out


def test_affine_every_checker_passes_the_right_backward_and_catches_the_bug():
    res = check_layer(LAYERS["affine"], CHECKERS, time_fn=_once)
    assert res.right == {"oracle": "OK", "gradcheck": "pass", "check_grads": "pass"}
    assert res.buggy == {"oracle": "FAIL b", "gradcheck": "FAIL", "check_grads": "FAIL"}
    assert all(res.passed.values()) and all(res.caught.values())
    assert res.named_bug
    assert res.judged_by == "JAX direct"  # affine is written with operators only
    assert set(res.warm) == set(CHECKERS) and all(t > 0 for t in res.warm.values())


def test_relu_at_its_kink_the_peers_falsely_fail_the_right_backward():
    # relu_inputs puts every fourth entry exactly at 0; the right backward takes the
    # subgradient 0 there. A central difference sees 1/2: gradcheck (per entry, h = 1e-6) and
    # check_grads (one fixed random direction, seeded) both fail it, deterministically.
    res = check_layer(LAYERS["relu"], CHECKERS)
    assert res.right["oracle"] == "OK (kink)"
    assert res.passed == {"oracle": True, "gradcheck": False, "check_grads": False}
    assert res.buggy["oracle"] == "FAIL x" and res.named_bug
    assert res.caught == {"oracle": True, "gradcheck": True, "check_grads": True}
