"""Built-in data sets, made in numpy (nothing is downloaded).

``patterns_3x3``: the original program's demo data, 18 hand-made 3x3 binary images (rows,
columns, diagonals, corners and a few shapes) for a 9-9-9 autoencoder.
``two_spirals``: two interleaved spirals in the plane, a classic 2-D classification task.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PATTERN_NAMES", "patterns_3x3", "two_spirals"]

_PATTERNS = {
    "top row": "111 000 000",
    "middle row": "000 111 000",
    "bottom row": "000 000 111",
    "left column": "100 100 100",
    "middle column": "010 010 010",
    "right column": "001 001 001",
    "diagonal": "100 010 001",
    "anti-diagonal": "001 010 100",
    "top-left corner": "100 000 000",
    "top-right corner": "001 000 000",
    "bottom-left corner": "000 000 100",
    "bottom-right corner": "000 000 001",
    "centre": "000 010 000",
    "plus": "010 111 010",
    "four corners": "101 000 101",
    "frame": "111 101 111",
    "checker": "101 010 101",
    "inverse checker": "010 101 010",
}

PATTERN_NAMES: tuple[str, ...] = tuple(_PATTERNS)


def patterns_3x3() -> np.ndarray:
    """Return the 18 patterns as a float64 array of shape ``(18, 3, 3)`` with values 0 and 1."""
    rows = [[[float(c) for c in row] for row in spec.split()] for spec in _PATTERNS.values()]
    return np.array(rows)


def two_spirals(
    n_per_class: int = 200, *, turns: float = 1.5, noise: float = 0.05, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(X (2n, 2), labels (2n,) int)``: two interleaved spirals, class 0 and 1.

    Raises:
        TypeError, ValueError: an argument of the wrong kind or out of range, named.
    """
    if isinstance(n_per_class, bool) or not isinstance(n_per_class, (int, np.integer)) or (
            n_per_class < 1):
        raise ValueError(f"n_per_class must be a positive int, got {n_per_class!r:.60}")
    for name, value, least in (("turns", turns, 0.0), ("noise", noise, 0.0)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer,
                                                             np.floating)):
            raise TypeError(f"{name} must be a number, got {type(value).__name__}")
        if not (np.isfinite(value) and value >= least):
            raise ValueError(f"{name} must be a finite number >= {least}, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r:.60}")
    rng = np.random.default_rng(seed)
    r = np.linspace(0.15, 1.0, n_per_class)
    theta = r * turns * 2 * np.pi
    xs, labels = [], []
    for c in (0, 1):
        angle = theta + c * np.pi
        pts = np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1)
        xs.append(pts + noise * rng.normal(size=pts.shape))
        labels.append(np.full(n_per_class, c))
    return np.concatenate(xs), np.concatenate(labels)
