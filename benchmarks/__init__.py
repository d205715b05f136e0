"""Benchmarks: the reference's forward, gradients and training step against JAX and torch.

Run ``make bench`` (or ``.venv/bin/python -m benchmarks.run``). Everything is measured in one
process, as ratios taken in the same run, and every contender's gradient is checked against
the reference's before any time counts (a fast wrong answer cannot win). The table goes to
stdout and to ``benchmarks/results.md``. Not part of ``make test``: timings are not tests.

Layout:
    problems.py     the three configurations (tiny, small, mnist) and their data
    contenders.py   numpy (the reference), jax jit, torch: forward, gradients, step
    timing.py       warm-up + median-of-repeats timer in alternating blocks (perf_counter)
    speed.py        correctness check of every contender, then the speed tables
    profile.py      where the reference's mnist time goes; numpy vs torch on the same BLAS work
    memory.py       tracemalloc peak and page faults of one step / gradients call
    fd_peers.py     gradient checking by finite differences (numdifftools)
    sections.py     the registry of report sections; add new rows (e.g. oracle timings) there
    run.py          the entry point
"""
