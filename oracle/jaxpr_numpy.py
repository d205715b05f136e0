"""Run a JAX program in numpy: JAX's derivative *program* without XLA compilation.

Why: eager ``jax.vjp`` of a small layer (batchnorm on an (8, 4) array) dispatches every
primitive to XLA, and XLA compiles a kernel for every new (primitive, shapes) pair: a first
check of a new layer costs 300-1000 ms, nearly all of it compilation, for microseconds of
arithmetic. Here the program is only *traced* (``jax.make_jaxpr``: abstract values, pure
Python, nothing compiled) and the resulting jaxpr is interpreted equation by equation with numpy
implementations of the primitives::

    out, grads = numpy_call(lambda xs, ct: ..jax.vjp(f, *xs).., xs, ct)

The derivative is still JAX's own (its JVP and transpose rules wrote the program); only the
arithmetic of each primitive is numpy's. Each implementation follows XLA's semantics in
float64 (dtypes included: integer division truncates, ``max`` propagates NaN, gather clamps
its start indices, scatter drops out-of-bounds windows, sort puts NaNs last ...), so results
agree with JAX's to round-off (numpy may sum in another order).

Fallback: a primitive missing from ``_IMPLS`` (or whose implementation cannot handle the given
parameters, or returns a wrongly shaped result) is run by JAX itself on that one equation
(``prim.bind``, compiled by XLA: correct by definition, slow the first time). Every fallback is
counted in ``fallback_counts`` (primitive name -> count; reason of the last one in
``fallback_reasons``), so tests and benchmarks can see which primitives were not run by numpy.

Limits:

* Fall back to JAX: ``select_and_scatter_add`` (the VJP of ``lax.reduce_window`` max-pooling;
  max-pooling by reshape + max is fine), ``reduce_window`` with a custom reducer, ``top_k``,
  linear algebra (``lu``, ``cholesky``, ``triangular_solve``, ``eigh`` ...), FFTs, ``clz``, and
  the random-number primitives (a PRNG key stays a JAX array, and everything touching it runs
  in JAX: pass fixed masks instead). ``erf``, ``erf_inv``, ``lgamma``, ``digamma`` ... need
  scipy, else they fall back.
* Where XLA's own float64 function is less accurate than libm/scipy, the values differ by
  XLA's error, not by round-off: ``erf_inv`` (XLA ~1e-15 relative, ~1e-10 near +-1),
  ``atanh`` (~1e-14), ``lgamma``/``digamma`` near their zeros. float32 programs run in float32
  and agree to float32 round-off.
* XLA:CPU flushes subnormal results (|x| < 2.2e-308) to zero; numpy keeps them.
* Among repeated indices of a ``scatter`` (``x.at[idx].set(v)``) the last write wins, as on
  XLA:CPU; JAX leaves it unspecified. ``empty`` (uninitialised memory in XLA) gives zeros.
* Programs with dynamic shapes, sharding or effects (ordered callbacks) are not a goal.
"""

from __future__ import annotations

import functools
import importlib
import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from jax.extend.core import ClosedJaxpr, DropVar, Jaxpr, JaxprEqn, Literal

from .jax_support import jax, jnp

__all__ = ["evaluate", "fallback_counts", "fallback_reasons", "numpy_call", "numpy_program",
           "reset_fallbacks"]

fallback_counts: Counter[str] = Counter()
"""Primitive name -> number of equations run by JAX instead of numpy (since the last reset)."""

fallback_reasons: dict[str, str] = {}
"""Primitive name -> why its last fallback happened."""


def reset_fallbacks() -> None:
    """Forget the recorded fallbacks."""
    fallback_counts.clear()
    fallback_reasons.clear()


class _Unsupported(Exception):
    """A numpy implementation cannot handle these parameters: run the equation with JAX."""


Impl = Callable[..., Any]  # (params: dict, *args: np.ndarray) -> np.ndarray | list[np.ndarray]

_MODE = jax.lax.GatherScatterMode


# --------------------------------------------------------------------------------------------
# public API


def evaluate(closed_jaxpr: ClosedJaxpr, *args: Any) -> list[np.ndarray]:
    """Run a closed jaxpr on numpy arrays, primitive by primitive in numpy (float64)."""
    jaxpr = closed_jaxpr.jaxpr
    if len(args) != len(jaxpr.invars):
        raise TypeError(f"the jaxpr takes {len(jaxpr.invars)} arguments, got {len(args)}")
    inputs = []
    for var, arg in zip(jaxpr.invars, args):
        if _is_extended(var.aval):
            inputs.append(arg)
            continue
        value = np.asarray(arg)
        if value.shape != var.aval.shape:
            raise ValueError(f"argument of shape {value.shape} for {var.aval.str_short()}")
        inputs.append(value.astype(var.aval.dtype, copy=False))
    with np.errstate(all="ignore"):  # like XLA: inf and nan are values, not events
        outs = _eval_jaxpr(jaxpr, closed_jaxpr.consts, inputs)
    # fresh, writable, owned by the caller (a PRNG key output stays a JAX array)
    return [np.array(out) if isinstance(out, np.ndarray) else out for out in outs]


def numpy_call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` as JAX would compute it, but traced with ``jax.make_jaxpr`` and
    run by :func:`evaluate`: same pytree output structure as ``fn``, leaves as numpy arrays.

    Every leaf of ``args``/``kwargs`` is traced (as under ``jax.jit``); close over anything
    static. Raises whatever ``make_jaxpr`` raises when ``fn`` cannot be traced abstractly (e.g.
    Python control flow on traced values).
    """
    leaves, in_tree = jax.tree_util.tree_flatten((args, kwargs))

    def flat_fn(*flat: Any) -> Any:
        call_args, call_kwargs = jax.tree_util.tree_unflatten(in_tree, flat)
        return fn(*call_args, **call_kwargs)

    closed, out_shape = jax.make_jaxpr(flat_fn, return_shape=True)(*leaves)
    outs = evaluate(closed, *leaves)
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(out_shape), outs)


def numpy_program(fn: Callable[..., Any], *args: Any) -> Callable[..., Any]:
    """``fn`` traced once at ``args`` (``jax.make_jaxpr``), as a function that runs the same
    program in numpy on new arguments of the same structure, shapes and dtypes: the second and
    later calls cost no tracing. Raises what ``make_jaxpr`` raises."""
    leaves, in_tree = jax.tree_util.tree_flatten(args)

    def flat_fn(*flat: Any) -> Any:
        return fn(*jax.tree_util.tree_unflatten(in_tree, flat))

    closed, out_shape = jax.make_jaxpr(flat_fn, return_shape=True)(*leaves)
    out_tree = jax.tree_util.tree_structure(out_shape)

    def run(*new_args: Any) -> Any:
        new_leaves, new_tree = jax.tree_util.tree_flatten(new_args)
        if new_tree != in_tree:
            raise ValueError(f"numpy_program: arguments of structure {new_tree}, traced with "
                             f"{in_tree}")
        return jax.tree_util.tree_unflatten(out_tree, evaluate(closed, *new_leaves))

    return run


# --------------------------------------------------------------------------------------------
# the interpreter


def _eval_jaxpr(jaxpr: Jaxpr, consts: Sequence[Any], args: Sequence[np.ndarray]) -> list:
    env: dict[Any, np.ndarray] = {}

    def read(atom: Any) -> np.ndarray:
        if isinstance(atom, Literal):
            return np.asarray(atom.val, dtype=atom.aval.dtype)
        return env[atom]

    for var, value in zip(jaxpr.constvars, consts):
        env[var] = value if _is_extended(var.aval) else np.asarray(value)
    for var, value in zip(jaxpr.invars, args):
        env[var] = value
    for eqn in jaxpr.eqns:
        invals = [read(v) for v in eqn.invars]
        outvals = _run_equation(eqn, invals)
        for var, value in zip(eqn.outvars, outvals):
            if not isinstance(var, DropVar):
                env[var] = value
    return [read(v) for v in jaxpr.outvars]


def _run_equation(eqn: JaxprEqn, invals: list[np.ndarray]) -> list[np.ndarray]:
    name = eqn.primitive.name
    impl = _IMPLS.get(name)
    if impl is None:
        return _fallback(eqn, invals, "no numpy implementation")
    if any(isinstance(v, jax.Array) for v in invals):
        return _fallback(eqn, invals, "an operand numpy cannot hold (e.g. a PRNG key)")
    try:
        out = impl(eqn.params, *invals)
        outs = list(out) if eqn.primitive.multiple_results else [out]
        return [_conform(value, var.aval) for value, var in zip(outs, eqn.outvars, strict=True)]
    except Exception as exc:  # any failure: let JAX run this equation
        return _fallback(eqn, invals, f"{type(exc).__name__}: {exc}")


def _conform(value: Any, aval: Any) -> np.ndarray:
    """``value`` as an array of ``aval``'s dtype; a shape mismatch is a bug: fall back."""
    array = np.asarray(value)
    if not isinstance(aval, jax.core.ShapedArray):
        return array
    if array.dtype != aval.dtype:
        array = array.astype(aval.dtype)
    if array.shape != aval.shape:
        raise _Unsupported(f"numpy gave shape {array.shape}, the jaxpr says {aval.str_short()}")
    return array


def _fallback(eqn: JaxprEqn, invals: list[np.ndarray], reason: str) -> list[np.ndarray]:
    """Run one equation with JAX itself (compiles it), back to numpy."""
    name = eqn.primitive.name
    fallback_counts[name] += 1
    fallback_reasons[name] = reason
    params = eqn.primitive.get_bind_params(eqn.params)
    with jax.ensure_compile_time_eval():
        out = eqn.primitive.bind(*[jnp.asarray(v) for v in invals], **params)
    outs = out if eqn.primitive.multiple_results else [out]
    return [value if _is_extended(var.aval) else np.asarray(value)
            for value, var in zip(outs, eqn.outvars)]


def _is_extended(aval: Any) -> bool:
    dtype = getattr(aval, "dtype", None)
    return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.extended)


def _call_jaxpr(jaxpr: ClosedJaxpr | Jaxpr, *args: np.ndarray) -> list[np.ndarray]:
    if isinstance(jaxpr, ClosedJaxpr):
        return _eval_jaxpr(jaxpr.jaxpr, jaxpr.consts, args)
    return _eval_jaxpr(jaxpr, [], args)


# --------------------------------------------------------------------------------------------
# elementwise


def _ufunc(fn: Callable[..., Any]) -> Impl:
    return lambda params, *args: fn(*args)


def _div(params: dict, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if not np.issubdtype(x.dtype, np.integer):
        return np.true_divide(x, y)
    # XLA: rounds toward zero; x / 0 is -1 (all bits set)
    safe = np.where(y == 0, 1, y)
    q = np.floor_divide(x, safe)
    q = q + ((np.remainder(x, safe) != 0) & ((x < 0) != (safe < 0)))
    return np.where(y == 0, np.array(-1).astype(x.dtype), q.astype(x.dtype))


def _rem(params: dict, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if not np.issubdtype(x.dtype, np.integer):
        return np.fmod(x, y)
    safe = np.where(y == 0, 1, y)
    return np.where(y == 0, x, np.fmod(x, safe))  # XLA: x % 0 == x


def _integer_pow(params: dict, x: np.ndarray) -> np.ndarray:
    """x ** y by repeated squaring, the multiplications XLA does (lax's lowering)."""
    y = int(params["y"])
    if y == 0:
        return np.ones_like(x)
    base, n, acc = x, abs(y), None
    while n:
        if n & 1:
            acc = base if acc is None else acc * base
        n >>= 1
        if n:
            base = base * base
    return 1 / acc if y < 0 else acc


def _shift(kind: str) -> Impl:
    """XLA shifts: a shift by a negative amount or by >= the bit width gives 0 (-1 for an
    arithmetic right shift of a negative number)."""
    def run(params: dict, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        bits = x.dtype.itemsize * 8
        outside = (y < 0) | (y >= bits)
        amount = np.where(outside, 0, y).astype(x.dtype)
        if kind == "left":
            return np.where(outside, 0, np.left_shift(x, amount))
        signed = np.dtype(f"i{x.dtype.itemsize}")
        unsigned = np.dtype(f"u{x.dtype.itemsize}")
        if kind == "logical":
            shifted = np.right_shift(x.view(unsigned), amount.view(unsigned)).view(x.dtype)
            return np.where(outside, 0, shifted)
        as_signed = x.view(signed)
        shifted = np.right_shift(as_signed, amount.view(signed))
        return np.where(outside, np.where(as_signed < 0, -1, 0), shifted).astype(signed) \
            .view(x.dtype)
    return run


def _round(params: dict, x: np.ndarray) -> np.ndarray:
    if int(params["rounding_method"]) == 1:  # TO_NEAREST_EVEN
        return np.round(x)
    t = np.trunc(x)  # AWAY_FROM_ZERO; x - t is exact, unlike x + 0.5
    return t + np.where(np.abs(x - t) >= 0.5, np.sign(x), 0).astype(x.dtype)


def _logistic(params: dict, x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


@functools.cache
def _scipy_special() -> Any:
    """scipy.special, imported on first use (~0.15 s); None when scipy is not installed."""
    try:
        return importlib.import_module("scipy.special")
    except ImportError:
        return None


def _scipy(name: str) -> Impl:
    def run(params: dict, *args: np.ndarray) -> np.ndarray:
        special = _scipy_special()
        if special is None:
            raise _Unsupported("scipy is not installed")
        return getattr(special, name)(*args)
    return run


def _select_n(params: dict, which: np.ndarray, *cases: np.ndarray) -> np.ndarray:
    if which.dtype == np.bool_:
        return np.where(which, cases[1], cases[0]) if len(cases) > 1 else cases[0]
    return np.choose(which, cases)


def _clamp(params: dict, lo: np.ndarray, x: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.minimum(np.maximum(x, lo), hi)


def _convert(params: dict, x: np.ndarray) -> np.ndarray:
    dtype = np.dtype(params["new_dtype"])
    if np.iscomplexobj(x) and not np.issubdtype(dtype, np.complexfloating):
        x = np.real(x)
    if np.issubdtype(x.dtype, np.floating) and np.issubdtype(dtype, np.integer):
        # XLA: truncate toward zero, saturate at the integer range, NaN -> 0
        info = np.iinfo(dtype)
        high, low = x >= info.max, x <= info.min
        inside = np.trunc(np.where(high | low | np.isnan(x), 0, x)).astype(dtype)
        return np.where(high, info.max, np.where(low, info.min, inside)).astype(dtype)
    return x.astype(dtype)


def _reduce_precision(params: dict, x: np.ndarray) -> np.ndarray:
    info = np.finfo(x.dtype)
    if (params["exponent_bits"], params["mantissa_bits"]) != (info.nexp, info.nmant):
        raise _Unsupported("reduce_precision to a narrower format")
    return x


def _identity(params: dict, *args: np.ndarray) -> Any:
    return args[0] if len(args) == 1 else list(args)


def _identities(params: dict, *args: np.ndarray) -> list[np.ndarray]:
    return list(args)


# --------------------------------------------------------------------------------------------
# shapes and layout


def _broadcast_in_dim(params: dict, x: np.ndarray, *dynamic: np.ndarray) -> np.ndarray:
    if dynamic:
        raise _Unsupported("dynamic shapes")
    shape = tuple(params["shape"])
    expanded = [1] * len(shape)
    for axis, size in zip(params["broadcast_dimensions"], x.shape):
        expanded[axis] = size
    return np.broadcast_to(x.reshape(expanded), shape)


def _reshape(params: dict, x: np.ndarray, *dynamic: np.ndarray) -> np.ndarray:
    if dynamic:
        raise _Unsupported("dynamic shapes")
    if params.get("dimensions") is not None:
        x = np.transpose(x, params["dimensions"])
    return x.reshape(tuple(params["new_sizes"]))


def _iota(params: dict, *dynamic: np.ndarray) -> np.ndarray:
    if dynamic:
        raise _Unsupported("dynamic shapes")
    shape, axis = tuple(params["shape"]), params["dimension"]
    line = np.arange(shape[axis]).astype(params["dtype"])
    expanded = [1] * len(shape)
    expanded[axis] = shape[axis]
    return np.broadcast_to(line.reshape(expanded), shape)


def _slice(params: dict, x: np.ndarray) -> np.ndarray:
    strides = params["strides"] or (1,) * x.ndim
    return x[tuple(slice(lo, hi, st) for lo, hi, st in
                   zip(params["start_indices"], params["limit_indices"], strides))]


def _clamped_starts(starts: Sequence[np.ndarray], shape: Sequence[int],
                    sizes: Sequence[int]) -> list[int]:
    return [min(max(int(s), 0), dim - size) for s, dim, size in zip(starts, shape, sizes)]


def _dynamic_slice(params: dict, x: np.ndarray, *starts: np.ndarray) -> np.ndarray:
    sizes = params["slice_sizes"]
    if len(starts) != x.ndim:
        raise _Unsupported("dynamic shapes")
    begin = _clamped_starts(starts, x.shape, sizes)
    return x[tuple(slice(b, b + s) for b, s in zip(begin, sizes))]


def _dynamic_update_slice(params: dict, x: np.ndarray, update: np.ndarray,
                          *starts: np.ndarray) -> np.ndarray:
    begin = _clamped_starts(starts, x.shape, update.shape)
    out = np.array(x)
    out[tuple(slice(b, b + s) for b, s in zip(begin, update.shape))] = update
    return out


def _pad_array(x: np.ndarray, value: Any, config: Sequence[Sequence[int]]) -> np.ndarray:
    """XLA's pad: ``config`` is (low, high, interior) per axis; low/high may be negative."""
    full, placed, kept = [], [], []
    for n, (lo, hi, interior) in zip(x.shape, config):
        lo, hi, interior = int(lo), int(hi), int(interior)
        span = n + max(n - 1, 0) * interior
        size = max(lo, 0) + span + max(hi, 0)
        full.append(size)
        placed.append(slice(max(lo, 0), max(lo, 0) + span, interior + 1))
        kept.append(slice(max(-lo, 0), size - max(-hi, 0)))
    out = np.full(full, value, dtype=x.dtype)
    out[tuple(placed)] = x
    return out[tuple(kept)]


def _pad(params: dict, x: np.ndarray, value: np.ndarray) -> np.ndarray:
    return _pad_array(x, value, params["padding_config"])


def _concatenate(params: dict, *xs: np.ndarray) -> np.ndarray:
    return np.concatenate(xs, axis=params["dimension"])


def _split(params: dict, x: np.ndarray) -> list[np.ndarray]:
    cuts = np.cumsum([int(s) for s in params["sizes"]])[:-1]
    return np.split(x, cuts, axis=params["axis"])


# --------------------------------------------------------------------------------------------
# reductions, scans, sort


def _axes(params: dict) -> tuple[int, ...]:
    return tuple(int(a) for a in params["axes"])


def _lowest(dtype: np.dtype) -> Any:
    if np.issubdtype(dtype, np.floating):
        return -np.inf
    return False if dtype == np.bool_ else np.iinfo(dtype).min


def _highest(dtype: np.dtype) -> Any:
    if np.issubdtype(dtype, np.floating):
        return np.inf
    return True if dtype == np.bool_ else np.iinfo(dtype).max


def _reduce_max(params: dict, x: np.ndarray) -> np.ndarray:
    return np.max(x, axis=_axes(params), initial=_lowest(x.dtype))


def _reduce_min(params: dict, x: np.ndarray) -> np.ndarray:
    return np.min(x, axis=_axes(params), initial=_highest(x.dtype))


def _bitwise_reduce(ufunc: np.ufunc) -> Impl:
    """Logical on bool, bitwise on integers (as XLA's and/or/xor)."""
    def run(params: dict, x: np.ndarray) -> np.ndarray:
        if x.dtype == np.bool_ and ufunc is not np.bitwise_xor:
            return (np.all if ufunc is np.bitwise_and else np.any)(x, axis=_axes(params))
        return ufunc.reduce(x, axis=_axes(params))
    return run


def _argminmax(fn: Callable[..., np.ndarray]) -> Impl:
    def run(params: dict, x: np.ndarray) -> np.ndarray:
        (axis,) = _axes(params)
        return fn(x, axis=axis).astype(params["index_dtype"])  # both pick the first NaN
    return run


def _cumulative(ufunc: np.ufunc) -> Impl:
    def run(params: dict, x: np.ndarray) -> np.ndarray:
        axis = params["axis"]
        if params["reverse"]:
            return np.flip(ufunc.accumulate(np.flip(x, axis), axis=axis), axis)
        return ufunc.accumulate(x, axis=axis)
    return run


def _sort_keys(key: np.ndarray) -> list[np.ndarray]:
    """Most significant first. JAX's comparator: NaNs (of either sign) last and equal, -0 == 0."""
    if not np.issubdtype(key.dtype, np.floating):
        return [key]
    nan = np.isnan(key)
    return [nan, np.where(nan, 0, key)]


def _sort(params: dict, *operands: np.ndarray) -> list[np.ndarray]:
    axis = params["dimension"]
    moved = [np.moveaxis(o, axis, -1) for o in operands]
    keys = [k for key in moved[:params["num_keys"]] for k in _sort_keys(key)]
    order = np.lexsort(keys[::-1], axis=-1)  # stable; np.lexsort's primary key is the last
    return [np.moveaxis(np.take_along_axis(o, order, axis=-1), -1, axis) for o in moved]


def _windows(x: np.ndarray, window: Sequence[int], strides: Sequence[int],
             dilation: Sequence[int]) -> np.ndarray:
    """View of shape (*positions, *window) of the strided, dilated windows of ``x``."""
    span = [(w - 1) * d + 1 for w, d in zip(window, dilation)]
    view = np.lib.stride_tricks.sliding_window_view(x, span)
    return view[tuple(slice(None, None, s) for s in strides)
                + tuple(slice(None, None, d) for d in dilation)]


def _reduce_window(reduce: Callable[..., np.ndarray], init: Callable[[np.dtype], Any]) -> Impl:
    def run(params: dict, x: np.ndarray) -> np.ndarray:
        config = [(lo, hi, b - 1) for (lo, hi), b in zip(params["padding"],
                                                         params["base_dilation"])]
        padded = _pad_array(x, init(x.dtype), config)
        view = _windows(padded, params["window_dimensions"], params["window_strides"],
                        params["window_dilation"])
        return reduce(view, axis=tuple(range(x.ndim, 2 * x.ndim)))
    return run


# --------------------------------------------------------------------------------------------
# contractions


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _result_dtype(params: dict, lhs: np.ndarray, rhs: np.ndarray) -> np.dtype:
    preferred = params.get("preferred_element_type")
    return np.result_type(lhs, rhs) if preferred is None else np.dtype(preferred)


def _dot_general(params: dict, lhs: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    (lhs_contract, rhs_contract), (lhs_batch, rhs_batch) = params["dimension_numbers"]
    letters = iter(_LETTERS)
    lhs_sub = [next(letters) for _ in range(lhs.ndim)]
    rhs_sub = [next(letters) for _ in range(rhs.ndim)]
    for lc, rc in zip(lhs_contract, rhs_contract):
        rhs_sub[rc] = lhs_sub[lc]
    for lb, rb in zip(lhs_batch, rhs_batch):
        rhs_sub[rb] = lhs_sub[lb]
    out_sub = ([lhs_sub[d] for d in lhs_batch]
               + [lhs_sub[d] for d in range(lhs.ndim) if d not in (*lhs_batch, *lhs_contract)]
               + [rhs_sub[d] for d in range(rhs.ndim) if d not in (*rhs_batch, *rhs_contract)])
    dtype = _result_dtype(params, lhs, rhs)
    if not lhs_batch:  # tensordot's output order (lhs's free axes, then rhs's) is XLA's
        return np.tensordot(lhs.astype(dtype), rhs.astype(dtype),
                            axes=(tuple(lhs_contract), tuple(rhs_contract)))
    # (einsum's optimize=True path search costs ~0.4 ms a call: worth it only with batch axes)
    spec = f"{''.join(lhs_sub)},{''.join(rhs_sub)}->{''.join(out_sub)}"
    return np.einsum(spec, lhs.astype(dtype), rhs.astype(dtype), optimize=True)


def _conv_general_dilated(params: dict, lhs: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """XLA convolution: windows of the dilated, padded input contracted with the kernel."""
    dnums = params["dimension_numbers"]
    groups, batch_groups = params["feature_group_count"], params["batch_group_count"]
    dtype = _result_dtype(params, lhs, rhs)
    lhs = np.transpose(lhs, dnums.lhs_spec).astype(dtype)  # (N, C, *spatial)
    rhs = np.transpose(rhs, dnums.rhs_spec).astype(dtype)  # (O, I, *kernel)
    nsp = lhs.ndim - 2
    lhs = _pad_array(lhs, 0, [(0, 0, 0)] * 2 + [(lo, hi, d - 1) for (lo, hi), d in
                                                zip(params["padding"], params["lhs_dilation"])])
    rhs = _pad_array(rhs, 0, [(0, 0, 0)] * 2 + [(0, 0, d - 1) for d in params["rhs_dilation"]])
    view = np.lib.stride_tricks.sliding_window_view(lhs, rhs.shape[2:], axis=range(2, 2 + nsp))
    view = view[(slice(None),) * 2 + tuple(slice(None, None, s) for s in params["window_strides"])]
    n, c = view.shape[:2]
    o, i = rhs.shape[:2]
    out_positions = view.shape[2:2 + nsp]
    sp = "ABCDEFGHIJ"[:nsp]  # output positions
    kr = "KLMNOPQRST"[:nsp]  # kernel offsets
    if batch_groups > 1:  # lhs batch = (group, n'), output features = (group, o')
        view = view.reshape(batch_groups, n // batch_groups, *view.shape[1:])
        rhs = rhs.reshape(batch_groups, o // batch_groups, *rhs.shape[1:])
        out = np.einsum(f"gnc{sp}{kr},goc{kr}->ngo{sp}", view, rhs, optimize=True)
        out = out.reshape(n // batch_groups, o, *out_positions)
    else:  # input features = (group, i), output features = (group, o')
        view = view.reshape(n, groups, c // groups, *view.shape[2:])
        rhs = rhs.reshape(groups, o // groups, i, *rhs.shape[2:])
        out = np.einsum(f"ngc{sp}{kr},goc{kr}->ngo{sp}", view, rhs, optimize=True)
        out = out.reshape(n, o, *out_positions)
    return np.transpose(out, np.argsort(dnums.out_spec))


# --------------------------------------------------------------------------------------------
# gather / scatter (XLA semantics; JAX puts the index vector on the last axis of the indices)


def _starts(indices: np.ndarray, ndim: int, index_map: Sequence[int],
            operand_batching: Sequence[int], indices_batching: Sequence[int]) -> np.ndarray:
    """(number of windows, ndim) start index of every window in the operand."""
    batch_shape = indices.shape[:-1]
    count = math.prod(batch_shape)
    starts = np.zeros((count, ndim), dtype=np.int64)
    flat = indices.reshape(count, indices.shape[-1]).astype(np.int64)
    for k, axis in enumerate(index_map):
        starts[:, axis] = flat[:, k]
    if operand_batching:
        positions = np.indices(batch_shape).reshape(len(batch_shape), count)
        for axis, batch_axis in zip(operand_batching, indices_batching):
            starts[:, axis] = positions[batch_axis]
    return starts


def _window_index(starts: np.ndarray, sizes: Sequence[int]) -> tuple[np.ndarray, ...]:
    """Index arrays of shape (windows, *sizes) addressing every element of every window."""
    count, ndim = starts.shape
    index = []
    for axis, size in enumerate(sizes):
        offsets = np.arange(size).reshape([1] * (axis + 1) + [size] + [1] * (ndim - axis - 1))
        index.append(starts[:, axis].reshape([count] + [1] * ndim) + offsets)
    return tuple(index)


def _gather_fill_value(params: dict, dtype: np.dtype) -> Any:
    if params.get("fill_value") is not None:
        return params["fill_value"]
    if np.issubdtype(dtype, np.inexact):
        return np.nan
    if dtype == np.bool_:
        return True
    return np.iinfo(dtype).min if np.issubdtype(dtype, np.signedinteger) else np.iinfo(dtype).max


def _gather(params: dict, operand: np.ndarray, indices: np.ndarray) -> np.ndarray:
    dnums, sizes, mode = params["dimension_numbers"], params["slice_sizes"], params["mode"]
    batch_shape = indices.shape[:-1]
    starts = _starts(indices, operand.ndim, dnums.start_index_map, dnums.operand_batching_dims,
                     dnums.start_indices_batching_dims)
    upper = np.array(operand.shape, dtype=np.int64) - np.array(sizes, dtype=np.int64)
    values = operand[_window_index(np.clip(starts, 0, upper), sizes)]  # XLA clamps
    if mode == _MODE.FILL_OR_DROP:
        mapped = list(dnums.start_index_map)
        inside = np.all((starts[:, mapped] >= 0) & (starts[:, mapped] <= upper[mapped]), axis=1)
        fill = _gather_fill_value(params, operand.dtype)
        values = np.where(inside.reshape([-1] + [1] * operand.ndim), values, fill)
    dropped = set(dnums.collapsed_slice_dims) | set(dnums.operand_batching_dims)
    offset_sizes = [s for axis, s in enumerate(sizes) if axis not in dropped]
    values = values.reshape((*batch_shape, *offset_sizes))
    # output axes: offset_dims get the window axes in order, the others the batch axes
    nbatch, out_ndim = len(batch_shape), len(batch_shape) + len(offset_sizes)
    perm, b = [], 0
    for axis in range(out_ndim):
        if axis in dnums.offset_dims:
            perm.append(nbatch + list(dnums.offset_dims).index(axis))
        else:
            perm.append(b)
            b += 1
    return np.transpose(values, perm)


_SCATTER_UFUNCS: dict[str, np.ufunc] = {"scatter-add": np.add, "scatter-sub": np.subtract,
                                        "scatter-mul": np.multiply, "scatter-min": np.minimum,
                                        "scatter-max": np.maximum}


def _scatter(kind: str) -> Impl:
    def run(params: dict, operand: np.ndarray, indices: np.ndarray,
            updates: np.ndarray) -> np.ndarray:
        dnums, mode = params["dimension_numbers"], params["mode"]
        if kind == "scatter" and params.get("update_jaxpr") is not None:
            raise _Unsupported("scatter with a combining function")
        window_axes = list(dnums.update_window_dims)
        scatter_axes = [a for a in range(updates.ndim) if a not in window_axes]
        window_sizes = iter(updates.shape[a] for a in window_axes)
        sizes = [1 if axis in dnums.inserted_window_dims or axis in dnums.operand_batching_dims
                 else next(window_sizes) for axis in range(operand.ndim)]
        count = math.prod(indices.shape[:-1])
        values = np.transpose(updates, scatter_axes + window_axes).reshape(count, *sizes)
        starts = _starts(indices, operand.ndim, dnums.scatter_dims_to_operand_dims,
                         dnums.operand_batching_dims, dnums.scatter_indices_batching_dims)
        upper = np.array(operand.shape, dtype=np.int64) - np.array(sizes, dtype=np.int64)
        if mode == _MODE.CLIP:
            starts = np.clip(starts, 0, upper)
        else:  # XLA skips a window that is not entirely inside the operand
            inside = np.all((starts >= 0) & (starts <= upper), axis=1)
            starts, values = starts[inside], values[inside]
        out = np.array(operand)
        index = _window_index(starts, sizes)
        if kind == "scatter":
            out[index] = values  # repeated indices: the last write wins
        else:
            _SCATTER_UFUNCS[kind].at(out, index, values)
        return out
    return run


# --------------------------------------------------------------------------------------------
# calls and control flow


def _call(param: str) -> Impl:
    return lambda params, *args: _call_jaxpr(params[param], *args)


def _custom_linear_solve(params: dict, *args: np.ndarray) -> list[np.ndarray]:
    lengths = params["const_lengths"]  # (matvec, vecmat, solve, transpose_solve)
    start = lengths.matvec + lengths.vecmat
    solve_consts = args[start:start + lengths.solve]
    return _call_jaxpr(params["jaxprs"].solve, *solve_consts, *args[sum(lengths):])


def _platform_index(params: dict) -> np.ndarray:
    """``lax.platform_dependent``: numpy stands in for XLA:CPU, so take the CPU branch."""
    platforms = params["platforms"]
    for i, names in enumerate(platforms):
        if names is not None and "cpu" in names:
            return np.int32(i)
    if None in platforms:
        return np.int32(platforms.index(None))
    raise _Unsupported("no branch for the CPU")


def _cond(params: dict, index: np.ndarray, *args: np.ndarray) -> list[np.ndarray]:
    branches = params["branches"]
    return _call_jaxpr(branches[min(max(int(index), 0), len(branches) - 1)], *args)


def _while(params: dict, *args: np.ndarray) -> list[np.ndarray]:
    ncond, nbody = params["cond_nconsts"], params["body_nconsts"]
    cond_consts, body_consts = args[:ncond], args[ncond:ncond + nbody]
    carry = list(args[ncond + nbody:])
    while bool(_call_jaxpr(params["cond_jaxpr"], *cond_consts, *carry)[0]):
        carry = _call_jaxpr(params["body_jaxpr"], *body_consts, *carry)
    return carry


def _scan(params: dict, *args: np.ndarray) -> list[np.ndarray]:
    body: ClosedJaxpr = params["jaxpr"]
    nconsts, ncarry, length = params["num_consts"], params["num_carry"], params["length"]
    consts, carry, xs = args[:nconsts], list(args[nconsts:nconsts + ncarry]), \
        args[nconsts + ncarry:]
    ys = [np.empty((length, *v.aval.shape), dtype=v.aval.dtype)
          for v in body.jaxpr.outvars[ncarry:]]
    steps = range(length - 1, -1, -1) if params["reverse"] else range(length)
    for i in steps:
        outs = _call_jaxpr(body, *consts, *carry, *(np.asarray(x[i]) for x in xs))
        carry = outs[:ncarry]
        for y, value in zip(ys, outs[ncarry:]):
            y[i] = value
    return carry + ys


# --------------------------------------------------------------------------------------------
# the table


_IMPLS: dict[str, Impl] = {
    # arithmetic
    "add": _ufunc(np.add), "add_any": _ufunc(np.add), "sub": _ufunc(np.subtract),
    "mul": _ufunc(np.multiply), "div": _div, "rem": _rem, "neg": _ufunc(np.negative),
    "max": _ufunc(np.maximum), "min": _ufunc(np.minimum),  # both propagate NaN, as XLA
    "pow": _ufunc(np.power), "integer_pow": _integer_pow, "square": _ufunc(np.square),
    "sqrt": _ufunc(np.sqrt), "rsqrt": lambda p, x: 1 / np.sqrt(x), "cbrt": _ufunc(np.cbrt),
    "abs": _ufunc(np.abs), "sign": _ufunc(np.sign), "nextafter": _ufunc(np.nextafter),
    "floor": _ufunc(np.floor), "ceil": _ufunc(np.ceil), "round": _round,
    "is_finite": _ufunc(np.isfinite), "clamp": _clamp,
    "shift_left": _shift("left"), "shift_right_logical": _shift("logical"),
    "shift_right_arithmetic": _shift("arithmetic"),
    "population_count": lambda p, x: np.bitwise_count(x.view(f"u{x.dtype.itemsize}")),
    # transcendental
    "exp": _ufunc(np.exp), "exp2": _ufunc(np.exp2), "log": _ufunc(np.log),
    "log1p": _ufunc(np.log1p), "expm1": _ufunc(np.expm1), "logistic": _logistic,
    "tanh": _ufunc(np.tanh), "sin": _ufunc(np.sin), "cos": _ufunc(np.cos), "tan": _ufunc(np.tan),
    "asin": _ufunc(np.arcsin), "acos": _ufunc(np.arccos), "atan": _ufunc(np.arctan),
    "atan2": _ufunc(np.arctan2), "sinh": _ufunc(np.sinh), "cosh": _ufunc(np.cosh),
    "asinh": _ufunc(np.arcsinh), "acosh": _ufunc(np.arccosh), "atanh": _ufunc(np.arctanh),
    # complex numbers
    "real": _ufunc(np.real), "imag": _ufunc(np.imag), "conj": _ufunc(np.conj),
    "complex": lambda p, x, y: x + 1j * y,
    # comparisons and logic (bitwise on integers, logical on bool, as XLA)
    "eq": _ufunc(np.equal), "ne": _ufunc(np.not_equal), "lt": _ufunc(np.less),
    "le": _ufunc(np.less_equal), "gt": _ufunc(np.greater), "ge": _ufunc(np.greater_equal),
    "and": _ufunc(np.bitwise_and), "or": _ufunc(np.bitwise_or), "xor": _ufunc(np.bitwise_xor),
    "not": _ufunc(np.invert), "select_n": _select_n,
    # types and identities
    "convert_element_type": _convert, "reduce_precision": _reduce_precision,
    "stop_gradient": _identity, "copy": _identity, "copy_p": _identity, "pvary": _identity,
    "sharding_constraint": _identity, "reshard": _identity, "layout_constraint": _identity,
    "optimization_barrier": _identities, "device_put": _identities,
    "zeros_like": lambda p, x: np.zeros_like(x), "tie": lambda p, x, y: y,
    "empty": lambda p: np.zeros(p["shape"], p["dtype"]),  # uninitialised in XLA: any value
    "empty2": lambda p: np.zeros((), p["dtype"]),
    # shapes and layout
    "broadcast_in_dim": _broadcast_in_dim, "reshape": _reshape,
    "squeeze": lambda p, x: np.squeeze(x, axis=tuple(p["dimensions"])),
    "transpose": lambda p, x: np.transpose(x, p["permutation"]),
    "rev": lambda p, x: np.flip(x, axis=tuple(p["dimensions"])),
    "tile": lambda p, x: np.tile(x, p["reps"]),
    "iota": _iota, "slice": _slice, "dynamic_slice": _dynamic_slice,
    "dynamic_update_slice": _dynamic_update_slice, "concatenate": _concatenate, "pad": _pad,
    "split": _split, "stack": lambda p, *xs: np.stack(xs, axis=p["axis"]),
    "unstack": lambda p, x: list(np.moveaxis(x, p["axis"], 0)), "gather": _gather,
    "scatter": _scatter("scatter"),
    **{name: _scatter(name) for name in _SCATTER_UFUNCS},
    # reductions, scans, sort
    "reduce_sum": lambda p, x: np.sum(x, axis=_axes(p)),
    "reduce_prod": lambda p, x: np.prod(x, axis=_axes(p)),
    "reduce_max": _reduce_max, "reduce_min": _reduce_min,
    "reduce_and": _bitwise_reduce(np.bitwise_and), "reduce_or": _bitwise_reduce(np.bitwise_or),
    "reduce_xor": _bitwise_reduce(np.bitwise_xor),
    "argmax": _argminmax(np.argmax), "argmin": _argminmax(np.argmin),
    "cumsum": _cumulative(np.add), "cumprod": _cumulative(np.multiply),
    "cummax": _cumulative(np.maximum), "cummin": _cumulative(np.minimum),
    "cumlogsumexp": _cumulative(np.logaddexp), "sort": _sort,
    "reduce_window_sum": _reduce_window(np.sum, lambda dtype: 0),
    "reduce_window_max": _reduce_window(np.max, _lowest),
    "reduce_window_min": _reduce_window(np.min, _highest),
    # contractions
    "dot_general": _dot_general, "conv_general_dilated": _conv_general_dilated,
    # calls and control flow
    "jit": _call("jaxpr"), "pjit": _call("jaxpr"), "closed_call": _call("call_jaxpr"),
    "call": _call("call_jaxpr"), "core_call": _call("call_jaxpr"),
    "custom_jvp_call": _call("call_jaxpr"), "custom_vjp_call": _call("call_jaxpr"),
    "custom_vjp_call_jaxpr": _call("fun_jaxpr"), "remat2": _call("jaxpr"),
    "checkpoint": _call("jaxpr"), "cond": _cond, "while": _while, "scan": _scan,
    "custom_linear_solve": _custom_linear_solve, "platform_index": _platform_index,
    # special functions, by scipy (else they fall back)
    "erf": _scipy("erf"), "erfc": _scipy("erfc"), "erf_inv": _scipy("erfinv"),
    "lgamma": _scipy("gammaln"), "digamma": _scipy("digamma"), "polygamma": _scipy("polygamma"),
    "zeta": _scipy("zeta"), "igamma": _scipy("gammainc"), "igammac": _scipy("gammaincc"),
    "bessel_i0e": _scipy("i0e"), "bessel_i1e": _scipy("i1e"),
}
