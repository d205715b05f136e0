"""Hypothesis strategies for property tests of hand-derived gradients: networks, batches and
targets, and the inputs of any layer of your own.

    from hypothesis import given
    from oracle import check_network
    from oracle.strategies import cases

    @given(cases())
    def test_my_backward(case):
        net = case.network()               # a reference.Network (or your subclass: cls=...)
        assert check_network(net, case.X, case.T).ok, case.to_python()

What is drawn (every part shrinks towards the simplest value first: one layer, width 1, batch 1,
the identity activation, the mse loss, zero or seed-0 weights, zero inputs):

- a network: depth 1-4, widths 1-8, any activation per layer (the built-ins, the user-supplied
  ``USER_ACTIVATIONS`` below, or your own ``Activation`` objects), every loss with the output
  activations it allows (cross_entropy needs softmax, binary_cross_entropy needs sigmoid);
- weights: either a seed's initial weights or explicit entries in ``[-2, 2]``;
- a batch of 1-8 samples whose per-sample shape has 1-3 dimensions and flattens to ``n0``;
  entries in ``[-3, 3]``;
- targets valid for the loss: any rows for mse; one-hot rows, probability rows or integer labels
  ``(B,)`` for cross_entropy; 0/1 targets or probabilities for binary_cross_entropy.

Values that sit on kinks are drawable on purpose (zeros, +-1, small dyadic numbers that cancel
exactly): they are not filtered away, the oracle handles them. Every drawn entry is either 0 or
at least ``MIN_MAGNITUDE = 2^-20`` (~1e-6) in magnitude (smaller draws are snapped to 0): a
product of tiny entries underflows to a subnormal, which JAX on CPU flushes to zero and numpy
keeps (relu'(1e-310) is 1 in numpy and relu'(0) = 0 in JAX), and a pre-activation of 1e-190
sits on a kink closer than any finite-difference stencil can resolve; neither says anything
about the gradient under test.

Everything drawn is a ``Case`` (a ``NetworkSpec`` plus ``X`` and ``T``): ``case.to_python()`` is a
standalone reproducer (no Hypothesis needed to run it) and ``repr(case)`` is a ``Case.of(...)``
expression to pin a regression with ``@example(case=...)``.

**Layers of your own** (the last section): ``layer_inputs(spec)`` draws every input of a layer
with shapes that fit each other (``{"x": ("B", "n"), "w": ("n", "m"), "b": ("m",)}``: each name
drawn once), integer labels (``labels("B", classes="C")``) and masks; ``float_arrays(shape)``
draws one array of a given or drawn shape. Float entries are either drawn as above with points
planted exactly on kinks and ties (repeated maxima), or, with ``spread=``, well-conditioned (at
least ``spread / 2`` apart and away from the kinks; ``plant=True`` adds exact kinks and ties:
no entry then sits *near* one, where finite differences are in doubt). Each entry's plant is
drawn beside its value, so sizes shrink to their low end, entries to 0 and plants away
independently, and a failure ends as the smallest case (a bug that shows in one sample ends
with one sample); ``oracle.testing.assert_vjp`` prints it as a standalone script:

    from hypothesis import given, settings
    from oracle.strategies import PHASES, layer_inputs
    from oracle.testing import assert_vjp

    @settings(deadline=None, phases=PHASES)   # JAX traces each new shape once (~0.1 s);
    @given(layer_inputs({"x": ("B", "n"), "w": ("n", "m"), "b": ("m",)}))  # no explain phase
    def test_affine_backward(inputs):
        assert_vjp(affine_forward, affine_backward, inputs)

Needs ``hypothesis`` (``pip install simple-net[strategies]``); ``import oracle`` does not load
this module.
"""

from __future__ import annotations

import ast
import functools
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from hypothesis import Phase, assume
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from reference import ACTIVATIONS, LOSSES, Activation, Network
from reference.array_namespace import namespace_of

__all__ = [
    "INPUT_BOUND",
    "MIN_MAGNITUDE",
    "OUTPUT_ACTIVATION",
    "PHASES",
    "SMOOTH",
    "USER_ACTIVATIONS",
    "WEIGHT_BOUND",
    "TIES",
    "Case",
    "Floats",
    "Labels",
    "Masks",
    "NetworkSpec",
    "activations",
    "batches",
    "cases",
    "float_arrays",
    "floats",
    "input_shapes",
    "labels",
    "layer_inputs",
    "masks",
    "network_specs",
    "targets",
    "weights_for",
]

WEIGHT_BOUND = 2.0
"""Explicit weights lie in [-2, 2]: pre-activations stay moderate (|V| <~ 50 after one layer of
width 8), so nothing overflows, yet tanh/sigmoid can saturate and kinks can be hit exactly."""

INPUT_BOUND = 3.0
"""Inputs and mse targets lie in [-3, 3]."""

MIN_MAGNITUDE = 2.0**-20
"""Drawn entries are 0 or at least this large in magnitude (see the module docstring)."""

PHASES = tuple(phase for phase in Phase if phase is not Phase.explain)
"""Hypothesis' phases without ``explain``, for gradient property tests
(``@settings(phases=PHASES)``). The explain phase reruns the minimal failing example under a
tracer and lists the lines that only failing examples ran: for a gradient check those are the
oracle building its failure report, which the report itself already explains."""


# ---------------------------------------------------------------------------------------------
# User-supplied activations: written as a user would (forward in array-API style, so that JAX
# can trace it; derivative in numpy), with the derivative convention at kinks that JAX's
# ``where`` gives (the value of the branch taken at the kink).
# ---------------------------------------------------------------------------------------------


def _square(v):
    return v * v


def _square_d(v):
    return 2.0 * v


def _sine(v):
    return namespace_of(v).sin(v)


def _sine_d(v):
    return np.cos(v)


def _absolute(v):
    return namespace_of(v).where(v > 0, v, -v)


def _absolute_d(v):
    return np.where(v > 0, 1.0, -1.0)  # abs'(0) = -1: the branch where() takes at 0


def _hard_tanh(v):
    xp = namespace_of(v)
    return xp.where(v > 1, 1.0, xp.where(v < -1, -1.0, v))


def _hard_tanh_d(v):
    return np.where((v >= -1) & (v <= 1), 1.0, 0.0)  # slope 1 at the kinks +-1 (where's branch)


USER_ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in (
        Activation("square", _square, _square_d),
        Activation("sine", _sine, _sine_d),
        Activation("absolute", _absolute, _absolute_d, kinks=(0.0,)),
        Activation("hard_tanh", _hard_tanh, _hard_tanh_d, kinks=(-1.0, 1.0)),
    )
}
"""User-supplied activations (not built in), drawn alongside the built-ins."""

_BUILTIN_ORDER = ("identity", "relu", "tanh", "sigmoid", "leaky_relu", "elu", "softplus",
                  "silu", "gelu", "softmax")
"""Shrinking goes towards the front of this list: identity is the simplest activation."""

SMOOTH = frozenset({"identity", "tanh", "sigmoid", "elu", "softplus", "silu", "gelu",
                    "softmax", "square", "sine"})
"""Names of the activations above that are differentiable everywhere (elu is C1: enough)."""

OUTPUT_ACTIVATION = {name: loss.output_activation for name, loss in LOSSES.items()}
"""The output activation each built-in loss requires (None: any)."""

_ALL = tuple(ACTIVATIONS[n] for n in _BUILTIN_ORDER) + tuple(USER_ACTIVATIONS.values())


def _name(a: str | Activation) -> str:
    return a if isinstance(a, str) else a.name


def _pool(names: Sequence[str | Activation] | None) -> tuple[str | Activation, ...]:
    """Activation specs to draw from: built-ins as names, anything else as the object."""
    if names is None:
        items: Sequence[str | Activation] = _ALL
    else:
        items = names
    out = []
    for a in items:
        if isinstance(a, str):
            a = USER_ACTIVATIONS.get(a, a)
        if isinstance(a, Activation) and a.builtin and ACTIVATIONS.get(a.name) is a:
            a = a.name
        if isinstance(a, str) and a not in ACTIVATIONS:
            raise ValueError(f"unknown activation {a!r}")
        out.append(a)
    if not out:
        raise ValueError("need at least one activation to draw from")
    return tuple(out)


def activations(names: Sequence[str | Activation] | None = None) -> st.SearchStrategy:
    """One activation spec: a built-in's name or an ``Activation`` object (user-supplied)."""
    return st.sampled_from(_pool(names))


# ---------------------------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------------------------


def _array_literal(a: np.ndarray) -> str:
    """Python source for ``a`` that rebuilds it bit for bit (repr of a float round-trips)."""
    return f"np.array({a.tolist()!r})"


@dataclass(frozen=True, eq=False)
class NetworkSpec:
    """Everything needed to build one network.

    Attributes:
        sizes: ``(n0, ..., nL)``.
        activations: one spec per layer: a built-in's name or an ``Activation``.
        loss: a built-in loss name.
        seed: the seed of the initial weights.
        weights: explicit weights (``weights[k]`` of shape ``(n_k + 1, n_{k+1})``), or None for
            the seed's initial weights.
    """

    sizes: tuple[int, ...]
    activations: tuple[str | Activation, ...]
    loss: str
    seed: int = 0
    weights: tuple[np.ndarray, ...] | None = None

    @property
    def depth(self) -> int:
        return len(self.sizes) - 1

    @property
    def activation_names(self) -> tuple[str, ...]:
        return tuple(_name(a) for a in self.activations)

    @property
    def smooth(self) -> bool:
        """True when every activation is differentiable everywhere."""
        return all(n in SMOOTH for n in self.activation_names)

    def network(self, cls: type[Network] = Network) -> Network:
        """A fresh network (of class ``cls``) with these sizes, activations, loss and weights."""
        net = cls(list(self.sizes), list(self.activations), self.loss, seed=self.seed)
        if self.weights is not None:
            net.weights = [np.array(w, dtype=np.float64) for w in self.weights]
        return net

    def _activation_source(self) -> list[str]:
        out = []
        for a in self.activations:
            if isinstance(a, str):
                out.append(repr(a))
            elif USER_ACTIVATIONS.get(a.name) is a:
                out.append(f"USER_ACTIVATIONS[{a.name!r}]")
            else:
                out.append(f"<your Activation {a.name!r}>")
        return out

    def to_python(self, cls_expr: str = "Network") -> list[str]:
        """Lines of Python that build this network as ``net``."""
        acts = ", ".join(self._activation_source())
        lines = [f"net = {cls_expr}({list(self.sizes)!r}, activations=[{acts}], "
                 f"loss={self.loss!r}, seed={self.seed})"]
        if self.weights is not None:
            lines.append("net.weights = [")
            lines.extend(f"    {_array_literal(np.asarray(w))}," for w in self.weights)
            lines.append("]")
        return lines


def input_shapes(n0: int, max_dims: int = 3) -> st.SearchStrategy[tuple[int, ...]]:
    """Per-sample shapes of 1-``max_dims`` dimensions whose product is ``n0``; ``(n0,)`` first."""
    divisors = [d for d in range(1, n0 + 1) if n0 % d == 0]

    @st.composite
    def shapes(draw):
        dims = draw(st.integers(1, max_dims))
        shape = []
        rest = n0
        for _ in range(dims - 1):
            d = draw(st.sampled_from([d for d in divisors if rest % d == 0]))
            shape.append(d)
            rest //= d
        return (*shape, rest)

    return shapes()


def _snap(x: float) -> float:
    return 0.0 if abs(x) < MIN_MAGNITUDE else x


def _floats(bound: float, low: float | None = None) -> st.SearchStrategy[float]:
    """Floats in [low, bound] (low defaults to -bound), 0 or at least MIN_MAGNITUDE in size."""
    return st.floats(-bound if low is None else low, bound, allow_nan=False,
                     allow_infinity=False, allow_subnormal=False).map(_snap)


def weights_for(sizes: Sequence[int], bound: float = WEIGHT_BOUND) -> st.SearchStrategy:
    """Explicit weights for ``sizes``: a tuple of ``(n_k + 1, n_{k+1})`` float64 arrays."""
    return st.tuples(*(
        hnp.arrays(np.float64, (n_in + 1, n_out), elements=_floats(bound))
        for n_in, n_out in zip(sizes[:-1], sizes[1:])
    ))


@st.composite
def network_specs(
    draw,
    *,
    min_depth: int = 1,
    max_depth: int = 4,
    min_width: int = 1,
    max_width: int = 8,
    activations: Sequence[str | Activation] | None = None,
    losses: Sequence[str] = ("mse", "cross_entropy", "binary_cross_entropy"),
    square: bool = False,
    smooth: bool = False,
    explicit_weights: bool | None = None,
) -> NetworkSpec:
    """A ``NetworkSpec``: sizes, one activation per layer, a loss that allows the output activation.

    Args:
        activations: what hidden layers (and an mse output) may use; default: every built-in and
            every ``USER_ACTIVATIONS`` entry. Names or ``Activation`` objects.
        losses: the losses to draw from; each forces its output activation.
        square: all widths equal (n0 = n1 = ... = nL).
        smooth: only activations differentiable everywhere (see ``SMOOTH``).
        explicit_weights: True: explicit entries only; False: seeded initial weights only;
            None: either.
    """
    pool = _pool(activations)
    if smooth:
        pool = tuple(a for a in pool if _name(a) in SMOOTH)
        if not pool:
            raise ValueError("no smooth activation in the pool")
    depth = draw(st.integers(min_depth, max_depth))
    if square:
        n = draw(st.integers(min_width, max_width))
        sizes = (n,) * (depth + 1)
    else:
        sizes = tuple(draw(st.integers(min_width, max_width)) for _ in range(depth + 1))
    loss = draw(st.sampled_from(tuple(losses)))
    required = OUTPUT_ACTIVATION[loss]
    acts = [draw(st.sampled_from(pool)) for _ in range(depth - (required is not None))]
    if required is not None:
        acts.append(required)
    if explicit_weights is None:
        explicit = draw(st.booleans())
    else:
        explicit = explicit_weights
    if explicit:
        weights = draw(weights_for(sizes))
        seed = 0
    else:
        weights = None
        seed = draw(st.integers(0, 2**16))
    return NetworkSpec(sizes, tuple(acts), loss, seed, weights)


# ---------------------------------------------------------------------------------------------
# Batches and targets
# ---------------------------------------------------------------------------------------------


def batches(n0: int, batch: int, bound: float = INPUT_BOUND) -> st.SearchStrategy[np.ndarray]:
    """Inputs ``(batch, *in_shape)`` with ``prod(in_shape) == n0``, entries in [-bound, bound]."""
    return input_shapes(n0).flatmap(
        lambda shape: hnp.arrays(np.float64, (batch, *shape), elements=_floats(bound)))


def _probability_rows(batch: int, n: int) -> st.SearchStrategy[np.ndarray]:
    # Non-negative weights plus a one-hot row (so no row is all zero), normalised: each row sums
    # to 1 within a few ulps, far inside the reference's 1e-9 row-sum tolerance.
    raw = hnp.arrays(np.float64, (batch, n), elements=_floats(1.0, 0.0))
    labels = hnp.arrays(np.int64, (batch,), elements=st.integers(0, n - 1))

    def normalise(pair):
        w, lab = pair
        w = w + np.eye(n)[lab]
        return w / w.sum(axis=1, keepdims=True)

    return st.tuples(raw, labels).map(normalise)


def targets(loss: str, batch: int, n_out: int) -> st.SearchStrategy[np.ndarray]:
    """Targets valid for ``loss``: shape ``(batch, n_out)``, or ``(batch,)`` integer labels."""
    if loss == "cross_entropy":
        labels = hnp.arrays(np.int64, (batch,), elements=st.integers(0, n_out - 1))
        return st.one_of(
            labels,
            labels.map(lambda lab: np.eye(n_out)[lab]),
            _probability_rows(batch, n_out),
        )
    if loss == "binary_cross_entropy":
        return st.one_of(
            hnp.arrays(np.float64, (batch, n_out), elements=st.sampled_from([0.0, 1.0])),
            hnp.arrays(np.float64, (batch, n_out), elements=_floats(1.0, 0.0)),
        )
    if loss == "mse":
        return hnp.arrays(np.float64, (batch, n_out), elements=_floats(INPUT_BOUND))
    raise ValueError(f"no target strategy for loss {loss!r}")


# ---------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Case:
    """A network and a batch: what one example of a gradient property is about.

    Attributes:
        spec: the network.
        X: inputs ``(B, *in_shape)``.
        T: targets as the user passes them (rows ``(B, nL)`` or labels ``(B,)``).
    """

    spec: NetworkSpec
    X: np.ndarray
    T: np.ndarray

    @classmethod
    def of(
        cls,
        sizes: Sequence[int],
        activations: Sequence[str | Activation],
        loss: str,
        X: object,
        T: object,
        *,
        seed: int = 0,
        weights: Sequence[object] | None = None,
    ) -> Case:
        """Build a case from plain values (lists are fine): what ``repr(case)`` prints."""
        acts = tuple(USER_ACTIVATIONS.get(a, a) if isinstance(a, str) else a
                     for a in activations)
        ws = None if weights is None else tuple(np.asarray(w, dtype=np.float64)
                                                for w in weights)
        t = np.asarray(T)
        if t.dtype.kind != "i":
            t = t.astype(np.float64)
        return cls(NetworkSpec(tuple(int(n) for n in sizes), acts, loss, seed, ws),
                   np.asarray(X, dtype=np.float64), t)

    @property
    def batch(self) -> int:
        return int(self.X.shape[0])

    @property
    def in_shape(self) -> tuple[int, ...]:
        return tuple(self.X.shape[1:])

    def network(self, cls: type[Network] = Network) -> Network:
        """A fresh network built from ``spec`` (of class ``cls``)."""
        return self.spec.network(cls)

    @property
    def x(self) -> np.ndarray:
        """The inputs flattened per sample: ``(B, n0)``."""
        return self.X.reshape(self.batch, -1)

    @property
    def t(self) -> np.ndarray:
        """The targets as float rows ``(B, nL)`` (integer labels turned into one-hot rows)."""
        if self.T.ndim == 1:
            return np.eye(self.spec.sizes[-1])[self.T]
        return self.T.astype(np.float64)

    def to_python(self, *, cls_expr: str = "Network", imports: Sequence[str] = ()) -> str:
        """A standalone script that rebuilds this case and prints the oracle's report."""
        users = any(not isinstance(a, str) for a in self.spec.activations)
        lines = ["import numpy as np", "from reference import Network",
                 "from oracle import check_network"]
        if users:
            lines.append("from oracle.strategies import USER_ACTIVATIONS")
        lines.extend(imports)
        lines.append("")
        lines.extend(self.spec.to_python(cls_expr))
        lines.append(f"X = {_array_literal(self.X)}  # shape {self.X.shape}")
        t_src = (f"np.array({self.T.tolist()!r})" if self.T.dtype.kind == "i"
                 else _array_literal(self.T))
        lines.append(f"T = {t_src}")
        lines.append("print(check_network(net, X, T))")
        return "\n".join(lines)

    def __repr__(self) -> str:
        s = self.spec
        acts = ", ".join(repr(a) if isinstance(a, str) else repr(a.name) for a in s.activations)
        parts = [f"{list(s.sizes)!r}", f"[{acts}]", repr(s.loss),
                 f"X={self.X.tolist()!r}", f"T={self.T.tolist()!r}"]
        if s.seed:
            parts.append(f"seed={s.seed}")
        if s.weights is not None:
            parts.append(f"weights={[np.asarray(w).tolist() for w in s.weights]!r}")
        return f"Case.of({', '.join(parts)})"


def _finite_forward(case: Case) -> bool:
    with np.errstate(all="ignore"):
        net = case.network()
        y = net.forward(case.x)
        return bool(np.all(np.isfinite(y)) and np.isfinite(net.loss(case.x, case.T)))


@st.composite
def cases(
    draw,
    specs: st.SearchStrategy[NetworkSpec] | None = None,
    *,
    min_batch: int = 1,
    max_batch: int = 8,
) -> Case:
    """A ``Case``: a network from ``specs`` (default ``network_specs()``), inputs and targets.

    Cases whose forward pass overflows are rejected (``assume``); with the default bounds that
    takes a deep stack of ``square`` layers and is rare.
    """
    spec = draw(network_specs() if specs is None else specs)
    batch = draw(st.integers(min_batch, max_batch))
    X = draw(batches(spec.sizes[0], batch))
    T = draw(targets(spec.loss, batch, spec.sizes[-1]))
    case = Case(spec, X, T)
    assume(_finite_forward(case))
    return case


# ---------------------------------------------------------------------------------------------
# Layers of your own: arrays of given or drawn shapes, kinks and ties, related shapes, labels
# ---------------------------------------------------------------------------------------------

TIES = ("row max", "previous", "any")
"""How an entry is tied to another: set to the maximum of its row (the last axis: a repeated
maximum, as max-pooling, argmax and softmax rows meet it), to the entry before it on the last
axis (a tie inside a pooling window), or to any earlier entry."""

PLANT_ODDS = 4
"""Each entry is planted (put exactly on a kink, or tied to another entry) with probability
about ``1 / PLANT_ODDS``; shrinking unplants it."""

MAX_BACK = 7
"""An "any" tie copies one of the ``MAX_BACK + 1`` entries before it (fewer near the start)."""


def _plant_choices(kinks: Sequence[float], ties: bool) -> tuple[tuple[str, object], ...]:
    """What an entry may be planted as: ``("kink", value)`` or ``("tie", how)``."""
    return tuple(("kink", k) for k in kinks) + (
        tuple(("tie", how) for how in TIES) if ties else ())


@functools.lru_cache(maxsize=64)
def _integers(low: int, high: int) -> st.SearchStrategy[int]:
    return st.integers(low, high)  # built once: a strategy is validated when first drawn


def _draw_plant(draw, choices: Sequence[tuple[str, object]]) -> tuple[str, object, int] | None:
    """One entry's plant: None (what it shrinks to), or ``(kind, what, back)``. Drawn inside
    the entry's own composite, not a nested one: flat spans shrink in far fewer steps."""
    if not choices:
        return None
    pick = draw(_integers(0, PLANT_ODDS * len(choices) - 1))
    if pick < (PLANT_ODDS - 1) * len(choices):
        return None
    kind, what = choices[pick - (PLANT_ODDS - 1) * len(choices)]
    back = draw(_integers(0, MAX_BACK)) if what == "any" else 0
    return kind, what, back


def _apply_plants(flat: np.ndarray, plants: Sequence[tuple[str, object, int] | None],
                  last: int) -> np.ndarray:
    """Put the planted entries of ``flat`` (rows of ``last`` entries) on their kinks and ties,
    in entry order, once every value is drawn (so a row's maximum is known)."""
    for i, plant in enumerate(plants):
        if plant is None:
            continue
        kind, what, back = plant
        if kind == "kink":
            flat[i] = what
        elif what == "row max":
            row = i - i % last
            flat[i] = np.max(flat[row:row + last])
        elif what == "previous":
            flat[i] = flat[i - 1] if i % last else flat[i]
        elif i:  # "any": one of the entries before, counted back from this one
            flat[i] = flat[i - 1 - back % i]
    return flat


def _free_slots(n: int, low: float, high: float, spread: float,
                kinks: Sequence[float]) -> list[int]:
    """Slots of width ``spread`` in [low, high] whose centres are ``spread`` from every kink."""
    slots = int((high - low) // spread)
    free = [s for s in range(slots)
            if all(abs(low + (s + 0.5) * spread - k) >= spread for k in kinks)]
    if len(free) < n:
        raise ValueError(f"{n} entries do not fit in [{low}, {high}] at least {spread} apart "
                         f"and away from the kinks {tuple(kinks)}: lower spread or raise bound")
    return free


@st.composite
def _entry(draw, values: st.SearchStrategy[float],
           choices: tuple[tuple[str, object], ...]) -> tuple[float, object]:
    """One entry: its value and its plant, in one span."""
    return draw(values), _draw_plant(draw, choices)


@st.composite
def _spread_entry(draw, free: st.SearchStrategy[int], noise: st.SearchStrategy[float],
                  choices: tuple[tuple[str, object], ...]) -> tuple[int, float, object]:
    """One well-conditioned entry: its slot, its noise and its plant, in one span."""
    return draw(free), draw(noise), _draw_plant(draw, choices)


@functools.lru_cache(maxsize=256)
def _entry_strategy(bound: float, low: float,
                    choices: tuple[tuple[str, object], ...]) -> st.SearchStrategy:
    """An entry of ordinary values (built once per set of options: a strategy is validated
    when first drawn from, which costs more than drawing)."""
    return _entry(_floats(bound, low), choices)


@functools.lru_cache(maxsize=256)
def _spread_entries(n: int, low: float, high: float, spread: float, kinks: tuple[float, ...],
                    choices: tuple[tuple[str, object], ...]) -> st.SearchStrategy:
    """``n`` well-conditioned entries: distinct slots, a little noise, a plant each."""
    free = _free_slots(n, low, high, spread, kinks)
    entry = _spread_entry(st.sampled_from(free), st.floats(-spread / 4, spread / 4), choices)
    return st.lists(entry, min_size=n, max_size=n, unique_by=lambda e: e[0])


@st.composite
def float_arrays(
    draw,
    shape: Sequence[int] | None = None,
    *,
    bound: float = INPUT_BOUND,
    low: float | None = None,
    kinks: Sequence[float] = (0.0,),
    ties: bool = True,
    spread: float | None = None,
    plant: bool | None = None,
    max_dims: int = 3,
    max_side: int = 4,
) -> np.ndarray:
    """A float64 array for one input of a layer.

    Args:
        shape: the shape, or None to draw one (1 to ``max_dims`` axes of 1 to ``max_side``;
            shrinks towards ``(1,)``).
        bound, low: entries lie in ``[low, bound]`` (``low`` defaults to ``-bound``).
        kinks: values some entries may be put on *exactly* (0 for relu, abs, max; +-1 for a
            hard tanh): the points a one-sided derivative decides and no stencil resolves.
            Kinks outside ``[low, bound]`` are not planted.
        ties: some entries may be tied to others (see ``TIES``): repeated maxima.
        spread: None (the default): entries 0 or at least ``MIN_MAGNITUDE`` in size, shrinking
            towards 0; they may land *near* a kink or a tie, where finite differences cannot
            confirm a derivative (doubt, which ``--gradcheck-strict`` fails). A number:
            **well-conditioned** entries, at least ``spread / 2`` apart from each other and
            from every kink (``spread=0.05``: 0.025, ~800 times the reach of a stencil of finite
            differences, 2h <= 3.1e-5 for |x| <= 3).
        plant: put some entries *exactly* on the kinks and ties (each entry with probability
            about ``1 / PLANT_ODDS``, decided beside its value, so shrinking unplants entries
            one by one and never holds a shape larger than the failure needs). None (the
            default): plant unless ``spread`` is given. ``spread=0.05, plant=True``: every
            entry is exactly on a kink or a tie, or well clear of all of them: no doubt, so
            it suits ``--gradcheck-strict``.

    Returns:
        An array of ``shape``; every entry finite.
    """
    shape = tuple(draw(hnp.array_shapes(min_dims=1, max_dims=max_dims, max_side=max_side))
                  if shape is None else shape)
    low = -bound if low is None else low
    n = int(np.prod(shape, dtype=np.int64))
    near = tuple(float(k) for k in kinks)  # well-conditioned entries keep clear of them all
    kinks = [k for k in near if low <= k <= bound]  # a positive input gets no kink at 0
    choices = _plant_choices(kinks, ties) if (spread is None if plant is None else plant) \
        else ()
    # Each entry's value and plant are drawn together (one span per entry) and mean nothing
    # that depends on a size or on a later draw, so shrinking can drop trailing entries (a
    # smaller batch) or unplant one without disturbing the others. (Plants chosen by flat
    # index after the whole array pinned the larger shape: the extra rows stayed, all zero.)
    if spread is None:
        entry = _entry_strategy(float(bound), float(low), choices)
        entries = [draw(entry) for _ in range(n)]
        flat = np.array([value for value, _ in entries], dtype=np.float64)
    else:
        entries = draw(_spread_entries(n, float(low), float(bound), float(spread), near,
                                       choices))
        flat = np.array([low + (slot + 0.5) * spread + noise for slot, noise, _ in entries],
                        dtype=np.float64)
    plants = [entry[-1] for entry in entries]
    return _apply_plants(flat, plants, shape[-1] if shape else 1).reshape(shape)


Dim = int | str
"""One axis of an input in ``layer_inputs``: a size, a name (``"B"``, drawn once and shared by
every input that names it) or an expression of names and ints (``"n+1"``, ``"2*C"``,
``"H-2"``; operators + - * //)."""


@dataclass(frozen=True)
class Floats:
    """A float input of ``layer_inputs`` with options of its own (see ``float_arrays``)."""

    shape: tuple[Dim, ...]
    options: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True)
class Labels:
    """Integer labels in ``[0, classes)`` (``classes``: a size or a dimension's name)."""

    shape: tuple[Dim, ...]
    classes: Dim


@dataclass(frozen=True)
class Masks:
    """A boolean mask (dropout, padding): a constant input, like labels."""

    shape: tuple[Dim, ...]


def _shape_of(shape: Dim | Sequence[Dim]) -> tuple[Dim, ...]:
    return (shape,) if isinstance(shape, (int, str)) else tuple(shape)


def floats(shape: Dim | Sequence[Dim], **options: object) -> Floats:
    """A float input with its own ``float_arrays`` options, e.g.
    ``floats(("m",), low=0.5, kinks=())`` for a positive scale."""
    unknown = set(options) - {"bound", "low", "kinks", "ties", "spread", "plant"}
    if unknown:
        raise TypeError(f"floats() takes float_arrays' options, not {sorted(unknown)}")
    return Floats(_shape_of(shape), tuple(sorted(options.items())))


def labels(shape: Dim | Sequence[Dim], classes: Dim) -> Labels:
    """Integer labels ``(shape)`` in ``[0, classes)``, e.g. ``labels("B", classes="C")``."""
    return Labels(_shape_of(shape), classes)


def masks(shape: Dim | Sequence[Dim]) -> Masks:
    """A boolean mask of ``shape``."""
    return Masks(_shape_of(shape))


_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
        ast.FloorDiv: operator.floordiv}


def _names(dim: Dim) -> set[str]:
    if isinstance(dim, int):
        return set()
    return {n.id for n in ast.walk(ast.parse(dim, mode="eval")) if isinstance(n, ast.Name)}


def _evaluate(dim: Dim, sizes: Mapping[str, int]) -> int:
    if isinstance(dim, int):
        return dim

    def value(node: ast.AST) -> int:
        if isinstance(node, ast.Expression):
            return value(node.body)
        if isinstance(node, ast.Name):
            return sizes[node.id]
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](value(node.left), value(node.right))
        raise ValueError(f"dimension {dim!r}: only names, ints and + - * // are allowed")

    return int(value(ast.parse(dim, mode="eval")))


def _size_strategy(given: object, name: str, max_side: int) -> st.SearchStrategy[int]:
    if given is None:
        return st.integers(1, max_side)
    if isinstance(given, st.SearchStrategy):
        return given
    if isinstance(given, int) and not isinstance(given, bool):
        return st.just(given)
    if isinstance(given, tuple) and len(given) == 2:
        return st.integers(*given)
    raise TypeError(f"sizes[{name!r}] must be an int, a (low, high) pair or a strategy, got "
                    f"{given!r}")


@st.composite
def layer_inputs(
    draw,
    spec: Mapping[str, Sequence[Dim] | Floats | Labels | Masks],
    *,
    sizes: Mapping[str, object] | None = None,
    max_side: int = 4,
    bound: float = INPUT_BOUND,
    kinks: Sequence[float] = (0.0,),
    ties: bool = True,
    spread: float | None = None,
    plant: bool | None = None,
) -> dict[str, np.ndarray]:
    """A layer's inputs, with shapes that fit each other: a dict ``{name: array}``.

        layer_inputs({"x": ("B", "n"), "w": ("n", "m"), "b": ("m",)})
        layer_inputs({"scores": ("B", "C"), "y": labels("B", classes="C")})
        layer_inputs({"x": ("B", "C", "H", "W"), "gamma": floats("C", low=0.5, kinks=())},
                     sizes={"H": (2, 4)})

    Args:
        spec: input name -> its shape (a tuple of ``Dim``: float64 entries), or ``floats(...)``
            (float with options of its own), ``labels(...)`` (int64 in ``[0, classes)``),
            ``masks(...)`` (bool). Every dimension name is drawn once and shared.
        sizes: name -> an int, a ``(low, high)`` range or a strategy; names not given are drawn
            in ``[1, max_side]``. A drawn size shrinks towards its low end. A shape whose
            expression comes out below 1 is rejected (``assume``): give the names ranges that
            keep it positive.
        bound, kinks, ties, spread, plant: the float inputs' defaults (``float_arrays``).

    Returns:
        ``{name: array}`` in ``spec``'s order: pass it to ``check_vjp`` as keywords (names
        matching forward's parameters), or ``tuple(inputs.values())`` positionally.
    """
    if not spec:
        raise ValueError("spec must name at least one input")
    sizes = dict(sizes or {})
    dims: list[Dim] = []
    for item in spec.values():
        shape = item.shape if isinstance(item, (Floats, Labels, Masks)) else _shape_of(item)
        dims.extend(shape)
        if isinstance(item, Labels):
            dims.append(item.classes)
    names = sorted(set().union(*(_names(d) for d in dims)) | set(sizes))
    drawn = {name: draw(_size_strategy(sizes.get(name), name, max_side)) for name in names}
    out: dict[str, np.ndarray] = {}
    defaults = {"bound": bound, "kinks": tuple(kinks), "ties": ties, "spread": spread,
                "plant": plant}
    for key, item in spec.items():
        raw = item.shape if isinstance(item, (Floats, Labels, Masks)) else _shape_of(item)
        shape = tuple(_evaluate(d, drawn) for d in raw)
        assume(all(s >= 1 for s in shape))
        if isinstance(item, Labels):
            classes = _evaluate(item.classes, drawn)
            assume(classes >= 1)
            out[key] = draw(hnp.arrays(np.int64, shape, elements=st.integers(0, classes - 1)))
        elif isinstance(item, Masks):
            out[key] = draw(hnp.arrays(np.bool_, shape, elements=st.booleans()))
        else:
            options = {**defaults, **dict(item.options)} if isinstance(item, Floats) \
                else defaults
            out[key] = draw(float_arrays(shape, **options))
    return out
