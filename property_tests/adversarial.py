"""Adversarial cases for the oracle's verdicts (issue #12, "Verdicts without blind spots").

Each case is a gradient whose truth is known without asking the oracle: a planted bug (the case
says which entries it spoils and why that is wrong), a closed form, or a value computed with
mpmath at 60 digits and rounded to float64. The oracle must never give a wrong verdict:

- a **right** gradient may end in pass (kinks count as pass), doubt, or a refusal (a
  ``ValueError`` saying why it cannot judge); FAIL is wrong;
- a **wrong** gradient may end in FAIL, doubt, or a refusal; pass is wrong.

Doubt is never wrong, but it is counted. Two peers are run where they apply, for comparison
only: ``torch.autograd.gradcheck`` (a custom ``autograd.Function`` around the numpy code) and
``jax.test_util.check_grads`` (a ``custom_vjp`` of ``pure_callback``\\ s). Their wrong verdicts
are expected and only reported.

Classes (the issue's list; ``"other"`` for what was found beside it):

1. tolerance floors hiding whole wrong terms;
2. curvature at kinks;
3. kinks finite differences do not see;
4. ties are not boxes;
5. finite differences that cannot decide;
6. cancellation;
7. domain edges.

The catalogue is made by parameterised generators (points, scales, sizes, bug sizes), one per
family; ``CASES`` maps each name to its case, ``FAMILIES`` says what each family tests.

    from property_tests.adversarial import CASES, outcome, correct
    case = CASES["4-maxpool-pairs-all"]
    result = outcome(case)              # result.verdict: pass / FAIL / doubt / refused / error
    correct(case.truth, result.verdict)

Each generator is a plain function of its parameters (``tiny_entry_case(family, ratio, bug)``
and so on), so ``test_adversarial_properties.py`` draws new cases from the same code.

Steps: some cases are built against the finite differences' documented step,
``h = 2^round(log2(cbrt(eps) max(1, |x|)))`` (``oracle/finite_differences.py``), which is
``2^-17`` for ``|x| <= 1``: a periodic term of that period, a curvature that widens the
bracket of one-sided slopes by ``~c h``. The truth of those cases does not depend on h; only how
hard they are does.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import mpmath
import numpy as np

import oracle  # noqa: F401  (first: JAX in float64 before any JAX array exists)
from oracle import Report, check_activation, check_gradient, check_network, check_vjp
from reference import ACTIVATIONS, Activation, Network
from reference.array_namespace import namespace_of

__all__ = [
    "CASES",
    "FAMILIES",
    "KLASSES",
    "KLASS_TITLES",
    "ActivationCase",
    "Case",
    "GradientCase",
    "NetworkCase",
    "Outcome",
    "VJPCase",
    "aliasing_case",
    "cancelling_sum_case",
    "check_grads_peer",
    "confident_ce_case",
    "correct",
    "curved_kink_case",
    "domain_edge_case",
    "fd_resolution_case",
    "flat_offset_case",
    "float32_inside_case",
    "gradcheck_peer",
    "kink_beside_case",
    "large_directional_case",
    "logistic_margin_case",
    "max_ties_case",
    "maximum_activation_case",
    "maximum_ties_case",
    "maxpool_case",
    "median_ties_case",
    "noisy_case",
    "norm_at_zero_case",
    "outcome",
    "overflowing_activation_case",
    "probe_gap_case",
    "relu_maximum_network_case",
    "saturated_network_case",
    "saturated_tanh_case",
    "selu_threshold_case",
    "small_l1_case",
    "sort_ties_case",
    "stateful_case",
    "subnormal_case",
    "tiny_column_case",
    "tiny_entry_case",
    "variance_case",
    "verdict_of",
]

RIGHT, WRONG = "right", "wrong"
PASS, FAIL, DOUBT, REFUSED, ERROR, NA = "pass", "FAIL", "doubt", "refused", "error", "n/a"
KLASSES: tuple[int | str, ...] = (1, 2, 3, 4, 5, 6, 7, "other")
KLASS_TITLES: dict[int | str, str] = {
    1: "tolerance floors hiding wrong terms",
    2: "curvature at kinks",
    3: "kinks finite differences do not see",
    4: "ties are not boxes",
    5: "finite differences that cannot decide",
    6: "cancellation",
    7: "domain edges",
    "other": "other blind spots",
}

H = 2.0**-17
"""The finite differences' step for entries with ``|x| <= 1`` (see the module docstring)."""

SIGMOID = ACTIVATIONS["sigmoid"]


# ---------------------------------------------------------------------------------------------
# Cases and verdicts
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Case:
    """One adversarial case.

    Attributes:
        name: unique, ``<klass>-<family>-<parameters>``.
        klass: 1..7 (the issue's classes) or "other".
        truth: "right" or "wrong", known by construction or by mpmath.
        family: the generator that made it (``FAMILIES`` describes it).
        what: the case in one line: what is planted, or why the gradient is right.
        fast: part of the default (fast) test run.
    """

    name: str
    klass: int | str
    truth: str
    family: str
    what: str
    fast: bool = False

    def run_oracle(self) -> Report:
        raise NotImplementedError

    def run_gradcheck(self) -> str:
        """torch.autograd.gradcheck's verdict: "pass", "FAIL", "refused" or "n/a"."""
        problem = self.peer_problem()
        return NA if problem is None else gradcheck_peer(*problem)

    def run_check_grads(self) -> str:
        """jax.test_util.check_grads's verdict: "pass", "FAIL", "refused" or "n/a"."""
        problem = self.peer_problem()
        return NA if problem is None else check_grads_peer(*problem)

    def peer_problem(self) -> tuple[Callable, Callable, tuple[np.ndarray, ...]] | None:
        """``(forward, backward, inputs)`` for the peers: ``backward(c, *inputs)`` returns a
        tuple with the gradient of ``<c, forward(*inputs)>`` per input; None: not applicable."""
        return None


@dataclass(frozen=True, kw_only=True)
class GradientCase(Case):
    """``check_gradient(f, grad, x, **options)`` with ``(f, grad, x) = build()``."""

    build: Callable[[], tuple[Callable, Callable, np.ndarray]]
    options: dict = field(default_factory=dict)

    def run_oracle(self) -> Report:
        f, grad, x = self.build()
        return check_gradient(f, grad, x, **self.options)

    def peer_problem(self):
        f, grad, x = self.build()
        return (f, lambda c, z: (float(c) * np.asarray(grad(z), dtype=np.float64),), (x,))


@dataclass(frozen=True, kw_only=True)
class VJPCase(Case):
    """``check_vjp(forward, backward, inputs, **options)`` with ``build()`` giving the three."""

    build: Callable[[], tuple[Callable, Callable, tuple[np.ndarray, ...]]]
    options: dict = field(default_factory=dict)

    def run_oracle(self) -> Report:
        forward, backward, inputs = self.build()
        return check_vjp(forward, backward, inputs, **self.options)

    def peer_problem(self):
        forward, backward, inputs = self.build()

        def tupled(c, *arrays):
            out = backward(c, *arrays)
            return tuple(out) if isinstance(out, tuple) else (out,)

        return forward, tupled, inputs


@dataclass(frozen=True, kw_only=True)
class ActivationCase(Case):
    """``check_activation(build())``; the peers check ``sum(f(v))`` against ``df(v)`` on the
    same kind of points (a grid over [-6, 6], +-10 .. +-1000, the declared kinks +- 1e-7)."""

    build: Callable[[], Activation]

    def run_oracle(self) -> Report:
        return check_activation(self.build())

    def peer_problem(self):
        act = self.build()
        kinks = np.array(act.kinks, dtype=np.float64)
        large = np.array([10.0, 30.0, 100.0, 1000.0])
        v = np.unique(np.concatenate([np.linspace(-6.0, 6.0, 49), large, -large, kinks,
                                      kinks + 1e-7, kinks - 1e-7]))
        return (lambda z: act.f(z).sum(), lambda c, z: (float(c) * act.df(z),), (v,))


@dataclass(frozen=True, kw_only=True)
class NetworkCase(Case):
    """``check_network(net, X, T, **options)`` with ``(net, X, T) = build()``; the peers see the
    loss as a function of all weights, flattened, and ``net.gradients``' dE/dW as its
    gradient."""

    build: Callable[[], tuple[Network, np.ndarray, np.ndarray]]
    options: dict = field(default_factory=dict)

    def run_oracle(self) -> Report:
        net, X, T = self.build()
        return check_network(net, X, T, **self.options)

    def peer_problem(self):
        net, X, T = self.build()
        shapes = [w.shape for w in net.weights]
        theta = np.concatenate([w.ravel() for w in net.weights])
        clone = copy.deepcopy(net)

        def set_weights(t: np.ndarray) -> None:
            parts, start = [], 0
            for shape in shapes:
                size = int(np.prod(shape))
                parts.append(np.asarray(t[start:start + size]).reshape(shape))
                start += size
            clone.weights = parts

        def forward(t):
            set_weights(t)
            return clone.loss(X, T)

        def backward(c, t):
            set_weights(t)
            _, dws, _ = clone.gradients(X, T)
            return (float(c) * np.concatenate([d.ravel() for d in dws]),)

        return forward, backward, (theta,)


def verdict_of(report: Report) -> str:
    """The oracle's verdict on a case: FAIL if not ok; else doubt if a row is in doubt; else
    pass (kinks count as pass)."""
    if not report.ok:
        return FAIL
    return DOUBT if report.count(DOUBT) else PASS


def correct(truth: str, verdict: str) -> bool:
    """Is ``verdict`` acceptable for a gradient whose truth is ``truth``? Doubt and refusal
    always are; pass only for a right gradient, FAIL only for a wrong one; an error (any
    exception but a ValueError refusal) never is."""
    if verdict in (DOUBT, REFUSED):
        return True
    if verdict == PASS:
        return truth == RIGHT
    if verdict == FAIL:
        return truth == WRONG
    return False


@dataclass(frozen=True)
class Outcome:
    """The oracle on one case: its verdict, the report's headline (or why it refused), and the
    time it took."""

    verdict: str
    headline: str
    seconds: float
    report: Report | None = field(default=None, repr=False, compare=False)


def outcome(case: Case) -> Outcome:
    """Run the oracle on ``case``: a ``ValueError`` is a refusal, any other exception an
    error. A numpy ``RuntimeWarning`` escaping from the oracle is an error too, everywhere (the
    project's tests turn warnings into errors; so would a user's)."""
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            report = case.run_oracle()
    except ValueError as exc:
        return Outcome(REFUSED, f"refused: {exc}", time.perf_counter() - start)
    except Exception as exc:
        return Outcome(ERROR, f"{type(exc).__name__}: {exc}", time.perf_counter() - start)
    return Outcome(verdict_of(report), report.headline, time.perf_counter() - start, report)


# ---------------------------------------------------------------------------------------------
# Peers
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet():
    """Peers and the numpy code they run warn freely (overflow, NaN, torch's own notices):
    silenced locally, the verdict is what counts."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        yield


def gradcheck_peer(forward: Callable, backward: Callable, inputs: tuple[np.ndarray, ...]) -> str:
    """``torch.autograd.gradcheck`` with its defaults on an ``autograd.Function`` whose forward
    runs ``forward`` and whose backward runs the hand-derived ``backward`` (numpy)."""
    import torch
    from torch.autograd.gradcheck import GradcheckError

    class Hand(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *tensors):
            ctx.save_for_backward(*tensors)
            arrays = [t.detach().numpy().copy() for t in tensors]
            return torch.from_numpy(np.array(forward(*arrays), dtype=np.float64))

        @staticmethod
        def backward(ctx, g):
            arrays = [t.detach().numpy().copy() for t in ctx.saved_tensors]
            grads = backward(g.detach().numpy().copy(), *arrays)
            return tuple(torch.from_numpy(np.array(a, dtype=np.float64)) for a in grads)

    with _quiet():
        try:
            tensors = tuple(torch.tensor(a, dtype=torch.float64, requires_grad=True)
                            for a in inputs)
            torch.autograd.gradcheck(Hand.apply, tensors)
        except GradcheckError:
            return FAIL
        except Exception:
            return REFUSED
    return PASS


def check_grads_peer(forward: Callable, backward: Callable,
                     inputs: tuple[np.ndarray, ...]) -> str:
    """``jax.test_util.check_grads(F, inputs, order=1, modes=["rev"])`` with its defaults, where
    F is a ``custom_vjp`` whose primal and backward are ``pure_callback``\\ s of the numpy code."""
    import jax
    import jax.numpy as jnp
    from jax.test_util import check_grads

    with _quiet():
        try:
            out = np.asarray(forward(*[a.copy() for a in inputs]), dtype=np.float64)
            out_type = jax.ShapeDtypeStruct(out.shape, jnp.float64)
            in_types = tuple(jax.ShapeDtypeStruct(a.shape, jnp.float64) for a in inputs)

            def primal(*arrays):
                return np.asarray(forward(*[np.array(a) for a in arrays]), dtype=np.float64)

            def pullback(c, *arrays):
                grads = backward(np.array(c), *[np.array(a) for a in arrays])
                return tuple(np.asarray(g, dtype=np.float64) for g in grads)

            @jax.custom_vjp
            def hand(*xs):
                return jax.pure_callback(primal, out_type, *xs)

            def hand_fwd(*xs):
                return hand(*xs), xs

            def hand_bwd(xs, c):
                return jax.pure_callback(pullback, in_types, c, *xs)

            hand.defvjp(hand_fwd, hand_bwd)
            check_grads(hand, tuple(jnp.asarray(a) for a in inputs), order=1, modes=["rev"])
        except AssertionError:
            return FAIL
        except Exception:
            return REFUSED
    return PASS


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _stop_gradient(z):
    """``jax.lax.stop_gradient`` on JAX values, the identity on numpy's."""
    if namespace_of(z) is np:
        return z
    import jax

    return jax.lax.stop_gradient(z)


def _mp(value: float) -> mpmath.mpf:
    return mpmath.mpf(float(value))


def _rounded(values) -> np.ndarray:
    return np.array([float(v) for v in values], dtype=np.float64)


CASES: dict[str, Case] = {}
FAMILIES: dict[str, tuple[int | str, str]] = {}


def _family(name: str, klass: int | str, description: str) -> None:
    FAMILIES[name] = (klass, description)


def _add(case: Case) -> Case:
    if case.name in CASES:
        raise ValueError(f"duplicate adversarial case {case.name!r}")
    CASES[case.name] = case
    return case


def _fmt(value: float) -> str:
    """A parameter in a case name: ``1e-12``, ``0.5``, ``-3e-06``."""
    return f"{value:g}"


def _seeded(name: str, seed: int | None) -> str:
    return name if seed is None else f"{name}-seed{seed}"


def _signs_and_sizes(seed: int, n: int, low: float = 0.3, high: float = 1.5) -> np.ndarray:
    """``n`` entries of random sign and magnitude in [low, high]: the smooth entries of a drawn
    case (never near 0, where several families have their kink)."""
    rng = np.random.default_rng(seed)
    return rng.choice([-1.0, 1.0], size=n) * rng.uniform(low, high, size=n)


# ---------------------------------------------------------------------------------------------
# Class 1: tolerance floors hiding whole wrong terms
# ---------------------------------------------------------------------------------------------

_family("tiny-entry", 1, "one entry of the gradient is `ratio` times its term's largest; the bug "
        "flips its sign, zeroes it or doubles it (closed-form gradient of sum w x^2 / 2, sum e^x "
        "or sum x^3 / 3)")


def tiny_entry_case(family: str, ratio: float, bug: str | None, *, seed: int | None = None,
                    fast: bool = False) -> GradientCase:
    """Class 1: ``f`` with a closed-form gradient whose entry 3 is ``ratio`` x its largest;
    ``bug`` in {None, "sign", "zero", "double"} spoils that entry only. ``seed`` draws the other
    entries of x (magnitudes 0.5 .. 1)."""
    others = None if seed is None else _signs_and_sizes(seed, 3, 0.5, 1.0)

    def build():
        if family == "square":
            w = np.array([1.0, 2.0, 0.5, 1.5])
            x = np.array([1.0, -0.8, 0.6, ratio / 1.5])
            if others is not None:
                x[:3] = others / np.max(np.abs(others)) / w[:3]  # largest entry of w x: 1

            def f(z):
                return 0.5 * (w * z * z).sum()

            def exact(z):
                return w * z
        elif family == "exp":
            x = np.array([0.0, -0.5, 0.3, math.log(ratio)])
            if others is not None:
                x[:3] = np.log(np.abs(others) / np.max(np.abs(others)))  # largest e^x: 1

            def f(z):
                return namespace_of(z).exp(z).sum()

            def exact(z):
                return np.exp(z)
        else:  # cube
            x = np.array([1.0, -0.9, 0.7, math.sqrt(ratio)])
            if others is not None:
                x[:3] = others / np.max(np.abs(others))  # largest x^2: 1

            def f(z):
                return (z * z * z).sum() / 3.0

            def exact(z):
                return z * z

        def grad(z):
            g = exact(z)
            g[3] = {None: g[3], "sign": -g[3], "zero": 0.0, "double": 2.0 * g[3]}[bug]
            return g

        return f, grad, x

    what = (f"{family}: entry 3 is {ratio:g} of the largest" +
            ("" if bug is None else f", bug: {bug}"))
    return GradientCase(name=_seeded(f"1-tiny-entry-{family}-{_fmt(ratio)}-{bug or 'right'}",
                                     seed), klass=1,
                        truth=RIGHT if bug is None else WRONG, family="tiny-entry", what=what,
                        build=build, fast=fast)


for _ratio in (1e-6, 1e-9, 1e-11, 1e-12, 1e-13, 1e-15):
    _add(tiny_entry_case("square", _ratio, "sign", fast=_ratio == 1e-12))
    _add(tiny_entry_case("square", _ratio, "zero"))
for _ratio in (1e-9, 1e-12, 1e-14, 1e-16):
    _add(tiny_entry_case("exp", _ratio, "sign"))
for _ratio in (1e-8, 1e-12, 1e-16):
    _add(tiny_entry_case("cube", _ratio, "double"))
for _fam in ("square", "exp", "cube"):
    for _ratio in (1e-12, 1e-16):
        _add(tiny_entry_case(_fam, _ratio, None, fast=_fam == "square" and _ratio == 1e-12))

_family("tiny-column", 1, "a dense layer x @ w whose input column 2 is `ratio` of the others, so "
        "dw's row 2 is tiny; the bug flips that row's sign (check_vjp)")


def tiny_column_case(ratio: float, bug: bool, *, fast: bool = False) -> VJPCase:
    """Class 1: ``x @ w`` with x's column 2 scaled by ``ratio``; the bug negates dw's row 2."""

    def build():
        rng = np.random.default_rng(7)
        x = rng.normal(size=(4, 3))
        x[:, 2] *= ratio
        w = rng.normal(size=(3, 2))

        def forward(x, w):
            return x @ w

        def backward(c, x, w):
            dw = x.T @ c
            if bug:
                dw[2] = -dw[2]
            return c @ w.T, dw

        return forward, backward, (x, w)

    return VJPCase(name=f"1-tiny-column-{_fmt(ratio)}-{'sign' if bug else 'right'}", klass=1,
                   truth=WRONG if bug else RIGHT, family="tiny-column",
                   what=f"x's column 2 is {ratio:g} of the others" + (
                       ", dw's row 2 sign-flipped" if bug else ""), build=build, fast=fast)


for _ratio in (1e-9, 1e-12, 1e-14):
    _add(tiny_column_case(_ratio, True, fast=_ratio == 1e-12))
_add(tiny_column_case(1e-12, False))

_family("saturated-sigmoids", 1, "a deep network of saturated sigmoids (every |V| ~ `sat`): layer "
        "0's dE/dW is a vanishing fraction of the loss gradient; the bug is in layer 0 only: "
        "act' doubled, or act' taken at Y (check_network)")


def saturated_network_case(depth: int, sat: float, bug: str | None, *, seed: int = 0,
                           fast: bool = False) -> NetworkCase:
    """Class 1: ``depth`` sigmoid layers of width 3 with positive weights scaled so that every
    pre-activation is about ``sat``, an identity output, mse; ``bug`` in {None, "double",
    "at_y"} swaps layer 0's activation for one with the same forward and that derivative."""
    wrong_df = {
        "double": lambda v: 2.0 * SIGMOID.df(v),
        "at_y": lambda v: SIGMOID.df(SIGMOID.f(v)),
    }

    def build():
        sizes = [3] + [3] * depth + [1]
        net = Network(sizes, ["sigmoid"] * depth + ["identity"], "mse", seed=seed)
        rng = np.random.default_rng(seed)
        weights = [rng.uniform(0.8, 1.2, size=(sizes[k] + 1, sizes[k + 1])) * sat
                   / (sizes[k] + 1) for k in range(depth)]
        weights.append(rng.normal(size=(sizes[-2] + 1, 1)))
        net.weights = weights
        X = rng.uniform(0.8, 1.2, size=(4, 3))
        T = rng.normal(size=(4, 1))
        if bug is not None:
            wrong = Activation("sigmoid", SIGMOID.f, wrong_df[bug], builtin=True)
            net.activations = [wrong, *net.activations[1:]]
        return net, X, T

    what = f"{depth} sigmoid layers saturated at |V| ~ {sat:g}" + (
        "" if bug is None else f"; layer 0's act' {'doubled' if bug == 'double' else 'at Y'}")
    return NetworkCase(name=f"1-saturated-d{depth}-sat{_fmt(sat)}-{bug or 'right'}", klass=1,
                       truth=WRONG if bug else RIGHT, family="saturated-sigmoids", what=what,
                       build=build, fast=fast)


for _depth, _sat in ((3, 10.0), (3, 20.0), (4, 15.0), (5, 15.0), (5, 25.0)):
    for _bug in (None, "double", "at_y"):
        _add(saturated_network_case(_depth, _sat, _bug,
                                    fast=(_depth, _sat) == (5, 25.0) and _bug != "at_y"))


# ---------------------------------------------------------------------------------------------
# Class 2: curvature at kinks
# ---------------------------------------------------------------------------------------------

_family("curved-kink", 2, "f = sum(c x^2 + |x|) or sum(relu(x) e^(c x) + x^2/2) with entry 0 "
        "exactly on the kink, curvature c from 1 to 1e6: any value between the one-sided "
        "derivatives is right (left, right, mid); `beyond` lies 2 c h outside them (inside the "
        "stencil's bracket of one-sided slopes), `far` half the bracket's width outside")


def curved_kink_case(kind: str, c: float, choice: str, *, between: float | None = None,
                     seed: int | None = None, fast: bool = False) -> GradientCase:
    """Class 2: a kink at x_0 = 0 with curvature ``c`` on both sides (``abs``) or on the right
    (``relu_exp``); ``choice`` in {left, right, mid, between} (right: ``between`` in [0, 1] is
    the fraction of the way from the left to the right derivative) or {beyond, far} (wrong).
    ``seed`` draws the smooth entries."""
    if kind == "abs":
        lo, hi = -1.0, 1.0
        x = np.array([0.0, 0.3, -0.7])
        if seed is not None:
            x[1:] = _signs_and_sizes(seed, 2)

        def f(z):
            return (c * z * z + namespace_of(z).abs(z)).sum()

        def smooth(z):
            return 2.0 * c * z + np.sign(z)
    else:  # relu_exp: relu(x) exp(c x) + x^2 / 2, one-sided derivatives 0, 1; f'' = 2c at 0+
        lo, hi = 0.0, 1.0
        x = np.array([0.0, -0.3, -0.7])  # the smooth entries on the flat side: e^(c x) is tame
        if seed is not None:
            x[1:] = -np.abs(_signs_and_sizes(seed, 2))

        def f(z):
            xp = namespace_of(z)
            return (xp.where(z > 0, z, 0.0) * xp.exp(c * z) + 0.5 * z * z).sum()

        def smooth(z):
            return np.where(z > 0, np.exp(c * z) * (1.0 + c * z), 0.0) + z

    value = {"left": lo, "right": hi, "mid": 0.5 * (lo + hi), "beyond": hi + 2.0 * c * H,
             "far": hi + 0.5 * (hi - lo),
             "between": lo + (0.5 if between is None else between) * (hi - lo)}[choice]

    def build():
        def grad(z):
            g = smooth(z)
            g[0] = value
            return g

        return f, grad, x.copy()

    truth = RIGHT if choice in ("left", "right", "mid", "between") else WRONG
    return GradientCase(
        name=_seeded(f"2-curved-kink-{kind}-c{_fmt(c)}-{choice}", seed), klass=2, truth=truth,
        family="curved-kink", build=build, fast=fast,
        what=f"{kind} with curvature {c:g}: derivative at the kink {value:.6g} "
             f"(one-sided derivatives {lo:g}, {hi:g})")


for _kind, _curvatures in (("abs", (1.0, 1e3, 1e5)),
                           ("relu_exp", (1.0, 1e3, 10**4.5, 1e5, 10**5.5, 1e6))):
    for _c in _curvatures:
        for _choice in ("left", "right", "mid", "beyond", "far"):
            _add(curved_kink_case(_kind, _c, _choice,
                                  fast=_c == 1e5 and _choice in ("left", "right", "far")))


# ---------------------------------------------------------------------------------------------
# Class 3: kinks finite differences do not see
# ---------------------------------------------------------------------------------------------

_family("small-l1", 3, "f = sum((x - t)^2) / 2 + lam sum(|x|) with two entries of x exactly 0, "
        "|x| written as abs, where(x > 0, x, -x) or maximum(x, -x): at 0 any subgradient in "
        "[-lam, lam] is right (zero, plus, minus); wrong: 3 lam at the zeros, or the penalty's "
        "sign flipped where x != 0")


def small_l1_case(form: str, lam: float, choice: str, *, seed: int | None = None,
                  fast: bool = False) -> GradientCase:
    """Class 3: an L1 penalty ``lam |x|`` small next to a loss of order 1; ``choice`` in {zero,
    plus, minus} (right) or {triple, flipped} (wrong). ``seed`` draws t and x's non-zero
    entries."""
    t = np.array([0.3, -0.2, 0.5, -0.6])
    x0 = np.array([0.0, 0.4, -1.1, 0.0])
    if seed is not None:
        t = _signs_and_sizes(seed, 4, 0.1, 1.0)
        x0[1:3] = _signs_and_sizes(seed + 1, 2)

    def penalty(z):
        xp = namespace_of(z)
        if form == "abs":
            return xp.abs(z)
        if form == "where":
            return xp.where(z > 0, z, -z)
        return xp.maximum(z, -z)

    def f(z):
        d = z - t
        return 0.5 * (d * d).sum() + lam * penalty(z).sum()

    at_zero = {"zero": 0.0, "plus": 1.0, "minus": -1.0, "triple": 3.0, "flipped": 0.0}[choice]

    def grad(z):
        s = np.where(z == 0, at_zero, np.sign(z))
        if choice == "flipped":
            s = -s
        return (z - t) + lam * s

    def build():
        return f, grad, x0.copy()

    truth = RIGHT if choice in ("zero", "plus", "minus") else WRONG
    return GradientCase(
        name=_seeded(f"3-small-l1-{form}-{_fmt(lam)}-{choice}", seed), klass=3, truth=truth,
        family="small-l1", build=build, fast=fast,
        what=f"lam = {lam:g}, |x| as {form}; " + (
            f"subgradient {at_zero:g} lam at the zeros" if choice != "flipped"
            else "penalty's sign flipped where x != 0"))


for _form in ("abs", "where", "maximum"):
    for _lam in (1e-4, 1e-7):
        for _choice in ("zero", "plus", "minus", "triple", "flipped"):
            _add(small_l1_case(_form, _lam, _choice,
                               fast=_lam == 1e-7 and _choice in ("plus", "minus", "triple")
                               and _form == "maximum"))

_family("relu-maximum-net", 3, "a network whose hidden activation is written with "
        "jnp.maximum(v, 0) (JAX's tie rule gives 1/2 at v = 0, which is also the central "
        "difference) and one hidden unit with V exactly 0 on every sample; its outgoing weights "
        "scaled by `scale` (small: the kink is small next to E). Right: relu'(0) = 0, 1 or 1/2; "
        "wrong: relu'(0) = -1, or 0.05 for every v < 0 (check_network)")

_RELU_DF = {
    "gt": lambda v: (v > 0).astype(np.float64),
    "ge": lambda v: (v >= 0).astype(np.float64),
    "half": lambda v: np.where(v == 0, 0.5, (v > 0).astype(np.float64)),
    "minus_one_at_0": lambda v: np.where(v == 0, -1.0, (v > 0).astype(np.float64)),
    "leaky": lambda v: np.where(v > 0, 1.0, 0.05),
}


def _relu_maximum(v):
    return namespace_of(v).maximum(v, 0.0)


def relu_maximum_network_case(scale: float, choice: str, *, seed: int = 3,
                              fast: bool = False) -> NetworkCase:
    """Class 3: [3, 4, 2] with ``maximum(v, 0)`` hidden, identity output, mse; hidden unit 0 has
    a zero weight column (V = 0 exactly), its outgoing weights times ``scale``; ``choice`` is
    relu's derivative (``_RELU_DF``)."""

    def build():
        act = Activation("relu_maximum", _relu_maximum, _RELU_DF[choice])
        net = Network([3, 4, 2], [act, "identity"], "mse", seed=seed)
        w0, w1 = (w.copy() for w in net.weights)
        w0[:, 0] = 0.0
        w1[0, :] *= scale
        net.weights = [w0, w1]
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(5, 3))
        T = rng.normal(size=(5, 2))
        v = np.concatenate([X, np.ones((5, 1))], axis=1) @ w0
        assert np.all(v[:, 0] == 0) and np.any(v < 0), "the case needs V = 0 and some V < 0"
        return net, X, T

    return NetworkCase(
        name=f"3-relu-maximum-net-s{_fmt(scale)}-{choice}" + ("" if seed == 3 else f"-seed{seed}"),
        klass=3,
        truth=RIGHT if choice in ("gt", "ge", "half") else WRONG, family="relu-maximum-net",
        build=build, fast=fast,
        what=f"relu as maximum(v, 0), outgoing weights x {scale:g}; relu' = {choice}")


for _scale in (1.0, 1e-6):
    for _choice in _RELU_DF:
        _add(relu_maximum_network_case(_scale, _choice,
                                       fast=_scale == 1e-6 and _choice in ("gt", "minus_one_at_0")))

_family("relu-maximum-wide", 3, "the same relu written with jnp.maximum in both hidden layers "
        "of [60, 50, 40, 3] (terms of 3,050 and 2,040 entries: beyond check_network's exhaustive "
        "size, so judged along random directions), units 0-4 of layer 0 and 0-3 of layer 1 at "
        "V = 0 on every sample. Right: relu'(0) = 0, 1 or 1/2; wrong: relu'(0) = -1, or 0.05 "
        "for every v < 0")


def relu_maximum_wide_case(choice: str) -> NetworkCase:
    """Class 3: ``relu_maximum_network_case`` on a network too wide for exhaustive totals."""

    def build():
        act = Activation("relu_maximum", _relu_maximum, _RELU_DF[choice])
        net = Network([60, 50, 40, 3], [act, act, "identity"], "mse", seed=3)
        w0, w1, w2 = (w.copy() for w in net.weights)
        w0[:, :5], w1[:, :4] = 0.0, 0.0
        net.weights = [w0, w1, w2]
        rng = np.random.default_rng(0)
        return net, rng.normal(size=(8, 60)), rng.normal(size=(8, 3))

    return NetworkCase(
        name=f"3-relu-maximum-wide-{choice}", klass=3,
        truth=RIGHT if choice in ("gt", "ge", "half") else WRONG, family="relu-maximum-wide",
        build=build, what=f"relu as maximum(v, 0) in [60, 50, 40, 3]; relu' = {choice}")


for _choice in _RELU_DF:
    _add(relu_maximum_wide_case(_choice))

_family("maximum-activation", 3, "check_activation of activations written with jnp.maximum or "
        "jnp.clip (JAX's tie rule at the kink): relu with relu'(0) = 0 or 1 (right) or -1 "
        "(wrong); leaky relu as maximum(v, 0.01 v); hard tanh as clip(v, -1, 1)")


def maximum_activation_case(kind: str, choice: str, *, fast: bool = False) -> ActivationCase:
    """Class 3: an activation whose forward uses ``maximum``/``clip``; ``choice`` names its
    derivative's rule at the kink."""
    if kind == "relu":
        f, df, kinks = _relu_maximum, _RELU_DF[choice], (0.0,)
        truth = RIGHT if choice in ("gt", "ge", "half") else WRONG
    elif kind == "leaky":
        def f(v):
            return namespace_of(v).maximum(v, 0.01 * v)

        def df(v):
            return np.where(v > 0, 1.0, 0.01) if choice == "gt" else np.where(v >= 0, 1.0, 0.01)

        kinks, truth = (0.0,), RIGHT
    else:  # hard tanh
        def f(v):
            return namespace_of(v).clip(v, -1.0, 1.0)

        def df(v):
            return (np.abs(v) < 1).astype(np.float64) if choice == "gt" else (
                np.abs(v) <= 1).astype(np.float64)

        kinks, truth = (-1.0, 1.0), RIGHT

    def build():
        return Activation(f"{kind}_maximum", f, df, kinks=kinks)

    return ActivationCase(name=f"3-maximum-activation-{kind}-{choice}", klass=3, truth=truth,
                          family="maximum-activation", build=build, fast=fast,
                          what=f"{kind} with jnp.maximum/clip; derivative rule {choice}")


for _kind, _choice in (("relu", "gt"), ("relu", "ge"), ("relu", "minus_one_at_0"),
                       ("leaky", "gt"), ("leaky", "ge"), ("hardtanh", "gt"),
                       ("hardtanh", "ge")):
    _add(maximum_activation_case(_kind, _choice, fast=_kind == "relu" and _choice != "ge"))


# ---------------------------------------------------------------------------------------------
# Class 4: ties are not boxes
# ---------------------------------------------------------------------------------------------

_POOL_IMAGES = {
    # every window tied: (0,0) two 1s, (0,1) two 2s, (1,0) two 3s, (1,1) four 1s
    "pairs": [[1, 1, 0, 2], [0, 0, 2, 0], [3, 0, 1, 1], [0, 3, 1, 1]],
    # one tied window (1,1), the others with a unique maximum
    "one": [[0.5, 1, -1, 2], [0, 0.25, 0.75, 0], [3, 0, 1, 1], [0, 2, -1, 0.5]],
    # all zero, as after a relu: every window is a four-way tie
    "flat": [[0.0] * 4] * 4,
    # no ties at all (control: routing to every maximum is then right)
    "none": [[0.1, 0.9, -0.3, 0.2], [0.4, 0.35, 0.8, -0.1], [1.5, -0.2, 0.6, 0.45],
             [0.05, 1.2, 0.3, 0.7]],
}
_POOL_COTANGENT = np.array([[0.7, -1.3], [0.4, 2.1]])

_family("maxpool-ties", 4, "2x2 max pooling of a 4x4 image (check_vjp, cotangent fixed and "
        "non-zero) with tied maxima in some windows: routing each window's gradient to its first "
        "or last maximum, or splitting it, is right; routing it to every maximum (mask x == max) "
        "is wrong wherever a window ties. `balanced`: a cotangent for which routing to every "
        "maximum keeps the sum over all tied entries right (it is still wrong window by "
        "window)")


def _pool(x):
    return x.reshape(2, 2, 2, 2).max(axis=(1, 3))


def _pool_numpy(x):
    out = np.zeros((2, 2))
    for bi in range(2):
        for bj in range(2):
            out[bi, bj] = np.max(x[2 * bi:2 * bi + 2, 2 * bj:2 * bj + 2])
    return out


def _pool_backward(rule: str) -> Callable:
    def backward(c, x):
        g = np.zeros_like(x)
        for bi in range(2):
            for bj in range(2):
                window = x[2 * bi:2 * bi + 2, 2 * bj:2 * bj + 2]
                tied = np.argwhere(window == window.max())
                picks = {"all": tied, "first": tied[:1], "last": tied[-1:], "split": tied}[rule]
                weight = 1.0 / len(tied) if rule == "split" else 1.0
                for i, j in picks:
                    g[2 * bi + i, 2 * bj + j] += weight * c[bi, bj]
        return g

    return backward


def maxpool_case(image: str, rule: str, *, numpy_forward: bool = False,
                 pixels: np.ndarray | None = None, cotangent: np.ndarray | None = None,
                 tag: str | None = None, fast: bool = False) -> VJPCase:
    """Class 4: max pooling of ``_POOL_IMAGES[image]`` (or of ``pixels``, a 4x4 array, then
    ``image`` is only its name); ``rule`` in {first, last, split} (right) or all (wrong iff
    some window ties, with a cotangent free of zeros). ``tag`` names a non-default
    cotangent."""
    x = np.array(_POOL_IMAGES[image] if pixels is None else pixels, dtype=np.float64)
    cot = _POOL_COTANGENT if cotangent is None else np.asarray(cotangent, dtype=np.float64)
    if not np.all(cot != 0):
        raise ValueError("the cotangent must be free of zeros")
    tied = any(np.sum(w == w.max()) > 1 for w in
               (x[i:i + 2, j:j + 2] for i in (0, 2) for j in (0, 2)))
    truth = WRONG if rule == "all" and tied else RIGHT

    def build():
        return (_pool_numpy if numpy_forward else _pool), _pool_backward(rule), (x.copy(),)

    style = "-numpy" if numpy_forward else ""
    return VJPCase(name=f"4-maxpool{style}-{image}-{rule}" + (f"-{tag}" if tag else ""),
                   klass=4, truth=truth, family="maxpool-ties", build=build, fast=fast,
                   options={"cotangent": cot},
                   what=f"image {image!r} ({'ties' if tied else 'no ties'}), route to {rule}"
                        + (", forward in numpy loops" if numpy_forward else "")
                        + (f", cotangent {cot.tolist()}" if tag else ""))


_BALANCED_COTANGENTS = {
    # flat image (four-way ties everywhere): sum(c) = 0, so 4 sum(c) = sum(c)
    "flat": np.array([[1.0, -1.0], [0.5, -0.5]]),
    # pairs image (ties of 2, 2, 2, 4): 2 c00 + 2 c01 + 2 c10 + 4 c11 = c00 + c01 + c10 + c11
    "pairs": np.array([[1.0, 1.0], [1.0, -1.0]]),
}


for _image in ("pairs", "one", "flat"):
    for _rule in ("all", "first", "last", "split"):
        _add(maxpool_case(_image, _rule, fast=_image == "pairs" and _rule in ("all", "first")))
for _rule in ("all", "first"):
    _add(maxpool_case("none", _rule))
    _add(maxpool_case("pairs", _rule, numpy_forward=True))
    for _image, _cot in _BALANCED_COTANGENTS.items():
        _add(maxpool_case(_image, _rule, cotangent=_cot, tag="balanced",
                          fast=_image == "flat" and _rule == "all"))

_family("max-ties", 4, "f = max(x) over 6 entries with k tied maxima: the gradient on one tied "
        "entry, or split evenly, is right; 1 on every tied entry is wrong")


def max_ties_case(k: int, rule: str, *, seed: int | None = None,
                  fast: bool = False) -> GradientCase:
    """Class 4: ``max(x)`` with ``k`` tied maxima; ``rule`` in {first, split} or all. ``seed``
    draws the other entries and where the ties are."""
    x = np.array([0.3, -0.2, 0.5, -0.9, 0.1, 0.2])
    where = [1, 3, 4, 0, 5]
    if seed is not None:
        rng = np.random.default_rng(seed)
        x = rng.uniform(-1.0, 0.9, size=6)
        where = list(rng.permutation(6))
    x[where[:k]] = 1.0

    def build():
        def f(z):
            return z.max()

        def grad(z):
            tied = np.flatnonzero(z == z.max())
            g = np.zeros_like(z)
            if rule == "first":
                g[tied[0]] = 1.0
            else:
                g[tied] = 1.0 / len(tied) if rule == "split" else 1.0
            return g

        return f, grad, x.copy()

    return GradientCase(name=_seeded(f"4-max-ties-k{k}-{rule}", seed), klass=4,
                        truth=WRONG if rule == "all" else RIGHT, family="max-ties",
                        build=build, fast=fast, what=f"{k} tied maxima, route to {rule}")


for _k in (2, 3, 5):
    for _rule in ("first", "split", "all"):
        _add(max_ties_case(_k, _rule, fast=_k == 3 and _rule == "all"))

_family("sort-ties", 4, "sort(x) with tie groups (check_vjp, distinct cotangent entries): the "
        "cotangent scattered back by a stable permutation, by the permutation with ties "
        "reversed, or averaged within each tie group, is right; every tied entry taking the "
        "cotangent of its group's first position is wrong")

_SORT_INPUTS = {
    "two-groups": [0.5, -1.0, 0.5, 2.0, -1.0, 0.5],
    "one-pair": [1.0, 1.0, 0.0, -2.0],
}


def sort_ties_case(pattern: str, rule: str, *, values: np.ndarray | None = None,
                   fast: bool = False) -> VJPCase:
    """Class 4: ``sort(x)`` for ``_SORT_INPUTS[pattern]`` (or ``values``, with at least one
    tie); ``rule`` in {stable, reversed, split} (right) or box (wrong)."""
    x = np.array(_SORT_INPUTS[pattern] if values is None else values, dtype=np.float64)
    if np.unique(x).size == x.size:
        raise ValueError("sort_ties_case needs a tie")
    n = x.size
    cot = np.linspace(-1.0, 1.5, n) ** 3 + 0.1  # distinct entries

    def backward(c, z):
        if rule == "reversed":
            perm = np.lexsort((-np.arange(n), z))
        else:
            perm = np.argsort(z, kind="stable")
        g = np.zeros_like(z)
        g[perm] = c
        if rule in ("split", "box"):
            s = z[perm]
            for value in np.unique(s):
                positions = np.flatnonzero(s == value)
                g[perm[positions]] = (c[positions].mean() if rule == "split"
                                      else c[positions[0]])
        return g

    def build():
        def forward(z):
            return namespace_of(z).sort(z)

        return forward, backward, (x.copy(),)

    return VJPCase(name=f"4-sort-ties-{pattern}-{rule}", klass=4,
                   truth=WRONG if rule == "box" else RIGHT, family="sort-ties", build=build,
                   options={"cotangent": cot}, fast=fast,
                   what=f"sort of {x.tolist()}, cotangent routed by {rule}")


for _pattern in _SORT_INPUTS:
    for _rule in ("stable", "reversed", "split", "box"):
        _add(sort_ties_case(_pattern, _rule, fast=_pattern == "one-pair" and _rule == "box"))

_family("median-ties", 4, "median(x) of 5 entries, several equal to the median: 1 on one of them "
        "or split among them is right; 1 on each is wrong")


def median_ties_case(k: int, rule: str, *, fast: bool = False) -> GradientCase:
    """Class 4: ``median(x)``, ``k`` entries tied at the median; rule in {first, split, all}."""
    x = np.array([0.2, 0.7, -0.4, 1.5, 0.9])
    x[[1, 4, 0][:k]] = 0.7

    def build():
        def f(z):
            return namespace_of(z).median(z)

        def grad(z):
            tied = np.flatnonzero(z == np.median(z))
            g = np.zeros_like(z)
            if rule == "first":
                g[tied[0]] = 1.0
            else:
                g[tied] = 1.0 / len(tied) if rule == "split" else 1.0
            return g

        return f, grad, x.copy()

    return GradientCase(name=f"4-median-ties-k{k}-{rule}", klass=4,
                        truth=WRONG if rule == "all" else RIGHT, family="median-ties",
                        build=build, fast=fast, what=f"{k} entries tied at the median, {rule}")


for _k in (2, 3):
    for _rule in ("first", "split", "all"):
        _add(median_ties_case(_k, _rule, fast=_k == 3 and _rule != "split"))

_family("maximum-ties", 4, "elementwise maximum(x, y) with x == y at three entries (check_vjp): "
        "the cotangent to x, to y, or split, is right; to both is wrong")


def maximum_ties_case(rule: str, *, seed: int | None = None, fast: bool = False) -> VJPCase:
    """Class 4: ``maximum(x, y)`` with ties; rule in {to_x, to_y, split} or both. ``seed`` draws
    x, y (about half the entries tied, at least one) and the cotangent (no zeros)."""
    x = np.array([[0.5, -1.0, 2.0], [0.0, 0.3, -0.2]])
    y = np.array([[0.5, 0.0, 2.0], [0.0, 1.0, -0.5]])
    cot = np.array([[0.8, -0.6, 1.1], [-1.4, 0.5, 0.9]])
    if seed is not None:
        rng = np.random.default_rng(seed)
        x, y = rng.normal(size=(2, 2, 3))
        tie = rng.random(size=(2, 3)) < 0.5
        tie[rng.integers(2), rng.integers(3)] = True
        y[tie] = x[tie]
        cot = _signs_and_sizes(seed + 1, 6).reshape(2, 3)

    def backward(c, x, y):
        tie = (x == y).astype(np.float64)
        gx = {"to_x": x >= y, "to_y": x > y, "split": (x > y) + 0.5 * tie, "both": x >= y}[rule]
        gy = {"to_x": y > x, "to_y": y >= x, "split": (y > x) + 0.5 * tie, "both": y >= x}[rule]
        return c * gx, c * gy

    def build():
        def forward(x, y):
            return namespace_of(x, y).maximum(x, y)

        return forward, backward, (x.copy(), y.copy())

    return VJPCase(name=_seeded(f"4-maximum-ties-{rule}", seed), klass=4,
                   truth=WRONG if rule == "both" else RIGHT, family="maximum-ties",
                   build=build, options={"cotangent": cot}, fast=fast,
                   what=f"maximum(x, y) with 3 ties, cotangent {rule.replace('_', ' ')}")


for _rule in ("to_x", "to_y", "split", "both"):
    _add(maximum_ties_case(_rule, fast=_rule == "both"))

_family("norm-at-zero", 4, "f = ||x||_2 + |x - t|^2 / 2 at x = 0: the subdifferential of the "
        "norm is the unit ball, not the box [-1, 1]^n: 0, e_0 or a vector of norm 1/2 is right; "
        "all ones or 0.9 x ones (norm > 1, each entry inside [-1, 1]) is wrong")


def norm_at_zero_case(choice: str, n: int = 3, *, fast: bool = False) -> GradientCase:
    """Class 4: the 2-norm at 0 plus a smooth term; ``choice`` picks the norm's subgradient."""
    t = np.linspace(0.4, -0.6, n)
    sub = {"zero": np.zeros(n), "e0": np.eye(n)[0], "half": np.full(n, 0.5 / math.sqrt(n)),
           "ones": np.ones(n), "ninety": np.full(n, 0.9)}[choice]

    def build():
        def f(z):
            d = z - t
            return namespace_of(z).sqrt((z * z).sum()) + 0.5 * (d * d).sum()

        def grad(z):
            return (z - t) + sub

        return f, grad, np.zeros(n)

    truth = RIGHT if np.linalg.norm(sub) <= 1.0 else WRONG
    return GradientCase(name=f"4-norm-at-zero-{choice}", klass=4, truth=truth,
                        family="norm-at-zero", build=build, fast=fast,
                        what=f"norm's subgradient {choice} (its norm {np.linalg.norm(sub):.3g})")


for _choice in ("zero", "e0", "half", "ones", "ninety"):
    _add(norm_at_zero_case(_choice, fast=_choice in ("ones", "e0")))


# ---------------------------------------------------------------------------------------------
# Class 5: finite differences that cannot decide
# ---------------------------------------------------------------------------------------------

_family("saturated-tanh", 5, "f = sum(tanh(x)) with x_0 = s (20 or 40): f is exactly flat in "
        "x_0 in float64 and JAX's tanh' = 1 - tanh^2 gives 0; the exact sech^2(s) (mpmath) and "
        "the textbook 0 are right, the exact value with its sign flipped is wrong; with JAX or "
        "finite differences alone")


def saturated_tanh_case(s: float, hand: str, jax: bool, *, fast: bool = False) -> GradientCase:
    """Class 5: ``sum(tanh(x))`` at ``x = [s, 0.5, -1]``; ``hand`` in {exact, naive} (right) or
    flipped (wrong)."""
    x = np.array([s, 0.5, -1.0])
    with mpmath.workdps(60):
        exact = _rounded(mpmath.sech(_mp(v)) ** 2 for v in x)

    def grad(z):
        g = exact.copy()
        if hand == "naive":
            g = 1.0 - np.tanh(z) ** 2
        elif hand == "flipped":
            g[0] = -g[0]
        return g

    def build():
        return (lambda z: namespace_of(z).tanh(z).sum()), grad, x.copy()

    return GradientCase(
        name=f"5-saturated-tanh-{_fmt(s)}-{hand}-{'jax' if jax else 'fd'}", klass=5,
        truth=WRONG if hand == "flipped" else RIGHT, family="saturated-tanh", build=build,
        options={} if jax else {"jax": False}, fast=fast,
        what=f"tanh saturated at {s:g} (tanh' = {exact[0]:.3g}); hand {hand}"
             + ("" if jax else "; finite differences alone"))


for _s in (20.0, 40.0):
    for _hand in ("exact", "naive", "flipped"):
        for _jax in (True, False):
            _add(saturated_tanh_case(_s, _hand, _jax,
                                     fast=_s == 40.0 and _jax and _hand != "naive"))

_family("flat-offset", 5, "f = 1 + 1e-20 sum(x^2): every stencil reads exactly 1; the closed "
        "form 2e-20 x is right, dropping it (0) or flipping its sign is wrong")


def flat_offset_case(hand: str, jax: bool, *, fast: bool = False) -> GradientCase:
    """Class 5: a gradient far below f's resolution; ``hand`` in {exact, zero, flipped}."""
    x = np.array([0.6, -0.3, 0.9])

    def grad(z):
        return {"exact": 2e-20 * z, "zero": np.zeros_like(z), "flipped": -2e-20 * z}[hand]

    def build():
        return (lambda z: 1.0 + 1e-20 * (z * z).sum()), grad, x.copy()

    return GradientCase(name=f"5-flat-offset-{hand}-{'jax' if jax else 'fd'}", klass=5,
                        truth=RIGHT if hand == "exact" else WRONG, family="flat-offset",
                        build=build, options={} if jax else {"jax": False}, fast=fast,
                        what=f"f = 1 + 1e-20 |x|^2, hand {hand}"
                             + ("" if jax else "; finite differences alone"))


for _hand in ("exact", "zero", "flipped"):
    for _jax in (True, False):
        _add(flat_offset_case(_hand, _jax, fast=not _jax and _hand != "zero"))

_family("noisy", 5, "f = g(x) + 2 level |g(x0)| u(x), g = sum(sin x + x^2 / 2), with u a "
        "deterministic hash of x in [-1/2, 1/2) (frac of a scaled sine of a scaled x) that JAX "
        "does not differentiate (stop_gradient), so f carries noise of relative size `level`: "
        "g's gradient is right; g's gradient times (1 + bug) is wrong")


def _g_smooth(z):
    xp = namespace_of(z)
    return (xp.sin(z) + 0.5 * z * z).sum()


def _g_smooth_grad(z):
    return np.cos(z) + z


_NOISE_DIRECTION = np.array([0.7548776662, 0.5698402910, 0.3247179572])


def _hash_noise(z):
    """A value in [-1/2, 1/2) that changes unpredictably when z moves by 1e-9 or more: noise
    to finite differences, a constant to JAX."""
    xp = namespace_of(z)
    s = xp.sin((z * _NOISE_DIRECTION).sum() * 1e9) * 43758.5453
    return _stop_gradient(s - xp.floor(s) - 0.5)


def noisy_case(level: float, bug: float, jax: bool, *, seed: int | None = None,
               fast: bool = False) -> GradientCase:
    """Class 5: additive noise of relative size ``level`` on f; ``bug`` = 0 (right) or the
    relative error planted in every entry. ``seed`` draws x."""
    x = np.array([0.3, -0.8, 1.1]) if seed is None else _signs_and_sizes(seed, 3)
    amplitude = 2.0 * level * abs(float(_g_smooth(x)))

    def f(z):
        return _g_smooth(z) + amplitude * _hash_noise(z)

    def build():
        return f, (lambda z: _g_smooth_grad(z) * (1.0 + bug)), x.copy()

    return GradientCase(
        name=_seeded(f"5-noisy-{_fmt(level)}-bug{_fmt(bug)}-{'jax' if jax else 'fd'}", seed),
        klass=5,
        truth=WRONG if bug else RIGHT, family="noisy", build=build,
        options={} if jax else {"jax": False}, fast=fast,
        what=f"noise {level:g} relative, gradient off by {bug:g}"
             + ("" if jax else "; finite differences alone"))


for _level in (1e-8, 1e-6):
    for _bug in (0.0, 1e-3, 1e-5):
        for _jax in (True, False):
            _add(noisy_case(_level, _bug, _jax, fast=_level == 1e-8 and not _jax and _bug != 1e-5))

_family("stateful", 5, "f drifts by `drift` at every call (a counter inside): g's gradient is "
        "right; off by 1e-4 relative is wrong")


def stateful_case(drift: float, bug: float, jax: bool, *, seed: int | None = None,
                  fast: bool = False) -> GradientCase:
    """Class 5: ``f = g(x) + drift * calls``; ``bug`` = 0 (right) or a relative error. ``seed``
    draws x."""
    x = np.array([0.3, -0.8, 1.1]) if seed is None else _signs_and_sizes(seed, 3)

    def build():
        calls = [0]

        def f(z):
            calls[0] += 1
            return _g_smooth(z) + drift * calls[0]

        return f, (lambda z: _g_smooth_grad(z) * (1.0 + bug)), x.copy()

    return GradientCase(
        name=_seeded(f"5-stateful-{_fmt(drift)}-bug{_fmt(bug)}-{'jax' if jax else 'fd'}", seed),
        klass=5,
        truth=WRONG if bug else RIGHT, family="stateful", build=build,
        options={} if jax else {"jax": False}, fast=fast,
        what=f"f drifts {drift:g} per call, gradient off by {bug:g}"
             + ("" if jax else "; finite differences alone"))


for _drift in (1e-13, 1e-11, 1e-9):
    for _bug in (0.0, 1e-4):
        for _jax in (True, False):
            _add(stateful_case(_drift, _bug, _jax, fast=_drift == 1e-9 and not _jax))

_family("float32-inside", 5, "f casts x to float32 and computes in float32 (sum(sin x + x^2/2) "
        "or logsumexp): the float64 closed form is right; off by `bug` relative is wrong")


def float32_inside_case(g: str, bug: float, jax: bool, *, fast: bool = False) -> GradientCase:
    """Class 5: float32 arithmetic inside f; ``bug`` = 0 (right) or a relative error."""
    x = np.array([0.3, -0.8, 1.1])

    def f(z):
        xp = namespace_of(z)
        y = z.astype(xp.float32)
        value = (xp.sin(y) + 0.5 * y * y).sum() if g == "sin" else xp.log(xp.exp(y).sum())
        return value.astype(xp.float64)

    def exact(z):
        if g == "sin":
            return np.cos(z) + z
        e = np.exp(z - z.max())
        return e / e.sum()

    def build():
        return f, (lambda z: exact(z) * (1.0 + bug)), x.copy()

    return GradientCase(
        name=f"5-float32-{g}-bug{_fmt(bug)}-{'jax' if jax else 'fd'}", klass=5,
        truth=WRONG if bug else RIGHT, family="float32-inside", build=build,
        options={} if jax else {"jax": False}, fast=fast,
        what=f"{g} in float32 inside, gradient off by {bug:g}"
             + ("" if jax else "; finite differences alone"))


for _g in ("sin", "lse"):
    for _bug in (0.0, 1e-3, 1e-6):
        for _jax in (True, False):
            _add(float32_inside_case(_g, _bug, _jax, fast=_g == "sin" and _jax and _bug != 1e-6))

_family("aliasing", 5, "f = sum(x^2 / 2 + a sin(2 pi x / P)) with the period P = h/2, h or 2h "
        "(h the stencil's step) and x on multiples of P, so every stencil point sees the same "
        "phase; the periodic term's derivative is 1e-2 cos(.) ~ 1e-2: the full derivative is "
        "right, forgetting the periodic term is wrong")


def aliasing_case(period: float, hand: str, jax: bool, *, fast: bool = False) -> GradientCase:
    """Class 5: a periodic component of period ``period * H``; ``hand`` in {full, forgot}."""
    p = period * H
    a = 1e-2 * p / (2.0 * math.pi)
    x = np.array([0.25, -0.5, 0.75])

    def f(z):
        return (0.5 * z * z + a * namespace_of(z).sin(2.0 * math.pi * z / p)).sum()

    def grad(z):
        return z + (1e-2 * np.cos(2.0 * math.pi * z / p) if hand == "full" else 0.0)

    def build():
        return f, grad, x.copy()

    return GradientCase(
        name=f"5-aliasing-P{_fmt(period)}h-{hand}-{'jax' if jax else 'fd'}", klass=5,
        truth=RIGHT if hand == "full" else WRONG, family="aliasing", build=build,
        options={} if jax else {"jax": False}, fast=fast,
        what=f"period {period:g} h, hand {'with' if hand == 'full' else 'without'} the periodic "
             "term" + ("" if jax else "; finite differences alone"))


for _period in (0.5, 1.0, 2.0):
    for _hand in ("full", "forgot"):
        for _jax in (True, False):
            _add(aliasing_case(_period, _hand, _jax, fast=_period == 1.0 and not _jax))


# ---------------------------------------------------------------------------------------------
# Class 6: cancellation
# ---------------------------------------------------------------------------------------------

_family("confident-ce", 6, "softmax cross-entropy of logits [L, 0, ..., 0] and target class 0: "
        "the true-class gradient p_0 - 1 ~ -(n-1) e^-L; the mpmath value rounded to float64 "
        "(`exact`) and the textbook float64 softmax - onehot (`naive`) are right; the exact "
        "value with the true-class entry's sign flipped is wrong; `control`: target class 1 "
        "(no cancellation)")


def confident_ce_case(n: int, logit: float, hand: str, *, fast: bool = False) -> GradientCase:
    """Class 6: ``logsumexp(z) - z[t]`` at ``z = [logit, 0, ...]``; ``hand`` in {exact, naive,
    control} (right) or flipped (wrong)."""
    z0 = np.zeros(n)
    z0[0] = logit
    target = 1 if hand == "control" else 0
    with mpmath.workdps(60):
        e = [mpmath.exp(_mp(v)) for v in z0]
        total = mpmath.fsum(e)
        exact = _rounded(ei / total - (1 if i == target else 0) for i, ei in enumerate(e))

    def f(z):
        xp = namespace_of(z)
        m = z.max()
        return xp.log(xp.exp(z - m).sum()) + m - z[target]

    def grad(z):
        if hand == "naive":
            p = np.exp(z - z.max())
            p /= p.sum()
            p[target] -= 1.0
            return p
        g = exact.copy()
        if hand == "flipped":
            g[target] = -g[target]
        return g

    def build():
        return f, grad, z0.copy()

    return GradientCase(name=f"6-confident-ce-n{n}-L{_fmt(logit)}-{hand}", klass=6,
                        truth=WRONG if hand == "flipped" else RIGHT, family="confident-ce",
                        build=build, fast=fast,
                        what=f"{n} classes, logit {logit:g}, true-class gradient "
                             f"{exact[target]:.3g}; hand {hand}")


for _n in (3, 10):
    for _logit in (20.0, 40.0, 700.0):
        for _hand in ("exact", "naive", "flipped"):
            _add(confident_ce_case(_n, _logit, _hand,
                                   fast=_n == 3 and _logit == 40.0 and _hand != "naive"))
    _add(confident_ce_case(_n, 40.0, "control"))

_family("cancelling-sum", 6, "f = (sum x)^2 / 2 with x = [M, 1, -M, 0.25]: the sum cancels; "
        "the exact sum (mpmath) times ones and the float64 np.sum times ones are right; the "
        "exact gradient negated is wrong")


def cancelling_sum_case(big: float, hand: str, *, fast: bool = False) -> GradientCase:
    """Class 6: ``(sum x)^2 / 2`` with cancelling entries of size ``big``; ``hand`` in {exact,
    naive} (right) or negated (wrong)."""
    x = np.array([big, 1.0, -big, 0.25])
    with mpmath.workdps(60):
        exact_sum = float(mpmath.fsum(_mp(v) for v in x))

    def grad(z):
        s = {"exact": exact_sum, "naive": float(np.sum(z)), "negated": -exact_sum}[hand]
        return np.full_like(z, s)

    def build():
        return (lambda z: 0.5 * z.sum() ** 2), grad, x.copy()

    return GradientCase(name=f"6-cancelling-sum-{_fmt(big)}-{hand}", klass=6,
                        truth=WRONG if hand == "negated" else RIGHT, family="cancelling-sum",
                        build=build, fast=fast,
                        what=f"M = {big:g}, exact sum {exact_sum:g}, float64 sum "
                             f"{float(np.sum(x)):g}; hand {hand}")


for _big in (1e8, 1e12, 1e16):
    for _hand in ("exact", "naive", "negated"):
        _add(cancelling_sum_case(_big, _hand, fast=_big == 1e16 and _hand == "exact"))

_family("variance", 6, "f = sum((x - mean x)^2) at x = c + d with |d| ~ 1e-3: the exact "
        "2 (x - mean) (mpmath) and the float64 one are right; 2 (x - mean)(1 - 1/n) is wrong")


def variance_case(c: float, hand: str, *, fast: bool = False) -> GradientCase:
    """Class 6: a sum of squared deviations of nearly equal numbers of size ``c``."""
    x = c + np.array([0.1, -0.3, 0.25, -0.05]) * 1e-3
    n = x.size
    with mpmath.workdps(60):
        m = mpmath.fsum(_mp(v) for v in x) / n
        exact = _rounded(2 * (_mp(v) - m) for v in x)

    def f(z):
        d = z - z.mean()
        return (d * d).sum()

    def grad(z):
        if hand == "naive":
            return 2.0 * (z - z.mean())
        return exact * (1.0 - 1.0 / n) if hand == "wrong" else exact.copy()

    def build():
        return f, grad, x.copy()

    return GradientCase(name=f"6-variance-{_fmt(c)}-{hand}", klass=6,
                        truth=WRONG if hand == "wrong" else RIGHT, family="variance",
                        build=build, fast=fast, what=f"values {c:g} + ~1e-3, hand {hand}")


for _c in (1e4, 1e8):
    for _hand in ("exact", "naive", "wrong"):
        _add(variance_case(_c, _hand, fast=_c == 1e4 and _hand != "exact"))

_family("logistic-margin", 6, "f = sum(log(1 + e^-x)) written naively at x_0 = 40 or 100: f is "
        "flat in x_0; the exact -sigmoid(-x) (mpmath) and the textbook sigmoid(x) - 1 (= 0) are "
        "right; the exact value with entry 0's sign flipped is wrong")


def logistic_margin_case(v0: float, hand: str, *, fast: bool = False) -> GradientCase:
    """Class 6: the logistic loss at a large margin ``v0``."""
    x = np.array([v0, 0.3, -2.0])
    with mpmath.workdps(60):
        exact = _rounded(-1 / (1 + mpmath.exp(_mp(v))) for v in x)

    def f(z):
        xp = namespace_of(z)
        return xp.log(1.0 + xp.exp(-z)).sum()

    def grad(z):
        if hand == "naive":
            return 1.0 / (1.0 + np.exp(-z)) - 1.0
        g = exact.copy()
        if hand == "flipped":
            g[0] = -g[0]
        return g

    def build():
        return f, grad, x.copy()

    return GradientCase(name=f"6-logistic-margin-{_fmt(v0)}-{hand}", klass=6,
                        truth=WRONG if hand == "flipped" else RIGHT, family="logistic-margin",
                        build=build, fast=fast,
                        what=f"margin {v0:g} (gradient {exact[0]:.3g}), hand {hand}")


for _v0 in (40.0, 100.0):
    for _hand in ("exact", "naive", "flipped"):
        _add(logistic_margin_case(_v0, _hand, fast=_v0 == 40.0 and _hand != "naive"))


# ---------------------------------------------------------------------------------------------
# Class 7: domain edges
# ---------------------------------------------------------------------------------------------

_family("domain-edge", 7, "log, x log x or sqrt at x_0 = 1e-6 or 1e-9, closer to the domain's "
        "edge than the stencil's step: the closed form is right; entry 0 off by 1e-3 relative, "
        "or taken at x_0 + 1e-8 (a 'safe' shift), is wrong")


def domain_edge_case(fn: str, x0: float, hand: str, jax: bool, *,
                     fast: bool = False) -> GradientCase:
    """Class 7: ``sum(fn(x))`` at ``x = [x0, 0.5, 2]``; ``hand`` in {right, bug, shifted}."""
    x = np.array([x0, 0.5, 2.0])
    forms = {
        "log": (lambda xp, z: xp.log(z), lambda z: 1.0 / z),
        "xlogx": (lambda xp, z: z * xp.log(z), lambda z: np.log(z) + 1.0),
        "sqrt": (lambda xp, z: xp.sqrt(z), lambda z: 0.5 / np.sqrt(z)),
    }
    fwd, deriv = forms[fn]

    def grad(z):
        g = deriv(z)
        if hand == "bug":
            g[0] *= 1.0 + 1e-3
        elif hand == "shifted":
            g[0] = deriv(z[:1] + 1e-8)[0]
        return g

    def build():
        return (lambda z: fwd(namespace_of(z), z).sum()), grad, x.copy()

    return GradientCase(
        name=f"7-domain-edge-{fn}-{_fmt(x0)}-{hand}-{'jax' if jax else 'fd'}", klass=7,
        truth=RIGHT if hand == "right" else WRONG, family="domain-edge", build=build,
        options={} if jax else {"jax": False}, fast=fast,
        what=f"{fn} at {x0:g}, hand {hand}" + ("" if jax else "; finite differences alone"))


for _fn in ("log", "xlogx", "sqrt"):
    for _x0 in (1e-6, 1e-9):
        for _hand in ("right", "bug", "shifted"):
            for _jax in ((True, False) if _fn == "log" else (True,)):
                _add(domain_edge_case(_fn, _x0, _hand, _jax,
                                      fast=_fn == "log" and _x0 == 1e-6 and not _jax
                                      and _hand != "shifted"))

_family("overflowing-activation", 7, "check_activation of an activation that overflows at its "
        "probes +-1000 (exp, exp(-v), cosh, sinh, naive softplus log(1 + e^v)): with its right "
        "derivative, and with the derivative off by 1e-3 relative")

_OVERFLOWING = {
    "exp": (lambda xp, v: xp.exp(v), np.exp),
    "exp_neg": (lambda xp, v: xp.exp(-v), lambda v: -np.exp(-v)),
    "cosh": (lambda xp, v: xp.cosh(v), np.sinh),
    "sinh": (lambda xp, v: xp.sinh(v), np.cosh),
    "softplus_naive": (lambda xp, v: xp.log(1.0 + xp.exp(v)), SIGMOID.f),
}


def overflowing_activation_case(kind: str, bug: float, *, fast: bool = False) -> ActivationCase:
    """Class 7: an activation that is Inf at +-1000; ``bug`` = 0 or a relative error in df."""
    fwd, deriv = _OVERFLOWING[kind]

    def build():
        return Activation(kind, lambda v: fwd(namespace_of(v), v),
                          lambda v: deriv(v) * (1.0 + bug))

    return ActivationCase(name=f"7-overflowing-activation-{kind}-bug{_fmt(bug)}", klass=7,
                          truth=WRONG if bug else RIGHT, family="overflowing-activation",
                          build=build, fast=fast, what=f"{kind}, df off by {bug:g}")


for _kind in _OVERFLOWING:
    for _bug in (0.0, 1e-3):
        _add(overflowing_activation_case(_kind, _bug, fast=_kind == "exp"))

_SELU_L, _SELU_A = 1.0507009873554805, 1.6732632423543772

_family("kink-beside", 7, "f = sum(selu(x)) with x_0 = delta, a hair from the kink at 0 (inside "
        "the stencil): the one-sided derivative on x_0's side is right; the other side's, or "
        "the average of both, is wrong")


def _selu(z):
    xp = namespace_of(z)
    return _SELU_L * xp.where(z > 0, z, _SELU_A * xp.expm1(xp.where(z > 0, 0.0, z)))


def _selu_d(z):
    return _SELU_L * np.where(z > 0, 1.0, _SELU_A * np.exp(np.minimum(z, 0.0)))


def kink_beside_case(delta: float, hand: str, jax: bool, *, fast: bool = False) -> GradientCase:
    """Class 7: selu at ``x_0 = delta`` (not on its kink); ``hand`` in {right, other, mid}."""
    x = np.array([delta, 0.5, -0.8])
    left, right = _SELU_L * _SELU_A * math.exp(min(delta, 0.0)), _SELU_L

    def grad(z):
        g = _selu_d(z)
        if hand == "other":
            g[0] = left if delta > 0 else right
        elif hand == "mid":
            g[0] = 0.5 * (left + right)
        return g

    def build():
        return (lambda z: _selu(z).sum()), grad, x.copy()

    return GradientCase(
        name=f"7-kink-beside-{_fmt(delta)}-{hand}-{'jax' if jax else 'fd'}", klass=7,
        truth=RIGHT if hand == "right" else WRONG, family="kink-beside", build=build,
        options={} if jax else {"jax": False}, fast=fast,
        what=f"selu at {delta:g}, hand {hand}" + ("" if jax else "; finite differences alone"))


for _delta in (1e-7, -1e-7, 1e-9, -3e-6):
    for _hand in ("right", "other", "mid"):
        _add(kink_beside_case(_delta, _hand, True, fast=_delta == 1e-7 and _hand != "mid"))
for _delta in (1e-7, -1e-7):
    for _hand in ("right", "other", "mid"):
        _add(kink_beside_case(_delta, _hand, False))
for _delta in (1e-10, -1e-10, -1e-12):
    for _hand in ("right", "other", "mid"):
        for _jax in (True, False):
            _add(kink_beside_case(_delta, _hand, _jax))

_family("selu-threshold", 7, "check_activation of selu whose derivative switches sides at a "
        "threshold beside the kink (v > -1e-6, v > 1e-6, v > -0.1) instead of at 0, with the "
        "kink declared or not: wrong between the threshold and 0; thresholds v > 0 and v >= 0 "
        "are right")


def selu_threshold_case(threshold: float, strict: bool, declared: bool, *,
                        fast: bool = False) -> ActivationCase:
    """Class 7: selu' switching at ``threshold`` (``>`` if strict else ``>=``)."""

    def df(v):
        side = v > threshold if strict else v >= threshold
        return _SELU_L * np.where(side, 1.0, _SELU_A * np.exp(np.minimum(v, 0.0)))

    def build():
        return Activation("selu", _selu, df, kinks=(0.0,) if declared else ())

    op = ">" if strict else ">="
    return ActivationCase(
        name=f"7-selu-threshold-{op.replace('>=', 'ge').replace('>', 'gt')}{_fmt(threshold)}"
             f"-{'declared' if declared else 'undeclared'}", klass=7,
        truth=RIGHT if threshold == 0 else WRONG, family="selu-threshold", build=build,
        fast=fast, what=f"selu' switches at v {op} {threshold:g}; kink at 0 "
                        f"{'declared' if declared else 'not declared'}")


for _threshold, _strict, _declared in ((0.0, True, True), (0.0, False, True),
                                       (-1e-6, True, True), (1e-6, True, True),
                                       (-1e-6, True, False), (-0.1, True, False)):
    _add(selu_threshold_case(_threshold, _strict, _declared,
                             fast=_threshold == -1e-6 and _declared))


# ---------------------------------------------------------------------------------------------
# Other blind spots
# ---------------------------------------------------------------------------------------------

_family("fd-resolution", "other", "finite differences alone (jax=False) on a smooth f = "
        "sum(sin(x) e^(x/3)): one entry off by 1e-4, 1e-6 or 1e-8 relative")


def fd_resolution_case(bug: float, *, fast: bool = False) -> GradientCase:
    """Other: how small an error finite differences alone let through."""
    x = np.array([0.3, -0.8, 1.1, 2.0])

    def f(z):
        xp = namespace_of(z)
        return (xp.sin(z) * xp.exp(z / 3.0)).sum()

    def grad(z):
        g = np.exp(z / 3.0) * (np.cos(z) + np.sin(z) / 3.0)
        g[2] *= 1.0 + bug
        return g

    def build():
        return f, grad, x.copy()

    return GradientCase(name=f"other-fd-resolution-bug{_fmt(bug)}", klass="other",
                        truth=WRONG if bug else RIGHT, family="fd-resolution", build=build,
                        options={"jax": False}, fast=fast,
                        what=f"finite differences alone, entry 2 off by {bug:g}")


for _bug in (0.0, 1e-4, 1e-6, 1e-8):
    _add(fd_resolution_case(_bug, fast=_bug == 1e-6))

_family("large-directional", "other", "2,500 entries, finite differences alone (more than "
        "max_exhaustive: random directions): one entry doubled, where that entry is typical or "
        "1e-10 of the others")


def large_directional_case(bug: str, *, fast: bool = False) -> GradientCase:
    """Other: a directional check by finite differences alone; ``bug`` in {none, typical,
    tiny}."""
    rng = np.random.default_rng(11)
    x = rng.uniform(0.5, 1.5, size=2500)
    if bug == "tiny":
        x[17] = 1e-10
    w = np.linspace(0.5, 1.5, x.size)

    def grad(z):
        g = w * z
        if bug != "none":
            g[17] *= 2.0
        return g

    def build():
        return (lambda z: 0.5 * (w * z * z).sum()), grad, x.copy()

    return GradientCase(name=f"other-large-directional-{bug}", klass="other",
                        truth=RIGHT if bug == "none" else WRONG, family="large-directional",
                        build=build, options={"jax": False}, fast=fast,
                        what=f"2500 entries by finite differences alone, bug: {bug}")


for _bug in ("none", "typical", "tiny"):
    _add(large_directional_case(_bug, fast=_bug == "tiny"))

_family("subnormal", "other", "f = 1e-300 sum(x^2) at x = [1e-6, -3e-9, 2e-10]: the "
        "gradient's entries are 2e-306, then subnormal (6e-309, 4e-310); the closed form is "
        "right, its sign flipped is wrong")


def subnormal_case(hand: str, *, fast: bool = False) -> GradientCase:
    """Other: gradients in the subnormal range."""
    x = np.array([1e-6, -3e-9, 2e-10])

    def build():
        return (lambda z: 1e-300 * (z * z).sum()), (
            lambda z: 2e-300 * z * (-1.0 if hand == "flipped" else 1.0)), x.copy()

    return GradientCase(name=f"other-subnormal-{hand}", klass="other",
                        truth=WRONG if hand == "flipped" else RIGHT, family="subnormal",
                        build=build, fast=fast, what=f"subnormal gradient, hand {hand}")


for _hand in ("exact", "flipped"):
    _add(subnormal_case(_hand, fast=True))

_family("probe-gap", "other", "check_activation of hard tanh clip(v, -1, 1) whose derivative "
        "is 1 on |v| <= 1.1 (wrong on 1 < |v| <= 1.1, between the probe grid's points), kinks "
        "declared or not")


def probe_gap_case(declared: bool, *, fast: bool = False) -> ActivationCase:
    """Other: a wrong derivative on an interval the activation check does not probe."""

    def build():
        return Activation("hardtanh", lambda v: namespace_of(v).clip(v, -1.0, 1.0),
                          lambda v: (np.abs(v) <= 1.1).astype(np.float64),
                          kinks=(-1.0, 1.0) if declared else ())

    return ActivationCase(name=f"other-probe-gap-{'declared' if declared else 'undeclared'}",
                          klass="other", truth=WRONG, family="probe-gap", build=build,
                          fast=fast, what="hard tanh' = 1 on |v| <= 1.1, kinks "
                                          + ("declared" if declared else "not declared"))


for _declared in (True, False):
    _add(probe_gap_case(_declared, fast=not _declared))
