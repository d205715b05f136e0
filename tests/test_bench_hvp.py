"""Smoke test of the bench section "Second derivatives" (``benchmarks/hvp_checks.py``): each
checker's verdicts on the issue's dense-layer double backward, whose verdicts are known by
construction (``property_tests/test_second_order_zoo.py`` proves them against JAX)."""

import pytest

pytest.importorskip("jax")
pytest.importorskip("torch")

from benchmarks.hvp_checks import CHECKERS, check_entry, entries  # noqa: E402


def test_dense_tanh_every_checker_passes_the_right_double_backward_and_catches_the_bug():
    res = check_entry(entries()["dense_tanh"], CHECKERS)
    assert res.right == {"oracle": "OK", "gradgradcheck": "pass", "check_grads": "pass"}
    assert res.buggy == {"oracle": "FAIL x", "gradgradcheck": "FAIL", "check_grads": "FAIL"}
    assert res.judged_by == "JAX + FD" and res.visible
    assert all(res.caught(c) for c in CHECKERS)
    assert set(res.first) == set(CHECKERS) and all(t > 0 for t in res.first.values())


def test_dense_relu_the_dropped_term_is_no_bug_and_no_checker_calls_it_one():
    res = check_entry(entries()["dense_relu"], CHECKERS)
    assert not res.visible
    assert res.right == res.buggy == {"oracle": "OK", "gradgradcheck": "pass",
                                      "check_grads": "pass"}
    assert all(res.caught(c) for c in CHECKERS)  # caught = passed, for the invisible bug
