"""Run plain numpy code on JAX arrays, so that JAX can differentiate it exactly.

A student's forward is written with numpy: ``np.exp(x)``, ``out = np.zeros((N, M))`` filled
in Python loops, ``x[i] += v``, fancy indexing, ``np.add.at``. ``jax.vjp`` cannot trace such
code directly (``np.exp`` of a tracer raises, a numpy buffer cannot hold one). ``lift(fn)``
runs the *unchanged* code on :class:`Lifted` wrappers of JAX arrays instead::

    out, vjp = jax.vjp(lift(user_forward), *jax_float_inputs)

How it works:

* ``Lifted`` implements numpy's dispatch protocols (NEP 13 ``__array_ufunc__``, NEP 18
  ``__array_function__``): ``np.exp(x)``, ``np.add.reduce``, ``np.add.reduceat``,
  ``np.add.at``, ``np.pad``, ``np.interp``, ``np.linalg.norm`` ... called with a ``Lifted``
  are answered by the ``jax.numpy`` function of the same name (and submodule). Operators
  (``+ @ ** < ...``, in-place ones too) go through the same ufunc path. ``scipy.special``'s
  ufuncs (``expit``, ``erf``, ``gammaln``, ``xlogy`` ...), which numpy dispatches the same way,
  are answered by the ``jax.scipy.special`` function of the same name (scipy is optional: it
  is never imported here). ``np.lib.stride_tricks.sliding_window_view`` is a gather (a copy;
  numpy's view is read-only).
* ``Lifted`` is mutable although JAX arrays are not: ``x[idx] = v`` rebinds the wrapped value
  to ``x.value.at[idx].set(v)``. Basic indexing (ints, slices, ``None``, ``...``), ``.T``,
  ``transpose``, ``reshape``, ``ravel``, ``squeeze`` and ``swapaxes`` return *views* as numpy
  does: writing into ``out[n]`` (``out[n][f] = ...``, ``row = out[i]; row += v``) writes into
  ``out``. ``x.flat[i]``, ``x.flat[::2]`` and iterating over ``x.flat`` read copies;
  ``x.flat[i] = v`` writes into ``x``.
* A Python loop adds operations to the traced program at every step, and JAX's reverse-mode
  tracing costs ~0.2 ms per operation, so two loop patterns are folded: a basic read
  (``w[f]``, ``x[n, :, i:i + K]``) is traced once per value of the array read (a loop reading
  ``w[f]`` at every step reads it once per ``f``, until ``w`` is written), and element writes
  ``out[n, f, i] = scalar`` into a buffer stay pending (the last write of an entry wins) and
  join the program as one operation when ``out`` is next read: a stack of the values, then a
  reshape when every entry was written or one scatter. Numpy's semantics are kept: views,
  negative indices, numpy's ``IndexError``, casts into integer buffers, shadows.
* Boolean masks: ``x[mask] = v`` with ``v`` broadcast over the selected entries
  (``y[y < 0] = 0``, ``out[rows] = row``) is a select, ``jnp.where(mask, v, x)``; with one
  value per selected entry (``out[m] = np.exp(x[m])``) it is a scatter at
  ``np.nonzero(mask)``. Reading ``x[mask]`` and that scatter need the mask's value (the
  result's shape depends on it): a mask computed from a differentiated value has one under
  eager ``jax.vjp`` (comparisons are computed on concrete values), but not under abstract
  tracing (``jax.make_jaxpr``, ``jit``), where they raise ``UntraceableError`` and the oracle
  runs the forward under eager JAX instead. What traces abstractly too: the select, and
  ``x[mask] op= c`` for ``+= -= *= /=`` by a constant (``y[y < 0] *= alpha``: Python runs it
  as ``x[m] = x[m] * c``), done at full shape and selected back (``_MaskedSelection``).
* Array-creation functions take no array argument, so numpy cannot dispatch them. While a
  lifted function runs, ``numpy.zeros``, ``empty``, ``ones``, ``full``, their ``*_like``
  forms, ``array``, ``asarray``, ``asanyarray`` and ``ascontiguousarray`` are temporarily
  replaced in the ``numpy`` module: floating-point buffers come back as mutable ``Lifted``
  arrays, and ``np.array([a, b])`` of ``Lifted`` entries stacks them. This is what makes
  ``out = np.zeros((N, M)); out[i] = ...`` differentiable. Integer and boolean buffers (index
  arrays, masks) stay plain numpy arrays. The replacement only acts for the thread running the
  lifted function, and only when called from code outside numpy and JAX themselves (their
  internal ``np.zeros`` calls get the real one) and only for a call spelled with its name
  (``np.zeros(...)``, told from the bytecode's positions: compiled code such as
  ``np.random``'s, which looks ``np.empty`` up while the user's line runs, gets the real one,
  and so does every call where Python keeps no positions, ``PYTHONNODEBUGRANGES``); in every
  other case it calls the real function.
  It is installed by the first active lifted call (any thread) under a lock, and removed in
  ``finally`` by the last one, so nested and concurrent lifted calls are safe. The same
  redirect answers ``np.ndenumerate(x)`` of a lifted ``x`` (index and 0-d lifted entry) and
  ``np.vectorize(pyfunc)``: called with lifted arrays, it runs ``pyfunc`` on every broadcast
  entry, one by one (at most ``VECTORIZE_LIMIT``; positional arguments only, no ``excluded``
  or ``signature``), and stacks the results.
* Integer and boolean results that do not depend on a differentiated input (``x > 0``,
  ``np.argmax(x)``) come back as plain numpy arrays; ``bool``/``int`` of a value that does
  depend on one use its concrete value (eager ``jax.vjp``, not under ``jit``), so Python
  ``if``/``max`` on data take the branch numpy would take.
* Concrete shadows (``shadowing(record, [(traced input, its value), ...])``, which the oracle
  uses around its one abstract trace): every traced value then carries the value numpy computes
  at this point, by the same numpy operation run on its operands' shadows (views, writes,
  ``np.vectorize``'s entries and the creation functions included). ``bool``/``int``/
  ``__index__``/integer ``.item()`` of a traced value, ``x[mask]`` reads and one-value-per-entry
  ``x[mask] = values`` writes with a traced mask then use the shadow instead of raising, and set
  ``record.consulted``: the traced program is then the forward *specialized to this point's
  branches*, valid at this point only (the oracle does not evaluate it at other points). A
  value whose shadow numpy cannot compute (an operation numpy refuses, a result of another
  shape or kind than JAX's) has none, and control flow on it raises as without shadows.

Limits (each raises ``UntraceableError`` naming the call, never a silently wrong derivative):

* a numpy function with no ``jax.numpy`` counterpart (``np.fix``, ``np.real_if_close``
  ...), a ufunc of neither numpy nor ``scipy.special`` (``np.frompyfunc``'s), or a
  ``scipy.special`` ufunc with no ``jax.scipy.special`` counterpart (``ellipj``, ``jv`` ...);
* code numpy does not dispatch that converts its argument to a plain array: scipy's Python
  functions (``scipy.special.logsumexp``/``softmax``, ``scipy.signal.correlate2d``),
  ``np.lib.stride_tricks.as_strided``, ``np.vectorize`` made outside the lifted call (a
  module-level ``@np.vectorize``), ``np.sum`` of a *list* of lifted arrays;
* ``float(x)``/``x.item()``/``x.tolist()``/``math.exp(x)`` of a value being differentiated
  (it would drop the derivative: ``math.*`` calls ``float()``, which the message names, at
  the user's line); writing such a value into a plain numpy array (a buffer that was not made
  by one of the redirected functions, e.g. imported as ``from numpy import zeros``);
* under abstract tracing without a shadow, ``x[mask]`` reads and one-value-per-entry
  ``x[mask] = values`` writes with a mask computed from a differentiated value, and
  ``bool``/``int`` of a differentiated value (see above; eager JAX runs them);
* ndarray attributes and methods ``Lifted`` does not have (``x.flags``, ``x.view`` ...);
* under ``jax.jit``, any Python control flow on traced values.

Not detected (documented differences from numpy): ``isinstance(x, np.ndarray)`` is False for a
lifted array; results of other view-returning numpy functions (``np.expand_dims``,
``np.broadcast_to``, ``np.moveaxis`` ...) are copies, so writes into them do not reach the
original; ``reshape`` of a non-contiguous view is a view here (numpy copies); out-of-bounds
indices are clamped by JAX instead of raising; with repeated indices in ``x[idx] = v`` which
write wins is unspecified; ``np.random.*`` runs as numpy's (its draws are constants: a mask
drawn inside forward is the same mask only if the generator is seeded inside forward).
"""

from __future__ import annotations

import contextlib
import dis
import functools
import inspect
import linecache
import math
import os
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from types import CodeType, FrameType
from typing import Any

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

from .jax_support import UntraceableError, jax, jnp

__all__ = ["Lifted", "ShadowRecord", "UntraceableError", "lift", "shadowing"]

# Modules whose own numpy calls must never see a Lifted (checked by module name prefix).
_LIBRARIES = ("jax", "jaxlib", "numpy", "ml_dtypes", "scipy", "opt_einsum", __name__)
# JAX's errors for Python control flow / conversions on traced values.
_TRACE_ERRORS = (
    jax.errors.ConcretizationTypeError,  # includes TracerBoolConversionError
    jax.errors.TracerArrayConversionError,
    jax.errors.TracerIntegerConversionError,
    jax.errors.UnexpectedTracerError,
    jax.errors.NonConcreteBooleanIndexError,  # x[mask] with a mask known only abstractly
)
# Failures of a jax.numpy counterpart called with numpy's arguments: the call cannot be lifted.
_CALL_ERRORS = (TypeError, ValueError, NotImplementedError)
# Fallbacks for ufunc.reduce when the jax.numpy function is not a jnp.ufunc.
_REDUCTIONS = {"add": "sum", "multiply": "prod", "maximum": "max", "minimum": "min",
               "logical_and": "all", "logical_or": "any"}


# --------------------------------------------------------------------------------------------
# Where a failure happened, for one-line error messages
# --------------------------------------------------------------------------------------------

def _is_library(frame: FrameType) -> bool:
    module = frame.f_globals.get("__name__", "") or ""
    return any(module == p or module.startswith(p + ".") for p in _LIBRARIES)


def _describe(frame: FrameType | None, lineno: int | None = None) -> str:
    """``file.py:12 `source line``` of the first frame (outward) outside the libraries."""
    while frame is not None and _is_library(frame):
        frame, lineno = frame.f_back, None
    if frame is None:
        return ""
    line_number = lineno if lineno is not None else frame.f_lineno
    filename = frame.f_code.co_filename
    source = linecache.getline(filename, line_number).strip()
    where = f"{os.path.basename(filename)}:{line_number}"
    return f" (at {where}: `{source}`)" if source else f" (at {where})"


def _caller() -> str:
    """The user's line that led to the current call (skipping numpy, JAX and this module)."""
    return _describe(sys._getframe(1))


def _location_in(tb: Any) -> str:
    """The innermost user-code line of a traceback."""
    last: tuple[FrameType, int] | None = None
    for frame, lineno in traceback.walk_tb(tb):
        if not _is_library(frame):
            last = (frame, lineno)
    return _describe(*last) if last else ""


def _untraceable(what: str, reason: str, where: str = "") -> UntraceableError:
    return UntraceableError(f"{what} cannot be lifted to JAX: {reason}{where}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _numpy_name(func: Any) -> str:
    """``np.linalg.norm`` for numpy.linalg.norm."""
    module = (getattr(func, "__module__", None) or "numpy").removeprefix("numpy").strip(".")
    return "np." + (module + "." if module else "") + func.__name__


# --------------------------------------------------------------------------------------------
# Concrete shadows: numpy's value of every traced value, for control flow under abstract tracing
# --------------------------------------------------------------------------------------------

class ShadowRecord:
    """The concrete shadows of one traced call of a lifted function (see ``shadowing``).

    ``values`` maps ``id(tracer)`` to ``(tracer, numpy value)``; ``consulted`` becomes True as
    soon as a shadow decided something about the traced program (a Python ``bool``/``int``/
    index, the entries a boolean mask selects): the program is then valid only at this point's
    branch pattern."""

    def __init__(self) -> None:
        self.values: dict[int, tuple[Any, np.ndarray]] = {}
        self.consulted = False


class _NoShadow(Exception):
    """A value's shadow is not known (not computed, or numpy could not compute it)."""


_SHADOWS = threading.local()


def _record() -> ShadowRecord | None:
    return getattr(_SHADOWS, "record", None)


@contextlib.contextmanager
def shadowing(record: ShadowRecord | None, pairs: Any = ()) -> Iterator[ShadowRecord | None]:
    """While the block runs on this thread, lifted code keeps a concrete shadow of every traced
    value: the same numpy operation run on the shadows of its operands, starting from ``pairs``
    of ``(traced input, its concrete value)``. ``bool``/``int``/``x[mask]`` on a value known
    only abstractly (``jax.make_jaxpr``) then use its shadow (numpy's answer at this point,
    what eager JAX would do) and set ``record.consulted``. ``record=None``: no shadows."""
    if record is None:
        yield None
        return
    previous = _record()
    _SHADOWS.record = record
    try:
        for value, concrete in pairs:
            _register(record, value, np.asarray(concrete))
        yield record
    finally:
        _SHADOWS.record = previous
        record.values.clear()


def _register(record: ShadowRecord, result: Any, concrete: Any) -> None:
    if isinstance(result, jax.Array):
        if not _is_tracer(result):
            return
        value = np.asarray(concrete)
        if value.shape != tuple(result.shape) or value.dtype.kind != np.dtype(result.dtype).kind:
            return  # numpy and JAX disagree on the result's form: unknown
        value = value.astype(result.dtype) if value.dtype != result.dtype else value.view()
        value.flags.writeable = False  # shadows share memory: none may be written in place
        record.values[id(result)] = (result, value)
    elif (isinstance(result, (tuple, list)) and isinstance(concrete, (tuple, list))
          and len(result) == len(concrete)):
        for r, c in zip(result, concrete):
            _register(record, r, c)


def _shadow(obj: Any) -> Any:
    """``obj`` with every lifted or JAX value replaced by its numpy value (recursively in
    tuples, lists and dicts); raises ``_NoShadow`` when one is not known."""
    if isinstance(obj, Lifted):
        obj = obj.value
    if isinstance(obj, jax.Array):
        if not _is_tracer(obj):
            return np.asarray(obj)
        record = _record()
        entry = record.values.get(id(obj)) if record is not None else None
        if entry is None or entry[0] is not obj:
            raise _NoShadow
        return entry[1]
    if isinstance(obj, (_MaskedSelection, jax.core.Tracer)):
        raise _NoShadow
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(_shadow(o) for o in obj))
    if isinstance(obj, (tuple, list)):
        return type(obj)(_shadow(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _shadow(v) for k, v in obj.items()}
    return obj


def _has_tracer(result: Any) -> bool:
    if isinstance(result, (tuple, list)):
        return any(_has_tracer(r) for r in result)
    return _is_tracer(result)


def _shadowed(result: Any, compute: Callable[[], Any]) -> Any:
    """``result`` (a JAX value, or a tuple of them), with numpy's ``compute()`` registered as
    its shadow; a shadow numpy cannot compute stays unknown (control flow on it then raises as
    without shadows)."""
    record = _record()
    if record is None or not _has_tracer(result):
        return result
    try:
        with np.errstate(all="ignore"):
            concrete = compute()
    except Exception:  # _NoShadow, or numpy refuses what JAX did: unknown
        return result
    _register(record, result, concrete)
    return result


def _decide(value: Any) -> np.ndarray:
    """The shadow of a traced value whose concrete value shapes the traced program (a branch,
    a mask's entries): recorded as consulted. Raises ``_NoShadow``."""
    concrete = _shadow(value)
    record = _record()
    assert record is not None  # _shadow raised otherwise
    record.consulted = True
    return concrete


def _numpy_put(s: Any, key: Any, new: Any) -> np.ndarray:
    """numpy's ``s[key] = new`` on a copy of ``s``."""
    copy = np.array(s, copy=True)
    copy[key] = new
    return copy


# --------------------------------------------------------------------------------------------
# Wrapping and unwrapping
# --------------------------------------------------------------------------------------------

def _is_tracer(value: Any) -> bool:
    return isinstance(value, jax.core.Tracer)


def _wrap(result: Any) -> Any:
    """A jax.numpy result as numpy code expects it.

    Arrays that carry a derivative (tracers) or are floating become ``Lifted``; concrete
    integer/boolean arrays become plain numpy arrays (numpy scalars when 0-d), so they index
    and mask as in numpy. Tuples, lists and dicts are wrapped entry by entry.
    """
    if isinstance(result, jax.Array):
        if _is_tracer(result) or jnp.issubdtype(result.dtype, jnp.inexact):
            return Lifted(result)
        plain = np.asarray(result)
        return plain[()] if plain.ndim == 0 else plain
    if isinstance(result, tuple) and hasattr(result, "_fields"):  # namedtuple (slogdet, svd)
        return type(result)(*(_wrap(r) for r in result))
    if isinstance(result, (tuple, list)):
        return type(result)(_wrap(r) for r in result)
    if isinstance(result, dict):
        return {k: _wrap(v) for k, v in result.items()}
    return result


def _unwrap(obj: Any) -> Any:
    """``Lifted`` values (recursively in tuples, lists and dicts) as their JAX values."""
    if isinstance(obj, Lifted):
        return obj.value
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(_unwrap(o) for o in obj))
    if isinstance(obj, (tuple, list)):
        return type(obj)(_unwrap(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _unwrap(v) for k, v in obj.items()}
    return obj


def _contains_lifted(obj: Any) -> bool:
    if isinstance(obj, Lifted):
        return True
    if isinstance(obj, (tuple, list)):
        return any(_contains_lifted(o) for o in obj)
    return False


def _operand(obj: Any) -> Any:
    """An array-like ufunc operand for jax.numpy (which refuses Python lists)."""
    if isinstance(obj, (tuple, list)):
        return jnp.array(_unwrap(obj)) if _contains_lifted(obj) else np.asarray(obj)
    return _unwrap(obj)


def _index(key: Any) -> Any:
    """A numpy index for jax.numpy: lists become arrays (numpy's fancy indexing)."""
    if isinstance(key, tuple):
        return tuple(_index(k) for k in key)
    if isinstance(key, list):
        return _operand(key)
    return _unwrap(key)


def _is_basic(key: Any) -> bool:
    """Whether numpy answers ``a[key]`` with a view (ints, slices, None, Ellipsis only)."""
    parts = key if isinstance(key, tuple) else (key,)
    return all(
        isinstance(p, (slice, type(None), type(Ellipsis)))
        or (isinstance(p, (int, np.integer)) and not isinstance(p, (bool, np.bool_)))
        for p in parts
    )


def _key_name(key: Any) -> tuple | None:
    """A hashable name of a basic key (slices are not hashable before Python 3.12), or None
    when a part is not a plain int, None or ``...`` (a 0-d array or a traced integer as a
    slice bound: such a read is not cached)."""
    parts = key if isinstance(key, tuple) else (key,)
    name = []
    for p in parts:
        if isinstance(p, slice):
            bounds = (p.start, p.stop, p.step)
            if not all(b is None or _is_plain_int(b) for b in bounds):
                return None
            name.append(bounds)
        elif p is None or p is Ellipsis or _is_plain_int(p):
            name.append((type(p).__name__, p))
        else:
            return None
    return tuple(name)


def _is_plain_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_element(key: Any, ndim: int) -> bool:
    """Whether ``a[key]`` is a single element (numpy returns a scalar copy, not a view)."""
    parts = key if isinstance(key, tuple) else (key,)
    return len(parts) == ndim and all(isinstance(p, (int, np.integer)) for p in parts)


def _slice_plan(key: Any, shape: tuple[int, ...]) -> tuple[np.ndarray, tuple, tuple] | None:
    """``(starts, sizes, result shape)`` of a basic key, or None unless all steps are 1.

    Basic indexing is done with ``lax.dynamic_slice``/``dynamic_update_slice`` and the start
    indices as operands: eager JAX then compiles one slice (and one transposed slice in the
    backward pass) per shape, not one per position, which is what keeps Python loops over
    windows (a naive convolution) fast. Bounds are checked as numpy does.
    """
    parts = key if isinstance(key, tuple) else (key,)
    indexing = sum(p is not None and p is not Ellipsis for p in parts)
    ellipses = sum(p is Ellipsis for p in parts)
    if ellipses > 1 or indexing > len(shape):
        return None
    rest = [slice(None)] * (len(shape) - indexing)
    expanded: list[Any] = []
    for p in parts:
        expanded.extend(rest if p is Ellipsis else [p])
    if not ellipses:
        expanded.extend(rest)
    starts: list[int] = []
    sizes: list[int] = []
    result: list[int] = []
    for p in expanded:
        if p is None:
            result.append(1)
            continue
        dim = shape[len(starts)]
        if isinstance(p, slice):
            start, stop, step = p.indices(dim)
            if step != 1 or stop <= start:
                return None
            starts.append(start)
            sizes.append(stop - start)
            result.append(stop - start)
        else:
            if not -dim <= int(p) < dim:
                raise IndexError(f"index {int(p)} is out of bounds for axis {len(starts)} "
                                 f"with size {dim}")
            starts.append(int(p) % dim)
            sizes.append(1)
    return np.asarray(starts, dtype=np.int64), tuple(sizes), tuple(result)


def _basic_get_put(key: Any, value: Any) -> tuple[Callable, Callable, tuple[int, ...]]:
    """Read and write functions of ``value[key]`` for a basic key, and its shape."""
    plan = _slice_plan(key, value.shape)
    if plan is None:
        shape = value[key].shape
        return (lambda v: v[key]), (lambda v, new: v.at[key].set(
            jnp.broadcast_to(jnp.asarray(new, v.dtype), shape))), shape
    starts, sizes, result = plan
    read, write = _slicers(sizes, result)
    return (lambda v: read(v, starts)), (lambda v, new: write(v, new, starts)), result


@functools.cache
def _slicers(sizes: tuple[int, ...], result: tuple[int, ...]) -> tuple[Callable, Callable]:
    """Jitted read and write (cast, broadcast) of a ``sizes`` block at runtime ``starts``."""

    def read(v: Any, starts: Any) -> Any:
        starts = [starts[i] for i in range(len(sizes))]
        part = jax.lax.dynamic_slice(v, starts, sizes, allow_negative_indices=False)
        return jnp.reshape(part, result)

    def write(v: Any, new: Any, starts: Any) -> Any:
        starts = [starts[i] for i in range(len(sizes))]
        block = jnp.reshape(jnp.broadcast_to(jnp.asarray(new, v.dtype), result), sizes)
        return jax.lax.dynamic_update_slice(v, block, starts, allow_negative_indices=False)

    return jax.jit(read), jax.jit(write)


_PENDING_LIMIT = 4096
"""At most this many element writes are kept pending before they join the program."""


@functools.lru_cache(maxsize=64)
def _packer(count: int) -> Callable[..., Any]:
    """Jitted: ``count`` scalars as one vector (one operation in the traced program)."""
    return jax.jit(lambda *scalars: jnp.stack(scalars))


@jax.jit
def _flat_set(value: Any, packed: Any, index: Any) -> Any:
    """``value`` with its C-order entries ``index`` (distinct) set to ``packed``."""
    return jnp.reshape(jnp.ravel(value).at[index].set(packed, unique_indices=True),
                       value.shape)


def _is_real_scalar(new: Any) -> bool:
    """A 0-d boolean, integer or real value (what an element write takes without a doubt)."""
    if isinstance(new, (bool, int, float)):
        return True
    return (isinstance(new, (jax.Array, np.ndarray, np.generic)) and new.ndim == 0
            and np.dtype(new.dtype).kind in "biuf")


def _flat_index(key: Any, shape: tuple[int, ...]) -> int:
    """The C-order position of the element ``key`` (ints, negative ones wrapping), or numpy's
    IndexError."""
    parts = key if isinstance(key, tuple) else (key,)
    flat = 0
    for axis, (k, n) in enumerate(zip(parts, shape)):
        k = int(k)
        if not -n <= k < n:
            raise IndexError(f"index {k} is out of bounds for axis {axis} with size {n}")
        flat = flat * n + k % n
    return flat


def _is_bool_array(obj: Any) -> bool:
    return isinstance(obj, (np.ndarray, jax.Array)) and obj.dtype == bool


def _is_mask_of(key: Any, shape: tuple[int, ...]) -> bool:
    """Whether ``key`` is one boolean array over the leading axes of ``shape`` (``x[x < 0]``,
    ``x[rows]``), concrete (numpy) or traced (a mask computed from a differentiated value)."""
    return (_is_bool_array(key) and 1 <= key.ndim <= len(shape)
            and tuple(key.shape) == tuple(shape[:key.ndim]))


def _concrete(mask: Any) -> np.ndarray | None:
    """A boolean mask's value, or None when it is known only abstractly (``jax.make_jaxpr``:
    eager JAX computes every comparison on concrete values)."""
    if isinstance(mask, np.ndarray):
        return mask
    try:
        return np.asarray(mask)
    except _TRACE_ERRORS:
        return None


def _concrete_mask_key(key: Any) -> Any:
    """``key`` with its boolean arrays as numpy arrays where their values are known: JAX
    indexes with a concrete mask (``x[mask]``'s shape depends on how many entries it holds)."""
    if isinstance(key, tuple):
        return tuple(_concrete_mask_key(k) for k in key)
    if _is_bool_array(key) and _is_tracer(key):
        value = _concrete(key)
        if value is None:
            try:
                value = _decide(key)  # its shadow: the trace is specialized to this mask
            except _NoShadow:
                return key
        return value
    return key


def _with_masks(index: Callable[[Any], Any], key: Any, what: str) -> Any:
    """``index(key)`` with ``key``'s boolean arrays concrete where their values are known;
    JAX's error for one known only abstractly becomes ``UntraceableError``: the oracle then
    runs the forward under eager JAX, where every mask is concrete."""
    try:
        return index(_concrete_mask_key(key))
    except jax.errors.NonConcreteBooleanIndexError:
        raise _untraceable(what, "the boolean mask's value is needed (how many entries it "
                           "selects) and is known only under eager JAX", _caller()) from None


def _masked_set(value: Any, mask: Any, new: Any) -> Any:
    """``value[mask] = new`` for a boolean ``mask`` over ``value``'s leading axes.

    ``new`` broadcast over the selected entries (``x[x < 0] = 0``, ``out[rows] = row``) is a
    select, which needs no concrete mask (it also traces abstractly); ``new`` with one entry
    per selected one (``x[m] = x[m] * 2``, what ``x[m] *= 2`` does) is a scatter at
    ``np.nonzero(mask)``, which needs the mask's value.
    """
    rest = value.shape[mask.ndim:]
    new = jnp.asarray(_unwrap(new), dtype=value.dtype)
    if new.ndim == len(rest) + 1 and new.shape[0] == 1:
        new = new[0]
    if new.ndim <= len(rest):
        selected = jnp.reshape(mask, mask.shape + (1,) * len(rest))
        return jnp.where(selected, jnp.broadcast_to(new, rest), value)
    concrete = _concrete(mask)
    if concrete is None:
        try:
            concrete = _decide(mask)
        except _NoShadow:
            concrete = None
    if concrete is None:
        raise _untraceable("x[mask] = values", "one value per selected entry needs the mask's "
                           "value, known only under eager JAX", _caller())
    where = np.nonzero(concrete)
    if new.shape[0] != len(where[0]):
        raise ValueError(f"NumPy boolean array indexing assignment cannot assign "
                         f"{new.shape[0]} input values to the {len(where[0])} output values "
                         "where the mask is true")
    return value.at[where].set(new)


def _floating(dtype: Any) -> bool:
    return np.dtype(dtype).kind in "fc"


def _write_out(target: Any, result: Any, what: str) -> Any:
    """Store ``result`` into a numpy ``out=`` argument, as numpy would, and return it."""
    if isinstance(target, Lifted):
        target._assign(result)
        return target
    if isinstance(target, np.ndarray):
        if _is_tracer(result):
            raise _untraceable(what, "out= is a plain numpy array, which cannot hold a traced "
                               "value", _caller())
        target[...] = np.asarray(result)
        return target
    raise _untraceable(what, f"unsupported out= of type {type(target).__name__}", _caller())


# --------------------------------------------------------------------------------------------
# The wrapper
# --------------------------------------------------------------------------------------------

class Lifted(NDArrayOperatorsMixin):
    """A mutable numpy-like array holding a JAX value (possibly a tracer).

    Either a root, owning its value, or a view of another ``Lifted`` (its value is computed
    from the base's, and writing into it writes into the base). ``value`` is the JAX array.
    """

    __slots__ = ("_base", "_get", "_nget", "_nput", "_pending", "_put", "_reads", "_root",
                 "_value", "_version")
    __array_priority__ = 1000.0

    def __init__(self, value: Any) -> None:
        self._value = value if isinstance(value, jax.Array) else jnp.asarray(value)
        self._version = 0
        self._base: Lifted | None = None
        self._root: Lifted = self
        self._get: Callable[[Any], Any] | None = None
        self._put: Callable[[Any, Any], Any] | None = None
        self._nget: Callable[[Any], Any] | None = None
        self._nput: Callable[[Any, Any], Any] | None = None
        self._reads: tuple[Any, dict] | None = None
        self._pending: dict[int, Any] | None = None

    @classmethod
    def _view(cls, base: Lifted, get: Callable[[Any], Any], put: Callable[[Any, Any], Any],
              nget: Callable[[Any], Any], nput: Callable[[Any, Any], Any],
              value: Any = None) -> Lifted:
        """A view of ``base``: ``get(base value)`` reads it, ``put(base value, new)`` writes;
        ``nget``/``nput`` do the same in numpy, for the shadows."""
        view = cls.__new__(cls)
        view._base, view._root, view._get, view._put = base, base._root, get, put
        view._nget, view._nput, view._reads, view._pending = nget, nput, None, None
        view._value = view._read(base.value) if value is None else value
        view._version = base._root._version
        return view

    def _read_once(self, key: Any, read: Callable[[Any], Any]) -> Any:
        """``read(self.value)``, computed once per value: a loop reading ``w[f]`` at every step
        (a naive convolution) adds one operation to the traced program, not one per step."""
        value = self.value
        name = _key_name(key)
        if name is None:
            return read(value)
        if self._reads is None or self._reads[0] is not value:
            self._reads = (value, {})
        reads = self._reads[1]
        if name not in reads:
            reads[name] = read(value)
        return reads[name]

    def _read(self, base_value: Any) -> Any:
        return _shadowed(self._get(base_value), lambda: self._nget(_shadow(base_value)))

    # -- the value ---------------------------------------------------------------------------

    @property
    def value(self) -> Any:
        """The current JAX value (recomputed from the base for a view written through)."""
        if self._pending:
            self._flush()
        if self._base is not None and self._version != self._root._version:
            self._value = self._read(self._base.value)
            self._version = self._root._version
        return self._value

    def _assign(self, new: Any) -> None:
        """Replace the whole value (cast and broadcast as numpy's ``a[...] = new``)."""
        given = new
        new = _unwrap(new)
        if not isinstance(new, jax.Array) or new.dtype != self._value.dtype:
            new = jnp.asarray(new, dtype=self._value.dtype)
        if new.shape != self._value.shape:
            new = jnp.broadcast_to(new, self._value.shape)
        if new is not given:
            shape, dtype = self.shape, self.dtype
            _shadowed(new, lambda: np.broadcast_to(np.asarray(_shadow(given), dtype=dtype),
                                                   shape))
        if self._base is None:
            self._value, self._pending = new, None  # writes still pending are overwritten
            self._version += 1
        else:
            base_value = self._base.value
            self._base._assign(_shadowed(self._put(base_value, new),
                                         lambda: self._nput(_shadow(base_value), _shadow(new))))
            self._value, self._version = new, self._root._version

    # -- numpy's protocols -------------------------------------------------------------------

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        value = self.value
        if _is_tracer(value):
            raise _untraceable("this numpy call", "it converts a traced value to a plain numpy "
                               "array", _caller())
        return np.asarray(value, dtype=dtype)

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        if any(isinstance(x, _MaskedSelection) for x in inputs):
            return NotImplemented  # the selection answers (it knows its mask)
        name = ufunc.__name__
        jfn, prefix, missing = _ufunc_counterpart(ufunc)
        what = f"{prefix}{name}" if method == "__call__" else f"{prefix}{name}.{method}"
        if jfn is None:
            raise _untraceable(what, missing, _caller())
        if method == "at":
            return _ufunc_at(ufunc, jfn, what, *inputs)
        given = dict(kwargs)
        out = kwargs.pop("out", None)
        where = kwargs.pop("where", True)
        dtype = kwargs.pop("dtype", None) if method == "__call__" else None
        args = [_operand(x) for x in inputs]

        def numpy_answer() -> Any:
            options = {k: _shadow(v) for k, v in given.items() if k != "out"}
            if out is not None:
                options["out"] = tuple(np.array(_shadow(o), copy=True) for o in out)
            return getattr(ufunc, method)(*(_shadow(x) for x in inputs), **options)

        try:
            if method == "__call__":
                result = jfn(*args, **kwargs)
                if dtype is not None:
                    result = result.astype(dtype)
            elif method in ("reduce", "accumulate", "outer", "reduceat"):
                if where is not True:
                    kwargs["where"] = _operand(where)
                    where = True
                if isinstance(jfn, jnp.ufunc):
                    result = getattr(jfn, method)(*args, **kwargs)
                elif method == "reduce" and name in _REDUCTIONS and prefix == "np.":
                    result = getattr(jnp, _REDUCTIONS[name])(*args, **kwargs)
                else:
                    raise _untraceable(what, missing, _caller())
            else:
                raise _untraceable(what, missing, _caller())
            if where is not True:
                if out is None:
                    raise _untraceable(what, "where= without out= leaves entries undefined",
                                       _caller())
                result = jnp.where(_operand(where), result, _unwrap(out[0]))
        except _CALL_ERRORS as exc:
            raise _untraceable(what, _first_line(exc), _caller()) from None
        _shadowed(result, numpy_answer)
        if out is not None:
            results = result if isinstance(result, tuple) else (result,)
            written = tuple(_write_out(t, r, what) for t, r in zip(out, results))
            return written[0] if len(written) == 1 else written
        return _wrap(result)

    def __array_function__(self, func: Any, types: Any, args: tuple, kwargs: dict) -> Any:
        if _MaskedSelection in types:
            return NotImplemented  # the selection answers (it knows its mask)
        what = _numpy_name(func)
        special = _SPECIAL.get(what)
        if special is not None:
            answer = special(*args, **kwargs)
            if isinstance(answer, Lifted) and answer._base is None and "out" not in kwargs:
                try:
                    _shadow(answer)
                except _NoShadow:
                    _shadowed(answer.value, lambda: func(*_shadow(args), **_shadow(kwargs)))
            return answer
        jfn = _jax_counterpart(func)
        if jfn is None:
            raise _untraceable(what, "jax.numpy has no counterpart", _caller())
        kwargs = dict(kwargs)
        out = kwargs.pop("out", None)
        try:
            if "inplace" in _parameters(jfn):  # np.fill_diagonal, np.put, np.place
                target = args[0]
                result = jfn(*_unwrap(args), **_unwrap(kwargs), inplace=False)

                def numpy_inplace() -> Any:
                    copy = np.array(_shadow(target), copy=True)
                    func(copy, *_shadow(args[1:]), **_shadow(kwargs))
                    return copy

                _write_out(target, _shadowed(result, numpy_inplace), what)
                return None
            result = jfn(*_unwrap(args), **_unwrap(kwargs))
            _shadowed(result, lambda: func(*_shadow(args), **_shadow(kwargs)))
        except _CALL_ERRORS as exc:
            raise _untraceable(what, _first_line(exc), _caller()) from None
        if out is not None:
            return _write_out(out, result, what)
        return _wrap(result)

    # -- Python's conversions ----------------------------------------------------------------

    def _concrete(self, convert: Callable[[Any], Any], what: str) -> Any:
        try:
            return convert(self.value)
        except _TRACE_ERRORS as exc:
            try:  # numpy's value at this point: the trace takes numpy's branch
                concrete = _decide(self.value)
            except _NoShadow:
                raise _untraceable(what, "Python needs the concrete value of a traced array "
                                   f"({type(exc).__name__})", _caller()) from None
        return convert(concrete)

    def __bool__(self) -> bool:
        return self._concrete(bool, "bool() (an `if`/`while` on an array)")

    def __int__(self) -> int:
        return self._concrete(int, "int()")

    def __index__(self) -> int:
        return self._concrete(lambda v: v.__index__(), "an array used as an index")

    def __float__(self) -> float:
        if _is_tracer(self.value):
            raise _untraceable("float()", "it would drop the derivative of a value being "
                               "differentiated", _caller())
        return float(self.value)

    def item(self, *args: Any) -> Any:
        """The Python scalar, only when it carries no derivative (or is integer/boolean)."""
        value = self.value
        if _is_tracer(value) and jnp.issubdtype(value.dtype, jnp.inexact):
            raise _untraceable(".item()", "it would drop the derivative of a value being "
                               "differentiated", _caller())
        return self._concrete(lambda v: v.item(*args), ".item()")

    def tolist(self) -> Any:
        """Nested Python lists, only when the value carries no derivative."""
        if _is_tracer(self.value):
            raise _untraceable(".tolist()", "it would drop the derivative of a value being "
                               "differentiated", _caller())
        return np.asarray(self.value).tolist()

    def __repr__(self) -> str:
        return f"Lifted({self.value!r})"

    def __copy__(self) -> Lifted:
        return self.copy()

    def __deepcopy__(self, memo: dict) -> Lifted:
        return self.copy()

    # -- container protocol ------------------------------------------------------------------

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of unsized object")
        return self.shape[0]

    def __iter__(self) -> Iterator[Any]:
        for i in range(len(self)):
            yield self[i]

    def __getitem__(self, key: Any) -> Any:
        key = _index(key)
        if not _is_basic(key):
            if _is_mask_of(key, self.shape) and _concrete(key) is None:
                return _MaskedSelection(self, key)  # x[mask] op= scalar; else materialized
            key = _concrete_mask_key(key)
            value = self.value
            result = _with_masks(lambda k: value[k], key, "x[mask]")
            return _wrap(_shadowed(result, lambda: _shadow(value)[_shadow(key)]))
        get, put, _ = _basic_get_put(key, self._value)

        def nget(s: Any) -> Any:
            return s[key]

        def read(value: Any) -> Any:
            return _shadowed(get(value), lambda: nget(_shadow(value)))

        if _is_element(key, self.ndim):  # numpy gives a scalar: a copy
            return _wrap(self._read_once(key, read))
        return Lifted._view(self, get, put, nget, lambda s, new: _numpy_put(s, key, new),
                            self._read_once(key, read))

    def __setitem__(self, key: Any, new: Any) -> None:
        key = _index(key)
        new = _operand(new)
        if _is_basic(key):
            if (self._base is None and _record() is not None and _is_element(key, self.ndim)
                    and _is_real_scalar(new)):
                self._defer(_flat_index(key, self.shape), new)
                return
            _, put, _ = _basic_get_put(key, self._value)
            value = self.value
            self._assign(_shadowed(put(value, new),
                                   lambda: _numpy_put(_shadow(value), key, _shadow(new))))
        elif isinstance(new, _MaskedSelection):
            self._assign(new.written_back(self, key))
        elif _is_mask_of(key, self.shape):
            self._assign(self._masked(key, new))
        else:
            converted = jnp.asarray(new, dtype=self._value.dtype)
            key = _concrete_mask_key(key)
            value = self.value
            self._assign(_shadowed(
                _with_masks(lambda k: value.at[k].set(converted), key, "x[mask] = values"),
                lambda: _numpy_put(_shadow(value), _shadow(key), _shadow(new))))

    def _defer(self, flat: int, new: Any) -> None:
        """``self.flat[flat] = new``, kept pending: a loop's element writes (``out[n, f, i] =
        ...`` in a naive convolution) join the traced program as one write when the value is
        next read, not one ``dynamic_update_slice`` per element. Only in the oracle's abstract
        trace (shadows on): under eager JAX, each new count of writes would compile its own
        stack, where one element write compiles once."""
        dtype = self._value.dtype
        converted = jnp.asarray(new, dtype=dtype)
        if converted is not new:
            _shadowed(converted, lambda: np.asarray(_shadow(new), dtype=dtype))
        if self._pending is None:
            self._pending = {}
        self._pending.pop(flat, None)  # the last write of an entry is the one that counts
        self._pending[flat] = converted
        self._version += 1
        if len(self._pending) >= _PENDING_LIMIT:
            self._flush()

    def _flush(self) -> None:
        """Apply the pending element writes in one traced operation (shadow included)."""
        pending, self._pending = self._pending, None
        old = self._value
        index = np.fromiter(pending, dtype=np.intp, count=len(pending))
        order = np.argsort(index, kind="stable")
        index = index[order]
        entries = list(pending.values())
        values = [entries[k] for k in order]
        packed = _packer(len(values))(*values)
        if len(index) == old.size:  # every entry written: the old value no longer matters
            new = jnp.reshape(packed, old.shape)
        else:
            new = _flat_set(old, packed, index)

        def numpy_new() -> np.ndarray:
            flat = np.array(_shadow(old), copy=True).reshape(-1)
            flat[index] = [_shadow(v) for v in values]
            return flat.reshape(old.shape)

        self._value = _shadowed(new, numpy_new)

    def _masked(self, mask: Any, new: Any) -> Any:
        """The new value after ``self[mask] = new`` (a boolean ``mask``), shadow included."""
        value = self.value
        return _shadowed(_masked_set(value, mask, new),
                         lambda: _numpy_put(_shadow(value), _shadow(mask), _shadow(new)))

    # -- attributes --------------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._value.shape)

    @property
    def ndim(self) -> int:
        return self._value.ndim

    @property
    def size(self) -> int:
        return int(self._value.size)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self._value.dtype)

    @property
    def T(self) -> Lifted:  # noqa: N802  (numpy's name)
        return self.transpose()

    @property
    def flat(self) -> _Flat:
        """A flat iterator over the entries in C order, like ``ndarray.flat``."""
        return _Flat(self)

    @flat.setter
    def flat(self, new: Any) -> None:
        value = jnp.resize(jnp.ravel(_operand(new)), self.size)  # numpy repeats ``new``
        shape, size = self.shape, self.size
        self._assign(_shadowed(jnp.reshape(value, shape), lambda: np.reshape(
            np.resize(np.ravel(_shadow(new)), size), shape)))

    # -- views -------------------------------------------------------------------------------

    def transpose(self, *axes: Any) -> Lifted:
        """A view with permuted axes, like ``ndarray.transpose``."""
        if len(axes) == 1 and (axes[0] is None or isinstance(axes[0], (tuple, list))):
            axes = axes[0]
        order = tuple(range(self.ndim))[::-1] if not axes else tuple(
            int(a) % self.ndim for a in axes)
        inverse = tuple(int(i) for i in np.argsort(order))
        return Lifted._view(self, lambda v: jnp.transpose(v, order),
                            lambda v, new: jnp.transpose(new, inverse),
                            lambda s: np.transpose(s, order),
                            lambda s, new: np.transpose(new, inverse))

    def reshape(self, *shape: Any, order: str = "C") -> Lifted:
        """A view with another shape, like ``ndarray.reshape`` (C order only)."""
        if order != "C":
            raise _untraceable(f".reshape(order={order!r})", "only C order", _caller())
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return Lifted._view(self, lambda v: jnp.reshape(v, shape),
                            lambda v, new: jnp.reshape(new, v.shape),
                            lambda s: np.reshape(s, shape),
                            lambda s, new: np.reshape(new, s.shape))

    def ravel(self, order: str = "C") -> Lifted:
        """A flat view, like ``ndarray.ravel``."""
        return self.reshape(-1, order=order)

    def squeeze(self, axis: Any = None) -> Lifted:
        """A view without length-1 axes, like ``ndarray.squeeze``."""
        if axis is None:
            return self.reshape(tuple(d for d in self.shape if d != 1))
        axes = {int(a) % self.ndim for a in (axis if isinstance(axis, tuple) else (axis,))}
        if any(self.shape[a] != 1 for a in axes):
            raise ValueError("cannot select an axis to squeeze out which has size not equal "
                             "to one")
        return self.reshape(tuple(d for i, d in enumerate(self.shape) if i not in axes))

    def swapaxes(self, axis1: int, axis2: int) -> Lifted:
        """A view with two axes exchanged, like ``ndarray.swapaxes``."""
        order = list(range(self.ndim))
        order[axis1], order[axis2] = order[axis2], order[axis1]
        return self.transpose(order)

    # -- copies and in-place methods ---------------------------------------------------------

    def copy(self, order: str = "C") -> Lifted:
        """An independent copy."""
        return Lifted(self.value)

    def flatten(self, order: str = "C") -> Lifted:
        """A flat copy."""
        value = self.value
        return Lifted(_shadowed(jnp.ravel(value), lambda: np.ravel(_shadow(value))))

    def astype(self, dtype: Any, *args: Any, **kwargs: Any) -> Any:
        """A copy converted to ``dtype`` (integer results come back as numpy arrays)."""
        value = self.value
        return _wrap(_shadowed(value.astype(dtype), lambda: _shadow(value).astype(dtype)))

    def fill(self, new: Any) -> None:
        """Set every entry to ``new`` in place."""
        self._assign(new)

    def sort(self, axis: int = -1, *args: Any, **kwargs: Any) -> None:
        """Sort in place."""
        value = self.value
        self._assign(_shadowed(jnp.sort(value, axis=axis),
                               lambda: np.sort(_shadow(value), axis=axis)))


class _MaskedSelection(NDArrayOperatorsMixin):
    """``x[mask]`` for a boolean mask known only abstractly (``jax.make_jaxpr``), good for two
    things: ``x[mask] op= c`` (``y[y < 0] *= alpha``), which Python runs as
    ``s = x[mask]; s = s.__imul__(alpha); x[mask] = s``, and ``out[m] = x[m]`` with the same
    mask object ``m``. The selection is kept at ``x``'s full shape, the in-place operation
    applied to every entry, and the write-back is the select ``jnp.where(mask, s, out)``.
    Only operations linear in the selection with constant coefficients (``+= -= *= /=`` by a
    number or a numpy array over the axes after the mask's), so that the unselected entries,
    which the select discards, cannot put ``0 * inf`` into the derivative (``**=`` or
    ``np.log`` of them could). Any other use (its shape, a reduction, ``np.exp(x[mask])``, a
    traced operand) needs the selection's size or risks that: ``UntraceableError``, and the
    oracle runs the forward under eager JAX, where the mask is concrete and ``x[mask]`` a
    plain gather.
    """

    __array_priority__ = 2000.0
    _LINEAR = frozenset({"add", "subtract", "multiply", "divide", "true_divide", "negative",
                         "positive"})

    def __init__(self, base: Lifted, mask: Any) -> None:
        self._selected: Lifted | None = None
        self._base, self._mask = base, mask
        self._full = base.value

    def _refuse(self, what: str) -> UntraceableError:
        return _untraceable(what, "x[mask] with a mask known only under eager JAX is used "
                            "here for more than `x[mask] op= constant`", _caller())

    def _materialized(self, what: str) -> Lifted:
        """The plain selection ``x[mask]`` (after the in-place operations so far), with the
        mask's concrete shadow (the trace is then specialized to it); raises as ``_refuse``
        when the mask's shadow is not known."""
        if self._selected is None:
            try:
                mask = _decide(self._mask)
            except _NoShadow:
                raise self._refuse(what) from None
            full = self._full
            self._selected = Lifted(_shadowed(full[mask], lambda: _shadow(full)[mask]))
        return self._selected

    def _swap(self, obj: Any, selected: Lifted) -> Any:
        if obj is self:
            return selected
        if isinstance(obj, (tuple, list)):
            return type(obj)(self._swap(o, selected) for o in obj)
        return obj

    def _constant(self, operand: Any) -> bool:
        value = _unwrap(operand)
        return (not _is_tracer(value) and not isinstance(value, _MaskedSelection)
                and np.ndim(value) <= self._base.ndim - self._mask.ndim)

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        out = kwargs.pop("out", None)
        what = f"np.{ufunc.__name__}"
        if (self._selected is not None or method != "__call__" or kwargs
                or getattr(np, ufunc.__name__, None) is not ufunc
                or ufunc.__name__ not in self._LINEAR or out is None or len(out) != 1
                or out[0] is not self or inputs[0] is not self
                or not all(self._constant(x) for x in inputs[1:])):
            selected = self._materialized(what)
            if out is not None:
                kwargs["out"] = self._swap(out, selected)
            answer = getattr(ufunc, method)(*self._swap(inputs, selected), **kwargs)
            return self if answer is selected else answer
        full, name = self._full, ufunc.__name__
        self._full = _shadowed(
            getattr(jnp, name)(full, *(_operand(x) for x in inputs[1:])),
            lambda: getattr(np, name)(_shadow(full), *(_shadow(x) for x in inputs[1:])))
        return self

    def written_back(self, target: Lifted, mask: Any) -> Any:
        """The new value of ``target`` after ``target[mask] = self``: with the very mask it
        was selected with (``m = x > 0; out[m] = x[m]`` too; the selection is a copy taken
        when it was made, as numpy's)."""
        if mask is not self._mask or self._selected is not None:
            selected = self._materialized("x[mask] = selection")
            if not _is_mask_of(mask, target.shape):
                raise self._refuse("x[mask] = selection")
            return target._masked(mask, selected.value)
        selected = jnp.reshape(mask, mask.shape + (1,) * (target.ndim - mask.ndim))
        full, value, dtype = self._full, target.value, target.dtype
        return _shadowed(
            jnp.where(selected, full.astype(dtype), value),
            lambda: _numpy_put(_shadow(value), _shadow(mask),
                               _shadow(full)[_shadow(mask)].astype(dtype)))

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise self._refuse("this numpy call")

    def __array_function__(self, func: Any, types: Any, args: tuple, kwargs: dict) -> Any:
        selected = self._materialized(_numpy_name(func))
        return func(*self._swap(args, selected), **{k: self._swap(v, selected)
                                                    for k, v in kwargs.items()})

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self._materialized(f"ndarray.{name}"), name)

    def __len__(self) -> int:
        return len(self._materialized("len()"))

    def __iter__(self) -> Iterator[Any]:
        return iter(self._materialized("iteration"))

    def __bool__(self) -> bool:
        return bool(self._materialized("bool()"))

    def __float__(self) -> float:
        return float(self._materialized("float()"))

    def __getitem__(self, key: Any) -> Any:
        return self._materialized("x[mask][...]")[key]

    def __setitem__(self, key: Any, new: Any) -> None:
        self._materialized("x[mask][...] = ")[key] = new


class _Flat:
    """``x.flat`` of a lifted ``x``: reads are copies (``x.flat[::2]``, ``x.flat[i]``), writes
    (``x.flat[i] = v``) reach ``x``, iteration yields the entries in C order."""

    __slots__ = ("base",)

    def __init__(self, base: Lifted) -> None:
        self.base = base

    def __getitem__(self, key: Any) -> Any:
        part = self.base.reshape(-1)[key]
        return part.copy() if isinstance(part, Lifted) else part

    def __setitem__(self, key: Any, new: Any) -> None:
        self.base.reshape(-1)[key] = new

    def __iter__(self) -> Iterator[Any]:
        return iter(self.base.reshape(-1))

    def __len__(self) -> int:
        return self.base.size

    def copy(self) -> Lifted:
        """A flat copy, like ``flatiter.copy``."""
        return self.base.flatten()


def _numpy_method(name: str) -> Callable[..., Any]:
    """``x.name(*args)`` as ``np.name(x, *args)``, which dispatches to jax.numpy."""
    function = getattr(np, name)

    def method(self: Lifted, *args: Any, **kwargs: Any) -> Any:
        return function(self, *args, **kwargs)

    method.__name__ = name
    method.__doc__ = f"Like ``ndarray.{name}`` (``np.{name}`` on jax.numpy)."
    return method


for _name in ("sum", "mean", "max", "min", "argmax", "argmin", "std", "var", "prod", "cumsum",
              "cumprod", "clip", "dot", "round", "any", "all", "argsort", "nonzero", "repeat",
              "trace", "diagonal", "conj", "conjugate"):
    setattr(Lifted, _name, _numpy_method(_name))
del _name


# --------------------------------------------------------------------------------------------
# Dispatch helpers
# --------------------------------------------------------------------------------------------

def _ufunc_counterpart(ufunc: np.ufunc) -> tuple[Any, str, str]:
    """``(jax function or None, prefix of the ufunc's name, the reason when there is none)``.

    numpy's own ufuncs map to ``jax.numpy`` by name; ``scipy.special``'s (``expit``, ``erf``,
    ``gammaln`` ...), which numpy dispatches through the same protocol, to
    ``jax.scipy.special`` by name. scipy is never imported here: a ufunc of scipy.special can
    only reach this point once the user's code has imported it. Any other ufunc (of another
    library, or made by ``np.frompyfunc``) has no counterpart.
    """
    name = ufunc.__name__
    if getattr(np, name, None) is ufunc or getattr(ufunc, "__module__", None) == "numpy":
        return getattr(jnp, name, None), "np.", "jax.numpy has no counterpart"
    special = sys.modules.get("scipy.special")
    if special is not None and getattr(special, name, None) is ufunc:
        return (getattr(_jax_scipy_special(), name, None), "scipy.special.",
                "jax.scipy.special has no counterpart")
    return None, "ufunc ", "a ufunc of neither numpy nor scipy.special has no JAX counterpart"


@functools.cache
def _jax_scipy_special() -> Any:
    import jax.scipy.special

    return jax.scipy.special


def _jax_counterpart(func: Any) -> Any:
    """``jnp.<sub>.<name>`` for ``numpy.<sub>.<name>`` (only numpy, linalg and fft)."""
    module = getattr(func, "__module__", None) or "numpy"
    namespaces = {"numpy": jnp, "numpy.linalg": jnp.linalg, "numpy.fft": jnp.fft}
    namespace = namespaces.get(module)
    if namespace is None:
        return None
    return getattr(namespace, func.__name__, None)


@functools.cache
def _parameters(fn: Any) -> tuple[str, ...]:
    try:
        return tuple(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return ()


def _ufunc_at(ufunc: np.ufunc, jfn: Any, what: str, a: Any, indices: Any, *rest: Any) -> None:
    """``np.add.at(a, indices, b)``: a functional scatter (``.at[indices].add``) into ``a``."""
    if not isinstance(jfn, jnp.ufunc):
        raise _untraceable(what, "jax.numpy has no counterpart", _caller())
    if not isinstance(a, Lifted):
        raise _untraceable(what, "the buffer is a plain numpy array, which cannot hold a "
                           "traced value", _caller())
    value = a.value
    try:
        new = jfn.at(value, _index(indices), *(_operand(b) for b in rest), inplace=False)
    except _CALL_ERRORS as exc:
        raise _untraceable(what, _first_line(exc), _caller()) from None

    def numpy_at() -> Any:
        copy = np.array(_shadow(value), copy=True)
        ufunc.at(copy, _shadow(_index(indices)), *(_shadow(b) for b in rest))
        return copy

    a._assign(_shadowed(new, numpy_at))


def _np_reshape(a: Lifted, shape: Any = None, order: str = "C", *, newshape: Any = None,
                copy: bool | None = None) -> Lifted:
    return a.reshape(shape if shape is not None else newshape, order=order)


def _np_clip(a: Any, a_min: Any = None, a_max: Any = None, out: Any = None, *, min: Any = None,
             max: Any = None, **kwargs: Any) -> Any:
    lo = min if a_min is None else a_min
    hi = max if a_max is None else a_max
    result = _shadowed(jnp.clip(_operand(a), _operand(lo), _operand(hi)),
                       lambda: np.clip(_shadow(a), _shadow(lo), _shadow(hi)))
    return _write_out(out, result, "np.clip") if out is not None else _wrap(result)


def _np_copyto(dst: Any, src: Any, casting: str = "same_kind", where: Any = True) -> None:
    value = _operand(src)
    if where is not True:
        value = jnp.where(_operand(where), value, _operand(dst))

    def numpy_copyto() -> Any:
        copy = np.array(_shadow(dst), copy=True)
        np.copyto(copy, _shadow(src), casting=casting, where=_shadow(where))
        return copy

    _write_out(dst, _shadowed(jnp.broadcast_to(value, np.shape(dst)), numpy_copyto),
               "np.copyto")


def _np_putmask(a: Any, mask: Any, values: Any) -> None:
    a_value = _operand(a)
    mask = np.asarray(_unwrap(mask), dtype=bool)
    flat = jnp.resize(jnp.ravel(_operand(values)), a_value.size)
    new = jnp.where(mask, jnp.reshape(flat, a_value.shape), a_value)

    def numpy_putmask() -> Any:
        copy = np.array(_shadow(a), copy=True)
        np.putmask(copy, mask, _shadow(values))
        return copy

    _write_out(a, _shadowed(new, numpy_putmask), "np.putmask")


def _np_interp(x: Any, xp: Any, fp: Any, left: Any = None, right: Any = None,
               period: Any = None) -> Any:
    segments = _interp_by_segments(x, xp, fp, left, right, period)
    if segments is not None:
        return segments
    return _wrap(_shadowed(
        jnp.interp(_operand(x), _operand(xp), _operand(fp), left=_operand(left),
                   right=_operand(right), period=_operand(period)),
        lambda: np.interp(*_shadow((x, xp, fp)), left=_shadow(left), right=_shadow(right),
                          period=_shadow(period))))


def _interp_by_segments(x: Any, xp: Any, fp: Any, left: Any, right: Any,
                        period: Any) -> Any:
    """``np.interp`` with fixed knots ``xp`` (numbers, no ``period``), where x's shadow is
    known: its segments (numpy's ``searchsorted``, as ``jnp.interp`` finds them, side right)
    are read from the shadow, and only the linear pieces are traced (a gather and a few
    arithmetic operations, against ``jnp.interp``'s traced search: ~0.1 s to trace and two XLA
    compilations on a first check). The program is then this point's (``_decide``).
    None: not applicable (the caller traces ``jnp.interp``)."""
    if period is not None or _record() is None:
        return None
    try:
        knots = np.asarray(_shadow(xp), dtype=np.float64)
        if _has_tracer(_unwrap(xp)) or knots.ndim != 1 or knots.size < 2 or np.any(
                np.diff(knots) <= 0):
            return None
        at = np.asarray(_decide(x), dtype=np.float64)
    except (_NoShadow, TypeError, ValueError):
        return None
    i = np.clip(np.searchsorted(knots, at, side="right"), 1, knots.size - 1)
    values = jnp.asarray(_operand(fp), dtype=jnp.float64)
    lo, hi = values[i - 1], values[i]
    t = (jnp.asarray(_operand(x), dtype=jnp.float64) - knots[i - 1]) / (knots[i] - knots[i - 1])
    out = lo + t * (hi - lo)
    below = values[0] if left is None else jnp.asarray(_operand(left), dtype=jnp.float64)
    above = values[-1] if right is None else jnp.asarray(_operand(right), dtype=jnp.float64)
    out = jnp.where(at < knots[0], below, jnp.where(at > knots[-1], above, out))
    return _wrap(_shadowed(out, lambda: np.interp(at, knots, _shadow(fp), left=_shadow(left),
                                                  right=_shadow(right))))


def _np_sliding_window_view(x: Any, window_shape: Any, axis: Any = None, *, subok: bool = False,
                            writeable: bool = False) -> Any:
    """numpy's read-only strided view as a gather (a copy: numpy forbids writes into it)."""
    what = "np.lib.stride_tricks.sliding_window_view"
    if writeable:
        raise _untraceable(what, "writeable=True views cannot be lifted", _caller())
    value = _operand(x)
    window = tuple(window_shape) if np.iterable(window_shape) else (window_shape,)
    if axis is None:
        axes = tuple(range(value.ndim))
        if len(window) != value.ndim:
            raise ValueError(f"Since axis is `None`, must provide window_shape for all "
                             f"dimensions of `x`; got {len(window)} window_shape elements and "
                             f"`x.ndim` is {value.ndim}.")
    else:
        axes = tuple(axis) if np.iterable(axis) else (axis,)
        if len(window) != len(axes):
            raise ValueError(f"Must provide matching length window_shape and axis; got "
                             f"{len(window)} window_shape elements and {len(axes)} axes "
                             "elements.")
    if any(int(w) < 0 for w in window):
        raise ValueError("`window_shape` cannot contain negative values")
    for a, w in zip(axes, window):
        if not -value.ndim <= int(a) < value.ndim:
            raise np.exceptions.AxisError(int(a), value.ndim)
        a, w = int(a) % value.ndim, int(w)
        positions = value.shape[a] - w + 1
        if positions < 0:
            raise ValueError("window shape cannot be larger than input array shape")
        starts = np.arange(positions)[:, None] + np.arange(w)[None, :]
        value = jnp.moveaxis(jnp.take(value, starts, axis=a), a + 1, -1)
    return _wrap(value)


# numpy functions answered here rather than by the jnp function of the same name: views (numpy
# returns one, and writes through it must reach the original), different keywords, in-place.
_SPECIAL: dict[str, Callable[..., Any]] = {
    "np.transpose": lambda a, axes=None: a.transpose(axes),
    "np.reshape": _np_reshape,
    "np.ravel": lambda a, order="C": a.ravel(order),
    "np.squeeze": lambda a, axis=None: a.squeeze(axis),
    "np.swapaxes": lambda a, axis1, axis2: a.swapaxes(axis1, axis2),
    "np.clip": _np_clip,
    "np.copyto": _np_copyto,
    "np.putmask": _np_putmask,
    "np.interp": _np_interp,  # xp, fp are often lists, which jnp.interp refuses
    "np.lib.stride_tricks.sliding_window_view": _np_sliding_window_view,
}


# --------------------------------------------------------------------------------------------
# Redirecting numpy's array-creation functions while a lifted function runs
# --------------------------------------------------------------------------------------------

def _shape_dtype_of(a: Any, dtype: Any, shape: Any) -> tuple[Any, np.dtype]:
    if isinstance(a, Lifted):
        a_shape, a_dtype = a.shape, a.dtype
    else:
        plain = np.asarray(a)
        a_shape, a_dtype = plain.shape, plain.dtype
    return (a_shape if shape is None else shape,
            np.dtype(a_dtype if dtype is None else dtype))


def _zeros(shape: Any, dtype: Any = float, *args: Any, **kwargs: Any) -> Any:
    if not _floating(dtype):
        return NotImplemented
    dtype = np.dtype(dtype)
    return Lifted(_shadowed(jnp.zeros(shape, dtype), lambda: np.zeros(shape, dtype)))


def _ones(shape: Any, dtype: Any = float, *args: Any, **kwargs: Any) -> Any:
    if not _floating(dtype):
        return NotImplemented
    dtype = np.dtype(dtype)
    return Lifted(_shadowed(jnp.ones(shape, dtype), lambda: np.ones(shape, dtype)))


def _filled(shape: Any, fill_value: Any, dtype: Any) -> Lifted:
    return Lifted(_shadowed(jnp.full(shape, _operand(fill_value), dtype),
                            lambda: np.full(shape, _shadow(fill_value), dtype)))


def _full(shape: Any, fill_value: Any, dtype: Any = None, *args: Any, **kwargs: Any) -> Any:
    if _contains_lifted(fill_value):
        return _filled(shape, fill_value, dtype)
    resolved = np.result_type(fill_value) if dtype is None else np.dtype(dtype)
    return _filled(shape, fill_value, resolved) if _floating(resolved) else NotImplemented


def _like(make: Callable[..., Any], numpy_make: Callable[..., Any]) -> Callable[..., Any]:
    def like(a: Any, dtype: Any = None, order: str = "K", subok: bool = True,
             shape: Any = None, **kwargs: Any) -> Any:
        shape, dtype = _shape_dtype_of(a, dtype, shape)
        if not _floating(dtype):
            return NotImplemented
        return Lifted(_shadowed(make(shape, dtype), lambda: numpy_make(shape, dtype)))
    return like


def _full_like(a: Any, fill_value: Any, dtype: Any = None, order: str = "K",
               subok: bool = True, shape: Any = None, **kwargs: Any) -> Any:
    shape, resolved = _shape_dtype_of(a, dtype, shape)
    if _contains_lifted(fill_value) or _floating(resolved):
        return _filled(shape, fill_value, resolved)
    return NotImplemented


def _array(obj: Any, dtype: Any = None, *args: Any, copy: bool = True, ndmin: int = 0,
           **kwargs: Any) -> Any:
    if not _contains_lifted(obj):
        return NotImplemented
    value = jnp.array(_unwrap(obj), dtype=dtype)
    if value.ndim < ndmin:
        value = jnp.reshape(value, (1,) * (ndmin - value.ndim) + value.shape)
    return Lifted(_shadowed(value, lambda: np.array(_shadow(obj), dtype=dtype, ndmin=ndmin)))


def _asarray(obj: Any, dtype: Any = None, *args: Any, **kwargs: Any) -> Any:
    if isinstance(obj, Lifted) and (dtype is None or np.dtype(dtype) == obj.dtype):
        return obj
    return _array(obj, dtype)


def _ndenumerate(arr: Any) -> Any:
    if not isinstance(arr, Lifted):
        return NotImplemented
    return ((index, arr[index]) for index in np.ndindex(*arr.shape))


_REAL_VECTORIZE = np.vectorize
VECTORIZE_LIMIT = 100_000
"""Most entries ``np.vectorize`` runs its Python function on, one lifted call per entry."""


class _Vectorized:
    """``np.vectorize(pyfunc)`` made while a lifted function runs: called with lifted arrays,
    it calls ``pyfunc`` on each broadcast entry (a 0-d lifted array, so Python ``if``s on it
    take numpy's branch under eager JAX) and stacks the results; otherwise it is numpy's."""

    def __init__(self, real: Any, pyfunc: Any, otypes: Any, excluded: Any,
                 signature: Any) -> None:
        self.real, self.pyfunc, self.otypes = real, pyfunc, otypes
        self.excluded, self.signature = excluded, signature
        functools.update_wrapper(self, pyfunc, updated=())

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not _contains_lifted(args) and not _contains_lifted(list(kwargs.values())):
            return self.real(*args, **kwargs)
        if kwargs or self.excluded or self.signature is not None:
            raise _untraceable("np.vectorize", "only positional arguments, without excluded= "
                               "or signature=, can be lifted", _caller())
        values = [_operand(a) for a in args]
        shape = np.broadcast_shapes(*(np.shape(v) for v in values))
        size = math.prod(shape)
        if size > VECTORIZE_LIMIT:
            raise _untraceable("np.vectorize", f"{size} entries, more than the "
                               f"{VECTORIZE_LIMIT} it is run on one by one", _caller())
        flat = [_shadowed(jnp.ravel(jnp.broadcast_to(v, shape)),
                          functools.partial(_numpy_flat, v, shape)) for v in values]

        def entry(f: Any, i: int) -> Any:
            return _wrap(_shadowed(f[i], lambda: _shadow(f)[i]))

        results = [self.pyfunc(*(entry(f, i) for f in flat)) for i in range(size)]
        several = bool(results) and isinstance(results[0], tuple)
        columns = list(zip(*results)) if several else [results]
        otypes = list(self.otypes or [])
        outs = []
        for k, column in enumerate(columns):
            dtype = np.dtype(otypes[k]) if k < len(otypes) else None
            if not column:  # numpy needs otypes for an empty input too
                stacked = jnp.zeros(shape, dtype or np.float64)
            else:
                stacked = _shadowed(
                    jnp.reshape(jnp.stack([jnp.asarray(_unwrap(c)) for c in column]), shape),
                    functools.partial(_numpy_stacked, column, shape))
            if dtype is not None:
                stacked = _shadowed(stacked.astype(dtype),
                                    functools.partial(_numpy_astype, stacked, dtype))
            outs.append(_wrap(stacked))
        return tuple(outs) if several else outs[0]


def _numpy_flat(value: Any, shape: tuple[int, ...]) -> np.ndarray:
    return np.ravel(np.broadcast_to(_shadow(value), shape))


def _numpy_stacked(column: Any, shape: tuple[int, ...]) -> np.ndarray:
    return np.reshape(np.stack([np.asarray(_shadow(c)) for c in column]), shape)


def _numpy_astype(value: Any, dtype: np.dtype) -> np.ndarray:
    return np.asarray(_shadow(value)).astype(dtype)


def _vectorize(pyfunc: Any = np._NoValue, otypes: Any = None, doc: Any = None,
               excluded: Any = None, cache: bool = False, signature: Any = None) -> Any:
    if pyfunc is np._NoValue or not callable(pyfunc):  # the decorator-factory form
        return NotImplemented
    real = _REAL_VECTORIZE(pyfunc, otypes=otypes, doc=doc, excluded=excluded, cache=cache,
                           signature=signature)
    return _Vectorized(real, pyfunc, otypes, excluded, signature)


_CREATORS: dict[str, Callable[..., Any]] = {
    "zeros": _zeros,
    "empty": _zeros,  # numpy's content is arbitrary; zeros is one valid choice
    "ones": _ones,
    "full": _full,
    "zeros_like": _like(jnp.zeros, np.zeros),
    "empty_like": _like(jnp.zeros, np.zeros),
    "ones_like": _like(jnp.ones, np.ones),
    "full_like": _full_like,
    "array": _array,
    "asarray": _asarray,
    "asanyarray": _asarray,
    "ascontiguousarray": _asarray,
    "ndenumerate": _ndenumerate,
    "vectorize": _vectorize,
}

_LOCK = threading.Lock()
_ACTIVE: dict[int, int] = {}  # thread id -> depth of nested lifted calls on that thread
_ORIGINALS: dict[str, Any] = {}  # numpy's functions while the replacements are installed


_NAME_LOADS = frozenset({"LOAD_ATTR", "LOAD_METHOD", "LOAD_GLOBAL", "LOAD_NAME", "LOAD_DEREF",
                         "LOAD_FAST", "LOAD_CLASSDEREF", "LOAD_FAST_CHECK", "LOAD_SUPER_ATTR"})


@functools.lru_cache(maxsize=1024)
def _loads_of(code: CodeType, name: str) -> tuple[tuple[int, int, int], ...]:
    """``(offset, line, column)`` of every instruction of ``code`` that loads ``name``."""
    return tuple((ins.offset, ins.positions.lineno, ins.positions.col_offset)
                 for ins in dis.get_instructions(code)
                 if ins.opname in _NAME_LOADS and ins.argval == name
                 and ins.positions is not None and ins.positions.lineno is not None
                 and ins.positions.col_offset is not None)


def _spelled_call(frame: FrameType, name: str) -> bool:
    """Whether the call ``frame`` is executing is spelled ``name(...)`` or ``<...>.name(...)``:
    the user's own ``np.zeros(...)``, not compiled code the user's line called
    (``rng.random(...)``'s C code looks ``np.empty`` up in the numpy module too, and must get a
    real ndarray: it casts without checking). Read from the bytecode, no source needed: the
    callee's expression starts where the call does, so an instruction loading ``name`` sits at
    the call's first line and column (both in the code object's own units). Without position
    information (``PYTHONNODEBUGRANGES``) nothing is redirected: the buffer stays numpy's, and
    writing a traced value into it is refused (finite differences judge), never a crash."""
    code = frame.f_code
    try:
        line, _, col, _ = list(code.co_positions())[frame.f_lasti // 2]
    except (IndexError, ValueError):
        return False
    if line is None or col is None:
        return False
    return any(offset < frame.f_lasti and (at_line, at_col) == (line, col)
               for offset, at_line, at_col in _loads_of(code, name))


def _replacement(name: str, real: Any) -> Any:
    make = _CREATORS[name]

    @functools.wraps(real, updated=())  # np.vectorize and np.ndenumerate are classes
    def replacement(*args: Any, **kwargs: Any) -> Any:
        caller = sys._getframe(1)
        if (threading.get_ident() in _ACTIVE and not _is_library(caller)
                and _spelled_call(caller, name)):
            result = make(*args, **kwargs)
            if result is not NotImplemented:
                return result
        return real(*args, **kwargs)

    return replacement


@contextlib.contextmanager
def _creation_redirected() -> Iterator[None]:
    """Redirect numpy's creation functions for this thread while the block runs."""
    ident = threading.get_ident()
    with _LOCK:
        if not _ACTIVE:
            for name in _CREATORS:
                real = getattr(np, name)
                _ORIGINALS[name] = real
                setattr(np, name, _replacement(name, real))
        _ACTIVE[ident] = _ACTIVE.get(ident, 0) + 1
    try:
        yield
    finally:
        with _LOCK:
            _ACTIVE[ident] -= 1
            if not _ACTIVE[ident]:
                del _ACTIVE[ident]
            if not _ACTIVE:
                for name, real in _ORIGINALS.items():
                    setattr(np, name, real)
                _ORIGINALS.clear()


# --------------------------------------------------------------------------------------------
# The entry point
# --------------------------------------------------------------------------------------------

def _wrap_input(obj: Any) -> Any:
    if isinstance(obj, jax.Array):
        return Lifted(obj)
    if isinstance(obj, (tuple, list)) and not hasattr(obj, "_fields"):
        return type(obj)(_wrap_input(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _wrap_input(v) for k, v in obj.items()}
    return obj


def _unwrap_output(obj: Any) -> Any:
    if isinstance(obj, Lifted):
        return obj.value
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(_unwrap_output(o) for o in obj))
    if isinstance(obj, (tuple, list)):
        return type(obj)(_unwrap_output(o) for o in obj)
    if isinstance(obj, dict):
        return {k: _unwrap_output(v) for k, v in obj.items()}
    if isinstance(obj, (np.ndarray, np.generic, float, int, complex)):
        return jnp.asarray(obj)
    return obj


def lift(fn: Callable[..., Any]) -> Callable[..., Any]:
    """fn written with numpy -> the same function of JAX arrays, differentiable by jax.vjp.

    Positional and keyword arguments that are JAX arrays (or tracers) are wrapped; other
    arguments (ints, numpy integer/bool arrays used as labels/masks, Python objects) pass as
    they are. The result (an array, or a tuple/list/dict of arrays, or a Python float) is
    unwrapped to JAX arrays. Raises jax_support.UntraceableError with a one-line reason naming
    the numpy call that could not be lifted.
    """

    @functools.wraps(fn)
    def lifted(*args: Any, **kwargs: Any) -> Any:
        args = tuple(_wrap_input(a) for a in args)
        kwargs = {k: _wrap_input(v) for k, v in kwargs.items()}
        with _creation_redirected():
            try:
                result = fn(*args, **kwargs)
            except UntraceableError:
                raise
            except _TRACE_ERRORS as exc:
                raise _untraceable("this code", f"{type(exc).__name__}: {_first_line(exc)}",
                                   _location_in(exc.__traceback__)) from None
            except AttributeError as exc:
                if not isinstance(getattr(exc, "obj", None), Lifted):
                    raise
                raise _untraceable(f"ndarray.{exc.name}", "not supported on lifted arrays",
                                   _location_in(exc.__traceback__)) from None
            except TypeError as exc:
                if "Lifted" not in str(exc):
                    raise
                raise _untraceable("this code", _first_line(exc),
                                   _location_in(exc.__traceback__)) from None
        return _unwrap_output(result)

    return lifted

