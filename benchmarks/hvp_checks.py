"""Section: second derivatives — ``oracle.check_hvp`` and ``oracle.check_double_backward`` on
the second-order zoo against torch ``gradgradcheck`` and jax ``check_grads(order=2)``.

Every checker checks the *same* hand-derived numpy second derivatives of each entry of
``property_tests/second_order_zoo.py`` (11 Hessian-vector products of scalar functions, 6
double backwards of layers; each with a right derivation and one with a planted bug, relu's
invisible):

- the oracle, with its defaults: ``check_hvp(f, hvp, x)`` (v random, seeded) and
  ``check_double_backward(forward, backward, double_backward, inputs)`` (dout and the second
  cotangent random, seeded);
- torch: the hand derivatives as ``torch.autograd.Function``s whose backward is itself a
  ``Function``, so torch differentiates the backward through the hand-derived second
  derivative. An HVP: ``F(x) = f(x)`` with backward ``g * Grad(x)``, where ``Grad(x)`` is the
  hand gradient and Grad's backward is ``hvp(x, w)`` (H is symmetric, so H^T w = H w). A layer:
  ``Layer(*inputs)`` with backward ``Backward(dout, *inputs)``, whose backward is the double
  backward. ``torch.autograd.gradgradcheck`` with its default tolerances (eps 1e-6, atol 1e-5,
  rtol 1e-3; a ``GradcheckError`` is a FAIL) compares that against finite differences of the
  first backward (of the hand gradient, for an HVP);
- JAX: the same nesting with ``jax.custom_vjp`` and ``jax.pure_callback``, checked by
  ``jax.test_util.check_grads(f, args, order=2, modes=["rev"])`` (one random direction, eps
  1e-4, tolerance 1e-5; an ``AssertionError`` is a FAIL). Note how check_grads' second order
  works: it checks the VJP of ``x -> vjp(f, x)(f(x))``, i.e. with the *output itself* as the
  cotangent, so an HVP enters weighted by ``f(x)``.

The first derivatives given to the peers (the hand gradient, the layer's backward) are right:
``property_tests/test_second_order_zoo.py`` proves them against JAX, so a peer's FAIL is about
the second derivative.

Times: *first* is the first check of the entry's right derivation by that checker in this
process (each checker warmed up first on a tiny unrelated function); *warm* is the same check
repeated (``ctx.time``, median of the samples).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .sections import Context, markdown_table, ms, ratio, section
from .vjp_checks import _c, _mark, _quiet, _run, grads_checked, verdict

__all__ = ["CHECKERS", "EntryResult", "check_entry", "entries", "make_check"]

CHECKERS = ("oracle", "gradgradcheck", "check_grads")
PEER_MODULE = {"oracle": "jax", "gradgradcheck": "torch", "check_grads": "jax"}


def entries() -> dict[str, object]:
    """The zoo, HVPs first, by name."""
    from property_tests.second_order_zoo import DOUBLE_BACKWARDS, HVPS

    return {**HVPS, **DOUBLE_BACKWARDS}


def _is_hvp(entry) -> bool:
    return hasattr(entry, "hvp")


def _point(entry):
    rng = np.random.default_rng(0)
    return entry.make_x(rng) if _is_hvp(entry) else entry.make_inputs(rng)


# ---------------------------------------------------------------------------------------------
# the oracle
# ---------------------------------------------------------------------------------------------


def _oracle(entry, second: Callable, point) -> Callable[[], object]:
    from oracle import check_double_backward, check_hvp

    if _is_hvp(entry):
        return lambda: check_hvp(entry.f, second, point)
    return lambda: check_double_backward(entry.forward, entry.backward, second, point)


# ---------------------------------------------------------------------------------------------
# torch: gradgradcheck of Functions whose backward is a Function
# ---------------------------------------------------------------------------------------------


def _gradgradcheck(entry, second: Callable, point) -> Callable[[], object]:
    import torch
    from torch.autograd.gradcheck import GradcheckError

    def arr(t):
        return _c(t.detach().numpy())

    def ten(a):
        return torch.from_numpy(_c(a))

    if _is_hvp(entry):
        class Grad(torch.autograd.Function):
            @staticmethod
            def forward(ctx, z):
                ctx.save_for_backward(z)
                return ten(entry.grad(arr(z)))

            @staticmethod
            def backward(ctx, w):
                (z,) = ctx.saved_tensors
                return ten(second(arr(z), arr(w)))  # H^T w = H w

        class Scalar(torch.autograd.Function):
            @staticmethod
            def forward(ctx, z):
                ctx.save_for_backward(z)
                return torch.tensor(float(entry.f(arr(z))), dtype=torch.float64)

            @staticmethod
            def backward(ctx, g):
                (z,) = ctx.saved_tensors
                return g * Grad.apply(z)

        fn, tensors = Scalar.apply, (torch.tensor(point, requires_grad=True),)
    else:
        class Backward(torch.autograd.Function):
            @staticmethod
            def forward(ctx, dout, *xs):
                ctx.save_for_backward(dout, *xs)
                return tuple(ten(g) for g in entry.backward(arr(dout), *map(arr, xs)))

            @staticmethod
            def backward(ctx, *dd):
                dout, *xs = ctx.saved_tensors
                grads = second(tuple(arr(d) for d in dd), arr(dout), *map(arr, xs))
                return tuple(ten(g) for g in grads)

        class Layer(torch.autograd.Function):
            @staticmethod
            def forward(ctx, *xs):
                ctx.save_for_backward(*xs)
                return ten(entry.numpy_forward(*map(arr, xs)))

            @staticmethod
            def backward(ctx, dout):
                return Backward.apply(dout, *ctx.saved_tensors)

        fn = Layer.apply
        tensors = tuple(torch.tensor(a, requires_grad=True) for a in point)

    def check() -> object:
        try:
            return bool(torch.autograd.gradgradcheck(fn, tensors))
        except GradcheckError:
            return False

    return check


# ---------------------------------------------------------------------------------------------
# JAX: check_grads(order=2) of custom_vjp functions whose bwd is a custom_vjp function
# ---------------------------------------------------------------------------------------------


def _check_grads(entry, second: Callable, point) -> Callable[[], object]:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from jax.test_util import check_grads

    def shape(a):
        return jax.ShapeDtypeStruct(np.shape(a), jnp.float64)

    if _is_hvp(entry):
        x_shape, scalar = shape(point), shape(0.0)

        @jax.custom_vjp
        def grad_fn(z):
            return jax.pure_callback(lambda a: _c(entry.grad(_c(a))), x_shape, z)

        def hvp_cb(a, w):
            return _c(second(_c(a), _c(w)))

        grad_fn.defvjp(lambda z: (grad_fn(z), z),
                       lambda z, w: (jax.pure_callback(hvp_cb, x_shape, z, w),))

        @jax.custom_vjp
        def fn(z):
            return jax.pure_callback(lambda a: _c(entry.f(_c(a))), scalar, z)

        fn.defvjp(lambda z: (fn(z), z), lambda z, g: (g * grad_fn(z),))
        args = (jnp.asarray(point),)
    else:
        in_shapes = tuple(shape(a) for a in point)
        out_shape = shape(entry.numpy_forward(*point))
        n = len(point)

        def backward_cb(dout, *xs):
            return tuple(_c(g) for g in entry.backward(_c(dout), *map(_c, xs)))

        def double_cb(*args):
            dd, dout, xs = args[:n], args[n], args[n + 1:]
            return tuple(_c(g) for g in second(tuple(map(_c, dd)), _c(dout), *map(_c, xs)))

        @jax.custom_vjp
        def backward_fn(dout, *xs):
            return tuple(jax.pure_callback(backward_cb, in_shapes, dout, *xs))

        backward_fn.defvjp(
            lambda dout, *xs: (backward_fn(dout, *xs), (dout, *xs)),
            lambda res, dd: tuple(jax.pure_callback(double_cb, (out_shape, *in_shapes),
                                                    *dd, *res)))

        @jax.custom_vjp
        def fn(*xs):
            return jax.pure_callback(lambda *a: _c(entry.numpy_forward(*map(_c, a))),
                                     out_shape, *xs)

        fn.defvjp(lambda *xs: (fn(*xs), xs), lambda xs, g: backward_fn(g, *xs))
        args = tuple(jnp.asarray(a) for a in point)

    return grads_checked(check_grads, fn, args, order=2)


_MAKERS = {"oracle": _oracle, "gradgradcheck": _gradgradcheck, "check_grads": _check_grads}


def make_check(checker: str, entry, which: str = "right") -> Callable[[], object]:
    """A no-argument callable: ``checker``'s check of ``entry``'s right or buggy second
    derivative at the entry's seed-0 point (a Report for the oracle, True/False for peers)."""
    if _is_hvp(entry):
        second = entry.hvp if which == "right" else entry.buggy
    else:
        second = entry.double_backward if which == "right" else entry.buggy
    return _MAKERS[checker](entry, second, _point(entry))


# ---------------------------------------------------------------------------------------------
# one entry: verdicts, times
# ---------------------------------------------------------------------------------------------


@dataclass
class EntryResult:
    """One zoo entry: each checker's verdict on the right and on the buggy derivation, whether
    the bug is visible (all but relu's), the oracle's source of truth, times in seconds."""

    name: str
    kind: str
    bug_class: str
    visible: bool
    judged_by: str = "—"
    right: dict[str, str] = field(default_factory=dict)
    buggy: dict[str, str] = field(default_factory=dict)
    passed: dict[str, bool | None] = field(default_factory=dict)
    passed_buggy: dict[str, bool | None] = field(default_factory=dict)
    first: dict[str, float] = field(default_factory=dict)
    warm: dict[str, float] = field(default_factory=dict)

    def caught(self, checker: str) -> bool | None:
        """The bug caught (a visible one failed; the invisible one passed: no false alarm)."""
        said = self.passed_buggy.get(checker)
        return None if said is None else (not said if self.visible else said)


def _judged_by(report: object) -> str:
    if isinstance(report, (str, bool)):
        return "—"
    if "second differences alone" in report.judged_by:
        return "2nd differences"
    if "the user's backward" in " ".join(report.notes):
        return "user's backward"
    return "JAX + FD" if "JAX and finite differences" in report.judged_by else report.judged_by


def check_entry(entry, checkers: Sequence[str] = CHECKERS, *,
                time_fn: Callable | None = None) -> EntryResult:
    """Every checker on ``entry``'s right and buggy second derivative; the first right check
    is timed; warm times of the right one when ``time_fn`` (``ctx.time``-like) is given."""
    visible = not (not _is_hvp(entry) and not entry.bug_inputs)
    out = EntryResult(entry.name, "HVP" if _is_hvp(entry) else "double backward",
                      entry.bug_class, visible)
    right_checks = {}
    for checker in checkers:
        right_checks[checker] = make_check(checker, entry, "right")
        t0 = time.perf_counter()
        right = _run(right_checks[checker])
        out.first[checker] = time.perf_counter() - t0
        wrong = _run(make_check(checker, entry, "buggy"))
        out.passed[checker], out.right[checker] = verdict(right)
        out.passed_buggy[checker], out.buggy[checker] = verdict(wrong)
        if checker == "oracle":
            out.judged_by = _judged_by(right)
    if time_fn is not None:
        timed = {c: _quiet(fn) for c, fn in right_checks.items() if out.passed[c] is not None}
        out.warm = {c: t.median for c, t in time_fn(timed).items()}
    return out


def _warm_up(checkers: Sequence[str]) -> dict[str, float]:
    """Each checker once on a tiny unrelated HVP (f = sum x^3 / 3 on 3 entries)."""
    from property_tests.second_order_zoo import HvpEntry

    tiny = HvpEntry("warm_up", lambda z: np.sum(z**3) / 3, lambda z: z**2,
                    lambda z, v: 2 * z * v, lambda z, v: z * v, "", "",
                    lambda rng: np.array([0.4, -0.7, 1.1]))
    took = {}
    for checker in checkers:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _run(make_check(checker, tiny))
        took[checker] = time.perf_counter() - t0
    return took


# ---------------------------------------------------------------------------------------------
# the section
# ---------------------------------------------------------------------------------------------


@section("Second derivatives: check_hvp and check_double_backward on the second-order zoo")
def hvp_checks(ctx: Context) -> str:
    started = time.perf_counter()
    if ctx.peers.get("jax") is None:
        return "jax is not installed: skipped (the oracle's second-order checks need it)."
    checkers = [c for c in CHECKERS if ctx.peers.get(PEER_MODULE[c]) is not None]
    notes = [f"{c}: {PEER_MODULE[c]} is not installed, skipped." for c in CHECKERS
             if c not in checkers]
    warm_up = _warm_up(checkers)
    if ctx.quick:
        timing = {"cycles": 1, "samples_per_cycle": 2, "settle_seconds": 0.0}
    else:
        timing = {"cycles": 2, "samples_per_cycle": 2, "settle_seconds": 0.03}
    results = [check_entry(e, checkers, time_fn=lambda fns: ctx.time(fns, **timing))
               for e in entries().values()]

    verdict_rows, time_rows = [], []
    for r in results:
        bug = r.bug_class if r.visible else "dropped term (invisible: relu'' = 0)"
        verdict_rows.append([
            r.name, r.kind, bug, r.judged_by,
            *(f"{r.right.get(c, '—')} / {_mark(r.buggy.get(c, '—'))}" for c in CHECKERS),
        ])
        time_rows.append([
            r.name,
            *(f"{ms(r.first.get(c))} / {ms(r.warm.get(c))}" for c in CHECKERS),
            ratio(r.warm.get("oracle"), r.warm.get("gradgradcheck")),
            ratio(r.warm.get("oracle"), r.warm.get("check_grads")),
        ])
    n = len(results)
    n_visible = sum(r.visible for r in results)
    total_rows = []
    for c in CHECKERS:
        if c not in checkers:
            total_rows.append([c, "—", "—", "—", "—", "—", "—"])
            continue
        passed = sum(r.passed.get(c) is True for r in results)
        caught = sum(r.visible and r.caught(c) is True for r in results)
        hidden_ok = sum(not r.visible and r.passed_buggy.get(c) is True for r in results)
        doubts = sum(r.right.get(c, "").startswith("doubt") for r in results)
        errors = sum(r.passed.get(c) is None or r.passed_buggy.get(c) is None for r in results)
        total_rows.append([c, f"{passed}/{n}", f"{caught}/{n_visible}",
                           f"{hidden_ok}/{n - n_visible}", doubts, errors,
                           f"{sum(r.first.get(c, 0.0) for r in results):.2f} / "
                           f"{sum(r.warm.get(c, 0.0) for r in results):.2f}"])

    parts = [
        f"Every checker checks the same hand-derived numpy second derivatives of the {n} "
        "entries of `property_tests/second_order_zoo.py` (Hessian-vector products of scalar "
        "functions, and double backwards of layers; each with one planted bug, relu's "
        "invisible: the dropped act'' term is zero for relu). The oracle: `check_hvp(f, hvp, "
        "x)` and `check_double_backward(forward, backward, double_backward, inputs)` with their "
        "defaults. torch `gradgradcheck` (default tolerances): the hand derivatives as "
        "`torch.autograd.Function`s whose backward is itself a `Function` (for an HVP: f's "
        "backward is `g * Grad(x)`, Grad's backward the hand HVP, H being symmetric; for a "
        "layer: the layer's backward is a `Function` whose backward is the hand double "
        "backward), so torch compares the hand second derivative with finite differences of "
        "the hand first derivative. jax `check_grads(order=2, modes=['rev'])`: the same "
        "nesting of `jax.custom_vjp`s through `jax.pure_callback`; its second order checks "
        "the VJP of `x -> vjp(f, x)(f(x))` along one random direction, so an HVP enters "
        "weighted by f(x). The first derivatives given to the peers are right (proved against "
        "JAX in `property_tests/test_second_order_zoo.py`).",
        "",
        "Verdicts: right / buggy (a FAIL in bold; the oracle names the input it finds wrong "
        "first: `x` for an HVP). *judged by*: the oracle's source of truth on the right "
        "derivation.",
        "",
        markdown_table(["entry", "kind", "bug", "judged by", "oracle", "torch gradgradcheck",
                        "jax check_grads(order=2)"], verdict_rows),
        "",
        markdown_table(["checker", "right passed", "visible bugs caught",
                        "invisible bug passed", "doubt on right", "errors (no verdict)",
                        "total s first / warm"], total_rows),
        "",
        "Times, ms, first / warm (first: the first check of the entry's right derivation in "
        "this process, each checker warmed up on a tiny unrelated HVP first: "
        + ", ".join(f"{c} {v * 1e3:.0f} ms" for c, v in warm_up.items())
        + f"; warm: median of {timing['cycles'] * timing['samples_per_cycle']} repeats), and "
        "the oracle's warm time over each peer's:",
        "",
        markdown_table(["entry", "oracle", "torch gradgradcheck", "jax check_grads",
                        "/ gradgradcheck warm", "/ check_grads warm"], time_rows),
        "",
        f"Section wall time: {time.perf_counter() - started:.0f} s.",
    ]
    if notes:
        parts += ["", *(f"- {note}" for note in notes)]
    return "\n".join(parts)
