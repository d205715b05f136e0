"""Shared fixtures of the example-based tests of ``reference``."""

from contextlib import contextmanager

import numpy as np
import pytest


@contextmanager
def _unchanged(net):
    """Snapshot ``net``'s weights (copies) and assert them bit-identical when the block exits.

    Used around a call that must fail: ``with unchanged(net), pytest.raises(...): net.step(...)``.
    Bytes are compared, so -0.0 vs 0.0 or a NaN appearing would also be caught.
    """
    before = [(w.shape, w.dtype, w.tobytes()) for w in net.weights]
    yield
    after = [(w.shape, w.dtype, w.tobytes()) for w in net.weights]
    assert len(after) == len(before), "the number of weight arrays changed"
    for k, (b, a) in enumerate(zip(before, after)):
        assert a == b, f"weights[{k}] changed during a call that failed"


@pytest.fixture
def unchanged():
    """The ``_unchanged`` context manager: a failed call must leave the weights as they were."""
    return _unchanged


@pytest.fixture
def rng():
    """A fixed-seed generator, so every random test input is the same on every run."""
    return np.random.default_rng(20240601)
