"""Memory of the reference's training step: tracemalloc peak and page faults, after warm-up.

numpy reports its array buffers to ``tracemalloc``, so the peak seen around one call is the
most memory that call held at once beyond what existed before it. It is compared with the
activations a step must keep for its backward pass (V and Y of every layer).
"""

from __future__ import annotations

import resource
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass

from reference import Network

from .sections import Context, markdown_table, section

__all__ = ["MemoryReport", "measure_memory"]


@dataclass(frozen=True)
class MemoryReport:
    """Bytes: ``peak`` allocated during one call, ``activations`` (V and Y of every layer),
    ``workspace`` (the buffers the network keeps between steps), ``weights``; and the page
    faults of one call (mean over ``calls`` calls)."""

    peak: int
    activations: int
    workspace: int
    weights: int
    page_faults: float


def _peak_of(fn: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def _faults_of(fn: Callable[[], object], calls: int) -> float:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(calls):
        fn()
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / calls


def measure_memory(
    net: Network, fn: Callable[[], object], *, batch: int, calls: int = 50
) -> MemoryReport:
    """Measure ``fn`` (one call on ``net``, e.g. a step) after ``calls`` warm-up calls."""
    for _ in range(calls):
        fn()
    faults = _faults_of(fn, calls)
    peak = min(_peak_of(fn) for _ in range(3))
    activations = 2 * 8 * batch * sum(net.layer_sizes[1:])  # V and Y, float64
    work = getattr(net, "_work", None)
    return MemoryReport(
        peak=peak,
        activations=activations,
        workspace=work.nbytes if work is not None else 0,
        weights=sum(w.nbytes for w in net.weights),
        page_faults=faults,
    )


# --- the report section -----------------------------------------------------------------------


def _kib(n: float) -> str:
    return f"{n:,.0f} B" if n < 10 * 1024 else f"{n / 1024:,.0f} KiB"


@section("Memory of one call (tracemalloc, after warm-up)")
def memory(ctx: Context) -> str:
    rows = []
    for problem in ctx.problems:
        x, t = problem.data(seed=1)
        net = problem.network()
        held: list = []

        def keep(net=net, x=x, t=t, held=held):  # the loop `e, dw, dx = net.gradients(...)`
            held[:] = [net.gradients(x, t)]

        ops = {
            "step": lambda net=net, x=x, t=t: net.step(x, t, 1e-3),
            "gradients": lambda net=net, x=x, t=t: net.gradients(x, t),
            "gradients, previous result kept": keep,
        }
        for op, fn in ops.items():
            m = measure_memory(net, fn, batch=problem.batch)
            rows.append([
                problem.name, op, _kib(m.peak), _kib(m.activations),
                f"{m.peak / m.activations:.2f}", _kib(m.workspace), _kib(m.weights),
                f"{m.page_faults:.0f}",
            ])
    return (
        "`peak`: the most memory one call held at once beyond what existed before it "
        "(tracemalloc). `activations`: V and Y of every layer, what a step must keep for its "
        "backward (B x sum(n_1..n_L) x 2 x 8 bytes). `workspace`: buffers the network keeps "
        "between steps (allocated once per batch size, not part of `peak`). `gradients` must "
        "return fresh dE/dW and dE/dX, so its peak includes a copy of the weights' size. Page "
        "faults are per call (minor faults, getrusage): whether freed memory is handed back to "
        "the system, to be faulted in again, is up to the C allocator and depends on what the "
        "caller still holds (the last row keeps each result until the next call returns).\n\n"
        + markdown_table(
            ["config", "op", "peak", "activations", "peak / activations", "workspace", "weights",
             "page faults"],
            rows,
        )
    )
