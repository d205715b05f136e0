"""Entry point: ``python -m benchmarks.run [--quick] [--single-thread] [--out PATH]``.

``make bench`` runs it with the defaults and writes ``benchmarks/results.md``.

Threads, for fairness: every contender may use the machine's cores (2 here) and no more.
OpenBLAS (numpy), MKL/OpenMP (torch) and XLA (JAX) read their thread counts when they load,
so they are fixed here, before numpy is imported: ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``
and ``MKL_NUM_THREADS`` default to the core count (an existing setting wins), torch gets
``torch.set_num_threads`` of the same, and XLA's CPU client uses its default pool, one thread
per core. With ``--single-thread`` every contender gets one thread (XLA through ``XLA_FLAGS``),
a comparison that stays meaningful when other processes keep the other cores busy. The
settings used are printed in the report.
"""

from __future__ import annotations

import os
import sys

SINGLE_THREAD = "--single-thread" in sys.argv[1:]
CORES = os.cpu_count() or 1
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    if SINGLE_THREAD:
        os.environ[_var] = "1"
    else:
        os.environ.setdefault(_var, str(CORES))
if SINGLE_THREAD:
    os.environ["XLA_FLAGS"] = " ".join([
        os.environ.get("XLA_FLAGS", ""),
        "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    ]).strip()

import argparse  # noqa: E402
import importlib  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from .contenders import available_peers  # noqa: E402
from .problems import PROBLEMS  # noqa: E402
from .sections import SECTIONS, Context  # noqa: E402

# Importing these registers their sections, in this order. Add new sections here.
SECTION_MODULES = (
    "benchmarks.speed",
    "benchmarks.profile",
    "benchmarks.memory",
    "benchmarks.fd_peers",
    "benchmarks.oracle_checks",
    "benchmarks.vjp_checks",
    "benchmarks.hvp_checks",
)
RESULTS = Path(__file__).with_name("results.md")


def _threads(peers: dict) -> int:
    threads = int(os.environ["OMP_NUM_THREADS"])
    if peers.get("torch") is not None:
        import torch

        torch.set_num_threads(threads)
    return threads


def _blas() -> str:
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas['name']} {blas.get('version', '')}".strip()
    except Exception:  # the layout of numpy's build info is not a stable API
        return "unknown"


def _load() -> str:
    try:
        return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "load average unknown"


def _settings(peers: dict, threads: int, quick: bool, load_before: str) -> str:
    versions = ", ".join(
        f"{name} {version}" if version else f"{name} (not installed)"
        for name, version in peers.items()
    )
    env = ", ".join(f"{v}={os.environ[v]}" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                     "MKL_NUM_THREADS"))
    return "\n".join([
        f"- machine: {platform.machine()}, {CORES} cores; python {platform.python_version()}, "
        f"numpy {np.__version__} ({_blas()}); {versions}",
        f"- threads: {env}; torch.set_num_threads({threads}); XLA: "
        + (os.environ["XLA_FLAGS"] if SINGLE_THREAD else "default CPU pool"),
        "- float64 everywhere (JAX with jax_enable_x64)",
        f"- timing{' (quick)' if quick else ''}: contenders in alternating blocks, each block "
        "after untimed calls that let the other libraries' spinning threads sleep; a sample is "
        "the mean of a batch of calls lasting ~2 ms; median of all samples (time.perf_counter, "
        "gc off); see benchmarks/timing.py",
        f"- machine load (other processes share the cores): before the run {load_before}, "
        f"after it {_load()}",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    parser.add_argument("--single-thread", action="store_true",
                        help="one thread per contender (read before numpy is imported)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="markdown file to write")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--section", action="append", default=[], metavar="TEXT",
                        help="run only the sections whose title contains TEXT (repeatable); "
                             "prints only, unless --out is given")
    args = parser.parse_args(argv)
    partial = bool(args.section)
    if partial and "--out" not in (argv if argv is not None else sys.argv[1:]):
        args.no_write = True

    for module in SECTION_MODULES:
        importlib.import_module(module)
    peers = available_peers()
    threads = _threads(peers)
    ctx = Context(problems=PROBLEMS, peers=peers, quick=args.quick)
    load_before = _load()
    started = time.perf_counter()
    parts = ["# Benchmarks", "", "Generated by `make bench` (`python -m benchmarks.run`). Ratios "
             "are taken within this one run; absolute times drift from run to run.", ""]
    chosen = [sec for sec in SECTIONS
              if not partial or any(text.lower() in sec.title.lower() for text in args.section)]
    if not chosen:
        parser.error(f"no section title contains {args.section}; the titles: "
                     + "; ".join(sec.title for sec in SECTIONS))
    for sec in chosen:
        print(f"... {sec.title}", file=sys.stderr, flush=True)
        parts += [f"## {sec.title}", "", sec.render(ctx), ""]
    parts += ["## Settings", "", _settings(peers, threads, args.quick, load_before),
              f"- run time: {time.perf_counter() - started:.0f} s", ""]
    report = "\n".join(parts)
    print(report)
    if not args.no_write:
        args.out.write_text(report)
        print(f"written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
