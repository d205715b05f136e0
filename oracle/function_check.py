"""Checks of single functions: any scalar function's gradient, an activation, a loss.

- ``check_gradient(f, grad, x)``: f maps an array to a float; grad is its hand-derived gradient.
- ``check_activation(act)``: act' over a spread of points: moderate values, large magnitudes
  (+-10 .. +-1000) and its kinks, exactly and a hair to either side.
- ``check_loss(loss)``: dE/dY (and the fused dE/dV for cross-entropies) on random valid data.

Each returns a ``Report`` with the same three-way verdicts as ``check_network``.
``check_gradient``, ``check_loss`` and a non-elementwise activation's VJP are uses of the general
engine (``engine.judge_vjp``, the one behind ``check_vjp``). An elementwise activation's
derivative keeps a stencil of its own, batched over every point at once (its Jacobian is
diagonal, so one set of five evaluations serves all points), read by the same
``finite_differences.estimate`` and judged by the same ``verdict.judge``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

from reference.activations import Activation, _sigmoid, _softmax, get_activation
from reference.losses import Loss, get_loss

from . import autodiff, magnitudes
from .arguments import Arguments, Output
from .engine import MAX_EXHAUSTIVE, judge_entries, judge_vjp
from .jax_support import UntraceableError, collector_paused
from .network_fd import activation_fd
from .options import callable_arg, finite_location, flag, jax_mode, positive_int, seed_arg
from .report import Report, Row, sources_statement
from .verdict import judge

__all__ = ["check_activation", "check_gradient", "check_loss"]

FLOAT32_WARNING = (
    "float32 input: finite differences are done in float64 on an upcast copy, and the "
    "hand-derived gradient is judged to ~1e-4 relative: float32 gradients are only good to ~1e-4"
)


def _scalar(value: object, what: str) -> float:
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:  # ragged lists and the like
        raise TypeError(f"{what} must be a real scalar, got {type(value).__name__} ({exc})"
                        ) from None
    if np.iscomplexobj(arr):
        raise TypeError(f"{what} must be a real scalar, got a complex value ({arr.dtype}): the "
                        "checker differentiates real functions")
    if arr.size != 1 or arr.ndim > 1 or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{what} must return a scalar, got shape {arr.shape} dtype {arr.dtype}")
    out = float(arr.reshape(()))
    if not np.isfinite(out):
        raise ValueError(f"{what} is not finite: {out}")
    return out


@collector_paused
def check_gradient(
    f: Callable[[np.ndarray], float],
    grad: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    *,
    strict: bool = False,
    fd: str = "auto",
    directions: int = 8,
    max_exhaustive: int = MAX_EXHAUSTIVE,
    seed: int = 0,
    jax: bool | str = True,
) -> Report:
    """Check ``grad(x)`` against JAX's gradient of ``f`` and against finite differences.

    Args:
        f: ``x -> float``. If JAX can trace it (jax.numpy or array-API code), JAX is a source
            of truth; numpy-only code is checked by finite differences alone, and the report
            says so.
        grad: ``x -> dF/dx`` shaped like x: the hand-derived gradient under test.
        x: the point, any shape; float64 (float32 is accepted with a warning).
        fd: "auto" (every entry up to ``max_exhaustive`` entries, else random unit
            directions, with entries where hand and JAX disagree located), "exhaustive" or
            "directional".
        jax: True (f traced as it is, else its numpy code run on JAX arrays), "direct" or
            False (finite differences alone), as in ``check_vjp``.

    Raises:
        ValueError: non-finite x or f(x), f not scalar, grad of the wrong shape.
        TypeError: non-numeric x, grad not returning a float array.
    """
    if fd not in ("auto", "exhaustive", "directional"):
        raise ValueError(f"fd must be 'auto', 'exhaustive' or 'directional', got {fd!r}")
    callable_arg(f, "f")
    callable_arg(grad, "grad")
    strict = flag(strict, "strict")
    directions = positive_int(directions, "directions")
    max_exhaustive = positive_int(max_exhaustive, "max_exhaustive")
    seed = seed_arg(seed)
    jax = jax_mode(jax)
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as exc:  # ragged lists and the like
        raise TypeError(f"x must be a real numeric array, could not convert it: {exc}") from None
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"x must be a real numeric array, got dtype {arr.dtype}")
    if arr.size == 0:
        raise ValueError(f"x must not be empty, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"x must be finite, found {finite_location(arr)}")
    notes = []
    if arr.dtype == np.float32:
        warnings.warn(FLOAT32_WARNING, UserWarning, stacklevel=2)
        notes.append(FLOAT32_WARNING)
    shape = arr.shape
    value = _scalar(_call(f, arr.copy(), "f"), "f(x)")
    try:
        got = np.asarray(grad(arr.copy()))
    except (TypeError, ValueError) as exc:  # numpy cannot read what grad returned
        raise TypeError(f"grad(x) must return a float array shaped like x, could not convert "
                        f"it: {exc}") from None
    if got.shape != shape:
        raise ValueError(f"grad(x) must have x's shape {shape}, got {got.shape}")
    if not np.issubdtype(got.dtype, np.floating):
        raise TypeError(f"grad(x) must return a float array, got dtype {got.dtype}")
    if not np.all(np.isfinite(got)):
        raise ValueError(f"grad(x) returned {finite_location(got)}")
    if got.dtype == np.float32 and arr.dtype != np.float32:
        message = ("grad(x) returned float32 for a float64 x: judged at float32 precision "
                   "(~1e-4 relative); return float64 to be judged to 1e-9")
        warnings.warn(message, UserWarning, stacklevel=2)
        notes.append(message)
    x64 = arr.astype(np.float64)
    value = value if arr.dtype == np.float64 else _scalar(_call(f, x64.copy(), "f"), "f(x)")
    rows, more, judged_by = judge_vjp(
        f, Arguments.of(f, (x64,)), Output("scalar", (np.asarray(value),)), (np.ones(()),),
        {0: got}, fd=fd, jax=jax, max_exhaustive=max_exhaustive, directions=directions,
        rng=np.random.default_rng(seed), term=lambda name: "gradient")
    return Report(rows, strict=strict, title="gradient check", notes=notes + more,
                  judged_by=judged_by)


def _call(f: Callable, x: np.ndarray, name: str) -> object:
    """``f(x)``; an exception from the user's code is reported as a ValueError naming it."""
    try:
        return f(x)
    except Exception as exc:
        raise ValueError(f"{name} raised {type(exc).__name__} at x: {exc}") from exc


def activation_points(act: Activation) -> np.ndarray:
    """The points ``check_activation`` uses: a grid, large magnitudes, points approaching 0 and
    every declared kink from either side at distances 1e-8 .. 1 (a wrong derivative on a small
    interval beside a kink, or an undeclared kink near 0, lands on one of them), and 64
    seeded random points in [-8, 8]."""
    grid = np.linspace(-6.0, 6.0, 49)
    large = np.array([10.0, 30.0, 100.0, 1000.0])
    kinks = np.concatenate([[0.0], np.array(act.kinks, dtype=np.float64)])
    distances = 10.0 ** np.arange(-8, 1)  # 1e-8 ... 1
    near = np.concatenate([kinks] + [kinks + s * d for d in distances for s in (1.0, -1.0)]
                          + [kinks + s * 3 * d for d in distances for s in (1.0, -1.0)])
    spread = np.random.default_rng(20261206).uniform(-8.0, 8.0, size=64)
    return np.unique(np.concatenate([grid, large, -large, near, spread]))


@collector_paused
def check_activation(
    act: str | Activation, *, points: np.ndarray | None = None, strict: bool = False,
    seed: int = 0,
) -> Report:
    """Check an activation's hand-derived derivative against JAX and finite differences.

    Elementwise activations: ``act.df(v)`` at every point (default ``activation_points``), and
    ``act.d2f(v)`` when the activation carries a second derivative: judged against JAX's second
    derivative of f and finite differences of JAX's first (of ``df`` itself where JAX cannot
    trace f: a row that only says d2f is consistent with df, whose own row is above).
    Softmax (or any non-elementwise one): the backward VJP on random rows including large
    logits, with a random upstream gradient.
    """
    act = get_activation(act)
    strict = flag(strict, "strict")
    rng = np.random.default_rng(seed_arg(seed))
    if points is not None:
        points = _points(points)
    notes: list[str] = []
    if act.elementwise:
        v = np.asarray(activation_points(act) if points is None else points, dtype=np.float64)
        row, v, y, got = _derivative_row(act, v.reshape(1, -1), "derivative", notes)
        rows = [row]
        # The backward must be G * act'(V): check it with a random G.
        g = rng.normal(size=v.shape)
        with np.errstate(all="ignore"):  # already reported in the notes
            backward = act.backward(v, y, g)
        rows.append(Row.from_verdicts(None, "activation", "local", judge(backward, got * g),
                                      name=act.name, note="backward(v, y, g) vs g * df(v)"))
        if act.d2f is not None:
            first, how = _first_derivative(act, v)
            notes.append(how)
            second = Activation(f"{act.name}'", first, act.d2f, kinks=act.kinks)
            rows.append(_derivative_row(second, v, "second derivative", notes, act.name)[0])
    else:
        v = rng.normal(scale=3.0, size=(6, 5))
        v[0] = [1000.0, -1000.0, 0.0, 999.0, 1.0]
        g = rng.normal(size=v.shape)
        got = np.asarray(act.backward(v, act(v), g), dtype=np.float64)
        rows, more, _ = judge_vjp(act.f, Arguments.of(act.f, (v,)), Output("array", (act(v),)),
                                  (g,), {0: got}, rng=rng, term=lambda name: "activation")
        rows[0].scope, rows[0].name, rows[0].input = "local", act.name, None
        rows[0].note = "; ".join(filter(None, ["vector-Jacobian product", rows[0].note]))
        notes.extend(more)
    return Report(rows, strict=strict, title=f"activation check: {act.name}", notes=notes,
                  judged_by=sources_statement(rows))

def _derivative_row(act: Activation, v: np.ndarray, term: str, notes: list[str],
                    name: str | None = None) -> tuple[Row, np.ndarray, np.ndarray, np.ndarray]:
    """Judge ``act.df`` at the points ``v (1, n)``: ``(row, points kept, f there, df there)``.

    Points where f itself is not finite are left out (and named in ``notes``).
    """
    name = name or act.name
    trouble: list[str] = []
    old = np.seterrcall(lambda kind, flag: trouble.append(kind))
    try:
        with np.errstate(all="call", under="ignore"):
            y = np.asarray(act(v), dtype=np.float64)
            got = np.asarray(act.df(v), dtype=np.float64)
    finally:
        np.seterrcall(old)
    # Where f itself is not finite (exp at +1000 overflows) there is no derivative to
    # check: those points are left out and reported. A derivative that is not finite
    # where f is, is a wrong derivative.
    outside = ~np.isfinite(y)
    if np.all(outside):
        raise ValueError(f"activation {act.name!r}: f is NaN/Inf at every check point")
    if np.any(outside):
        notes.append(f"{act.name!r} is not finite at v = {v[outside][:5].tolist()}"
                     f"{' ...' if np.sum(outside) > 5 else ''}: those points are left out")
        v, y, got = (a[~outside].reshape(1, -1) for a in (v, y, got))
    bad = ~np.isfinite(got)
    if np.any(bad):
        what = "df" if term == "derivative" else "d2f"
        raise ValueError(f"activation {name!r}: {what} is NaN/Inf at v = "
                         f"{v[bad][:5].tolist()} where f is finite: use a numerically "
                         "stable form")
    if trouble and not np.any(outside):
        notes.append(f"numpy reported {sorted(set(trouble))} while evaluating "
                     f"{act.name!r} at the check points (down to +-1000): the results are "
                     "finite, but a numerically stable form would avoid it")
    try:
        ad = autodiff.activation_derivative(act, v)
    except UntraceableError as exc:
        ad = None
        notes.append(f"JAX could not trace {act.name!r} ({exc}); finite differences alone")
    with np.errstate(all="ignore"):
        _, deriv = activation_fd(act, v, np.ones_like(v))
    # Each point judged at its own precision (no floor from the largest |act'|, which at
    # v = 100 would hide any error at v = 1): act' is computed from terms of size ~1, act'
    # and |v| (gelu' in its tail is ~1e-13 made of terms ~1).
    # The points are independent (act is elementwise): the scalar whose gradient act'(v) is,
    # for the engine's closer look at kinks and doubtful points, sums only the moved points'
    # changes (so exp(100) = 3e43 elsewhere does not drown a point at v = 1 in its
    # rounding), on top of 1 (so a flat reading is not mistaken for a blank one).
    def phi(z: np.ndarray) -> float:
        moved = z != v
        return 1.0 + float(np.sum(act(z[moved]) - act(v[moved]))) if np.any(moved) else 1.0

    with np.errstate(all="ignore"):
        verdicts, joint = judge_entries(
            got, ad, deriv, magnitude=magnitudes.activation_magnitude(
                act, v, y, np.ones_like(v), np.abs(v)), phi=phi, x=v, f0=phi(v),
            probed=v.size)  # (each look moves one point: cheap)
    row = Row.from_verdicts(None, term, "local", verdicts, name=name, note=joint)
    if row.index:
        row.at = float(v[row.index])
    return row, v, y, got


def _first_derivative(act: Activation, v: np.ndarray) -> tuple[Callable, str]:
    """The function whose derivative ``act.d2f`` is judged against, and a note saying which.

    JAX's own ``act'`` (a JVP of f: JAX's derivative of it is JAX's second derivative of f)
    where JAX can trace f, as written or as numpy code on JAX arrays; else the hand ``act.df``.
    It takes numpy arrays (returns numpy) and JAX arrays (returns JAX: JAX differentiates it).
    """
    from .jax_support import jax, jnp
    from .numpy_on_jax import lift

    for f in (act.f, lift(act.f)):
        def first(a, f=f):
            z = jnp.asarray(a)
            out = jax.jvp(f, (z,), (jnp.ones_like(z),))[1]
            return np.asarray(out) if isinstance(a, np.ndarray) else out

        try:
            with np.errstate(all="ignore"):
                if np.all(np.isfinite(first(v))):
                    return first, (f"{act.name}'' judged against JAX's second derivative of f "
                                   "and finite differences of JAX's first")
        except Exception:  # not JAX code: the next way, or the hand derivative
            continue
    return act.df, (f"JAX could not differentiate {act.name!r}: its d2f is judged against the "
                    "derivative of its own df (consistent with df, whose row is above)")


def _points(points: object) -> np.ndarray:
    """``check_activation``'s ``points``: a non-empty real array of finite values."""
    try:
        arr = np.asarray(points)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"points must be a real numeric array, could not convert it: {exc}"
                        ) from None
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.floating)
                                     or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"points must be a real numeric array, got dtype {arr.dtype}")
    if arr.size == 0:
        raise ValueError(f"points must not be empty, got shape {arr.shape}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"points must be finite, found {finite_location(arr)}")
    return arr


MAX_LOSS_ENTRIES = 100_000
"""``check_loss`` judges every entry of a (batch, n_out) output with a stencil of its own: more
entries than this would take minutes and check nothing a small batch does not."""


@collector_paused
def check_loss(
    loss: str | Loss, *, batch: int = 4, n_out: int = 3, seed: int = 0, strict: bool = False
) -> Report:
    """Check a loss's hand-derived dE/dY (and fused dE/dV) on random valid outputs and targets."""
    loss = get_loss(loss)
    batch, n_out = positive_int(batch, "batch"), positive_int(n_out, "n_out")
    if batch * n_out > MAX_LOSS_ENTRIES:
        raise ValueError(f"batch * n_out must be at most {MAX_LOSS_ENTRIES:,} (every entry gets "
                         f"a stencil of its own), got {batch} * {n_out} = {batch * n_out:,}")
    strict = flag(strict, "strict")
    rng = np.random.default_rng(seed_arg(seed))
    v = rng.normal(scale=2.0, size=(batch, n_out))
    if loss.output_activation == "softmax":
        y = _softmax(v)
        t = np.eye(n_out)[rng.integers(0, n_out, size=batch)]
    elif loss.output_activation == "sigmoid":
        y = _sigmoid(v)
        t = rng.uniform(size=(batch, n_out))
    else:
        y, t = v, rng.normal(size=(batch, n_out))
    rows, notes = [], []
    checks = [("dE/dY", y, loss.grad(y, t), False)]
    if loss.fused:
        checks.append(("dE/dV", v, loss.grad_v(v, y, t), True))
    for what, at, got, from_v in checks:
        fn = loss.value_from_v if from_v else loss.value
        judged, more, _ = judge_vjp(
            fn, Arguments.of(fn, (at, t)), Output("scalar", (np.asarray(fn(at, t)),)),
            (np.ones(()),), {0: np.asarray(got, dtype=np.float64)},
            rng=np.random.default_rng(seed), term=lambda name: "loss")
        row = judged[0]
        row.scope, row.name, row.input = "local", loss.name, None
        row.note = "; ".join(filter(None, [
            what + (" (fused with the output activation)" if from_v else ""), row.note]))
        rows.append(row)
        notes.extend(n for n in more if n not in notes)
    return Report(rows, strict=strict, title=f"loss check: {loss.name}", notes=notes,
                  judged_by=sources_statement(rows))
