"""``check_vjp`` on the layer zoo: every right backward passes, every planted bug is caught and
located to its input and entries.

Truth is by construction: ``layer_zoo`` plants one bug per layer, and ``test_layer_zoo.py``
proves each right backward against JAX and each bug different from it. Where a bug is, is
computed here from the two backwards themselves (the entries where they differ), never from
the oracle. The inputs are drawn with seed 0 and the oracle's cotangent with its default seed 0:
the oracle mixes its seed with a constant, so the two never coincide (they did once, and a
batchnorm's cotangent affine in x hid nothing but made dx cancel to rounding).
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jax")

from oracle import check_vjp  # noqa: E402
from oracle.arguments import Arguments, Output, cotangent_for, hand_gradients  # noqa: E402
from oracle.vjp_check import COTANGENT_STREAM  # noqa: E402

from .layer_zoo import LAYERS  # noqa: E402

# Entries where the buggy backward departs from the right one by more than this (relative to
# the largest entry of that gradient) count as planted; float64 round-off of two different
# formulas of the same value stays below ~1e-13, and every planted bug moves an entry by more
# than 1e-6 (test_layer_zoo.py).
PLANTED = 1e-10


def _inputs(layer):
    return layer.make_inputs(np.random.default_rng(0))


def _planted(layer) -> dict[str, np.ndarray]:
    """Per input, the entries where the buggy backward differs from the right one, with the
    cotangent ``check_vjp`` draws by default (seed 0)."""
    inputs = _inputs(layer)
    args = Arguments.of(layer.forward, inputs)
    output = Output.of(args.call(layer.forward))
    _, handed, _ = cotangent_for(output, None, np.random.default_rng((COTANGENT_STREAM, 0)))
    right = hand_gradients(args, args.call(layer.backward, handed))
    _, handed, _ = cotangent_for(output, None, np.random.default_rng((COTANGENT_STREAM, 0)))
    buggy = hand_gradients(args, args.call(layer.buggy, handed))
    out = {}
    for i, r in right.items():
        r, b = np.asarray(r, dtype=np.float64), np.asarray(buggy[i], dtype=np.float64)
        scale = max(float(np.max(np.abs(r), initial=0.0)), 1e-300)
        out[args.names[i]] = np.abs(b - r) > PLANTED * scale
    return out


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_every_right_zoo_backward_passes(name):
    layer = LAYERS[name]
    report = check_vjp(layer.forward, layer.backward, _inputs(layer))
    assert report.ok, str(report)
    assert report.count("doubt") == 0, str(report)
    assert all(r.sources == ("jax", "fd") for r in report.rows), str(report)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_every_planted_zoo_bug_is_caught_at_its_input_and_entries(name):
    layer = LAYERS[name]
    planted = _planted(layer)
    report = check_vjp(layer.forward, layer.buggy, _inputs(layer))
    assert not report.ok, str(report)
    first = report.first_failure
    assert first.input == layer.bug_input, str(report)
    for row in report.rows:
        wrong = row.mask if row.mask is not None else np.zeros(0, bool)
        # Every entry called wrong is a planted one (no false alarm beside the bug) ...
        assert not np.any(wrong & ~planted[row.input]), (row.input, str(report))
        # ... and the worst reported entry is one of them, in the input's own shape.
        if row.status == "FAIL":
            assert len(row.index) == planted[row.input].ndim
            assert planted[row.input][row.index], (row.input, row.index, str(report))
    assert np.any(report.row(layer.bug_input).mask), str(report)


@pytest.mark.parametrize("name", ["conv2d_naive", "relu", "softmax_cross_entropy", "lstm_step"])
def test_zoo_verdicts_hold_by_finite_differences_alone(name):
    layer = LAYERS[name]
    right = check_vjp(layer.forward, layer.backward, _inputs(layer), jax=False)
    assert right.ok, str(right)
    # Without JAX, finite differences confirm neither a kink (they cannot tell one at x from one
    # a hair beside it) nor a slope of exactly 0 (a stencil flat to round-off says only that
    # the slope is below f's rounding): relu's entries at and below 0 stay in doubt, the rest
    # pass.
    for row in right.rows:
        expected = 0
        if layer.kinks and row.input == "x":
            expected = int(np.sum(np.asarray(_inputs(layer)[0]) <= 0))
        assert row.doubts == expected, str(right)
    assert "finite differences alone" in right.headline
    buggy = check_vjp(layer.forward, layer.buggy, _inputs(layer), jax=False)
    assert not buggy.ok and buggy.first_failure.input == layer.bug_input, str(buggy)
