"""Section: checking users' own layers — ``oracle.check_vjp`` on the layer zoo against torch
``gradcheck`` and jax ``check_grads``, cold and warm, verdicts and times in one run.

Every checker checks the *same* hand-derived numpy backward of each layer of
``property_tests/layer_zoo.py`` (the zoo's student-style layers, each with a right backward and one
with a planted bug):

- the oracle: ``check_vjp(layer.forward, backward, inputs)`` with its defaults (full precision:
  every entry against JAX where JAX can differentiate the forward, finite differences along
  random directions to confirm it; a stencil per entry when JAX cannot);
- torch: a ``torch.autograd.Function`` whose forward calls the numpy forward and whose backward
  calls the numpy backward (float64 tensors), checked by ``torch.autograd.gradcheck`` with its
  default tolerances (a ``GradcheckError`` is a FAIL);
- JAX: a ``jax.custom_vjp`` whose forward and backward go through ``jax.pure_callback`` to the
  numpy code, checked by ``jax.test_util.check_grads(f, args, order=1, modes=["rev"])``
  (an ``AssertionError`` is a FAIL).

Integer and bool inputs (labels, ids, masks) are closed over as constants in both wrappers;
dict inputs are passed positionally to the wrappers and by keyword to the numpy code; tuple
outputs (``lstm_step``'s ``(h, c)``) are tuples of tensors / a tuple pytree.

Cold: each checker runs in a fresh subprocess of its own (``python -m benchmarks.vjp_checks
--cold CHECKER``) that imports only its library, warms it up on a tiny unrelated function, then
times the first check of every zoo layer, in the zoo's order (one sample per layer; the wrapper
construction counts); ``COLD_ROUNDS`` such processes per checker, the checkers alternating, and
a layer's cold time is the median of its samples. Warm: in this process, after the verdicts, the
same check repeated (``ctx.time``, median of the samples).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .sections import Context, markdown_table, ms, ratio, section

__all__ = ["CHECKERS", "LayerResult", "Spec", "check_layer", "cold_times", "make_check"]

CHECKERS = ("oracle", "gradcheck", "check_grads")
PEER_MODULE = {"oracle": "jax", "gradcheck": "torch", "check_grads": "jax"}
ROOT = Path(__file__).resolve().parents[1]
COLD_TIMEOUT = 600.0
COLD_ROUNDS = 3


# ---------------------------------------------------------------------------------------------
# the layers' inputs and outputs, as both wrappers see them
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spec:
    """A zoo layer's inputs: names, values, dict or tuple, and which are floating.

    The wrappers see only the floating inputs (positionally); the others are constants.
    """

    names: tuple[str, ...]
    values: tuple[np.ndarray, ...]
    keyword: bool
    floating: tuple[int, ...]

    @classmethod
    def of(cls, inputs: Sequence | Mapping) -> Spec:
        if isinstance(inputs, Mapping):
            names, raw, keyword = tuple(inputs), tuple(inputs.values()), True
        else:
            raw, keyword = tuple(inputs), False
            names = tuple(f"inputs[{i}]" for i in range(len(raw)))
        values = tuple(np.asarray(v) for v in raw)
        floating = tuple(i for i, v in enumerate(values) if np.issubdtype(v.dtype, np.floating))
        return cls(names, values, keyword, floating)

    def floats(self) -> list[np.ndarray]:
        return [np.array(self.values[i], dtype=np.float64) for i in self.floating]

    def call(self, fn: Callable, floats: Sequence[np.ndarray], *head: object) -> object:
        """``fn(*head, *inputs)`` (keywords for a dict) with the floating inputs replaced."""
        values = list(self.values)
        for i, x in zip(self.floating, floats):
            values[i] = x
        if self.keyword:
            return fn(*head, **dict(zip(self.names, values)))
        return fn(*head, *values)

    def gradients(self, result: object) -> tuple[np.ndarray, ...]:
        """A backward's result as one float64 array per floating input, in input order."""
        if isinstance(result, Mapping):
            parts = [result[self.names[i]] for i in self.floating]
        elif isinstance(result, (tuple, list)):
            parts = list(result)
            if len(parts) == len(self.values) != len(self.floating):
                parts = [parts[i] for i in self.floating]
        else:
            parts = [result]
        return tuple(_c(p) for p in parts)


def _c(a: object) -> np.ndarray:
    """A C-contiguous float64 copy (safe for ``torch.from_numpy`` and JAX callbacks)."""
    return np.array(a, dtype=np.float64, order="C")


def _outputs(out: object) -> tuple[np.ndarray, ...]:
    return tuple(_c(o) for o in out) if isinstance(out, (tuple, list)) else (_c(out),)


def _cotangent(parts: Sequence[np.ndarray], tuple_out: bool) -> object:
    """What the numpy backward gets: a tuple for a tuple output, a float for a scalar one."""
    if tuple_out:
        return tuple(parts)
    return float(parts[0]) if parts[0].ndim == 0 else parts[0]


# ---------------------------------------------------------------------------------------------
# the three checkers: make_check(...) -> a no-argument callable returning the raw verdict
# ---------------------------------------------------------------------------------------------


def _oracle(forward: Callable, backward: Callable, inputs) -> Callable[[], object]:
    from oracle import check_vjp

    return lambda: check_vjp(forward, backward, inputs)


def _gradcheck(forward: Callable, backward: Callable, inputs) -> Callable[[], object]:
    import torch
    from torch.autograd.gradcheck import GradcheckError

    spec = Spec.of(inputs)
    tuple_out = isinstance(spec.call(forward, spec.floats()), (tuple, list))

    def numpy_of(t):
        return t.detach().numpy().copy()

    class Layer(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *xs):
            ctx.save_for_backward(*xs)
            outs = _outputs(spec.call(forward, [numpy_of(x) for x in xs]))
            res = tuple(torch.from_numpy(o) for o in outs)
            return res if tuple_out else res[0]

        @staticmethod
        def backward(ctx, *gs):
            xs = [numpy_of(x) for x in ctx.saved_tensors]
            cot = _cotangent([_c(numpy_of(g)) for g in gs], tuple_out)
            grads = spec.gradients(spec.call(backward, xs, cot))
            return tuple(torch.from_numpy(g) for g in grads)

    tensors = tuple(torch.tensor(x, dtype=torch.float64, requires_grad=True)
                    for x in spec.floats())

    def check() -> object:
        try:
            return bool(torch.autograd.gradcheck(Layer.apply, tensors))
        except GradcheckError:
            return False

    return check


def _check_grads(forward: Callable, backward: Callable, inputs) -> Callable[[], object]:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from jax.test_util import check_grads

    spec = Spec.of(inputs)
    out0 = spec.call(forward, spec.floats())
    tuple_out = isinstance(out0, (tuple, list))
    outs0 = _outputs(out0)
    out_shapes = tuple(jax.ShapeDtypeStruct(o.shape, jnp.float64) for o in outs0)
    in_shapes = tuple(jax.ShapeDtypeStruct(x.shape, jnp.float64) for x in spec.floats())
    n_out = len(outs0)

    def np_forward(*xs):
        return _outputs(spec.call(forward, [_c(x) for x in xs]))

    def np_backward(*args):
        cot = _cotangent([_c(g) for g in args[:n_out]], tuple_out)
        return spec.gradients(spec.call(backward, [_c(x) for x in args[n_out:]], cot))

    @jax.custom_vjp
    def layer(*xs):
        outs = jax.pure_callback(np_forward, out_shapes, *xs)
        return tuple(outs) if tuple_out else outs[0]

    def layer_fwd(*xs):
        return layer(*xs), xs

    def layer_bwd(xs, g):
        gs = tuple(g) if tuple_out else (g,)
        return tuple(jax.pure_callback(np_backward, in_shapes, *gs, *xs))

    layer.defvjp(layer_fwd, layer_bwd)
    return grads_checked(check_grads, layer, tuple(jnp.asarray(x) for x in spec.floats()),
                         order=1)


def grads_checked(check_grads: Callable, fn: Callable, args: tuple, *, order: int
                  ) -> Callable[[], bool]:
    """A no-argument check by jax's ``check_grads(fn, args, order, modes=["rev"])``: True when
    it passes, False when it raises its AssertionError (any other error propagates)."""
    def check() -> bool:
        try:
            check_grads(fn, args, order=order, modes=["rev"])
            return True
        except AssertionError:
            return False

    return check


_MAKERS = {"oracle": _oracle, "gradcheck": _gradcheck, "check_grads": _check_grads}


def make_check(checker: str, forward: Callable, backward: Callable,
               inputs) -> Callable[[], object]:
    """A no-argument callable: ``checker``'s check of ``backward`` (a Report for the oracle,
    True/False for the peers)."""
    return _MAKERS[checker](forward, backward, inputs)


def _run(check: Callable[[], object]) -> object:
    """Run a check; an exception (not a verdict) comes back as its one-line description."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return check()
    except Exception as exc:  # a peer that cannot run the layer at all
        return f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:80] if str(exc) else ''}"


def verdict(result: object) -> tuple[bool | None, str]:
    """``(passed, text)``: passed is None for an error."""
    if isinstance(result, str):
        return None, result
    if isinstance(result, bool):
        return result, "pass" if result else "FAIL"
    rows = result.rows
    if not result.ok:
        first = result.first_failure
        return False, f"FAIL {first.input if first.input is not None else first.term}"
    doubts = [r.input for r in rows if r.status == "doubt"]
    if doubts:
        return True, "doubt " + ", ".join(doubts)
    return True, "OK (kink)" if any(r.status == "kink" for r in rows) else "OK"


def judged_by(report: object) -> str:
    """Which source judged the oracle's check: JAX direct, numpy on JAX, or FD alone."""
    if isinstance(report, str) or isinstance(report, bool):
        return "—"
    notes = " ".join(report.notes)
    if "finite differences alone" in report.judged_by:
        return "FD alone"
    if "numpy code run on JAX arrays" in notes:
        return "numpy on JAX"
    if "traced forward as it is" in notes:
        return "JAX direct"
    return report.judged_by


# ---------------------------------------------------------------------------------------------
# one layer: verdicts, warm times
# ---------------------------------------------------------------------------------------------


@dataclass
class LayerResult:
    """One zoo layer: each checker's verdict on the right and on the buggy backward, the
    oracle's source of truth, and times in seconds (cold filled in by the section)."""

    name: str
    bug_input: str
    judged_by: str = "—"
    right: dict[str, str] = field(default_factory=dict)
    buggy: dict[str, str] = field(default_factory=dict)
    passed: dict[str, bool | None] = field(default_factory=dict)
    caught: dict[str, bool | None] = field(default_factory=dict)
    named_bug: bool = False
    warm: dict[str, float] = field(default_factory=dict)
    cold: dict[str, float] = field(default_factory=dict)


def check_layer(layer, checkers: Sequence[str] = CHECKERS, *, seed: int = 0,
                time_fn: Callable | None = None) -> LayerResult:
    """Every checker on ``layer``'s right and buggy backward; warm times of the right one when
    ``time_fn`` (``ctx.time``-like: ``{name: fn} -> {name: Timing}``) is given."""
    inputs = layer.make_inputs(np.random.default_rng(seed))
    out = LayerResult(layer.name, layer.bug_input)
    right_checks = {}
    for checker in checkers:
        right_checks[checker] = make_check(checker, layer.forward, layer.backward, inputs)
        right = _run(right_checks[checker])
        wrong = _run(make_check(checker, layer.forward, layer.buggy, inputs))
        out.passed[checker], out.right[checker] = verdict(right)
        passed_buggy, out.buggy[checker] = verdict(wrong)
        out.caught[checker] = None if passed_buggy is None else not passed_buggy
        if checker == "oracle":
            out.judged_by = judged_by(right)
            first = None if isinstance(wrong, str) else wrong.first_failure
            out.named_bug = first is not None and first.input == layer.bug_input
    if time_fn is not None:
        timed = {c: _quiet(fn) for c, fn in right_checks.items()
                 if out.passed[c] is not None}
        out.warm = {c: t.median for c, t in time_fn(timed).items()}
    return out


def _quiet(fn: Callable[[], object]) -> Callable[[], object]:
    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn()

    return run


# ---------------------------------------------------------------------------------------------
# cold: a fresh process per checker
# ---------------------------------------------------------------------------------------------


def _warm_up_traceable(x):
    return 0.5 * x * x + x


def _warm_up_traceable_backward(dout, x):
    return dout * (x + 1.0)


def _warm_up_ufunc(x):
    return np.sin(x)


def _warm_up_ufunc_backward(dout, x):
    return dout * np.cos(x)


WARM_UPS = ((_warm_up_traceable, _warm_up_traceable_backward),
            (_warm_up_ufunc, _warm_up_ufunc_backward))
"""Tiny functions unrelated to the zoo (a shape none of its inputs has), one written with
operators only (JAX traces it as it is) and one calling a numpy ufunc (JAX cannot)."""


def cold_times(checker: str, names: Sequence[str]) -> dict:
    """In *this* process: warm ``checker`` up on tiny unrelated functions, then time the first
    check of each named layer's right backward. ``{"warm_up": s, "layers": {name: [s, text]}}``.
    """
    from property_tests.layer_zoo import LAYERS

    if checker == "gradcheck":
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)))
    t0 = time.perf_counter()
    x = np.linspace(-1.3, 1.1, 11)
    for forward, backward in WARM_UPS:
        _run(make_check(checker, forward, backward, (x,)))
    warm_up = time.perf_counter() - t0
    layers = {}
    for name in names:
        layer = LAYERS[name]
        inputs = layer.make_inputs(np.random.default_rng(0))
        t0 = time.perf_counter()
        result = _run(make_check(checker, layer.forward, layer.backward, inputs))
        took = time.perf_counter() - t0
        layers[name] = [took, verdict(result)[1]]
    return {"warm_up": warm_up, "layers": layers}


def cold_in_subprocess(checker: str, names: Sequence[str]) -> dict:
    """``cold_times`` in a fresh ``python -m benchmarks.vjp_checks --cold`` process (same
    environment: thread settings, XLA flags)."""
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.vjp_checks", "--cold", checker, *names],
        cwd=ROOT, capture_output=True, text=True, timeout=COLD_TIMEOUT, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        raise RuntimeError(f"cold run of {checker} failed: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------
# the section
# ---------------------------------------------------------------------------------------------


def _ratio_stats(results: list[LayerResult], kind: str, peer: str) -> tuple[str, str, str]:
    """Median ratio, total ratio (sum over sum) and how many layers meet <= 1x."""
    pairs = [(getattr(r, kind).get("oracle"), getattr(r, kind).get(peer)) for r in results]
    pairs = [(a, b) for a, b in pairs if a is not None and b]
    if not pairs:
        return "—", "—", "—"
    med = statistics.median(a / b for a, b in pairs)
    total = sum(a for a, _ in pairs) / sum(b for _, b in pairs)
    met = sum(a <= b for a, b in pairs)
    return f"{med:.2f}", f"{total:.2f}", f"{met}/{len(pairs)}"


@section("Checking users' own layers: check_vjp on the layer zoo")
def vjp_checks(ctx: Context) -> str:
    from property_tests.layer_zoo import LAYERS

    started = time.perf_counter()
    if ctx.peers.get("jax") is None:
        return "jax is not installed: skipped (the oracle's check_vjp needs it to judge fast)."
    checkers = [c for c in CHECKERS if ctx.peers.get(PEER_MODULE[c]) is not None]
    notes = [f"{c}: {PEER_MODULE[c]} is not installed, skipped." for c in CHECKERS
             if c not in checkers]
    names = list(LAYERS)

    # Cold: COLD_ROUNDS fresh processes per checker, the checkers alternating round by round
    # (one sample per layer per process: a layer's cold time is the median of its rounds).
    rounds = 1 if ctx.quick else COLD_ROUNDS
    runs: dict[str, list[dict]] = {c: [] for c in checkers}
    for _ in range(rounds):
        for checker in checkers:
            if checker in runs and len(runs[checker]) < rounds:
                try:
                    runs[checker].append(cold_in_subprocess(checker, names))
                except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
                    notes.append(f"{checker} cold: {exc}")
                    del runs[checker]
    cold: dict[str, dict] = {}
    cold_warm_up: dict[str, float] = {}
    cold_totals: dict[str, list[float]] = {}
    for checker, done in runs.items():
        cold[checker] = {name: [statistics.median(r["layers"][name][0] for r in done),
                                done[0]["layers"][name][1]] for name in names}
        cold_warm_up[checker] = statistics.median(r["warm_up"] for r in done)
        cold_totals[checker] = [sum(v[0] for v in r["layers"].values()) for r in done]
        for name in names:
            said = {r["layers"][name][1] for r in done}
            if len(said) > 1:
                notes.append(f"{checker} on {name}'s right backward, cold: {sorted(said)}")

    if ctx.quick:
        timing = {"cycles": 1, "samples_per_cycle": 3, "settle_seconds": 0.01}
    else:
        timing = {"cycles": 3, "samples_per_cycle": 3, "settle_seconds": 0.03}
    results = []
    for name, layer in LAYERS.items():
        res = check_layer(layer, checkers, time_fn=lambda fns: ctx.time(fns, **timing))
        for checker in checkers:
            if name in cold.get(checker, {}):
                res.cold[checker], said = cold[checker][name]
                if said != res.right.get(checker):
                    notes.append(f"{checker} on {name}'s right backward: {said} in its cold "
                                 f"process, {res.right.get(checker)} in this one")
        results.append(res)

    verdict_rows, time_rows = [], []
    for r in results:
        verdict_rows.append([
            r.name, r.judged_by,
            *(f"{r.right.get(c, '—')} / {_mark(r.buggy.get(c, '—'))}" for c in CHECKERS),
            r.bug_input,
        ])
        time_rows.append([
            r.name,
            *(f"{ms(r.cold.get(c))} / {ms(r.warm.get(c))}" for c in CHECKERS),
            ratio(r.cold.get("oracle"), r.cold.get("gradcheck")),
            ratio(r.warm.get("oracle"), r.warm.get("gradcheck")),
            ratio(r.cold.get("oracle"), r.cold.get("check_grads")),
            ratio(r.warm.get("oracle"), r.warm.get("check_grads")),
        ])

    n = len(results)
    total_rows = []
    for c in CHECKERS:
        if c not in checkers:
            total_rows.append([c, "—", "—", "—", "—", "—"])
            continue
        passed = sum(r.passed.get(c) is True for r in results)
        caught = sum(r.caught.get(c) is True for r in results)
        errors = sum(r.passed.get(c) is None or r.caught.get(c) is None for r in results)
        cold_total = sum(r.cold.get(c, 0.0) for r in results)
        warm_total = sum(r.warm.get(c, 0.0) for r in results)
        total_rows.append([c, f"{passed}/{n}", f"{caught}/{n}", errors,
                           f"{cold_total:.2f}" if c in cold else "—", f"{warm_total:.2f}"])
    ratio_rows = []
    for peer in ("gradcheck", "check_grads"):
        if peer in checkers:
            for kind in ("cold", "warm"):
                med, total, met = _ratio_stats(results, kind, peer)
                ratio_rows.append([f"oracle / {peer}, {kind}", med, total, met])
    met = []
    for kind in ("cold", "warm"):
        med, total, _ = _ratio_stats(results, kind, "gradcheck")
        if total != "—":
            met.append(f"{kind} {'yes' if float(total) <= 1 else '**no**'} (total {total}×, "
                       f"median {med}×)")
    sources = {s: sum(r.judged_by == s for r in results)
               for s in ("JAX direct", "numpy on JAX", "FD alone")}
    named = sum(r.named_bug for r in results)
    doubts = sum(r.right.get("oracle", "").startswith("doubt") for r in results)

    parts = [
        "Every checker checks the same hand-derived numpy backward of each layer of "
        f"`property_tests/layer_zoo.py` ({n} layers, each also with one planted bug): the "
        "oracle's `check_vjp(forward, backward, inputs)` with its defaults (full precision); "
        "torch `gradcheck` (default tolerances) of a `torch.autograd.Function` whose forward "
        "and backward call the numpy code; jax `check_grads(order=1, modes=['rev'])` of a "
        "`jax.custom_vjp` whose forward and backward go through `jax.pure_callback` to the "
        "numpy code. Integer and bool inputs are constants in the wrappers. *Cold*: the first "
        "check of the layer in a process, each checker in a fresh subprocess of its own (only "
        "its library imported, warmed up first on two tiny unrelated functions, one written "
        "with operators and one calling a numpy ufunc: "
        + ", ".join(f"{c} {v * 1e3:.0f} ms" for c, v in cold_warm_up.items())
        + "), the layers checked in the zoo's order, one sample each, building the wrapper "
        f"included; {rounds} such process(es) per checker, the checkers alternating, a layer's "
        "cold time the median of its samples (totals of the processes, s: "
        + "; ".join(f"{c} " + ", ".join(f"{t:.2f}" for t in ts) for c, ts in cold_totals.items())
        + "). *Warm*: the same check repeated in this process, median of "
        f"{timing['cycles'] * timing['samples_per_cycle']} samples in alternating blocks.",
        "",
        "Verdicts: right backward / buggy backward (a caught bug in bold; the oracle names the "
        "first input it finds wrong). *judged by*: the oracle's source of truth — JAX traced "
        "the forward as it is, JAX differentiated the forward's numpy code run on JAX arrays, "
        "or finite differences alone.",
        "",
        markdown_table(["layer", "judged by", "oracle", "torch gradcheck", "jax check_grads",
                        "bug in"], verdict_rows),
        "",
        "Times, ms cold / warm, and the oracle's time over each peer's:",
        "",
        markdown_table(["layer", "oracle", "torch gradcheck", "jax check_grads",
                        "/ gradcheck cold", "/ gradcheck warm", "/ check_grads cold",
                        "/ check_grads warm"], time_rows),
        "",
        markdown_table(["checker", "right backwards passed", "bugs caught",
                        "errors (no verdict)", "total cold s", "total warm s"], total_rows),
        "",
        f"The oracle named the bug's input first on {named}/{n} layers; doubt on "
        f"{doubts} right backward(s). Its source of truth: JAX direct on "
        f"{sources['JAX direct']}, numpy on JAX on {sources['numpy on JAX']}, finite "
        f"differences alone on {sources['FD alone']}.",
        "",
        markdown_table(["ratio (target ≤ 1× gradcheck)", "median", "total (sum / sum)",
                        "layers ≤ 1×"], ratio_rows),
        "",
        "Target ≤ 1× gradcheck, cold and warm, by the total: " + ("; ".join(met) or "—") + ".",
        "",
        f"Section wall time: {time.perf_counter() - started:.0f} s.",
    ]
    if notes:
        parts += ["", *(f"- {note}" for note in notes)]
    return "\n".join(parts)


def _mark(text: str) -> str:
    return f"**{text}**" if text.startswith("FAIL") else text


def _main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] != "--cold" or argv[1] not in CHECKERS:
        print("usage: python -m benchmarks.vjp_checks --cold CHECKER [LAYER ...]",
              file=sys.stderr)
        return 2
    from property_tests.layer_zoo import LAYERS

    print(json.dumps(cold_times(argv[1], argv[2:] or list(LAYERS))))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
