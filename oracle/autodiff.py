"""Exact gradients by JAX reverse-mode autodiff of the reference's *own* code.

Nothing here re-implements the network's math: the forward is ``reference.layer.dense_forward``
with the network's ``Activation.f`` and ``Loss.value`` functions, traced by JAX. The only thing
written here is the loop over layers, with a zero offset added to every layer's input so that one
gradient call yields dE/dX of every layer (the gradient with respect to a zero offset added to X
is dE/dX).

Every function raises ``UntraceableError`` when user code cannot be traced (numpy on tracers).

Compilation: a configuration (shapes, activations, loss) seen for the first time is
differentiated eagerly (no compile: a property suite draws a new shape per example, and a
``jit`` per new shape costs 100s of ms); from the second time on, a jitted version is built
and cached, so repeated checks of one network run at compiled speed.
"""

from __future__ import annotations

import dis
import inspect
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from reference.activations import Activation, get_activation
from reference.layer import dense_forward
from reference.losses import Loss

from .arguments import Arguments, Output
from .jax_support import UntraceableError, jax, jnp, to_numpy, traceable
from .jaxpr_numpy import numpy_program

__all__ = ["activation_derivative", "activation_vjp", "dense_vjp", "loss_grad", "network_grads",
           "vjp"]

_IDENTITY = get_activation("identity")


def _loss_value(loss: Loss, v, y, t):
    return loss.value_from_v(v, t) if loss.fused else loss.value(y, t)


_SEEN: set = set()
_COMPILED: dict = {}
_CACHE_LIMIT = 256


def _maybe_jit(key, fn):
    """``fn`` itself on a key's first use, a cached ``jax.jit(fn)`` from its second use on."""
    if key in _COMPILED:
        return _COMPILED[key]
    if key not in _SEEN:
        if len(_SEEN) > _CACHE_LIMIT:
            _SEEN.clear()
        _SEEN.add(key)
        return fn
    if len(_COMPILED) >= _CACHE_LIMIT:
        _COMPILED.pop(next(iter(_COMPILED)))
    _COMPILED[key] = jax.jit(fn)
    return _COMPILED[key]


def network_grads(
    weights: Sequence[np.ndarray],
    x: np.ndarray,
    t: np.ndarray,
    activations: Sequence[Activation],
    loss: Loss,
    slopes: Sequence[np.ndarray | None] | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Return ``(dE/dW_k for every k, dE/dX_k for every layer input k)`` by JAX.

    ``dE/dX_0`` is the gradient with respect to the network's input ``x (B, n0)``;
    ``dE/dX_k`` (k >= 1) is with respect to layer k's input, the output of layer k-1.
    ``slopes[k]`` (B, n_{k+1}): added to JAX's derivative of layer k's activation, entry by
    entry, and to nothing else: ``Y = act(V) + slopes (V - stop_gradient(V))`` has the same
    value and the derivative ``act' + slopes`` (``check_network`` uses it to take, at kinks,
    the subgradient the hand-derived act' chose instead of JAX's tie rule).
    """
    n = len(weights)
    acts, losses = tuple(activations), loss
    tilted = [None] * n if slopes is None else list(slopes)

    def energy(ws, offsets, x0, t0, extra):
        h = x0 + offsets[0]
        for k in range(n):
            v, y = dense_forward(h, ws[k], acts[k])
            if extra[k] is not None:
                y = y + extra[k] * (v - jax.lax.stop_gradient(v))
            h = y + offsets[k + 1] if k + 1 < n else y
        return _loss_value(losses, v, y, t0)

    key = ("network", tuple(w.shape for w in weights), x.shape, t.shape, acts, losses,
           tuple(s is not None for s in tilted))
    grad = _maybe_jit(key, jax.grad(energy, argnums=(0, 1)))
    widths = [x.shape[1]] + [w.shape[1] for w in weights[:-1]]
    offsets = [np.zeros((x.shape[0], m)) for m in widths]
    # numpy arguments as they are: JAX takes them in as float64 (x64 is on) without a copy of
    # its own first, which jnp.asarray would make.
    dws, dxs = traceable(grad, list(weights), offsets, x, t, tilted)
    return [to_numpy(d) for d in dws], [to_numpy(d) for d in dxs]


def loss_grad(loss: Loss, y: np.ndarray, t: np.ndarray, *, from_v: bool = False) -> np.ndarray:
    """``dE/dY`` of ``loss.value`` (or ``dE/dV`` of ``loss.value_from_v`` when ``from_v``)."""
    fn = loss.value_from_v if from_v else loss.value
    grad = _maybe_jit(("loss", loss, from_v, y.shape, t.shape), jax.grad(fn))
    return to_numpy(traceable(grad, jnp.asarray(y), jnp.asarray(t)))


def activation_vjp(act: Activation, v: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``g^T dY/dV`` at ``v``: the activation's backward as JAX computes it; shapes ``(B, m)``."""
    def vjp(a, b):
        return jax.vjp(act.f, a)[1](b)[0]

    vjp = _maybe_jit(("activation_vjp", act, v.shape), vjp)
    return to_numpy(traceable(vjp, jnp.asarray(v), jnp.asarray(g)))


def activation_derivative(act: Activation, v: np.ndarray) -> np.ndarray:
    """``act'(v)`` elementwise (a JVP with a tangent of ones); only for elementwise activations.
    An activation written with numpy calls (``np.exp``) is run on JAX arrays
    (``numpy_on_jax.lift``) when it cannot be traced as it is."""
    def derivative(a, f=act.f):
        return jax.jvp(f, (a,), (jnp.ones_like(a),))[1]

    try:
        jitted = _maybe_jit(("activation_derivative", act, v.shape), derivative)
        return to_numpy(traceable(jitted, jnp.asarray(v)))
    except UntraceableError as exc:
        from .numpy_on_jax import lift

        try:
            return to_numpy(derivative(jnp.asarray(v), lift(act.f)))
        except Exception:
            raise exc from None


def dense_vjp(x: np.ndarray, w: np.ndarray, dv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(dE/dX, dE/dW)`` of the layer's linear part ``V = X~ W`` pulled back from ``dv``."""
    def vjp(a, b, c):
        return jax.vjp(lambda p, q: dense_forward(p, q, _IDENTITY)[0], a, b)[1](c)

    vjp = _maybe_jit(("dense_vjp", x.shape, w.shape), vjp)
    dx, dw = vjp(jnp.asarray(x), jnp.asarray(w), jnp.asarray(dv))
    return to_numpy(dx), to_numpy(dw)


MAGNITUDE_PROBES = 2
MAGNITUDE_SEED = 20261206

VALUE_DEPENDENT = (jax.errors.ConcretizationTypeError, jax.errors.TracerBoolConversionError,
                   jax.errors.TracerIntegerConversionError, UntraceableError)
"""Errors of abstract tracing that eager JAX, on concrete values, may not raise: Python control
flow on a value (``numpy_on_jax`` reports its own as UntraceableError)."""

PRIMAL_RTOL = 1e-8
"""JAX's forward must reproduce numpy's to 1e-8 of each output's largest entry before its
derivative is trusted: the same float64 operations in another order agree to ~1e-15; a code
path that JAX traced differently (a numpy call half-traced, a branch taken otherwise) does not."""


class _Specialized(Exception):
    """A trace specialized by concrete shadows whose forward does not reproduce numpy's: the
    forward runs under eager JAX instead."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def vjp(
    forward: Callable,
    args: Arguments,
    cotangent: tuple[np.ndarray | None, ...],
    wrt: Sequence[int],
    expected: Output,
    *,
    lifted: bool = True,
    again: list | None = None,
    sizes: list | None = None,
) -> tuple[dict[int, np.ndarray] | None, str]:
    """JAX's vector-Jacobian product of a user's ``forward`` at ``args``, for the inputs ``wrt``.

    Tried in two ways: ``forward`` traced as it is (jax.numpy or array-API code), then, if that
    fails and ``lifted``, the same numpy code run on JAX arrays through numpy's dispatch
    protocols (``numpy_on_jax.lift``). Any exception while tracing means "JAX could not", never
    a crash; and JAX's forward must reproduce numpy's values (``PRIMAL_RTOL``) before its
    derivative is used.

    JAX's VJP program is traced once (``jax.make_jaxpr``) and run by numpy
    (``jaxpr_numpy.numpy_call``): a first check of a new layer then costs no XLA compilation
    (~20 ms instead of ~1 s). Python control flow on values in numpy code run on JAX arrays is
    traced too, with concrete shadows (``numpy_on_jax.shadowing``): numpy's values at this
    point decide the branches, and the program, valid here only, is not offered
    as ``again``; what even shadows cannot decide runs under eager JAX on concrete values.

    Returns:
        ``({input position: gradient}, how)`` or ``(None, why not)``. When JAX succeeds and
        ``sizes`` is a list, it receives ``magnitudes() -> {input position: array}``: per input
        the size of the terms each entry of the gradient is a sum of, for the rounding part of
        the tolerance (``verdict.judge``'s ``magnitude``), estimated on demand by pulling back
        ``MAGNITUDE_PROBES`` sign-scrambled cotangents through the program already traced (no
        new trace). When ``again`` is a list and the program could be
        traced abstractly, it receives ``at(values) -> gradients``: the same VJP (same
        cotangent) at other input values ``{position: array}``, with no tracing: the engine
        asks it for one-sided derivatives at kinks.
    """
    kept = [j for j, a in enumerate(expected.arrays) if a is not None and cotangent[j] is not None]
    if not kept:
        return None, "forward has no floating output to differentiate"

    cts = [np.asarray(cotangent[j], dtype=np.float64) for j in kept]
    # Rounding magnitudes: the same pullback with the cotangent's signs scrambled. Structure
    # can make an entry of J^T c cancel to ~0 for this c (a batchnorm's dx vanishes when c is
    # affine in x); with random signs the terms no longer cancel, so |J^T (c r)| estimates the
    # size of the terms each entry sums (their 2-norm: at least the largest, at most their sum).
    def probes() -> list[list[np.ndarray]]:
        rng = np.random.default_rng(MAGNITUDE_SEED)
        return [[c * rng.choice([-1.0, 1.0], size=c.shape) for c in cts]
                for _ in range(MAGNITUDE_PROBES)]

    def attempt(fn: Callable) -> dict[int, np.ndarray]:
        record: list = [None]  # the ShadowRecord of an abstract trace, None when eager

        def pure(*diff):
            # Concrete shadows (numpy's values) of lifted code's traced values: control flow on
            # values then traces too, specialized to this point's branches (record.consulted).
            with shadowing(record[0], zip(diff, xs)):
                out = args.call(fn, replace=dict(zip(wrt, diff)))
            parts = list(out) if expected.kind == "tuple" else [out]
            return tuple(jnp.reshape(jnp.asarray(parts[j], dtype=jnp.float64),
                                     expected.arrays[j].shape) for j in kept)

        def program(xs, ct):
            primal, pull = jax.vjp(pure, *xs)
            return primal, pull(tuple(ct))

        xs = [np.asarray(args.values[i], dtype=np.float64) for i in wrt]

        def primal_differs(primal) -> str:
            for j, p in zip(kept, primal):
                want = expected.arrays[j]
                p = to_numpy(p)
                if p.shape != want.shape:
                    return f"JAX's output [{j}] has shape {p.shape}, numpy's {want.shape}"
                scale = float(np.max(np.abs(want), initial=0.0))
                gap = float(np.max(np.abs(p - want), initial=0.0))
                if not gap <= PRIMAL_RTOL * scale + 1e-300:
                    return (f"JAX's forward gives other values than numpy's (largest "
                            f"difference {gap:.2e} on outputs of size {scale:.2e})")
            return ""

        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            record[0] = ShadowRecord()
            try:  # traced once, run by numpy: no XLA compilation (jaxpr_numpy)
                run = numpy_program(program, xs, cts)
                primal, grads = run(xs, cts)
                # Here (same xs), another cotangent reuses the program even when it is
                # specialized to this point's branches.
                traced = run

                def pull(c):
                    return traced(xs, c)[1]

                if record[0].consulted:
                    # Specialized to this point's branches: valid here only, so treated as
                    # the eager path is (no `again` at other points).
                    run = None
                    if primal_differs(primal):
                        raise _Specialized
            except (*VALUE_DEPENDENT, _Specialized):  # eager JAX has the values
                run = None
                record[0] = None
                primal, eager_pull = jax.vjp(pure, *[jnp.asarray(x) for x in xs])
                grads = eager_pull(tuple(cts))

                def pull(c):
                    return eager_pull(tuple(c))

            finally:
                record[0] = None
        differs = primal_differs(primal)
        if differs:
            raise ValueError(differs)
        out = {i: to_numpy(g) for i, g in zip(wrt, grads)}
        if again is not None and run is not None:
            def at(values: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
                moved = [np.asarray(values.get(i, x), dtype=np.float64) for i, x in zip(wrt, xs)]
                with np.errstate(all="ignore"):
                    _, g = run(moved, cts)
                return {i: to_numpy(gi) for i, gi in zip(wrt, g)}
            again.append(at)
        if sizes is not None:
            def magnitudes() -> dict[int, np.ndarray]:
                found = {i: np.abs(out[i]) for i in wrt}
                with warnings.catch_warnings(), np.errstate(all="ignore"):
                    warnings.simplefilter("ignore")
                    try:
                        pulled = [[to_numpy(g) for g in pull(probe)] for probe in probes()]
                    except Exception:  # never a crash: the gradient's own size stands
                        pulled = []
                for probe in pulled:
                    for i, g in zip(wrt, probe):
                        found[i] = np.maximum(found[i], np.abs(g))
                return found
            sizes.append(magnitudes)
        return out

    from .numpy_on_jax import ShadowRecord, lift, shadowing

    tries = [(forward, "JAX traced forward as it is")]
    if lifted:
        tries.append((lift(forward), "JAX differentiated forward's numpy code run on JAX arrays "
                                     "(numpy's dispatch protocols)"))
        if _calls_numpy(forward):  # most numpy code fails as it is: save the failed attempt
            tries.reverse()
    failures = []
    for fn, how in tries:
        try:
            return attempt(fn), how
        except Exception as exc:  # whatever the user's code raises under tracing
            failures.append(_first_line(exc))
    what = ["traced as it is", "run on JAX arrays"]
    if len(tries) == 2 and tries[0][1].startswith("JAX differentiated"):
        what.reverse()
    said = "; ".join(f"{w}: {f}" for w, f in zip(what, failures))
    return None, f"JAX could not trace forward ({said}): finite differences alone judge"


def _calls_numpy(fn: Callable) -> bool:
    """Whether ``fn`` reads as numpy code, which fails as it is under JAX (the lifted run is
    tried first then, saving a failed trace of ~5-10 ms): its code, or a Python function it
    calls by a global name (two levels down: ``im2col``), names the numpy module and not
    jax.numpy; or it writes into subscripts (``out[out < 0] = 0``; JAX arrays cannot be
    written) and names no JAX module."""
    def modules(f: Any, depth: int) -> set:
        f = getattr(f, "__wrapped__", f)
        code, scope = getattr(f, "__code__", None), getattr(f, "__globals__", {})
        if code is None:
            return set()
        cells = dict(zip(code.co_freevars, getattr(f, "__closure__", None) or ()))
        found = set()
        for name in (*code.co_names, *cells):
            try:
                value = cells[name].cell_contents if name in cells else scope.get(name)
            except ValueError:  # an empty cell
                continue
            found.add(getattr(value, "__name__", None) if inspect.ismodule(value) else None)
            if depth > 0 and inspect.isfunction(value) and value is not f:
                found |= modules(value, depth - 1)
        return found

    named = modules(fn, 2)
    if "jax.numpy" in named or "jax" in named:
        return False
    if "numpy" in named:
        return True
    code = getattr(getattr(fn, "__wrapped__", fn), "__code__", None)
    return code is not None and any(i.opname == "STORE_SUBSCR"
                                    for i in dis.get_instructions(code))
