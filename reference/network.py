"""``Network``: a configurable multilayer network with a hand-derived backward pass.

Readable rather than clever: the math is in ``layer.py`` (one layer) and ``passes.py`` (all
layers); this class holds the configuration and the weights, validates what users hand it, and
guarantees that a failed call changes nothing.

Speed without a second copy of the math: ``step`` and ``gradients`` run the same passes as
``trace``, but write their intermediate terms into buffers kept between calls (``workspace.py``)
and check their inputs with one sum of squares per array in the common case, handing anything
unusual to the full checks of ``validation.py``. On large networks (``CHECK_THROUGH_V_ABOVE``)
``step`` and ``gradients`` take the sums of squares of each layer's V instead of X and the
weights: a NaN or Inf in X or a weight reaches V, and V is much smaller than the weights (see
``_buffered_passes``).

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
from .passes import (
    Trace,
    backward_pass,
    backward_sweep,
    forward_pass,
    loss_from_trace,
    output_loss,
)
from .validation import (
    ROW_SUM_TOLERANCE,
    check_inputs,
    check_layer_sizes,
    check_learning_rate,
    check_targets,
    check_weights,
)
from .workspace import Workspace, WorkspaceCache

__all__ = ["CHECK_THROUGH_V_ABOVE", "Network"]

# Squares of entries below this are "moderate": |w| < 1e150, far from overflow. The cheap checks
# below test the sum of squares of an array against it (a NaN or Inf anywhere makes it fail);
# an array that fails is handed to the full check, so only the cost differs, never the verdict.
_MODERATE_SQ = 1e300
CHECK_THROUGH_V_ABOVE = 16_384
"""``step`` and ``gradients`` of a network with more weight entries than this check X's and the
weights' entries through V, after the forward (see ``Network._buffered_passes``); below it,
by sums of squares before it, which costs less than holding back the forward's warnings."""
# Targets of these built-in losses must be probabilities (rows summing to 1 for cross_entropy).
_PROBABILITY_TARGETS = ("cross_entropy", "binary_cross_entropy")


def _moderate(a: np.ndarray) -> bool:
    """True when every entry of ``a`` is finite and below 1e150 in magnitude (not conversely:
    a sum of squares can overflow with moderate entries, which only sends ``a`` to a full check).
    """
    return bool(np.vdot(a, a) < _MODERATE_SQ)


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
        self._check_weights()
        return self._weights

    def _check_weights(self, *, values: bool = True, writable: bool = False) -> bool:
        """Guard for weights edited in place by the user; raises as ``check_weights`` does.

        Returns True when every weight is a float64 array of its shape with (if ``values``)
        entries below 1e150 in magnitude. With ``values=False`` only the arrays' types and
        shapes are checked here: ``step`` and ``gradients`` check the entries afterwards, from
        the forward pass's V (see ``_buffered_passes``). With ``writable`` (the step, which
        updates them in place), a read-only weight is refused too.
        """
        # Cheap: shapes, and finiteness via one sum of squares per array; anything unusual
        # goes to the full check, which raises with the details.
        moderate = True
        sizes = self.layer_sizes
        if len(self._weights) != self.n_layers:  # an array appended or removed in place
            check_weights(self._weights, sizes)  # raises with the counts
        for k, w in enumerate(self._weights):
            expected = (sizes[k] + 1, sizes[k + 1])
            if not isinstance(w, np.ndarray) or w.shape != expected or w.dtype != np.float64:
                check_weights(self._weights, sizes)  # raises with the details
                moderate = False
            elif values and not _moderate(w):
                check_weights(self._weights, sizes)  # raises if an entry is NaN or Inf
                moderate = False
            if writable and not (isinstance(w, np.ndarray) and w.flags.writeable):
                raise ValueError(
                    f"weights[{k}] is read-only, but a step updates the weights in place; "
                    "assign net.weights = [...] to give the network copies of its own"
                )
        return moderate

    def _inputs(self, x: object, *, values: bool = True) -> np.ndarray:
        """X as float64 ``(B, n0)``, or the full check's error. With ``values=False`` the
        common case's entries are left to ``_buffered_passes``, which checks them through V."""
        n0 = self.layer_sizes[0]
        if (  # the common case, checked cheaply; everything else gets the full check
            type(x) is np.ndarray
            and x.dtype == np.float64
            and x.ndim == 2
            and x.shape[1] == n0
            and x.shape[0] > 0
            and (not values or _moderate(x))
        ):
            return x
        return check_inputs(x, n0)

    def _targets(self, t: object, batch: int) -> np.ndarray:
        loss, n_out = self.loss_function, self.layer_sizes[-1]
        if (  # the common case, checked cheaply; everything else gets the full check
            type(t) is np.ndarray
            and t.dtype == np.float64
            and t.shape == (batch, n_out)
            and _plain_targets_ok(t, loss)
        ):
            return t
        return check_targets(t, loss, batch, n_out)

    def _values_targets(self, x: np.ndarray, t: object) -> np.ndarray:
        """``_targets`` for a call that checks X's entries later (through V): when T is
        refused, X is checked first, so that a bad X is still the error reported."""
        try:
            return self._targets(t, x.shape[0])
        except (TypeError, ValueError):
            check_inputs(x, self.layer_sizes[0])
            raise

    def _workspace(self, batch: int) -> Workspace:
        cache = self.__dict__.get("_work")
        if cache is None:
            cache = self._work = WorkspaceCache()
        return cache.get(self.layer_sizes, batch)

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
        through_v = self._checks_through_v()  # X's and the weights' entries: now, or through V
        x = self._inputs(X, values=not through_v)
        t = self._values_targets(x, T)
        self._check_weights(values=not through_v)
        weights = self._weights
        # The passes of ``_trace``, with V and the inner dE/dX in reused buffers. What is
        # returned (dE/dW of every layer, dE/dX of the input) is fresh, and allocated first:
        # the short-lived temporaries then come after it in the heap, which in the usual
        # pattern lets the allocator reuse the same memory from call to call instead of
        # returning it to the system and faulting it back in (see benchmarks/results.md).
        dws = [np.empty_like(w) for w in weights]
        dx = np.empty(x.shape)
        work = self._workspace(x.shape[0])
        loss, xs, dvs = self._buffered_passes(x, t, weights, work, dx0=dx, through_v=through_v)
        for x_k, dv, dw in zip(xs, dvs, dws):
            weight_grad(x_k, dv, out=dw)  # eq 8: dE/dW = X~^T dE/dV
        return loss, dws, dx.reshape(np.shape(X))  # dx: eq 11 for the input

    def step(self, X: np.ndarray, T: np.ndarray, lr: float) -> float:
        """One SGD step ``W <- W - lr dE/dW`` (eq 10) on every layer; returns E before the step.

        Raises:
            DivergenceError: the loss, a gradient or an updated weight is not finite; the
                weights are left as they were.
        """
        if not (type(lr) is float and 0.0 < lr < math.inf):  # else the check returns lr as is
            lr = check_learning_rate(lr)
        x = self._inputs(X, values=not self._checks_through_v())  # see _buffered_passes
        return self._step(x, self._values_targets(x, T), lr)

    def _step(self, x: np.ndarray, t: np.ndarray, lr: float) -> float:
        # A diverging step overflows on its way to the non-finite loss or update it is refused
        # for: that is reported as a DivergenceError, not as numpy's warning.
        with np.errstate(over="ignore", invalid="ignore"):
            # dE/dX of the input is not needed for an update, so it is not computed.
            # float64 arrays of the right shapes, writable (and finite, unless checked through V)
            through_v = self._checks_through_v()
            plain = self._check_weights(values=not through_v, writable=True)
            weights, work = self._weights, self._workspace(x.shape[0])
            loss, xs, dvs = self._buffered_passes(x, t, weights, work, step=True,
                                                  through_v=through_v)
            if plain and _update_is_moderate(xs, dvs, lr):
                # Every updated weight is certainly finite, so each layer is updated as soon as
                # its dE/dW is known, in place, through one reused buffer.
                for w, x_k, dv, dw in zip(weights, xs, dvs, work.dws):
                    weight_grad(x_k, dv, out=dw)  # eq 8: dE/dW = X~^T dE/dV
                    np.subtract(w, np.multiply(dw, lr, out=dw), out=w)  # eq 10: W <- W - lr dE/dW
                return loss
            # Otherwise (a non-finite gradient, or values near overflow): every new weight is
            # computed and checked before any is committed.
            updated = []
            for k, (w, x_k, dv) in enumerate(zip(weights, xs, dvs)):
                dw = weight_grad(x_k, dv, out=np.empty_like(w))  # eq 8
                new = w - lr * dw  # eq 10
                if not np.isfinite(np.sum(new)):
                    raise DivergenceError(
                        f"the update of weights[{k}] is not finite (lr={lr}); "
                        "weights left unchanged"
                    )
                updated.append(new)
            for w, new in zip(weights, updated):  # commit only once every layer is finite
                w[...] = new
            return loss

    def _buffered_passes(
        self,
        x: np.ndarray,
        t: np.ndarray,
        weights: list[np.ndarray],
        work: Workspace,
        *,
        dx0: np.ndarray | None = None,
        step: bool = False,
        through_v: bool = False,
    ) -> tuple[float, list[np.ndarray], list[np.ndarray]]:
        """Forward, loss and the backward chain (without dE/dW) of ``x (B, n0)``, writing V and
        the inner layers' dE/dX into ``work`` (see workspace.py); returns ``(E, xs, dvs)`` as
        in ``Trace``. dE/dX of the input goes into ``dx0 (B, n0)``, if given, else nowhere.

        With ``through_v`` (large networks: ``CHECK_THROUGH_V_ABOVE``), the entries of ``x``
        and of the weights are checked here, after the forward pass and before anything else,
        through V (otherwise the caller checked them before). A NaN or Inf in X or in a
        layer's W makes that layer's V non-finite (NaN times anything and 0 times Inf are NaN;
        the bias row is added to every row of V), so when every V is finite they are too, and
        no pass over the weights is needed. This needs a BLAS that forms every product, zeros
        included, as OpenBLAS and MKL do (tests/test_validation.py checks it for an Inf weight
        meeting zero inputs). Otherwise the full checks run and raise naming the array. The
        forward's floating-point warnings are held back meanwhile (a NaN weight must be
        reported as such, not as numpy's "invalid value"): if it had any and the inputs are
        fine, it runs again under the caller's own settings, so that they are seen as without
        the check. If an activation raises, the inputs are checked first too.

        With ``step``, a non-finite loss raises ``DivergenceError`` before the backward pass.
        """
        acts, loss_fn = self.activations, self.loss_function
        if through_v:
            fwd = self._forward_checked_through_v(x, weights, work)
        else:
            fwd = forward_pass(weights, x, acts, out=work.vs)
        loss = float(output_loss(fwd.vs[-1], fwd.ys[-1], t, loss_fn))
        if step and not math.isfinite(loss):
            raise DivergenceError(f"the loss is {loss}; weights left unchanged")
        _, dvs, _ = backward_sweep(
            weights, fwd.vs, fwd.ys, t, acts, loss_fn,
            need_input_grad=dx0 is not None, dx_out=[dx0, *work.dxs[1:]],
        )
        return loss, fwd.xs, dvs

    def _forward_checked_through_v(self, x: np.ndarray, weights: list[np.ndarray],
                                   work: Workspace) -> Trace:
        """The buffered forward pass, with X's and the weights' entries checked through V
        (see ``_buffered_passes``)."""
        held: list[str] = []  # the kinds of floating-point error the forward met, if any
        try:
            with np.errstate(over="call", invalid="call", divide="call",
                             call=lambda kind, _flag: held.append(kind)):
                fwd = forward_pass(weights, x, self.activations, out=work.vs)
        except Exception:
            self._check_values(x)
            raise
        for v in fwd.vs:
            if not _moderate(v):
                self._check_values(x)
                break
        if held:  # a real overflow (or the like): numpy's warnings, as the caller set them
            fwd = forward_pass(weights, x, self.activations, out=work.vs)
        return fwd

    def _checks_through_v(self) -> bool:
        """True when ``step`` and ``gradients`` check X's and the weights' entries through V:
        the network has more than ``CHECK_THROUGH_V_ABOVE`` weight entries."""
        count = self.__dict__.get("_weight_count")
        if count is None:
            sizes = self.layer_sizes
            count = self._weight_count = sum((n + 1) * m for n, m in zip(sizes, sizes[1:]))
        return count > CHECK_THROUGH_V_ABOVE

    def _check_values(self, x: np.ndarray) -> None:
        """The full checks of X's and every weight's entries: raise naming the first bad one."""
        check_inputs(x, self.layer_sizes[0])
        check_weights(self._weights, self.layer_sizes)

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


def _plain_targets_ok(t: np.ndarray, loss: Loss) -> bool:
    """True only if ``check_targets`` accepts the float64 rows ``t (B, nL)`` unchanged."""
    if not (loss.builtin and loss.name in _PROBABILITY_TARGETS):
        return _moderate(t)  # finite
    if not (t.min() >= 0.0 and t.max() <= 1.0):  # finite probabilities (False for NaN)
        return False
    if loss.name == "cross_entropy":  # rows sum to 1
        return bool(np.all(np.abs(t.sum(axis=1) - 1.0) <= ROW_SUM_TOLERANCE))
    return True


def _update_is_moderate(xs: Sequence[np.ndarray], dvs: Sequence[np.ndarray], lr: float) -> bool:
    """True when every entry of every ``lr * dE/dW`` is certainly finite and below 1e150.

    Cheap (two sums of squares per layer, no dE/dW needed): entry (i, j) of dE/dW = X~^T dV is
    a dot product of two columns, so by Cauchy-Schwarz it is at most ``|X~|_F |dV|_F``, with
    ``|X~|_F^2 = |X|_F^2 + B``. Then W - lr dE/dW cannot overflow for any finite W: the exact
    result exceeds the largest float by at most 1e150, far below the half ulp (2^970 ~ 1e292)
    it would take to round to Inf.
    """
    lr2 = lr * lr
    for x, dv in zip(xs, dvs):
        # The bound squared, in Python floats: inf or NaN (never below the limit) if any term is.
        bound2 = lr2 * (float(np.vdot(x, x)) + x.shape[0]) * float(np.vdot(dv, dv))
        if not bound2 < _MODERATE_SQ:
            return False
    return True
