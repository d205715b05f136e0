"""``check_layers``: a network made of the user's own layer objects, checked layer by layer.

    report = check_layers([Dense(4, 8), Dense(8, 3)], softmax_loss, x, t)

The network runs as the user wrote it, on deep copies of the layers: each layer's ``forward``,
the loss, then each layer's ``backward`` from the last to the first, each given the gradient the
layer after it passed back. Then:

- **local**: each layer's backward is checked on its own (``check_vjp``) at the input it saw,
  with the upstream gradient it actually received as the cotangent, against what it actually
  returned (dE/dX) and kept (its parameters' gradients). A wrong derivative is reported where it
  is made; the loss's gradient is checked first.
- **total**: the whole chain's dE/dx and dE/dparameters, as the chain produced them, against the
  gradient of the composed function ``loss(layer_L(...layer_1(x)), t)``.

Rows come in backward order (loss, last layer, ..., first layer, then the totals); the headline
names the first wrong layer by index and class, and the totals it spoils say they follow from it.
A backward that changes its parameters (an SGD update inside backward) is named in a note:
dE/dX must come from the weights before the update.

Layers follow ``adapters.layer``'s convention: ``forward(x) -> y``, ``backward(dy) -> dx``,
parameter gradients kept on the object. ``loss(y, t) -> (E, dE/dy)`` (CS231n's convention).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np

from .adapters import Parameter, layer, layer_parameters
from .options import callable_arg, choice, flag, float_array, jax_mode, seed_arg
from .report import Report, Row, annotate_symptoms
from .vjp_check import check_vjp

__all__ = ["check_layers"]


def _rows(report: Report, layer_index: int | None, name: str, scope: str) -> list[Row]:
    for r in report.rows:
        r.layer, r.name, r.scope = layer_index, name, scope
    return report.rows


def check_layers(
    layers: Sequence[object],
    loss: Callable[[np.ndarray, object], tuple[float, np.ndarray]],
    x: np.ndarray,
    t: object,
    *,
    jax: bool | str = True,
    fd: str = "auto",
    seed: int = 0,
    strict: bool = False,
    forward: str = "forward",
    backward: str = "backward",
) -> Report:
    """Check every layer's hand-derived backward in a network of the user's own layers.

    Args:
        layers: layer objects, first to last (``adapters.layer``'s convention); never changed.
        loss: ``loss(y, t) -> (E, dE/dy)``: a float and an array shaped like y.
        x: the network's input (float array); t: the targets (any form ``loss`` takes, integer
            labels included).
        jax, fd, seed, strict: as in ``check_vjp``.
        forward, backward: the layers' method names.

    Returns:
        A ``Report``: one row per checked input of every layer (``layer`` = its index, ``name``
        = its class), local then total.

    Raises:
        ValueError: a forward or loss that raises or is not finite at x.
    """
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence):
        raise TypeError(f"layers must be a list of layer objects, got {type(layers).__name__}")
    if not layers:
        raise ValueError("layers must hold at least one layer, got an empty sequence")
    callable_arg(loss, "loss")
    for name, value in (("forward", forward), ("backward", backward)):
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a method name (str), got {type(value).__name__}")
        missing = [k for k, lay in enumerate(layers) if not callable(getattr(lay, value, None))]
        if missing:
            raise TypeError(f"layers[{missing[0]}] ({type(layers[missing[0]]).__name__}) has no "
                            f"method {value!r} (the {name} method name)")
    jax, strict, seed = jax_mode(jax), flag(strict, "strict"), seed_arg(seed)
    choice(fd, "fd", ("auto", "exhaustive", "directional", "none"))
    x = float_array(x, "x")
    pristine = [copy.deepcopy(lay) for lay in layers]
    work = [copy.deepcopy(lay) for lay in layers]
    names = [type(lay).__name__ for lay in layers]
    options = {"jax": jax, "fd": fd, "seed": seed}

    xs = [x.astype(np.float64)]
    try:
        with np.errstate(all="ignore"):
            for lay in work:
                xs.append(np.asarray(getattr(lay, forward)(xs[-1].copy()), dtype=np.float64))
            energy, g = loss(xs[-1].copy(), copy.deepcopy(t))
    except Exception as exc:
        raise ValueError(f"the network's forward or loss raised {type(exc).__name__}: {exc}"
                         ) from exc
    if not np.isfinite(energy) or not all(np.all(np.isfinite(a)) for a in xs):
        raise ValueError("the network's forward pass or loss is not finite at x")
    params = [layer_parameters(lay, xs[k], forward=forward, backward=backward)
              for k, lay in enumerate(pristine)]

    def loss_value(y):
        return loss(y, copy.deepcopy(t))[0]

    loss_name = getattr(loss, "__name__", "loss")
    last = len(layers) - 1
    rows = _rows(check_vjp(loss_value, lambda c, y: c * np.asarray(g, dtype=np.float64),
                           (xs[-1],), **options), last, loss_name, "local")
    for r in rows:
        r.term = "loss"

    # The user's backward chain, as written: each layer gets what the next one passed back.
    upstream: list[np.ndarray | None] = [None] * len(layers)
    passed: list[object] = [None] * len(layers)
    grads: list[dict[str, object]] = [{} for _ in layers]
    changed: list[list[str]] = [[] for _ in layers]
    grad = np.asarray(g, dtype=np.float64)
    for k in range(last, -1, -1):
        upstream[k] = grad
        before = {p.name: np.array(p.get(work[k]), copy=True) for p in params[k]}
        try:
            with np.errstate(all="ignore"):
                passed[k] = getattr(work[k], backward)(grad.copy())
        except Exception as exc:
            rows.append(Row.broken(k, "backward", "local",
                                   f"{names[k]}.{backward} raised {type(exc).__name__}: {exc}",
                                   name=names[k]))
            return Report(rows, strict=strict, title="layers check")
        grads[k] = {p.name: _copied(p.grad(work[k])) for p in params[k]}
        changed[k] = [p.name for p in params[k]
                      if not np.array_equal(np.asarray(p.get(work[k])), before[p.name])]
        if passed[k] is None or np.shape(passed[k]) != xs[k].shape:
            rows.append(Row.broken(k, "dx", "local", f"{names[k]}.{backward} returned shape "
                                   f"{np.shape(passed[k])}, its input has {xs[k].shape}",
                                   name=names[k]))
            return Report(rows, strict=strict, title="layers check")
        grad = np.asarray(passed[k], dtype=np.float64)

    for k in range(last, -1, -1):
        run_forward, _, inputs = layer(pristine[k], xs[k], params=_mapping(params[k]),
                                       forward=forward, backward=backward)
        key = next(iter(inputs))
        recorded = {key: passed[k], **grads[k]}
        local = check_vjp(run_forward, lambda c, _r=recorded, **_: _r, inputs,
                          cotangent=upstream[k], **options)
        new = _rows(local, k, names[k], "local")
        if changed[k]:
            why = (f"{names[k]}.{backward} changed {changed[k]} in place (an update inside "
                   "backward?): dE/dX must be computed with the parameters before the update")
            for r in new:
                r.note = "; ".join(filter(None, [r.note, why]))
        rows.extend(new)

    rows.extend(_total_rows(pristine, params, loss, xs[0], t, passed[0], grads, names,
                            options, forward))
    annotate_symptoms(rows)
    return Report(rows, strict=strict, title="layers check",
                  judged_by=_judged_by(rows))


def _copied(value: object) -> object:
    return np.array(value, copy=True) if value is not None else None


def _mapping(params: list[Parameter]) -> dict[str, str]:
    return {p.name: p.gradient for p in params} if all(p.store is None for p in params) \
        else None


def _total_rows(pristine, params, loss, x, t, dx, grads, names, options, forward) -> list[Row]:
    """The chain's dE/dx and dE/dparameters against the gradient of the composed function."""
    inputs = {"x": x}
    owner = {"x": (0, "x")}
    for k, ps in enumerate(params):
        for p in ps:
            key = f"{k}.{p.name}"
            inputs[key] = np.asarray(p.get(pristine[k]), dtype=np.float64)
            owner[key] = (k, p.name)

    def composed(**values):
        h = values["x"]
        for k, lay in enumerate(pristine):
            clone = copy.deepcopy(lay)
            for p in params[k]:
                p.set(clone, values[f"{k}.{p.name}"])
            h = getattr(clone, forward)(h)
        return loss(h, copy.deepcopy(t))[0]

    hand = {"x": dx, **{f"{k}.{name}": value for k, g in enumerate(grads)
                        for name, value in g.items()}}
    report = check_vjp(composed, lambda c, **_: {k: c * np.asarray(v) if v is not None else None
                                                 for k, v in hand.items()},
                       inputs, **options)
    rows = []
    for r in report.rows:
        k, name = owner.get(r.input, (None, r.input))
        r.layer, r.scope, r.term, r.name = k, "total", f"d{name}", names[k] if k is not None \
            else None
        rows.append(r)
    return sorted(rows, key=lambda r: -1 if r.layer is None else -r.layer)


def _judged_by(rows: list[Row]) -> str:
    used = set().union(*(r.sources for r in rows))
    return "judged by " + (" and ".join(
        {"jax": "JAX", "fd": "finite differences"}[s] for s in sorted(used, reverse=True))
        or "no source")
