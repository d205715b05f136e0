"""Checks of everything a user hands the network, with errors that say what was expected.

Each check either returns a clean float64 array or raises ``TypeError`` (wrong kind of thing)
or ``ValueError`` (right kind, wrong shape or value). Nothing here modifies its input.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence

import numpy as np

from .activations import Activation
from .errors import TooLargeError
from .losses import Loss

__all__ = [
    "check_inputs",
    "check_layer_sizes",
    "check_learning_rate",
    "check_network_in_place",
    "check_network_inputs",
    "check_path",
    "check_seed",
    "check_targets",
    "check_weights",
    "check_weights_in_place",
]

# Probability rows must sum to 1 within this absolute tolerance: rows built in float64 by a
# softmax or a normalisation carry a rounding error of a few n*eps, far below it.
ROW_SUM_TOLERANCE = 1e-9


def _as_real_array(a: object, what: str) -> np.ndarray:
    try:
        arr = np.asarray(a)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{what} must be a numeric array, could not convert it: {exc}") from None
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating)
        or np.issubdtype(arr.dtype, np.integer)
        or arr.dtype == np.bool_
    ):
        raise TypeError(
            f"{what} must hold real numbers (float or int), got dtype {arr.dtype}"
        )
    return arr


def _require_finite(arr: np.ndarray, what: str) -> None:
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))
        first = tuple(int(i) for i in bad[0])
        raise ValueError(
            f"{what} must be finite, found {len(bad)} NaN/Inf entries "
            f"(first at index {first}: {arr[first]})"
        )


def _as_float64(arr: np.ndarray, what: str) -> np.ndarray:
    """``arr`` (finite, real) as float64; a value too large for float64 (a longdouble 1e4000,
    which would become inf) is refused, named by its index in ``arr``'s own shape."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = arr.astype(np.float64, copy=False)
    if arr.dtype.kind == "f" and arr.dtype.itemsize > 8 and not np.isfinite(out).all():
        first = tuple(int(i) for i in np.argwhere(~np.isfinite(out))[0])
        raise ValueError(f"{what} holds {arr[first]!s} at index {first}, which overflows float64 "
                         f"(the largest float64 is {np.finfo(np.float64).max:.4g})")
    return out


def check_layer_sizes(sizes: Sequence[int]) -> list[int]:
    """``[n0, n1, ..., nL]``: at least two positive integers."""
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__"):
        raise TypeError(f"layer_sizes must be a list of ints like [4, 8, 3], got {sizes!r:.60}")
    sizes = list(sizes)
    if len(sizes) < 2:
        raise ValueError(
            f"layer_sizes needs at least 2 entries (inputs and outputs), got {sizes!r:.60}"
        )
    out = []
    for k, n in enumerate(sizes):
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
            raise TypeError(f"layer_sizes[{k}] must be an int, got {type(n).__name__}: "
                            f"{n!r:.60}")
        if n < 1:
            raise ValueError(f"layer_sizes[{k}] must be a positive int, got {n}")
        out.append(int(n))
    entries = sum((n + 1) * m for n, m in zip(out, out[1:]))
    if 8 * entries > sys.maxsize:  # numpy could not even describe such arrays
        shown = out if len(out) <= 8 else [*out[:4], "...", *out[-2:]]
        raise TooLargeError(
            f"layer_sizes {shown} needs {entries} float64 weights ({8 * entries} bytes), more "
            f"than this machine can address ({sys.maxsize} bytes)"
        )
    return out


def check_inputs(x: object, n0: int) -> np.ndarray:
    """Return X as a float64 array of shape ``(B, n0)``, flattening each sample.

    Args:
        x: array of shape ``(B, *in_shape)`` with ``prod(in_shape) == n0`` and ``B >= 1``.
    """
    arr = _as_real_array(x, "X")
    if arr.ndim < 2:
        raise ValueError(
            f"X must have a batch axis first: expected shape (B, ...) with {n0} values per "
            f"sample, got shape {arr.shape}" + ("; for one sample use X[None]" if arr.ndim else "")
        )
    if arr.shape[0] == 0:
        raise ValueError(f"X is an empty batch: expected B >= 1 samples, got shape {arr.shape}")
    per_sample = math.prod(arr.shape[1:])
    if per_sample != n0:
        raise ValueError(
            f"X has {per_sample} values per sample (shape {arr.shape}), but the network's "
            f"first layer expects {n0}"
        )
    _require_finite(arr, "X")  # before flattening: a bad entry is named in X's own shape
    return _as_float64(arr, "X").reshape(arr.shape[0], n0)


def check_targets(t: object, loss: Loss, batch: int, n_out: int) -> np.ndarray:
    """Return T as a float64 array of shape ``(B, nL)`` valid for ``loss``.

    Accepted forms: rows of shape ``(B, nL)`` for every loss; for ``cross_entropy`` also
    integer class labels of shape ``(B,)`` with values in ``[0, nL)``, turned into one-hot rows.
    Cross-entropy rows must be probabilities (in [0, 1], summing to 1); binary cross-entropy
    targets must lie in [0, 1].
    """
    arr = _as_real_array(t, "T")
    if loss.name == "cross_entropy" and loss.builtin and arr.ndim == 1:
        if not (np.issubdtype(arr.dtype, np.integer)):
            raise TypeError(
                f"1-D targets for cross_entropy must be integer class labels, got dtype "
                f"{arr.dtype}; pass one-hot or probability rows of shape ({batch}, {n_out}) "
                "for soft targets"
            )
        if arr.shape[0] != batch:
            raise ValueError(f"expected {batch} class labels (one per sample), got {arr.shape[0]}")
        bad = (arr < 0) | (arr >= n_out)
        if np.any(bad):
            i = int(np.argmax(bad))
            raise ValueError(
                f"class labels must lie in [0, {n_out}) for {n_out} outputs, "
                f"got {int(arr[i])} at index {i}"
            )
        onehot = np.zeros((batch, n_out))
        onehot[np.arange(batch), arr] = 1.0
        return onehot
    if arr.shape != (batch, n_out):
        hint = " or integer labels of shape (B,)" if loss.name == "cross_entropy" else ""
        raise ValueError(
            f"T must have shape ({batch}, {n_out}) for loss {loss.name!r}{hint}, "
            f"got shape {arr.shape}"
        )
    _require_finite(arr, "T")
    arr = _as_float64(arr, "T")
    if loss.builtin and loss.name in ("cross_entropy", "binary_cross_entropy"):
        if np.any((arr < 0) | (arr > 1)):
            i = tuple(int(k) for k in np.argwhere((arr < 0) | (arr > 1))[0])
            raise ValueError(
                f"targets for {loss.name} must be probabilities in [0, 1], got {arr[i]} at "
                f"index {i}"
            )
    if loss.builtin and loss.name == "cross_entropy":
        sums = arr.sum(axis=1)
        off = np.abs(sums - 1.0) > ROW_SUM_TOLERANCE
        if np.any(off):
            i = int(np.argmax(off))
            raise ValueError(
                f"cross_entropy target rows must sum to 1 (one-hot or probabilities), "
                f"row {i} sums to {float(sums[i])}"
            )
    return arr


def _weight_shapes(sizes: Sequence[int]) -> list[tuple[int, int]]:
    return [(sizes[k] + 1, sizes[k + 1]) for k in range(len(sizes) - 1)]


def check_weights(weights: Sequence[object], sizes: Sequence[int],
                  name: str = "weights") -> list[np.ndarray]:
    """Return the weights as float64 arrays, checking ``weights[k].shape == (n_k + 1, n_k+1)``.

    ``weights`` is a list or tuple of arrays (or nested lists) of any float dtype: what
    ``net.weights = [...]`` accepts and converts. ``name``: what messages call them (the
    directions of a Hessian-vector product are shaped like the weights and checked here too)."""
    expected = _weight_shapes(sizes)
    if not isinstance(weights, (list, tuple)):
        what = "net.weights must be assigned" if name == "weights" else f"{name} must be"
        raise TypeError(f"{what} a list of {len(expected)} float arrays "
                        f"(one per layer), got {type(weights).__name__}: {weights!r:.60}")
    if len(weights) != len(expected):
        raise ValueError(f"expected {len(expected)} {name.rstrip('s')} arrays, got {len(weights)}")
    out = []
    for k, (w, shape) in enumerate(zip(weights, expected)):
        try:
            arr = np.asarray(w)
        except (TypeError, ValueError) as exc:  # ragged nested lists and the like
            raise TypeError(f"{name}[{k}] must be a float array, could not convert it: "
                            f"{exc}") from None
        if not np.issubdtype(arr.dtype, np.floating):
            raise TypeError(f"{name}[{k}] must be a float array, got dtype {arr.dtype}")
        if arr.shape != shape:
            raise ValueError(
                f"{name}[{k}] must have shape {shape} (n_in + 1 bias row, n_out), "
                f"got {arr.shape}"
            )
        _require_finite(arr, f"{name}[{k}]")
        out.append(_as_float64(arr, f"{name}[{k}]"))
    return out


def check_seed(seed: object) -> int | None:
    """A seed for ``numpy.random.default_rng``: a non-negative int, or None."""
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0
    ):
        raise ValueError(f"seed must be a non-negative int or None, got {seed!r}")
    return None if seed is None else int(seed)


def check_weights_in_place(weights: object, sizes: Sequence[int]) -> list[np.ndarray]:
    """The network's own weights, as the user may have edited them in place: return them
    unchanged if every one is still a float64 numpy array of its shape with finite entries.

    Unlike ``check_weights`` (the setter's check), nothing is converted: a weight replaced in
    place by a float32 array or a nested list would be used as it is (float32 gradients, a
    file ``load`` refuses), so it is refused here, with the way to convert it.

    Raises:
        TypeError: not a list, or a weight that is not a float64 numpy array.
        ValueError: the wrong number of weights, a wrong shape, a NaN or Inf.
    """
    expected = _weight_shapes(sizes)
    if not isinstance(weights, list):
        raise TypeError(f"net.weights must be a list of {len(expected)} float64 arrays, got "
                        f"{type(weights).__name__}")
    if len(weights) != len(expected):
        raise ValueError(f"expected {len(expected)} weight arrays, got {len(weights)}")
    for k, (w, shape) in enumerate(zip(weights, expected)):
        if type(w) is not np.ndarray or w.dtype != np.float64:  # subclasses compute otherwise
            kind = (f"a {w.dtype} array" if type(w) is np.ndarray
                    else f"a {type(w).__name__}")
            raise TypeError(
                f"weights[{k}] was replaced in place by {kind}, but the network computes in "
                "float64 numpy arrays; assign net.weights = [...] instead, which converts"
            )
        if w.shape != shape:
            raise ValueError(
                f"weights[{k}] must have shape {shape} (n_in + 1 bias row, n_out), "
                f"got {w.shape}"
            )
        _require_finite(w, f"weights[{k}]")
    return weights


def check_network_in_place(net: object) -> list[int]:
    """What users may edit in place on a network's configuration between calls, checked at
    every entry point before it computes anything: ``net.layer_sizes``, ``net.activations`` (a
    list of ``Activation`` objects, one per layer) and ``net.loss_function`` (a ``Loss``). The
    weights are ``check_weights_in_place``'s. Returns the layer sizes.

    An ``Activation`` or ``Loss`` object put in place of another is used (the oracle's tests
    swap in a deliberately wrong derivative this way); a name is refused, with the way to
    change it.

    Raises:
        TypeError, ValueError: the message names the attribute and the entry, what is expected
            and what was found.
    """
    try:
        sizes = check_layer_sizes(net.layer_sizes)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"net.layer_sizes was edited in place: {exc}") from None
    built = list(getattr(net, "_built_sizes", sizes))
    if sizes != built:
        raise ValueError(f"net.layer_sizes was edited in place to {sizes!r:.80}, but the network "
                         f"was built with {built!r:.80}; build a new Network(...) to change the "
                         "sizes")
    acts = net.activations
    rebuild = "build a new Network(...) to change the activations"
    if not isinstance(acts, (list, tuple)):
        raise TypeError(f"net.activations must be a list of {len(sizes) - 1} Activation objects, "
                        f"got {type(acts).__name__}: {acts!r:.60}; {rebuild}")
    if len(acts) != len(sizes) - 1:
        raise ValueError(f"net.activations holds {len(acts)} activations, but the network has "
                         f"{len(sizes) - 1} layers; {rebuild}")
    for k, act in enumerate(acts):
        if not isinstance(act, Activation):
            raise TypeError(f"net.activations[{k}] was replaced in place by a "
                            f"{type(act).__name__} ({act!r:.40}), but the network calls "
                            f"Activation objects; {rebuild}")
    loss = net.loss_function
    if not isinstance(loss, Loss):
        raise TypeError(f"net.loss_function was replaced by a {type(loss).__name__} "
                        f"({loss!r:.40}), but the network calls a Loss object; build a new "
                        "Network(..., loss=...) to change the loss")
    return sizes


def check_network_inputs(net: object, x: object) -> np.ndarray:
    """``check_network_in_place(net)``, then X for its first layer (``check_inputs``): what
    every entry point checks first."""
    return check_inputs(x, check_network_in_place(net)[0])


def check_path(path: object, what: str = "path") -> str:
    """A file path given as ``str`` or ``os.PathLike``, as a ``str``.

    Raises:
        TypeError: anything else (``None``, bytes, a number, an open file).
        ValueError: the empty string.
    """
    text = os.fspath(path) if isinstance(path, (str, os.PathLike)) else None
    if not isinstance(text, str):
        raise TypeError(f"{what} must be a file path (str or os.PathLike), got "
                        f"{type(path).__name__}: {path!r:.60}")
    if not text:
        raise ValueError(f"{what} must be a file path, got the empty string")
    return text


def check_learning_rate(lr: object) -> float:
    """A finite, positive learning rate."""
    is_number = isinstance(lr, (int, float, np.integer, np.floating))
    if isinstance(lr, (bool, np.bool_)) or not is_number:
        raise TypeError(f"lr must be a number, got {type(lr).__name__}: {lr!r}")
    lr = float(lr)
    if not (np.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite positive number, got {lr}")
    return lr
