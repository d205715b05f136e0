"""Second derivatives: ``check_hvp`` (a hand-derived Hessian-vector product) and
``check_double_backward`` (a hand-derived VJP of a layer's backward pass).

Both are first-order checks of a derivative, so both are uses of the engine:

- ``H(x) v`` is the gradient of the scalar ``phi(z) = <grad f(z), v>``. Where JAX can trace f,
  ``grad f`` is JAX's own and phi is exact; the engine then compares the hand-derived ``H v``
  with JAX's gradient of phi (reverse over reverse, entry by entry) and with finite differences
  of phi (finite differences of JAX's exact gradient). Where JAX cannot trace f, phi is itself a
  finite difference of f along v (central, Richardson-extrapolated: truncation ~h^4), and the
  engine's finite differences of phi are the only source: second differences, good to ~1e-6
  relative, said in the headline.
- A layer's backward ``backward(dout, *inputs)`` is a function too: its VJP (the double
  backward, as in WGAN-GP's gradient penalty) is checked by ``check_vjp`` with the
  *reference* backward as the forward: JAX's VJP of the layer's forward where JAX can trace it
  (so a wrong first backward cannot make its own double backward look right), else the user's
  backward (finite differences of it), said in the notes.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from .arguments import Arguments, Output
from .engine import judge_vjp
from .finite_differences import EPS
from .jax_support import collector_paused, jax, jnp
from .options import callable_arg, flag, float_array, jax_mode, positive_int, seed_arg
from .report import Report

__all__ = ["check_double_backward", "check_hvp"]

INNER_STEP = EPS ** 0.2
"""The step of the inner difference along v (no JAX): Richardson's truncation ~h^4 f^(5) and
its round-off ~eps |f| / h balance near eps^(1/5) ~ 7e-4 (times max(1, |x|), over |v|)."""


def _directional(f: Callable, v: np.ndarray, scale: float) -> Callable[[np.ndarray], float]:
    """``z -> <grad f(z), v>`` by central differences along v, Richardson-extrapolated."""
    h = INNER_STEP * scale / max(float(np.sqrt(np.vdot(v, v))), 1e-300)

    def along(z: np.ndarray) -> float:
        def d(step):
            return (float(f(z + step * v)) - float(f(z - step * v))) / (2 * step)
        return (4 * d(h) - d(2 * h)) / 3

    return along


@collector_paused
def check_hvp(
    f: Callable[[np.ndarray], float],
    hvp: Callable[[np.ndarray, np.ndarray], np.ndarray],
    x: np.ndarray,
    *,
    v: np.ndarray | None = None,
    jax: bool | str = True,
    directions: int = 8,
    seed: int = 0,
    strict: bool = False,
) -> Report:
    """Check a hand-derived Hessian-vector product ``hvp(x, v) = H(x) v`` of ``f``.

    Args:
        f: ``x -> float`` (jax.numpy or array-API code lets JAX judge; numpy code is judged by
            second differences alone).
        hvp: ``(x, v) -> H(x) v``, shaped like x: the derivation under test.
        x: the point (float array, any shape).
        v: the vector (shaped like x); None draws standard normal entries (seeded).
        jax: True (JAX when it can trace f), or False (second differences alone).
        directions, seed, strict: as in ``check_vjp``.

    Returns:
        A ``Report`` with one row, "Hv", entries in x's shape.

    Raises:
        ValueError, TypeError: a non-finite or non-float x or v, a v of another shape, f not
            finite at x.
    """
    callable_arg(f, "f")
    callable_arg(hvp, "hvp")
    if not isinstance(jax, (bool, np.bool_)):
        raise TypeError(f"jax must be True or False, got {type(jax).__name__}: {jax!r}")
    directions = positive_int(directions, "directions")
    seed = seed_arg(seed)
    strict = flag(strict, "strict")
    x = float_array(x, "x").astype(np.float64)
    if v is None:
        v = np.random.default_rng((0x4E55, seed)).normal(size=x.shape)
    v = float_array(v, "v").astype(np.float64)
    if v.shape != x.shape:
        raise ValueError(f"v must have x's shape {x.shape}, got shape {v.shape}")
    try:
        value = float(np.asarray(f(x.copy())))
    except Exception as exc:
        raise ValueError(f"f raised {type(exc).__name__} at x (or did not return one number):"
                         f" {exc}") from exc
    if not np.isfinite(value):
        raise ValueError(f"f(x) is not finite: {value}")
    notes = []
    grad = None
    if jax is not False:
        try:
            grad = _jax_gradient(f, x, value)
            phi = _traced_once(lambda z: jnp.vdot(grad(jnp.asarray(z)), jnp.asarray(v)), x)
            if not np.isfinite(float(np.asarray(phi(x)))):
                raise ValueError("JAX's gradient of f is not finite at x")
        except Exception as exc:  # f is not JAX code: second differences alone
            grad = None
            notes.append(f"JAX could not differentiate f ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else ''}); H v judged by "
                         "second differences of f alone (good to ~1e-6 relative)")

    if grad is not None:
        notes.append("H v = the gradient of <grad f, v>, with JAX's grad f: JAX's gradient of "
                     "it (reverse over reverse) and finite differences of JAX's gradient judge")
    else:
        phi = _directional(f, v, max(1.0, float(np.max(np.abs(x)))))
        jax = False
    # Without JAX phi is itself a difference quotient of f: its round-off is that of f over
    # the inner step (~1.5 |f| / h, Richardson's weights), not that of phi's own size.
    inner = INNER_STEP * max(1.0, float(np.max(np.abs(x)))) / max(
        float(np.sqrt(np.vdot(v, v))), 1e-300)
    floor = 0.0 if grad is not None else 2.0 * abs(value) / inner

    try:
        got = np.asarray(hvp(x.copy(), v.copy()), dtype=np.float64)
    except Exception as exc:
        raise ValueError(f"hvp raised {type(exc).__name__} at (x, v) (or did not return a "
                         f"float array): {exc}") from exc
    if got.shape != x.shape:
        raise ValueError(f"hvp(x, v) must have x's shape {x.shape}, got {got.shape}")
    args = Arguments(names=("x",), values=(x,), keyword=False, differentiable=(True,),
                     dtypes=(np.dtype(np.float64),))  # the row is named "x", whatever phi is
    output = Output("scalar", (np.asarray(float(np.asarray(phi(x)))),))
    rows, more, judged_by = judge_vjp(
        phi, args, output, (np.ones(()),), {0: got.astype(np.float64)}, jax=jax,
        directions=directions, rng=np.random.default_rng((0x4E56, seed)),
        term=lambda name: "Hv", noise_floor=floor)
    return Report(rows, strict=strict, title="hvp check", notes=notes + more,
                  judged_by=judged_by.replace("finite differences alone",
                                              "second differences alone"))


def _as_jax_computes(fn: Callable, x: np.ndarray) -> np.ndarray:
    """``fn(x)`` as JAX computes it: traced and run by numpy (``jaxpr_numpy``: no XLA
    compilation, which eager JAX pays for every primitive of a new shape: seconds for a small
    network), or eagerly where fn's control flow depends on values."""
    from .autodiff import VALUE_DEPENDENT
    from .jaxpr_numpy import numpy_call

    try:
        return np.asarray(numpy_call(fn, x))
    except VALUE_DEPENDENT:
        return np.asarray(fn(jnp.asarray(x)))


def _traced_once(fn: Callable, *example: object) -> Callable:
    """``fn`` for JAX arrays (JAX differentiates it); for numpy arguments shaped like
    ``example``, the same program traced once and run by numpy (``jaxpr_numpy``): finite
    differences call it dozens of times, and eager JAX would dispatch every primitive of the
    derivative each time (~5-50 ms a call for a small layer or network). Value-dependent control
    flow cannot be traced abstractly: then every call is eager."""
    from .jaxpr_numpy import numpy_program

    shapes = [np.shape(a) for a in example]
    try:
        run = numpy_program(fn, *example)
    except Exception:  # control flow on values: eager JAX
        return fn

    def both(*args):
        if all(isinstance(a, (np.ndarray, float, int)) and np.shape(a) == s
               for a, s in zip(args, shapes)) and len(args) == len(shapes):
            return run(*args)
        return fn(*args)

    return both


def _jax_gradient(f: Callable, x: np.ndarray, value: float) -> Callable:
    """JAX's gradient of f (traced as it is, else its numpy code run on JAX arrays), tried at x;
    JAX's f(x) must reproduce numpy's ``value`` first.

    Raises:
        Exception: whatever tracing raised, when neither way works.
    """
    from .numpy_on_jax import lift

    failure: Exception | None = None
    for candidate in (f, lift(f)):
        def scalar(z, c=candidate):
            return jnp.reshape(jnp.asarray(c(z), dtype=jnp.float64), ())
        try:
            mine = float(_as_jax_computes(scalar, x))
            if not abs(mine - value) <= 1e-8 * max(abs(value), 1e-300):
                raise ValueError(f"JAX's f(x) = {mine!r}, numpy's {value!r}")
            return jax.grad(scalar)  # (traced by the caller: phi)
        except Exception as exc:
            failure = exc
    raise failure


@collector_paused
def check_double_backward(
    forward: Callable[..., object],
    backward: Callable[..., object],
    double_backward: Callable[..., object],
    inputs: Sequence[object] | Mapping[str, object],
    *,
    cotangent: object = None,
    **options,
) -> Report:
    """Check a layer's hand-derived double backward: the VJP of its backward pass.

    The backward ``backward(dout, *inputs)`` is a function of ``(dout, *inputs)``; its VJP,
    ``double_backward(ddx, dout, *inputs)`` returning the gradients of ``<ddx, backward(dout,
    *inputs)>`` with respect to ``dout`` and every differentiable input, is checked by
    ``check_vjp`` against the VJP of the *reference* backward: JAX's VJP of ``forward`` where
    JAX can trace it, else the user's ``backward`` itself.

    Args:
        forward, backward: the layer and its (first-order) hand-derived backward, as for
            ``check_vjp``; inputs: a tuple of arrays (dict inputs are not supported here).
        double_backward: ``(ddx, dout, *inputs) -> (d dout, d input_0, ...)``.
        cotangent: ``dout``, the upstream gradient of the first backward (None: random,
            seeded); ``options`` go to ``check_vjp`` (``cotangent`` there is ``ddx``:
            pass ``ddx=``).
    """
    from .vjp_check import check_vjp

    for fn, name in ((forward, "forward"), (backward, "backward"),
                     (double_backward, "double_backward")):
        callable_arg(fn, name)
    if isinstance(inputs, Mapping):
        raise TypeError("inputs must be a tuple of arrays for check_double_backward (dict "
                        "inputs are not supported here), got a dict")
    if not isinstance(inputs, Sequence) or isinstance(inputs, (str, bytes)):
        raise TypeError(f"inputs must be a tuple of arrays, got {type(inputs).__name__}")
    seed_arg(options.get("seed", 0))  # checked before it seeds dout (check_vjp checks the rest)
    jax_mode(options.get("jax", True))
    inputs = tuple(inputs)
    ddx = options.pop("ddx", None)
    args = Arguments.of(forward, inputs)
    out = Output.of(args.call(forward))
    rng = np.random.default_rng((0x7A5E_ED01, options.get("seed", 0)))
    dout = cotangent if cotangent is not None else (
        rng.normal(size=out.arrays[0].shape) if out.kind == "array" else 1.0)
    floats = [i for i, d in enumerate(args.differentiable) if d]

    def reference_backward(d, *xs):
        def pure(*diff):
            full = list(xs)
            for i, z in zip(floats, diff):
                full[i] = z
            return forward(*full)

        _, pull = jax.vjp(pure, *[jnp.asarray(xs[i]) for i in floats])
        grads = pull(jnp.asarray(d))
        return tuple(grads) if len(grads) > 1 else grads[0]

    names = Arguments.of(forward, inputs).names
    signature = inspect.Signature([inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD)
                                   for n in ("dout", *names)])
    how = "JAX's VJP of forward"
    if options.get("jax", True) is False:
        reference_backward = backward
        how = ("the user's backward (jax=False); a wrong first backward is checked against "
               "itself here")
    else:
        try:
            reference_backward(dout, *inputs)
        except Exception:
            from .numpy_on_jax import lift

            forward = lift(forward)  # numpy code run on JAX arrays
            how = "JAX's VJP of forward (its numpy code run on JAX arrays)"
            try:
                reference_backward(dout, *inputs)
            except Exception as exc:
                reference_backward = backward
                how = (f"the user's backward (JAX could not trace forward: "
                       f"{type(exc).__name__}); a wrong first backward is checked against "
                       "itself here")
    if reference_backward is not backward:
        reference_backward = _traced_once(reference_backward, np.asarray(dout, np.float64),
                                          *inputs)
        reference_backward.__signature__ = signature  # check_vjp names the inputs by it
    report = check_vjp(reference_backward, double_backward, (dout, *inputs), cotangent=ddx,
                       **options)
    report.notes.append(f"double backward checked against the VJP of {how}")
    report.title = "double backward check"
    return report
