"""The three benchmark configurations of ``/work/shared/anchors.md`` and their data.

Every contender gets the same parameters and inputs: the reference network's initial weights
(seeded) and the same X, T (seeded).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reference import Network

__all__ = ["PROBLEMS", "Problem"]


@dataclass(frozen=True)
class Problem:
    """One configuration: ``sizes = [n0, ..., nL]``, ``batch`` samples, activations and loss."""

    name: str
    sizes: tuple[int, ...]
    batch: int
    activations: tuple[str, ...]
    loss: str

    @property
    def n_params(self) -> int:
        return sum((n + 1) * m for n, m in zip(self.sizes[:-1], self.sizes[1:]))

    def describe(self) -> str:
        acts = ", ".join(dict.fromkeys(self.activations))
        return f"{list(self.sizes)}, batch {self.batch}, {acts}, {self.loss}, P = {self.n_params:,}"

    def network(self, seed: int = 0) -> Network:
        return Network(list(self.sizes), list(self.activations), self.loss, seed=seed)

    def data(self, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``X (B, n0)`` standard normal and targets ``T (B, nL)`` valid for the loss."""
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((self.batch, self.sizes[0]))
        n_out = self.sizes[-1]
        if self.loss == "cross_entropy":
            t = np.eye(n_out)[rng.integers(0, n_out, self.batch)]  # one-hot rows
        elif self.loss == "binary_cross_entropy":
            t = rng.uniform(size=(self.batch, n_out))
        else:
            t = rng.standard_normal((self.batch, n_out))
        return x, t


PROBLEMS: tuple[Problem, ...] = (
    Problem("tiny", (4, 8, 3), 1, ("tanh", "tanh"), "mse"),
    Problem("small", (64, 32, 10), 32, ("sigmoid", "sigmoid"), "mse"),
    Problem("mnist", (784, 256, 128, 10), 64, ("relu", "relu", "softmax"), "cross_entropy"),
)
