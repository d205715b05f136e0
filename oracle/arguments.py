"""A user's function and its arguments, as the general checker sees them.

``check_vjp(forward, backward, inputs)`` takes a tuple of arrays (passed positionally) or a dict
of named arrays (passed as keywords). This module holds what every source of truth needs from
them, once:

- **names**: a dict's keys; else ``forward``'s own parameter names; else ``inputs[i]``;
- **which inputs are differentiable**: floating numpy arrays (any shape, 0-d included). Integer
  and boolean arrays (labels, ids, masks), Python numbers and any other object are constants,
  passed to ``forward`` and ``backward`` as they are;
- **private copies**: every call hands the user's code fresh copies of the arrays, so code that
  writes into its inputs can neither change the caller's arrays nor the point being checked;
- **the output's structure** (one array, a tuple of arrays, or a scalar) and a cotangent of the
  same structure;
- **the hand-derived gradients** in whatever form ``backward`` returns them (a tuple in input
  order, one entry per input or per differentiable input; a dict by name; one array), mapped to
  the inputs they belong to, with a clear complaint when the form does not fit.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Arguments", "Output", "cotangent_for", "hand_gradients"]


def _is_float_array(value: object) -> bool:
    return isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.floating)


def _copy(value: object) -> object:
    """A private copy of an argument: arrays, and containers that code may write into (a
    CS231n ``bn_param`` dict gets its running mean written back), so the caller's never change."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if type(value) is dict and all(_plain(v) for v in value.values()):
        copies: dict[int, object] = {}  # a bn_param, ~10x faster than deepcopy, aliases kept
        for v in value.values():
            if isinstance(v, np.ndarray) and id(v) not in copies:
                copies[id(v)] = v.copy()
        return {k: copies.get(id(v), v) for k, v in value.items()}
    if isinstance(value, (dict, list)):
        return copy.deepcopy(value)
    return value


def _plain(value: object) -> bool:
    """A value of a parameter dict that ``_copy`` copies itself (a numeric array) or that cannot
    change (a number, a string, None)."""
    if isinstance(value, np.ndarray):
        return value.dtype != object
    return isinstance(value, (int, float, str, bool, type(None), np.generic))


def _parameter_names(fn: Callable, count: int) -> list[str] | None:
    """``fn``'s first ``count`` positional parameter names, or None when it has no such list."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    names = []
    for p in params:
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            names.append(p.name)
        elif p.kind == p.VAR_POSITIONAL:
            return None
    return names[:count] if len(names) >= count else None


@dataclass(frozen=True)
class Arguments:
    """The inputs of a check: names, float64 working copies, and which are differentiable.

    Attributes:
        names: one name per input (dict key, parameter name, or ``inputs[i]``).
        values: the working values: differentiable inputs as float64 copies, the rest as given.
        keyword: True for dict inputs (passed to the user's code as keywords).
        differentiable: per input, whether it is a floating array.
        dtypes: the caller's dtypes of the differentiable inputs (float32 is upcast here).
    """

    names: tuple[str, ...]
    values: tuple[Any, ...]
    keyword: bool
    differentiable: tuple[bool, ...]
    dtypes: tuple[Any, ...]

    @classmethod
    def of(cls, forward: Callable, inputs: Sequence | Mapping) -> Arguments:
        """Read ``inputs`` (tuple/list or dict) for ``forward``; the caller's arrays are copied.

        Raises:
            TypeError: inputs neither a tuple/list nor a dict, a complex array.
            ValueError: no differentiable input, a NaN/Inf in a differentiable input.
        """
        if isinstance(inputs, Mapping):
            names = [str(k) for k in inputs]
            given = list(inputs.values())
            keyword = True
        elif isinstance(inputs, (tuple, list)):
            given = list(inputs)
            names = _parameter_names(forward, len(given)) or [
                f"inputs[{i}]" for i in range(len(given))]
            keyword = False
        elif isinstance(inputs, np.ndarray):
            raise TypeError("inputs must be a tuple of arrays or a dict of named arrays, got one "
                            f"array of shape {inputs.shape}: pass (x,) for a single input")
        else:
            raise TypeError("inputs must be a tuple of arrays or a dict of named arrays, got "
                            f"{type(inputs).__name__}")
        values, diff, dtypes = [], [], []
        for name, value in zip(names, given):
            if isinstance(value, np.ndarray) and value.dtype == object:
                raise TypeError(f"input {name!r} is an object array: pass a numeric array "
                                "(floating to differentiate; integer or bool as a constant), "
                                "e.g. np.asarray(x, dtype=float)")
            if isinstance(value, np.ndarray) and np.iscomplexobj(value):
                raise TypeError(f"input {name!r} is complex ({value.dtype}): the checker "
                                "differentiates real functions of real inputs")
            if _is_float_array(value):
                if not np.all(np.isfinite(value)):
                    bad = np.argwhere(~np.isfinite(value))[0]
                    raise ValueError(f"input {name!r} must be finite, found "
                                     f"{value[tuple(bad)]} at {tuple(int(i) for i in bad)}")
                dtypes.append(value.dtype)
                values.append(value.astype(np.float64, copy=True))
                diff.append(True)
            else:
                dtypes.append(None)
                values.append(_copy(value))
                diff.append(False)
        if not any(diff):
            kinds = {name: (f"ndarray of {v.dtype}" if isinstance(v, np.ndarray)
                            else type(v).__name__) for name, v in zip(names, given)}
            raise ValueError("inputs has no differentiable input: at least one must be a "
                             "floating numpy array (integer/bool arrays, lists and Python "
                             f"numbers are constants; pass np.asarray(...) to differentiate a "
                             f"list); got {kinds}")
        return cls(tuple(names), tuple(values), keyword, tuple(diff), tuple(dtypes))

    def positions(self, wrt: object) -> list[int]:
        """The inputs ``wrt`` names (a name, a position, or a sequence of them); None: every
        differentiable input.

        Raises:
            ValueError: an unknown name or position, or a constant input named.
        """
        every = [i for i, d in enumerate(self.differentiable) if d]
        if wrt is None:
            return every
        items = [wrt] if isinstance(wrt, (str, int)) else list(wrt)
        if not items:
            raise ValueError("wrt must name at least one input, got an empty sequence")
        out = []
        for item in items:
            if isinstance(item, (bool, np.bool_)) or not isinstance(item, (str, int, np.integer)):
                raise TypeError(f"wrt must hold input names or positions, got {item!r}")
            if isinstance(item, str):
                if item not in self.names:
                    raise ValueError(f"wrt names {item!r}, which is not an input; inputs are "
                                     f"{list(self.names)}")
                i = self.names.index(item)
            else:
                i = int(item)
                if not 0 <= i < len(self.names):
                    raise ValueError(f"wrt position {i} is out of range for {len(self.names)} "
                                     "inputs")
            if not self.differentiable[i]:
                raise ValueError(f"wrt names input {self.names[i]!r}, which is a constant (not a "
                                 "floating array) and has no gradient")
            if i not in out:
                out.append(i)
        return out

    def call(self, fn: Callable, *lead: object, replace: Mapping[int, Any] | None = None) -> Any:
        """``fn(*lead, *inputs)`` (keywords for dict inputs) on fresh copies of the inputs, with
        the inputs at ``replace``'s positions swapped for its values (not copied)."""
        replace = replace or {}
        values = [replace[i] if i in replace else _copy(v) for i, v in enumerate(self.values)]
        if self.keyword:
            return fn(*lead, **dict(zip(self.names, values)))
        return fn(*lead, *values)


@dataclass(frozen=True)
class Output:
    """What ``forward`` returned, flattened: float64 arrays, None for non-float outputs.

    ``kind`` is "array", "scalar" (a Python or 0-d number) or "tuple"."""

    kind: str
    arrays: tuple[np.ndarray | None, ...]

    @classmethod
    def of(cls, value: object, *, copy: bool = True) -> Output:
        """Raises TypeError for an output that is not an array, a number or a tuple of them.
        ``copy=False``: float64 arrays are kept as forward returned them (for a value used at
        once, not kept)."""
        if isinstance(value, (tuple, list)):
            for i, v in enumerate(value):
                if isinstance(v, (tuple, list, dict)):
                    hint = (" (a forward returning (out, cache) is checked through "
                            "oracle.adapters.cached(forward, backward))" if i == len(value) - 1
                            else "")
                    raise TypeError(f"forward's output [{i}] is a {type(v).__name__}: forward "
                                    "must return an array, a number or a flat tuple of arrays"
                                    + hint)
            return cls("tuple", tuple(_float_or_none(v, f"forward's output [{i}]", copy)
                                      for i, v in enumerate(value)))
        if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
            return cls("scalar", (np.asarray(value, dtype=np.float64),))
        if isinstance(value, np.ndarray) or hasattr(value, "__array__"):
            arr = _float_or_none(value, "forward's output", copy)
            if arr is None:
                raise TypeError(f"forward's output must be floating, got dtype "
                                f"{np.asarray(value).dtype}")
            return cls("scalar" if arr.ndim == 0 else "array", (arr,))
        raise TypeError("forward must return an array, a number or a tuple of arrays, got "
                        f"{type(value).__name__}")

    def differs(self, other: Output) -> str:
        """How ``other`` (forward's output elsewhere) differs in structure from this one, or ""
        (same kind, count, and shape of every floating output)."""
        def kind(o: Output) -> str:
            return {"array": "an array", "scalar": "a number"}.get(
                o.kind, f"a tuple of {len(o.arrays)}")
        if other.kind != self.kind or len(other.arrays) != len(self.arrays):
            return f"{kind(other)} instead of {kind(self)}"
        for j, (a, b) in enumerate(zip(self.arrays, other.arrays)):
            if (a is None) != (b is None) or (a is not None and a.shape != b.shape):
                def what(x: np.ndarray | None) -> str:
                    return "not floating" if x is None else f"shape {x.shape}"
                return f"output [{j}] {what(b)} instead of {what(a)}"
        return ""

    def pair(self, cotangent: tuple[np.ndarray | None, ...]) -> float:
        """``<cotangent, output>``: the scalar whose gradient the backward computes."""
        total = 0.0
        for c, a in zip(cotangent, self.arrays):
            if c is not None and a is not None:
                total += float(np.vdot(c, a))
        return total

    def pair_magnitude(self, cotangent: tuple[np.ndarray | None, ...]) -> float:
        """``<|cotangent|, |output|>``: the size of the terms the pairing sums (round-off floor)."""
        total = 0.0
        for c, a in zip(cotangent, self.arrays):
            if c is not None and a is not None:
                total += float(np.vdot(np.abs(c), np.abs(a)))
        return total


def _float_or_none(value: object, what: str, copy: bool = True) -> np.ndarray | None:
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:  # ragged lists and the like
        raise TypeError(f"{what} must be a numeric array, could not convert it: {exc}") from None
    if np.iscomplexobj(arr):
        raise TypeError(f"{what} is complex ({arr.dtype}): the checker differentiates real "
                        "functions")
    if np.issubdtype(arr.dtype, np.floating):
        return arr.astype(np.float64, copy=copy)
    if np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_:
        return None
    raise TypeError(f"{what} must be a numeric array, got dtype {arr.dtype}")


def cotangent_for(output: Output, given: object, rng: np.random.Generator
                  ) -> tuple[tuple[np.ndarray | None, ...], object, str]:
    """The cotangent as flat float64 arrays, the form handed to ``backward``, and how it was made.

    ``given`` None: standard normal entries (seeded) for every float output; a scalar output
    gets 1.0.

    Raises:
        ValueError: a given cotangent whose structure or shapes do not match the output.
    """
    if given is None:
        if output.kind == "scalar":
            return (np.ones(()),), 1.0, "1.0 (scalar output)"
        flat = tuple(None if a is None else rng.normal(size=a.shape) for a in output.arrays)
        handed = tuple(_copy(c) for c in flat) if output.kind == "tuple" else flat[0].copy()
        return flat, handed, "standard normal entries (seeded)"
    if output.kind == "tuple":
        if not isinstance(given, (tuple, list)) or len(given) != len(output.arrays):
            raise ValueError(f"cotangent must be a tuple of {len(output.arrays)} arrays like "
                             f"forward's output, got {type(given).__name__}")
        parts = list(given)
    else:
        parts = [given]
    flat = []
    for i, (c, a) in enumerate(zip(parts, output.arrays)):
        if a is None or c is None:
            flat.append(None)
            continue
        where = f"cotangent[{i}]" if output.kind == "tuple" else "cotangent"
        if np.iscomplexobj(c):
            raise TypeError(f"{where} must be a real float array, got a complex one")
        try:
            arr = np.asarray(c, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{where} must be a float array shaped like forward's output "
                            f"{a.shape}, could not convert it: {exc}") from None
        if arr.shape != a.shape:
            raise ValueError(f"{where} must have the output's shape {a.shape}, got {arr.shape}")
        if not np.all(np.isfinite(arr)):
            bad = tuple(int(k) for k in np.argwhere(~np.isfinite(arr))[0])
            raise ValueError(f"{where} must be finite, found {int(np.sum(~np.isfinite(arr)))} "
                             f"NaN/Inf entries (first at index {bad}: {arr[bad]})")
        flat.append(arr)
    handed = tuple(_copy(c) for c in parts) if output.kind == "tuple" else _copy(given)
    return tuple(flat), handed, "given"


def hand_gradients(args: Arguments, result: object) -> dict[int, object]:
    """Map what ``backward`` returned to input positions (values not yet validated).

    Accepted forms: one array when there is one differentiable input; a tuple/list with one
    entry per input (constants' entries ignored) or per differentiable input; a dict by input
    name (dict inputs, or any inputs).

    Raises:
        ValueError: a form that fits none of these, said in words.
    """
    diff = [i for i, d in enumerate(args.differentiable) if d]
    if isinstance(result, Mapping):
        unknown = [k for k in result if k not in args.names]
        if unknown:
            raise ValueError(f"backward returned gradients for {unknown}, which are not inputs "
                             f"({list(args.names)})")
        return {args.names.index(k): v for k, v in result.items()
                if args.differentiable[args.names.index(k)]}
    if isinstance(result, (tuple, list)):
        if len(result) == len(diff):
            return dict(zip(diff, result))
        if len(result) == len(args.names):
            return {i: result[i] for i in diff}
        raise ValueError(f"backward returned {len(result)} gradients; expected one per "
                         f"differentiable input ({len(diff)}: "
                         f"{[args.names[i] for i in diff]}) or one per input ({len(args.names)})")
    if len(diff) == 1:
        return {diff[0]: result}
    raise ValueError(f"backward returned a single {type(result).__name__}; expected a tuple of "
                     f"{len(diff)} gradients ({[args.names[i] for i in diff]})")
