"""Glue for the two common ways layers are written, so ``check_vjp`` takes them in one line.

**Functions with a cache** (CS231n style)::

    out, cache = affine_forward(x, w, b)
    dx, dw, db = affine_backward(dout, cache)

    check_vjp(*cached(affine_forward, affine_backward), (x, w, b))

**Layer objects** that keep their parameters and, after ``backward``, their gradients::

    y = dense.forward(x); dx = dense.backward(dy)      # dense.W, dense.b -> dense.dW, dense.db

    check_vjp(*layer(dense, x))

``layer`` finds the parameters itself: float arrays ``name`` with a gradient ``d<name>``,
``grad_<name>`` or ``<name>_grad`` of the same shape after a backward, or the entries of a
``params`` dict with the same keys in a ``grads`` dict. ``params={"W": "dW"}`` names them
instead. The object itself is never changed: every call works on a deep copy, with the checked
parameter values put in.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Parameter", "cached", "layer", "layer_parameters"]

GRADIENT_NAMES = ("d{}", "grad_{}", "{}_grad")
"""Where a layer object keeps the gradient of its parameter ``{}`` after ``backward``."""


def cached(
    forward: Callable[..., tuple[object, object]],
    backward: Callable[[object, object], object],
) -> tuple[Callable[..., object], Callable[..., object]]:
    """``(forward, backward)`` for ``check_vjp`` from ``forward(*inputs) -> (out, cache)`` and
    ``backward(dout, cache) -> gradients``.

    The new forward keeps ``forward``'s signature, so the report names inputs by its parameter
    names. Every call of the new backward runs ``forward`` afresh for its cache.
    """
    @functools.wraps(forward)
    def out_only(*args, **kwargs):
        return forward(*args, **kwargs)[0]

    def from_cache(dout, *args, **kwargs):
        return backward(dout, forward(*args, **kwargs)[1])

    from_cache.__signature__ = _with_leading(inspect.signature(forward), "dout")
    return out_only, from_cache


def _with_leading(sig: inspect.Signature, name: str) -> inspect.Signature:
    first = inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sig.replace(parameters=[first, *sig.parameters.values()])


@dataclass(frozen=True)
class Parameter:
    """Where a layer object keeps one parameter and its gradient.

    ``store`` is None for attributes (``obj.W``, ``obj.dW``), else the names of the dicts
    (``("params", "grads")``: ``obj.params["W"]``, ``obj.grads["W"]``).
    """

    name: str
    gradient: str
    store: tuple[str, str] | None = None

    def get(self, obj: object) -> object:
        return getattr(obj, self.store[0])[self.name] if self.store else getattr(obj, self.name)

    def set(self, obj: object, value: np.ndarray) -> None:
        if self.store:
            getattr(obj, self.store[0])[self.name] = value
        else:
            setattr(obj, self.name, value)

    def grad(self, obj: object) -> object:
        if self.store:
            return getattr(obj, self.store[1]).get(self.gradient)
        return getattr(obj, self.gradient, None)


def _float_array(value: object) -> bool:
    return isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.floating)


def layer_parameters(
    obj: object, x: np.ndarray, *, forward: str = "forward", backward: str = "backward"
) -> list[Parameter]:
    """Find a layer object's parameters: run forward and backward once on a copy, then look
    for float arrays with a gradient of the same shape (``GRADIENT_NAMES``), or a ``params``
    dict mirrored by a ``grads`` dict."""
    probe = copy.deepcopy(obj)
    y = getattr(probe, forward)(np.array(x, dtype=np.float64))
    getattr(probe, backward)(np.ones_like(np.asarray(y, dtype=np.float64)))
    params, grads = getattr(probe, "params", None), getattr(probe, "grads", None)
    if isinstance(params, Mapping) and isinstance(grads, Mapping):
        return [Parameter(k, k, ("params", "grads")) for k, v in params.items()
                if _float_array(v) and np.shape(grads.get(k)) == v.shape]
    found = []
    for name, value in vars(probe).items():
        if not _float_array(value):
            continue
        for pattern in GRADIENT_NAMES:
            grad = getattr(probe, pattern.format(name), None)
            if pattern.format(name) != name and _float_array(grad) and grad.shape == value.shape:
                found.append(Parameter(name, pattern.format(name)))
                break
    return found


def layer(
    obj: object,
    x: np.ndarray,
    *,
    params: Mapping[str, str] | Sequence[str] | None = None,
    forward: str = "forward",
    backward: str = "backward",
) -> tuple[Callable[..., object], Callable[..., object], dict[str, object]]:
    """``(forward, backward, inputs)`` for ``check_vjp`` from a layer object.

    Args:
        obj: has ``obj.forward(x) -> y`` and ``obj.backward(dy) -> dx`` (other method names by
            ``forward=``, ``backward=``), keeping each parameter's gradient after backward.
        x: the layer's input.
        params: which parameters to check: ``{"W": "dW", ...}`` (attribute -> gradient
            attribute) or names with gradients found by ``GRADIENT_NAMES``; None finds them
            (``layer_parameters``).

    Returns:
        ``inputs`` is ``{"x": x, <param>: its current value, ...}``; the functions take them as
        keywords. The parameters' values are read now; ``obj`` is never changed.
    """
    if params is None:
        found = layer_parameters(obj, x, forward=forward, backward=backward)
    elif isinstance(params, Mapping):
        found = [Parameter(k, v) for k, v in params.items()]
    else:
        found = [Parameter(k, next((p.format(k) for p in GRADIENT_NAMES
                                    if hasattr(obj, p.format(k))), "d" + k)) for k in params]
    template = copy.deepcopy(obj)
    key = "x" if all(p.name != "x" for p in found) else "input"
    inputs = {key: x, **{p.name: p.get(obj) for p in found}}
    names = list(inputs)

    def prepared(values: Mapping[str, object]) -> object:
        clone = copy.deepcopy(template)
        for p in found:
            p.set(clone, values[p.name])
        return clone

    def run_forward(**values):
        return getattr(prepared(values), forward)(values[key])

    def run_backward(dy, **values):
        clone = prepared(values)
        getattr(clone, forward)(values[key])
        dx = getattr(clone, backward)(dy)
        return {key: dx, **{p.name: p.grad(clone) for p in found}}

    parameters = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY) for n in names]
    run_forward.__signature__ = inspect.Signature(parameters)
    run_forward.__name__ = f"{type(obj).__name__}.{forward}"
    run_backward.__name__ = f"{type(obj).__name__}.{backward}"
    return run_forward, run_backward, inputs
