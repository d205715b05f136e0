"""False alarms of the oracle on right gradients: ``python -m benchmarks.false_alarms``.

Draws random networks (depth 1-4, widths 1-8, every activation and loss, all three
initialisations) and inputs meant to be hard: normal, rounded to integers (many exact zeros),
all zeros, or x10 (saturation); with probability 0.3 every bias is set to 0 and the weights are
rounded to halves, so that many units sit exactly on relu kinks. Runs ``check_network`` on each
(the reference's gradients are right) and counts row statuses; any FAIL is a false alarm.

    python -m benchmarks.false_alarms --seed 4 --count 150
    python -m benchmarks.false_alarms --seed 4 --count 150 --fd directional
"""

from __future__ import annotations

import argparse
import collections
import time

import numpy as np

from oracle import check_network
from reference import ACTIVATIONS, Network

ELEMENTWISE = [a for a in ACTIVATIONS if a != "softmax"]
OUTPUT = {"cross_entropy": "softmax", "binary_cross_entropy": "sigmoid"}


def random_case(rng: np.random.Generator):
    depth = int(rng.integers(1, 5))
    sizes = [int(rng.integers(1, 9)) for _ in range(depth + 1)]
    loss = str(rng.choice(["mse", "cross_entropy", "binary_cross_entropy"]))
    hidden = [str(rng.choice(ELEMENTWISE + ["softmax"])) for _ in range(depth - 1)]
    last = OUTPUT.get(loss) or str(rng.choice(ELEMENTWISE + ["softmax"]))
    init = str(rng.choice(["glorot", "he", "uniform"]))
    net = Network(sizes, hidden + [last], loss, seed=int(rng.integers(1000)), init=init)
    batch = int(rng.integers(1, 9))
    kind = int(rng.integers(0, 4))
    x = rng.normal(size=(batch, sizes[0]))
    x = [x, np.round(x), np.zeros_like(x), 10 * x][kind]
    if rng.random() < 0.3:
        for w in net.weights:
            w[-1] = 0.0
            w[:-1] = np.round(w[:-1] * 2) / 2
    if loss == "cross_entropy":
        t = rng.integers(0, sizes[-1], size=batch)
    elif loss == "binary_cross_entropy":
        t = rng.uniform(size=(batch, sizes[-1])).round(int(rng.integers(0, 2)))
    else:
        t = rng.normal(size=(batch, sizes[-1]))
    return net, x, t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--count", type=int, default=150)
    parser.add_argument("--fd", default="auto", choices=["auto", "exhaustive", "directional"],
                        help="check_network's fd mode (auto: exhaustive at these sizes)")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    counts: collections.Counter = collections.Counter()
    flagged = []
    start = time.perf_counter()
    for i in range(args.count):
        net, x, t = random_case(rng)
        report = check_network(net, x, t, fd=args.fd)
        counts.update(row.status for row in report.rows)
        if not report.ok or report.count("doubt"):
            flagged.append((i, net, report.headline))
    print(f"{args.count} networks, {sum(counts.values())} terms in "
          f"{time.perf_counter() - start:.0f} s: {dict(counts)}")
    for i, net, headline in flagged:
        print(f"  #{i} {net!r}: {headline}")
    print(f"false alarms (FAIL rows on right gradients): {counts['FAIL']}")


if __name__ == "__main__":
    main()
