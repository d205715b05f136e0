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

Rows come in backward order (the loss, last layer, ..., first layer, then the totals); the
headline names the first wrong layer by index and class, and the totals it spoils say they
follow from it; its brackets say which sources judged which rows. A backward that changes its
parameters (an SGD update inside backward) is named in a note: dE/dX must come from the weights
before the update.

The first layer's backward may return None for dx (its input's gradient is rarely needed): its
parameters are still checked and a note says dx was not returned. An integer x (token ids) is a
constant: no dx is checked for it. A later layer whose backward returns no usable dx breaks the
chain: a FAIL row says so, the layers after it are still checked, the layers before it cannot
be.

Layers follow ``adapters.layer``'s convention: ``forward(x) -> y``, ``backward(dy) -> dx``,
parameter gradients kept on the object (found by ``adapters.layer_parameters``, or named with
``params=``). ``loss(y, t) -> (E, dE/dy)`` (CS231n's convention).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from .adapters import Parameter, _parse_params, adapt, layer_parameters
from .jax_support import collector_paused
from .options import callable_arg, choice, finite_location, flag, jax_mode, seed_arg
from .report import Report, Row, annotate_symptoms
from .vjp_check import check_vjp

__all__ = ["check_layers"]

LayerParams = Mapping[str, str] | Sequence[str] | None


def _rows(report: Report, layer_index: int | None, name: str, scope: str) -> list[Row]:
    for r in report.rows:
        r.layer, r.name, r.scope = layer_index, name, scope
    return report.rows


def _network_input(x: object) -> np.ndarray:
    """x as an array: floating (finite; checked) or integer/bool (ids: a constant)."""
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as exc:  # ragged nested lists and the like
        raise TypeError(f"x must be a float array (or an integer array of ids), could not "
                        f"convert it: {exc}") from None
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"x must be a float array (or an integer array of ids), got dtype "
                        f"{arr.dtype}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ValueError(f"x must be finite, found {finite_location(arr)}")
    return arr


def _params_per_layer(params: object, count: int) -> list[LayerParams]:
    """``params=`` as one entry per layer (None: find that layer's parameters)."""
    if params is None:
        return [None] * count
    if isinstance(params, (str, bytes, Mapping)) or not isinstance(params, Sequence):
        raise TypeError("params must be a list with one entry per layer (None, a list of "
                        f"names, or a dict name -> gradient name), got {type(params).__name__}")
    if len(params) != count:
        raise ValueError(f"params must have one entry per layer ({count}), got {len(params)}")
    for k, entry in enumerate(params):
        try:
            _parse_params(entry)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"params[{k}]: {exc}") from None
    return list(params)


@collector_paused
def check_layers(
    layers: Sequence[object],
    loss: Callable[[np.ndarray, object], tuple[float, np.ndarray]],
    x: np.ndarray,
    t: object,
    *,
    params: Sequence[LayerParams] | None = None,
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
        loss: ``loss(y, t) -> (E, dE/dy)``: a float and an array shaped like y (B, ...).
        x: the network's input, shape (B, ...): a float array, or an integer array of ids (a
            constant: no dx is checked). t: the targets (any form ``loss`` takes, integer
            labels included).
        params: one entry per layer naming its parameters as ``adapters.layer`` takes them
            (``["W", "b"]`` or ``{"W": "dW"}``), None for a layer whose parameters are to be
            found; None finds every layer's.
        jax, fd, seed, strict: as in ``check_vjp``.
        forward, backward: the layers' method names.

    Returns:
        A ``Report``: one row per checked input of every layer (``layer`` = its index, ``name``
        = its class; the loss's row has ``layer`` None and ``name`` the loss's name), local then
        total. ``report.notes`` says what was not checked and why.

    Raises:
        TypeError: an argument of the wrong kind (named in the message).
        ValueError: a forward or loss that raises or is not finite at x; a layer parameter
            whose gradient cannot be found (name it with ``params=``).
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
    x = _network_input(x)
    named = _params_per_layer(params, len(layers))
    pristine = [copy.deepcopy(lay) for lay in layers]
    work = [copy.deepcopy(lay) for lay in layers]
    names = [type(lay).__name__ for lay in layers]
    options = {"jax": jax, "fd": fd, "seed": seed}
    x_float = x.dtype.kind == "f"

    xs = [x.astype(np.float64) if x_float else x.copy()]
    try:
        with np.errstate(all="ignore"):
            for lay in work:
                xs.append(np.asarray(getattr(lay, forward)(xs[-1].copy()), dtype=np.float64))
            energy, g = loss(xs[-1].copy(), copy.deepcopy(t))
    except Exception as exc:
        raise ValueError(f"the network's forward or loss raised {type(exc).__name__}: {exc}"
                         ) from exc
    if not np.isfinite(energy) or not all(np.all(np.isfinite(a)) for a in xs[1:]):
        raise ValueError("the network's forward pass or loss is not finite at x")
    found: list[list[Parameter]] = []
    for k, lay in enumerate(pristine):
        try:
            found.append(layer_parameters(lay, xs[k], params=named[k], forward=forward,
                                          backward=backward))
        except ValueError as exc:
            raise ValueError(f"layers[{k}] ({names[k]}): {exc}"
                             + (" (check_layers takes params=[one entry per layer])"
                                if "params=" in str(exc) else "")) from None

    last = len(layers) - 1
    loss_name = getattr(loss, "__name__", "loss")
    notes: list[str] = []
    sub_reports: list[Report] = []
    rows, grad = _loss_rows(loss, t, xs[-1], g, loss_name, options, sub_reports)
    if grad is None:
        notes.append("no layer checked: the loss passed no usable gradient back")
        return Report(rows, strict=strict, title="layers check", notes=notes,
                      judged_by=_judged_by(rows, jax, sub_reports))

    # The user's backward chain, as written: each layer gets what the next one passed back.
    upstream: list[np.ndarray | None] = [None] * len(layers)
    passed: list[object] = [None] * len(layers)
    dx_ok = [False] * len(layers)
    grads: list[dict[str, object]] = [{} for _ in layers]
    changed: list[list[str]] = [[] for _ in layers]
    broken: dict[int, Row] = {}
    raised: set[int] = set()
    stop = None  # the layer whose backward passed nothing usable back: the chain ends there
    for k in range(last, -1, -1):
        upstream[k] = grad
        ps = found[k]
        before = {p.name: np.array(p.get(work[k]), copy=True) for p in ps}
        for p in ps:
            p.zero_grad(work[k])
        try:
            with np.errstate(all="ignore"):
                passed[k] = getattr(work[k], backward)(grad.copy())
        except Exception as exc:
            broken[k] = Row.broken(k, "backward", "local", f"{names[k]}.{backward} raised "
                                   f"{type(exc).__name__}: {exc}", name=names[k], input="x")
            raised.add(k)
            stop = k
            break
        grads[k] = {p.name: _copied(p.grad(work[k])) for p in ps}
        changed[k] = [p.name for p in ps
                      if not np.array_equal(np.asarray(p.get(work[k])), before[p.name])]
        if k == 0 and not x_float:
            notes.append(f"x is an integer array ({x.dtype}): a constant (ids, labels), so layer "
                         f"0 ({names[0]})'s dx is not checked"
                         + ("; its backward returned an array shaped like x: if x is data, "
                            "pass it as floats" if np.shape(passed[0]) == x.shape else ""))
            break
        if k == 0 and passed[0] is None:
            notes.append(f"layer 0 ({names[0]}).{backward} returned None for dx: the input's "
                         "gradient was not checked (the first layer's parameters were)")
            break
        why = _unusable(passed[k], xs[k].shape, f"{names[k]}.{backward}")
        if why:
            if k > 0:
                why += f"; layer {k - 1} ({names[k - 1]}) needs it as its upstream gradient"
            broken[k] = Row.broken(k, "dx", "local", why, name=names[k], input="x")
            if k > 0:
                stop = k
            break
        dx_ok[k] = True
        grad = np.asarray(passed[k], dtype=np.float64)

    end = 0 if stop is None else stop
    for k in range(last, end - 1, -1):
        if k in broken:
            rows.append(broken[k])
        if k in raised:
            continue
        run_forward, _, inputs = adapt(pristine[k], xs[k], found[k], forward=forward,
                                       backward=backward)
        key = next(iter(inputs))
        wrt = ([key] if dx_ok[k] else []) + [p.name for p in found[k]]
        if not wrt:
            continue
        recorded = {key: passed[k] if dx_ok[k] else None, **grads[k]}
        local = check_vjp(run_forward, lambda c, _r=recorded, **_: _r, inputs,
                          cotangent=upstream[k], wrt=wrt, **options)
        sub_reports.append(local)
        new = _rows(local, k, names[k], "local")
        if changed[k]:
            why = (f"{names[k]}.{backward} changed {changed[k]} in place (an update inside "
                   "backward?): dE/dX must be computed with the parameters before the update")
            for r in new:
                r.note = "; ".join(filter(None, [r.note, why]))
        rows.extend(new)

    if stop is not None:
        unchecked = ("the totals" if stop == 0 else "layer 0 and the totals" if stop == 1
                     else f"layers 0-{stop - 1} and the totals")
        notes.append(f"not checked: {unchecked} (layer {stop} ({names[stop]}) passed no usable "
                     "gradient back)")
    else:
        total = _total_rows(pristine, found, loss, xs[0], t, passed[0] if dx_ok[0] else None,
                            grads, names, options, forward, sub_reports)
        if total is None:
            notes.append("totals not checked: nothing in the chain is differentiable")
        rows.extend(total or [])
    annotate_symptoms(rows)
    return Report(rows, strict=strict, title="layers check", notes=notes,
                  judged_by=_judged_by(rows, jax, sub_reports))


def _loss_rows(loss, t, y, g, loss_name, options, sub_reports
               ) -> tuple[list[Row], np.ndarray | None]:
    """The loss's gradient checked against its value; the gradient as float64 (None, and a FAIL
    row saying why, when it is not a finite array shaped like y)."""
    try:
        grad = None if g is None else np.asarray(g, dtype=np.float64)
    except (TypeError, ValueError):
        grad = None
    why = (f"{loss_name} returned a {type(g).__name__} for dE/dy, not a float array"
           if grad is None or grad.dtype == object else
           f"{loss_name} returned dE/dy of shape {grad.shape}, its input y has {y.shape}"
           if grad.shape != y.shape else
           f"{loss_name} returned a dE/dy with {finite_location(grad)}"
           if not np.all(np.isfinite(grad)) else "")
    if why:
        return [Row.broken(None, "loss", "local", why, name=loss_name, input="y")], None

    def loss_value(y):
        return loss(y, copy.deepcopy(t))[0]

    def loss_backward(c, y):
        return c * grad

    report = check_vjp(loss_value, loss_backward, (y,), **options)
    sub_reports.append(report)
    rows = _rows(report, None, loss_name, "local")
    for r in rows:
        r.term = "loss"
    return rows, grad


def _unusable(dx: object, shape: tuple[int, ...], who: str) -> str:
    """Why ``dx`` cannot serve as the previous layer's upstream gradient ("" when it can)."""
    if dx is None:
        return f"{who} returned None for dx"
    try:
        arr = np.asarray(dx, dtype=np.float64)
    except (TypeError, ValueError):
        return f"{who} returned a {type(dx).__name__} for dx, not a float array"
    if arr.shape != shape:
        return f"{who} returned shape {arr.shape} for dx, its input has {shape}"
    if not np.all(np.isfinite(arr)):
        return f"{who} returned a dx with {finite_location(arr)}"
    return ""


def _copied(value: object) -> object:
    return np.array(value, copy=True) if value is not None else None


def _total_rows(pristine, params, loss, x, t, dx, grads, names, options, forward,
                sub_reports) -> list[Row] | None:
    """The chain's dE/dx and dE/dparameters against the gradient of the composed function
    (None when nothing in it is differentiable)."""
    inputs = {"x": x}
    owner = {"x": (0, "x")}
    wrt = ["x"] if dx is not None and x.dtype.kind == "f" else []
    for k, ps in enumerate(params):
        for p in ps:
            key = f"{k}.{p.name}"
            inputs[key] = np.asarray(p.get(pristine[k]), dtype=np.float64)
            owner[key] = (k, p.name)
            wrt.append(key)
    if not wrt:
        return None

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
                       inputs, wrt=wrt, **options)
    sub_reports.append(report)
    rows = []
    for r in report.rows:
        k, name = owner.get(r.input, (None, r.input))
        r.layer, r.scope, r.term, r.name = k, "total", f"d{name}", names[k] if k is not None \
            else None
        rows.append(r)
    return sorted(rows, key=lambda r: -1 if r.layer is None else -r.layer)


SOURCES = {frozenset({"jax", "fd"}): "JAX and finite differences",
           frozenset({"fd"}): "finite differences alone", frozenset({"jax"}): "JAX alone"}


def _judged_by(rows: list[Row], jax: bool | str, sub_reports: list[Report]) -> str:
    """Which sources judged which rows: "judged by JAX and finite differences; finite
    differences alone for layer 1 (ReLU) and the totals", and any cause of doubt."""
    def label(r: Row) -> str:
        if r.scope == "total":
            return "the totals"
        return "the loss" if r.layer is None else f"layer {r.layer} ({r.name})"

    groups: dict[frozenset, list[str]] = {}
    for r in rows:
        if r.sources:
            groups.setdefault(frozenset(r.sources), [])
            if label(r) not in groups[frozenset(r.sources)]:
                groups[frozenset(r.sources)].append(label(r))
    if not groups:
        return ""
    order = sorted(groups, key=lambda s: (-len(s), -len(groups[s])))
    main = order[0]
    text = "judged by " + SOURCES[main]
    if len(groups) == 1 and main == frozenset({"fd"}):
        text += ": JAX left out" if jax is False else ": JAX could not trace the network's code"
    for other in order[1:]:
        labels = groups[other]
        listed = labels[0] if len(labels) == 1 else ", ".join(labels[:-1]) + " and " + labels[-1]
        text += f"; {SOURCES[other]} for {listed}"
        if other == frozenset({"fd"}) and jax is not False:
            text += " (JAX could not trace " + ("it" if len(labels) == 1 else "them") + ")"
    doubts = [r.judged_by.split("; in doubt: ", 1)[1] for r in sub_reports
              if "; in doubt: " in r.judged_by]
    if doubts:
        text += "; in doubt: " + "; ".join(dict.fromkeys(doubts))
    return text
