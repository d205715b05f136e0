"""``Network``: a configurable multilayer network with a hand-derived backward pass.

Readable rather than clever: the math is in ``layer.py`` (one layer) and ``passes.py`` (all
layers); this class holds the configuration and the weights, validates what users hand it, and
guarantees that a failed call changes nothing.

Conventions (docs/derivation.md has the full derivation):

- ``weights[k]`` has shape ``(n_k + 1, n_{k+1})``; its **last row is the bias** (eq 1-2).
- Batch first: ``X`` is ``(B, *in_shape)``, flattened per sample to ``(B, n0)``.
- The loss is the mean over the batch (``losses.py`` states each per-sample form).
- Everything is float64.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import numpy as np

from .activations import Activation, resolve_activations
from .errors import DivergenceError
from .initialization import init_weights
from .losses import Loss, get_loss
from .passes import Trace, backward_pass, forward_pass, loss_from_trace
from .validation import (
    check_inputs,
    check_layer_sizes,
    check_learning_rate,
    check_targets,
    check_weights,
)

__all__ = ["Network"]


class Network:
    """A dense feed-forward network ``n0 -> n1 -> ... -> nL``.

    Args:
        layer_sizes: ``[n0, n1, ..., nL]``, positive ints, at least two.
        activations: L names (see ``reference.ACTIVATIONS``) or ``Activation`` objects.
        loss: ``"mse"``, ``"cross_entropy"`` (needs a softmax output),
            ``"binary_cross_entropy"`` (needs a sigmoid output), or a ``Loss``.
        seed: seed of the ``numpy.random.Generator`` that draws the initial weights.
        init: ``"glorot"`` (default), ``"he"`` or ``"uniform"`` (the original U[-0.5, 0.5)).

    Raises:
        ValueError, TypeError: with a message naming what was expected and what was given.
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        activations: Sequence[str | Activation],
        loss: str | Loss = "mse",
        *,
        seed: int | None = 0,
        init: str = "glorot",
    ) -> None:
        sizes = check_layer_sizes(layer_sizes)
        acts = resolve_activations(activations, len(sizes) - 1)
        loss_fn = get_loss(loss)
        required = loss_fn.output_activation
        if required is not None and not (acts[-1].builtin and acts[-1].name == required):
            raise ValueError(
                f"loss {loss_fn.name!r} needs the last activation to be {required!r}, "
                f"got {acts[-1].name!r}"
            )
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0
        ):
            raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
        self.layer_sizes: list[int] = sizes
        self.activations: list[Activation] = acts
        self.loss_function: Loss = loss_fn
        self.seed = None if seed is None else int(seed)
        self.init = init
        self._weights = init_weights(sizes, init, np.random.default_rng(self.seed))

    # --- state --------------------------------------------------------------------------

    @property
    def weights(self) -> list[np.ndarray]:
        """``L`` float64 arrays; ``weights[k].shape == (n_k + 1, n_{k+1})``, bias last row."""
        return self._weights

    @weights.setter
    def weights(self, new: Sequence[np.ndarray]) -> None:
        self._weights = [w.copy() for w in check_weights(new, self.layer_sizes)]

    @property
    def n_layers(self) -> int:
        return len(self.layer_sizes) - 1

    def __repr__(self) -> str:
        acts = [a.name for a in self.activations]
        return f"Network({self.layer_sizes}, activations={acts}, loss={self.loss_function.name!r})"

    def _checked_weights(self) -> list[np.ndarray]:
        # Cheap guard for weights edited in place by the user: shapes, and finiteness via one
        # sum per array (a NaN or Inf anywhere makes the sum non-finite).
        for k, w in enumerate(self._weights):
            expected = (self.layer_sizes[k] + 1, self.layer_sizes[k + 1])
            if not isinstance(w, np.ndarray) or w.shape != expected or w.dtype != np.float64:
                check_weights(self._weights, self.layer_sizes)  # raises with the details
            if not np.isfinite(np.sum(w)):
                check_weights(self._weights, self.layer_sizes)
        return self._weights

    def _inputs(self, x: object) -> np.ndarray:
        return check_inputs(x, self.layer_sizes[0])

    def _targets(self, t: object, batch: int) -> np.ndarray:
        return check_targets(t, self.loss_function, batch, self.layer_sizes[-1])

    # --- the public passes --------------------------------------------------------------

    def forward(self, X: np.ndarray) -> np.ndarray:
        """Return ``Y (B, nL)`` for ``X (B, *in_shape)`` (eq 4-6 through every layer)."""
        x = self._inputs(X)
        return forward_pass(self._checked_weights(), x, self.activations).ys[-1]

    def loss(self, X: np.ndarray, T: np.ndarray) -> float:
        """Return the loss E (mean over the batch) for inputs X and targets T (eq 7)."""
        x = self._inputs(X)
        t = self._targets(T, x.shape[0])
        trace = forward_pass(self._checked_weights(), x, self.activations)
        return float(loss_from_trace(trace, t, self.loss_function))

    def trace(self, X: np.ndarray, T: np.ndarray, *, need_input_grad: bool = True) -> Trace:
        """Run forward and backward and return every intermediate term (see ``Trace``)."""
        x = self._inputs(X)
        t = self._targets(T, x.shape[0])
        return self._trace(x, t, need_input_grad=need_input_grad)

    def _trace(self, x: np.ndarray, t: np.ndarray, *, need_input_grad: bool) -> Trace:
        weights = self._checked_weights()
        trace = forward_pass(weights, x, self.activations)
        trace.loss = float(loss_from_trace(trace, t, self.loss_function))
        return backward_pass(
            weights, trace, t, self.activations, self.loss_function,
            need_input_grad=need_input_grad,
        )

    def gradients(
        self, X: np.ndarray, T: np.ndarray
    ) -> tuple[float, list[np.ndarray], np.ndarray]:
        """Return ``(E, dW, dX)``: the loss, ``dE/dW`` shaped like ``weights``, ``dE/dX`` like X."""
        trace = self.trace(X, T, need_input_grad=True)
        dx = trace.dxs[0].reshape(np.shape(X))
        return trace.loss, trace.dws, dx

    def step(self, X: np.ndarray, T: np.ndarray, lr: float) -> float:
        """One SGD step ``W <- W - lr dE/dW`` (eq 10) on every layer; returns E before the step.

        Raises:
            DivergenceError: the loss, a gradient or an updated weight is not finite; the
                weights are left as they were.
        """
        lr = check_learning_rate(lr)
        x = self._inputs(X)
        return self._step(x, self._targets(T, x.shape[0]), lr)

    def _step(self, x: np.ndarray, t: np.ndarray, lr: float) -> float:
        # dE/dX of the input is not needed for an update, so it is not computed.
        trace = self._trace(x, t, need_input_grad=False)
        if not np.isfinite(trace.loss):
            raise DivergenceError(f"the loss is {trace.loss}; weights left unchanged")
        updated = []
        for k, (w, dw) in enumerate(zip(self._weights, trace.dws)):
            new = w - lr * dw  # eq 10
            if not np.isfinite(np.sum(new)):
                raise DivergenceError(
                    f"the update of weights[{k}] is not finite (lr={lr}); weights left unchanged"
                )
            updated.append(new)
        for w, new in zip(self._weights, updated):  # commit only once every layer is finite
            w[...] = new
        return trace.loss

    # --- training and files -------------------------------------------------------------

    def fit(
        self,
        X: np.ndarray,
        T: np.ndarray,
        *,
        epochs: int = 1,
        lr: float = 0.1,
        batch_size: int | None = None,
        seed: int | None = None,
        shuffle: bool = True,
        callback: Callable[[int, float], None] | None = None,
    ) -> list[float]:
        """Train with mini-batch SGD; return the mean loss of each epoch. See ``training.fit``."""
        from .training import fit

        return fit(
            self, X, T, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
            shuffle=shuffle, callback=callback,
        )

    def save(self, path: str | os.PathLike) -> None:
        """Write the network to ``path`` (.npz arrays + JSON config, no pickle)."""
        from .serialization import save_network

        save_network(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Network:
        """Read a network written by ``save``; refuses malformed or tampered files."""
        from .serialization import load_network

        return load_network(path)
