"""Glue for the two common ways layers are written, so ``check_vjp`` takes them in one line.

**Functions with a cache** (CS231n style)::

    out, cache = affine_forward(x, w, b)
    dx, dw, db = affine_backward(dout, cache)

    check_vjp(*cached(affine_forward, affine_backward), (x, w, b))

**Layer objects** that keep their parameters and, after ``backward``, their gradients::

    y = dense.forward(x); dx = dense.backward(dy)      # dense.W, dense.b -> dense.dW, dense.db

    check_vjp(*layer(dense, x))

``layer`` finds the parameters itself. A parameter is a float array the object holds (an
attribute, or an entry of a ``params``/``parameters`` dict) that ``forward`` reads and does not
write: forward's output changes when it changes. What forward or backward store (``self.x``,
``self.out``, ``self.dx``, running statistics) is never a parameter. Each parameter's gradient
is looked for after a backward in the usual places (``GRADIENT_NAMES``: ``dW``, ``dw``,
``grad_W``, ``W_grad``; ``grads``/``grad``/``gradients`` dicts keyed ``"W"`` or ``"dW"``); a
parameter whose gradient is in none of them is refused with a ``ValueError`` naming it, never
skipped. ``params=["W", "b"]`` or ``params={"W": "dW"}`` names the parameters instead.

Integer and boolean inputs (token ids) are constants: no ``dx`` is checked for them. The
object itself is never changed: every call works on a deep copy, with the checked parameter
values put in.
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["GRADIENT_DICTS", "GRADIENT_NAMES", "PARAMETER_DICTS", "Parameter", "adapt", "cached",
           "layer", "layer_parameters"]

GRADIENT_NAMES = ("d{}", "grad_{}", "{}_grad")
"""Attributes where a layer object keeps the gradient of its parameter ``{}`` after
``backward`` (``d{}`` is also tried with the name in lower case: ``dw`` for ``W``)."""

PARAMETER_DICTS = ("params", "parameters")
"""Dict attributes whose float array entries may be parameters (``obj.params["W"]``)."""

GRADIENT_DICTS = ("grads", "grad", "gradients")
"""Dict attributes where gradients may be kept, keyed by the parameter's name or ``d<name>``."""

PROBE_SEED = 0x1A7E12
"""Seeds the perturbation that tells a parameter (forward reads it) from a stored array."""


def cached(
    forward: Callable[..., tuple[object, object]],
    backward: Callable[[object, object], object],
) -> tuple[Callable[..., object], Callable[..., object]]:
    """``(forward, backward)`` for ``check_vjp`` from ``forward(*inputs) -> (out, cache)`` and
    ``backward(dout, cache) -> gradients``.

    The new forward keeps ``forward``'s signature, so the report names inputs by its parameter
    names. Every call of the new backward runs ``forward`` afresh for its cache.

    Raises:
        TypeError: forward or backward not callable; (when called) a forward that does not
            return a pair ``(out, cache)``.
    """
    for name, fn in (("forward", forward), ("backward", backward)):
        if not callable(fn):
            raise TypeError(f"cached: {name} must be a callable, got {type(fn).__name__}")

    def pair(args, kwargs) -> tuple[object, object]:
        result = forward(*args, **kwargs)
        if not isinstance(result, tuple) or len(result) != 2:
            what = (f"a tuple of {len(result)}" if isinstance(result, tuple)
                    else type(result).__name__)
            raise TypeError(f"cached: forward must return a pair (out, cache), got {what}; a "
                            "forward that returns only its output needs no adapter")
        return result

    @functools.wraps(forward)
    def out_only(*args, **kwargs):
        return pair(args, kwargs)[0]

    def from_cache(dout, *args, **kwargs):
        return backward(dout, pair(args, kwargs)[1])

    try:
        from_cache.__signature__ = _with_leading(inspect.signature(forward), "dout")
    except (TypeError, ValueError):  # a builtin without a signature: positions name the inputs
        pass
    return out_only, from_cache


def _with_leading(sig: inspect.Signature, name: str) -> inspect.Signature:
    first = inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sig.replace(parameters=[first, *sig.parameters.values()])


# --- layer objects ------------------------------------------------------------------------------

Place = tuple[str, "str | None"]
"""Where an array lives on an object: ``("W", None)`` is ``obj.W``, ``("grads", "W")`` is
``obj.grads["W"]``."""


def _place_text(place: Place) -> str:
    attr, key = place
    return attr if key is None else f"{attr}[{key!r}]"


def _read(obj: object, place: Place) -> object:
    attr, key = place
    value = getattr(obj, attr, None)
    if key is None:
        return value
    return value.get(key) if isinstance(value, Mapping) else None


@dataclass(frozen=True)
class Parameter:
    """Where a layer object keeps one parameter, and where its gradient is looked for.

    Attributes:
        name: the parameter's name in the report (the attribute's name or the dict key).
        store: None for an attribute (``obj.W``), else the dict attribute holding it
            (``"params"``: ``obj.params["W"]``).
        gradients: the places where its gradient is read after ``backward``, first found wins.
        accumulates: backward adds to the gradient (``self.dW += ...``): it is zeroed before
            each backward, so a gradient left from an earlier call does not count.
    """

    name: str
    store: str | None = None
    gradients: tuple[Place, ...] = ()
    accumulates: bool = False

    @property
    def where(self) -> str:
        return self.name if self.store is None else f"{self.store}[{self.name!r}]"

    def get(self, obj: object) -> object:
        return _read(obj, (self.name, None) if self.store is None else (self.store, self.name))

    def set(self, obj: object, value: np.ndarray) -> None:
        if self.store is None:
            setattr(obj, self.name, value)
        else:
            getattr(obj, self.store)[self.name] = value

    def grad(self, obj: object) -> object:
        """The gradient kept on ``obj`` (None when no place holds an array)."""
        for place in self.gradients:
            value = _read(obj, place)
            if isinstance(value, np.ndarray):
                return value
        return None

    def zero_grad(self, obj: object) -> None:
        """Zero an accumulated gradient in place (nothing when none is held yet)."""
        value = self.grad(obj)
        if self.accumulates and isinstance(value, np.ndarray) and value.flags.writeable:
            value[...] = 0


def _float_array(value: object) -> bool:
    return isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.floating)


def _held(obj: object) -> dict[tuple[str | None, str], np.ndarray]:
    """The float arrays ``obj`` holds: ``(None, attr)`` for attributes, ``(dict, key)`` for the
    entries of its ``PARAMETER_DICTS``."""
    names = dict(getattr(obj, "__dict__", {}))
    for cls in type(obj).__mro__:
        for slot in getattr(cls, "__slots__", ()):
            if isinstance(slot, str) and hasattr(obj, slot):
                names.setdefault(slot, getattr(obj, slot))
    held: dict[tuple[str | None, str], np.ndarray] = {
        (None, k): v for k, v in names.items() if _float_array(v)}
    for store in PARAMETER_DICTS:
        entries = names.get(store)
        if isinstance(entries, Mapping):
            held.update({(store, str(k)): v for k, v in entries.items()
                         if isinstance(k, str) and _float_array(v)})
    return held


def _gradient_places(name: str, store: str | None) -> tuple[Place, ...]:
    """Every place ``GRADIENT_NAMES`` and ``GRADIENT_DICTS`` allow for parameter ``name``."""
    attrs = [p.format(name) for p in GRADIENT_NAMES]
    if name.lower() != name:
        attrs.insert(1, "d" + name.lower())
    places: list[Place] = [(a, None) for a in attrs]
    places += [(d, k) for d in GRADIENT_DICTS for k in (name, "d" + name)]
    if store is not None:  # a params dict's entry: its gradient is rarely a bare attribute
        places = places[len(attrs):] + places[:len(attrs)]
    return tuple(places)


def _named_places(gradient: str) -> tuple[Place, ...]:
    """The places a gradient named explicitly (``params={"W": "dW"}``) may be: an attribute
    ``dW``, or key ``"dW"`` of a ``GRADIENT_DICTS`` dict."""
    return ((gradient, None), *((d, gradient) for d in GRADIENT_DICTS))


def _call(method: Callable, arg: object) -> object:
    with np.errstate(all="ignore"):
        return method(arg)


def _copy_input(x: object) -> object:
    return x.copy() if isinstance(x, np.ndarray) else copy.deepcopy(x)


def _outputs_equal(a: object, b: object) -> bool:
    if isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)):
        return len(a) == len(b) and all(_outputs_equal(u, v) for u, v in zip(a, b))
    try:
        u, v = np.asarray(a), np.asarray(b)
    except Exception:  # noqa: BLE001 - an output numpy cannot read: compare as objects
        return a is b
    if u.shape != v.shape or u.dtype != v.dtype:
        return False
    return bool(np.array_equal(u, v, equal_nan=u.dtype.kind == "f"))


def _ones_like(y: object) -> object:
    """A cotangent of ones shaped like the output ``y`` (a tuple for a tuple)."""
    if isinstance(y, (tuple, list)):
        return tuple(_ones_like(v) for v in y)
    arr = np.asarray(y)
    return np.ones(arr.shape, arr.dtype if np.issubdtype(arr.dtype, np.floating) else np.float64)


def _snapshot(obj: object) -> dict[tuple[str | None, str], np.ndarray]:
    return {k: v.copy() for k, v in _held(obj).items()}


def layer_parameters(
    obj: object,
    x: object,
    *,
    params: Mapping[str, str] | Sequence[str] | None = None,
    forward: str = "forward",
    backward: str = "backward",
) -> list[Parameter]:
    """A layer object's parameters and where their gradients are, found on copies of ``obj``.

    Without ``params``: the float arrays ``obj`` holds (attributes, ``params``/``parameters``
    dict entries) that ``forward(x)`` neither sets nor changes and whose perturbation changes
    forward's output; each one's gradient is looked for after a ``backward`` of ones in
    ``GRADIENT_NAMES`` and ``GRADIENT_DICTS``.

    Args:
        obj: the layer object (never changed).
        x: its input, shape as ``forward`` takes it (an integer array of ids is a constant).
        params: the parameters to check, by name (``["W", "b"]``: attributes or ``params``
            dict keys, gradients found as above) or with their gradients' names
            (``{"W": "dW"}``: an attribute, or a key of a ``grads``/``grad``/``gradients``
            dict); None finds them.
        forward, backward: the method names.

    Returns:
        The parameters in the order ``obj`` holds them (or as ``params`` names them).

    Raises:
        TypeError: ``params`` of the wrong form.
        ValueError: a named parameter ``obj`` does not hold; a parameter whose gradient is in
            none of the places looked for; forward raising or not deterministic at x.
    """
    kind = type(obj).__name__
    named = _parse_params(params)
    held = _held(obj)
    if named is not None:
        by_name = {}
        for name in named:
            key = (None, name) if (None, name) in held else next(
                (k for k in held if k[0] is not None and k[1] == name), None)
            if key is None:
                have = sorted({_key_text(k) for k in held})
                raise ValueError(f"params names {name!r}, but {kind} holds no float array "
                                 f"{name!r} (as an attribute or in {'/'.join(PARAMETER_DICTS)}); "
                                 f"float arrays it holds: {have}")
            by_name[name] = key
    probe = copy.deepcopy(obj)
    before = _snapshot(probe)
    try:
        y = _call(getattr(probe, forward), _copy_input(x))
    except Exception as exc:
        raise ValueError(f"{kind}.{forward} raised {type(exc).__name__} at x: {exc}") from exc

    if named is not None:
        found = [Parameter(name, key[0], _named_places(named[name]) if named[name] else
                           _gradient_places(name, key[0])) for name, key in by_name.items()]
    else:
        found = _read_by_forward(obj, x, probe, before, y, forward)

    dy = _ones_like(y)
    pre = {pl: _copied(_read(probe, pl)) for p in found for pl in p.gradients}
    try:
        _call(getattr(probe, backward), copy.deepcopy(dy))
    except Exception:  # noqa: BLE001 - the check reports a raising backward as a FAIL row
        return found
    located, missing = [], []
    for p in found:
        shape = np.shape(p.get(probe))
        place = next((pl for pl in p.gradients if isinstance(_read(probe, pl), np.ndarray)
                      and np.shape(_read(probe, pl)) == shape), None)
        if place is None:
            missing.append(p)
        else:
            located.append((p, place))
    if missing:
        p = missing[0]
        looked = ", ".join(_place_text(pl) for pl in p.gradients)
        hint = (f" Name its gradient: params={{{p.name!r}: '<gradient>'}}" if named is not None
                else " Name the parameters to check: params=['W', 'b'] or params={'W': 'dW'}")
        read = "" if named is not None else f" is read by {forward} but"
        raise ValueError(
            f"{kind}.{p.where} (float array {np.shape(p.get(obj))}){read} no gradient of its "
            f"shape was found after {backward}; looked for {looked}.{hint}")
    return _with_accumulation(probe, located, pre, backward, dy)


def _copied(value: object) -> np.ndarray | None:
    return value.copy() if isinstance(value, np.ndarray) else None


def _with_accumulation(probe: object, located: list[tuple[Parameter, Place]],
                       pre: Mapping[Place, np.ndarray | None], backward: str,
                       dy: object) -> list[Parameter]:
    """The parameters with their gradient's place, marked ``accumulates`` when a second
    ``backward`` on the same cache adds the same increment again (``self.dW += ...``)."""
    first = {pl: _read(probe, pl).copy() for _, pl in located}
    try:
        _call(getattr(probe, backward), copy.deepcopy(dy))
        second = {pl: _copied(_read(probe, pl)) for _, pl in located}
    except Exception:  # noqa: BLE001 - a backward that runs once only: taken as written
        second = dict(first)
    out = []
    for p, pl in located:
        a, b = first[pl], second[pl]
        before = pre.get(pl)
        if before is None or before.shape != a.shape:
            before = np.zeros_like(a)
        adds = b is not None and b.shape == a.shape and not np.array_equal(a, b) and bool(
            np.allclose(b - a, a - before, rtol=1e-6, atol=1e-12 * (np.max(np.abs(a)) + 1)))
        out.append(Parameter(p.name, p.store, (pl,), adds))
    return out


def _key_text(key: tuple[str | None, str]) -> str:
    return key[1] if key[0] is None else f"{key[0]}[{key[1]!r}]"


def _parse_params(params: object) -> dict[str, str | None] | None:
    """``params=`` as {name: gradient name or None (find it)}; None when not given."""
    if params is None:
        return None
    form = ("params must be a list of parameter names (['W', 'b']) or a dict of parameter "
            "name -> gradient name ({'W': 'dW'})")
    if isinstance(params, Mapping):
        bad = [(k, v) for k, v in params.items() if not isinstance(k, str)
               or not isinstance(v, str)]
        if bad:
            raise TypeError(f"{form}, got entry {bad[0]!r}")
        return dict(params)
    if isinstance(params, (str, bytes)) or not isinstance(params, Sequence):
        raise TypeError(f"{form}, got {type(params).__name__}: {params!r:.60}")
    bad = [k for k in params if not isinstance(k, str)]
    if bad:
        raise TypeError(f"{form}, got {type(bad[0]).__name__} {bad[0]!r} among the names")
    if len(set(params)) != len(params):
        raise ValueError(f"params names a parameter twice: {list(params)}")
    return dict.fromkeys(params)


def _read_by_forward(obj, x, probe, before, y, forward) -> list[Parameter]:
    """The float arrays held before forward that forward leaves unchanged and reads: a cache
    forward sets (``self.x = x``) does not move its output when perturbed, a state it updates
    (an RNN's ``self.h``, running statistics) changes under it."""
    after = _held(probe)
    kept = [k for k, v in _held(obj).items()
            if k in after and k in before and np.shape(after[k]) == np.shape(before[k])
            and np.array_equal(after[k], before[k], equal_nan=True)]
    again = copy.deepcopy(obj)
    if not _outputs_equal(y, _call(getattr(again, forward), _copy_input(x))):
        raise ValueError(f"{type(obj).__name__}.{forward} is not deterministic: two calls at the "
                         "same input gave different outputs; fix its randomness (a dropout "
                         "mask) or finite differences would measure noise")
    rng = np.random.default_rng(PROBE_SEED)
    found = []
    for store, name in kept:
        clone = copy.deepcopy(obj)
        p = Parameter(name, store, _gradient_places(name, store))
        value = p.get(clone)
        bump = (np.abs(value) + 1) * 1e-2 * rng.standard_normal(value.shape)
        p.set(clone, (value + bump).astype(value.dtype))
        try:
            moved = not _outputs_equal(y, _call(getattr(clone, forward), _copy_input(x)))
        except Exception:  # noqa: BLE001 - forward broke when it changed: forward reads it
            moved = True
        if moved:
            found.append(p)
    return found


def _input_name(method: Callable, taken: set[str]) -> str:
    """forward's own name for its input (``forward(self, ids)`` -> "ids"), else "x"."""
    try:
        first = next(iter(inspect.signature(method).parameters.values()), None)
    except (TypeError, ValueError):
        first = None
    name = first.name if first is not None and first.kind in (
        first.POSITIONAL_ONLY, first.POSITIONAL_OR_KEYWORD) else "x"
    for candidate in (name, "x", "input", "layer_input"):
        if candidate not in taken:
            return candidate
    return "input_" + "_".join(sorted(taken))


def _methods(obj: object, forward: object, backward: object) -> None:
    for what, name in (("forward", forward), ("backward", backward)):
        if not isinstance(name, str):
            raise TypeError(f"{what} must be a method name (str), got {type(name).__name__}")
        if not callable(getattr(obj, name, None)):
            raise TypeError(f"{type(obj).__name__} has no method {name!r} (the {what} method "
                            "name)")


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
        x: the layer's input, shape (B, ...) as forward takes it; a float array is checked
            (its row is named by forward's parameter, e.g. "x"), an integer/bool array (ids)
            is a constant.
        params: the parameters to check (see ``layer_parameters``): ``["W", "b"]`` or
            ``{"W": "dW"}``; None finds them, and refuses (ValueError) a parameter whose
            gradient it cannot find.

    Returns:
        ``(forward, backward, inputs)``: ``inputs`` is ``{<input>: x, <param>: its current
        value, ...}``, each parameter with its own shape; the functions take them as keywords.
        The parameters' values are read now; ``obj`` is never changed.

    Raises:
        TypeError: missing methods, ``params`` of the wrong form, x not an array.
        ValueError: as ``layer_parameters``.
    """
    _methods(obj, forward, backward)
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"x must be an array, could not convert it: {exc}") from None
    if x.dtype.kind not in "fiub":
        raise TypeError(f"x must be a float array (or an integer array of ids), got dtype "
                        f"{x.dtype}")
    found = layer_parameters(obj, x, params=params, forward=forward, backward=backward)
    return adapt(obj, x, found, forward=forward, backward=backward)


def adapt(
    obj: object, x: np.ndarray, found: Sequence[Parameter], *, forward: str = "forward",
    backward: str = "backward",
) -> tuple[Callable[..., object], Callable[..., object], dict[str, object]]:
    """``layer``'s result for parameters already found (``layer_parameters``)."""
    template = copy.deepcopy(obj)
    key = _input_name(getattr(obj, forward), {p.name for p in found})
    inputs = {key: x, **{p.name: p.get(obj) for p in found}}

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
        for p in found:
            p.zero_grad(clone)
        dx = getattr(clone, backward)(dy)
        return {key: dx, **{p.name: p.grad(clone) for p in found}}

    parameters = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY) for n in inputs]
    run_forward.__signature__ = inspect.Signature(parameters)
    run_forward.__name__ = f"{type(obj).__name__}.{forward}"
    run_backward.__name__ = f"{type(obj).__name__}.{backward}"
    return run_forward, run_backward, inputs
