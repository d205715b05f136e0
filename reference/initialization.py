"""Weight initialisation schemes, all drawn from a seeded ``numpy.random.Generator``.

``glorot`` (default): W ~ U(-a, a), a = sqrt(6 / (n_in + n_out)), bias row 0.
``he``: W ~ N(0, 2 / n_in), bias row 0 (for relu-like layers).
``uniform``: every entry, bias included, ~ U[-0.5, 0.5), as the original program did.

The same seed gives bit-for-bit the same weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["INITIALIZERS", "init_weights"]

INITIALIZERS = ("glorot", "he", "uniform")


def init_weights(sizes: Sequence[int], scheme: str, rng: np.random.Generator) -> list[np.ndarray]:
    """Return ``[W_0, ..., W_{L-1}]`` with ``W_k`` of shape ``(sizes[k] + 1, sizes[k+1])``."""
    if scheme not in INITIALIZERS:
        raise ValueError(f"unknown init {scheme!r}; expected one of: {', '.join(INITIALIZERS)}")
    try:
        return [_init_one(n_in, n_out, scheme, rng) for n_in, n_out in zip(sizes[:-1], sizes[1:])]
    except MemoryError:
        need = 8 * sum((n + 1) * m for n, m in zip(sizes[:-1], sizes[1:]))
        raise MemoryError(f"not enough memory for the weights of layer_sizes {list(sizes)}: "
                          f"they take {need / 2**30:.3g} GiB") from None


def _init_one(n_in: int, n_out: int, scheme: str, rng: np.random.Generator) -> np.ndarray:
    w = np.zeros((n_in + 1, n_out))
    if scheme == "glorot":
        a = np.sqrt(6.0 / (n_in + n_out))
        w[:-1] = rng.uniform(-a, a, size=(n_in, n_out))
    elif scheme == "he":
        w[:-1] = rng.normal(0.0, np.sqrt(2.0 / n_in), size=(n_in, n_out))
    else:
        w[:] = rng.uniform(-0.5, 0.5, size=(n_in + 1, n_out))
    return w
