"""``Network``: a configurable multilayer network with a hand-derived backward pass.

Readable rather than clever: the math is in ``layer.py`` (one layer) and ``passes.py`` (all
layers); this class holds the configuration and the weights, validates what users hand it
(``validation.py``) and calls the passes. Its guarantees, each kept in one place:

- Every entry point checks X, T and the weights (which users may edit in place) before it
  computes anything, and names a NaN or Inf by its array and index (``_inputs``, ``_targets``,
  ``_checked_weights``). A refused call changes nothing.
- ``step`` computes every layer's new weights before it writes any (``_step``): a non-finite loss
  or new weight raises ``DivergenceError`` and the weights keep their last finite values.
- Nothing overflows or warns for inputs of +-1000: the activations and losses are stable forms.

``step`` and ``gradients`` write their intermediate terms (V, the inner layers' dE/dX, and the
step's new weights) into buffers kept between calls (``workspace.py``): fresh arrays of the
mnist size cost page faults that doubled the time of a call.

Conventions (docs/derivation.md has the full derivation):

- ``weights[k]`` has shape ``(n_k + 1, n_{k+1})``; its **last row is the bias** (eq 1-2).
- Batch first: ``X`` is ``(B, *in_shape)``, flattened per sample to ``(B, n0)``.
- The loss is the mean over the batch (``losses.py`` states each per-sample form).
- Everything is float64.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence

import numpy as np

from .activations import Activation, resolve_activations
from .errors import DivergenceError
from .initialization import init_weights
from .layer import weight_grad
from .losses import Loss, get_loss
from .passes import Trace, backward_pass, backward_sweep, forward_pass, loss_from_trace
from .second_order import hessian_vector_product
from .validation import (
    check_layer_sizes,
    check_learning_rate,
    check_network_inputs,
    check_seed,
    check_targets,
    check_weights,
    check_weights_in_place,
)
from .workspace import WorkspaceCache

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

    def __init__(self, layer_sizes: Sequence[int], activations: Sequence[str | Activation],
                 loss: str | Loss = "mse", *, seed: int | None = 0, init: str = "glorot") -> None:
        sizes = check_layer_sizes(layer_sizes)
        acts = resolve_activations(activations, len(sizes) - 1)
        loss_fn = get_loss(loss)
        required = loss_fn.output_activation
        if required is not None and not (acts[-1].builtin and acts[-1].name == required):
            raise ValueError(
                f"loss {loss_fn.name!r} needs the last activation to be {required!r}, "
                f"got {'' if acts[-1].builtin else 'your own '}{acts[-1].name!r}"
            )
        self.layer_sizes: list[int] = sizes
        self._built_sizes = tuple(sizes)  # to tell an in-place edit of layer_sizes (validation)
        self.activations: list[Activation] = acts
        self.loss_function: Loss = loss_fn
        self.seed = check_seed(seed)
        self.init = init
        self._weights = init_weights(sizes, init, np.random.default_rng(self.seed))
        self._work = WorkspaceCache()  # the step's buffers, one set per batch size

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

    # --- validation: every entry point calls these before it computes anything -------------

    def _inputs(self, x: object) -> np.ndarray:
        """X as float64 ``(B, n0)``, or the error (edited sizes, activations, loss: first)."""
        return check_network_inputs(self, x)

    def _targets(self, t: object, batch: int) -> np.ndarray:
        """T as float64 ``(B, nL)`` rows valid for the loss, or the error."""
        return check_targets(t, self.loss_function, batch, self.layer_sizes[-1])

    def _checked_weights(self, *, writable: bool = False) -> list[np.ndarray]:
        """The weights, checked again (users may edit ``net.weights`` in place); with
        ``writable`` (the step updates them in place), a read-only array is refused too."""
        check_weights_in_place(self._weights, self.layer_sizes)  # float64 arrays, not converted
        for k, w in enumerate(self._weights):
            if writable and not w.flags.writeable:
                raise ValueError(f"weights[{k}] is read-only, but a step updates the weights in "
                                 "place; assign net.weights = [...] to give the network copies "
                                 "of its own")
        return self._weights

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
        x = self._inputs(X)
        t = self._targets(T, x.shape[0])
        weights = self._checked_weights()
        # The passes of ``_trace``, with V and the inner layers' dE/dX in reused buffers; what
        # is returned (every dE/dW, and dE/dX of the input: dxs[0]) is fresh.
        work = self._work.get(self.layer_sizes, x.shape[0])
        trace = forward_pass(weights, x, self.activations, out=work.vs)
        loss = float(loss_from_trace(trace, t, self.loss_function))
        backward_pass(weights, trace, t, self.activations, self.loss_function, dx_out=work.dxs)
        return loss, trace.dws, trace.dxs[0].reshape(np.shape(X))

    def hessian_vector_product(self, X: np.ndarray, T: np.ndarray,
                               directions: Sequence[np.ndarray]) -> list[np.ndarray]:
        """``H D``: the Hessian of E (eq 7) in the weights times ``D`` (one array shaped like
        each ``weights[k]``), hand-derived with the R-operator (``second_order.py``)."""
        x = self._inputs(X)
        t = self._targets(T, x.shape[0])
        d = check_weights(directions, self.layer_sizes, "directions")
        return hessian_vector_product(self._checked_weights(), x, t, self.activations,
                                      self.loss_function, d)

    def step(self, X: np.ndarray, T: np.ndarray, lr: float) -> float:
        """One SGD step ``W <- W - lr dE/dW`` (eq 10) on every layer; returns E before the step.

        Raises:
            DivergenceError: the loss or an updated weight is not finite (a non-finite gradient
                makes a non-finite update); the weights are left as they were.
        """
        lr = check_learning_rate(lr)
        x = self._inputs(X)
        return self._step(x, self._targets(T, x.shape[0]), lr)

    def _step(self, x: np.ndarray, t: np.ndarray, lr: float) -> float:
        weights = self._checked_weights(writable=True)
        work = self._work.get(self.layer_sizes, x.shape[0])
        # A diverging step overflows on its way to the non-finite loss or weight it is refused
        # for: that is reported as a DivergenceError, not as numpy's warnings.
        with np.errstate(over="ignore", invalid="ignore"):
            fwd = forward_pass(weights, x, self.activations, out=work.vs)
            loss = float(loss_from_trace(fwd, t, self.loss_function))
            if not math.isfinite(loss):
                raise DivergenceError(f"the loss is {loss}; weights left unchanged")
            # The backward pass, without dE/dX of the input: an update does not need it.
            _, dvs, _ = backward_sweep(weights, fwd.vs, fwd.ys, t, self.activations,
                                       self.loss_function, need_input_grad=False,
                                       dx_out=work.dxs)
            for k, (w, x_k, dv, new) in enumerate(zip(weights, fwd.xs, dvs, work.dws)):
                weight_grad(x_k, dv, out=new)  # eq 8: dE/dW = X~^T dE/dV
                np.subtract(w, np.multiply(new, lr, out=new), out=new)  # eq 10: W <- W - lr dE/dW
                if not np.isfinite(new).all():
                    raise DivergenceError(f"the update of weights[{k}] is not finite "
                                          f"(lr={lr}); weights left unchanged")
        for w, new in zip(weights, work.dws):  # written only once every layer's is finite
            np.copyto(w, new)
        return loss

    # --- training and files -------------------------------------------------------------

    def fit(self, X: np.ndarray, T: np.ndarray, *, epochs: int = 1, lr: float = 0.1,
            batch_size: int | None = None, seed: int | None = None, shuffle: bool = True,
            callback: Callable[[int, float], None] | None = None) -> list[float]:
        """Train with mini-batch SGD; return the mean loss of each epoch. See ``training.fit``."""
        from .training import fit

        return fit(
            self, X, T, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
            shuffle=shuffle, callback=callback,
        )

    def save(self, path: str | os.PathLike, *, max_bytes: int | None = None) -> None:
        """Write the network to ``path`` (.npz arrays + JSON config, no pickle), atomically;
        refuses first what ``load`` would refuse (``max_bytes``: load's budget, default 1 GiB).
        A symlink at ``path`` is followed. See ``serialization.py``."""
        from .serialization import MAX_BYTES, save_network

        save_network(self, path, max_bytes=MAX_BYTES if max_bytes is None else max_bytes)

    @classmethod
    def load(cls, path: str | os.PathLike, *, max_bytes: int | None = None) -> Network:
        """Read a network written by ``save``; refuses malformed, tampered or oversized files
        (more than ``max_bytes`` of weights, default 1 GiB) before allocating anything."""
        from .serialization import MAX_BYTES, load_network

        return load_network(path, max_bytes=MAX_BYTES if max_bytes is None else max_bytes)
