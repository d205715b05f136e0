"""``python -m oracle.demo --out DIR``: train two networks, check their gradients, draw pictures.

Built-in data only, no network access:

1. the original program's demo: a 9-9-9 tanh autoencoder of the 18 3x3 patterns, trained with
   per-sample SGD (lr 0.1, 2000 epochs) to a max abs error of about 0.02;
2. a 2-32-32-2 classifier of two interleaved spirals (tanh, softmax + cross-entropy).

Then the oracle checks both networks' hand-derived gradients (``oracle.check_network``: JAX
and finite differences) and prints its reports, checks a deliberately broken copy of the
spirals network (act' taken at Y in layer 1, the original program's bug) to show what a
failure looks like, and writes the pictures to DIR (see ``oracle.pictures``).

It lives in the oracle package because it uses both packages. Long steps show a progress bar
on stderr (off with ``--quiet`` or when stderr is not a terminal). ``--fast`` trains for a
twentieth of the epochs (for tests). Exit status 0 when both networks' gradients agree.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reference import Activation, Network, get_activation
from reference.datasets import PATTERN_NAMES, patterns_3x3, two_spirals
from reference.progress import Progress, progress_bar

__all__ = ["build_parser", "main", "run", "tanh_prime_at_y"]

PROG = "python -m oracle.demo"


@dataclass(frozen=True)
class Job:
    """One network to train: its shape, its data's name and its SGD settings."""

    title: str
    sizes: tuple[int, ...]
    activations: tuple[str, ...]
    loss: str
    epochs: int
    lr: float
    batch_size: int


AUTOENCODER = Job("3x3-pattern autoencoder (the original program's demo)", (9, 9, 9),
                  ("tanh", "tanh"), "mse", epochs=2000, lr=0.1, batch_size=1)
SPIRALS = Job("two-spirals classifier", (2, 32, 32, 2), ("tanh", "tanh", "softmax"),
              "cross_entropy", epochs=500, lr=0.1, batch_size=16)
LOSS_LINES = 10
"""How many times the loss is printed while a network trains."""


def tanh_prime_at_y() -> Activation:
    """tanh with the original program's bug: its derivative taken at Y = tanh(V), not at V.

    ``1 - tanh(tanh(v))^2`` instead of ``1 - tanh(v)^2`` (erratum 2 in docs/derivation.md).
    The forward is the reference's own tanh, so JAX differentiates the right function.
    """
    tanh = get_activation("tanh")
    return Activation("tanh'(Y)", tanh.f, lambda v: 1.0 - np.tanh(np.tanh(v)) ** 2)


def train(net: Network, x: np.ndarray, t: np.ndarray, job: Job, *, epochs: int,
          quiet: bool, seed: int = 0) -> list[float]:
    """Train ``net`` as ``job`` says for ``epochs``; print the loss ``LOSS_LINES`` times."""
    every = max(1, epochs // LOSS_LINES)
    width = len(str(epochs))
    with progress_bar(epochs, f"training {job.title.split(' (')[0]}", quiet=quiet) as bar:
        def report(epoch: int, loss: float) -> None:
            bar.update()
            if epoch == 0 or (epoch + 1) % every == 0:
                bar.write(f"  epoch {epoch + 1:>{width}}  loss {loss:.4g}")

        return net.fit(x, t, epochs=epochs, lr=job.lr, batch_size=job.batch_size, seed=seed,
                       callback=report)


class _CheckProgress:
    """Adapts ``check_network``'s ``progress(what, done, total)`` to one bar per term."""

    def __init__(self, quiet: bool) -> None:
        self.quiet, self.what, self.bar = quiet, None, None

    def __call__(self, what: str, done: int, total: int) -> None:
        if what != self.what:
            self.close()
            self.what, self.bar = what, progress_bar(total, f"finite differences, {what}",
                                                     quiet=self.quiet)
        self.bar.set_done(done + 1)

    def close(self) -> None:
        if isinstance(self.bar, Progress):
            self.bar.close()
        self.bar = None


def _check(net: Network, x: np.ndarray, t: np.ndarray, quiet: bool, **kwargs):
    from oracle import check_network

    progress = _CheckProgress(quiet)
    try:
        return check_network(net, x, t, progress=progress, **kwargs)
    finally:
        progress.close()


def _section(title: str) -> None:
    print(f"\n== {title}")


def run(out: Path, *, quiet: bool = False, fast: bool = False) -> int:
    """The whole demo; returns the exit status (0 when both networks' gradients agree)."""
    from . import pictures
    from .step_sweep import sweep_network_entry

    scale = 20 if fast else 1
    out.mkdir(parents=True, exist_ok=True)
    print(f"simple-net demo: the pictures go to {out.resolve()}")

    # 1. the autoencoder
    job = AUTOENCODER
    patterns = patterns_3x3()
    p = patterns.reshape(len(patterns), -1)
    ae = Network(list(job.sizes), list(job.activations), job.loss, seed=0)
    _section(f"{job.title}: {ae}")
    print(f"  18 patterns, per-sample SGD (batch size {job.batch_size}), lr {job.lr}, "
          f"{job.epochs // scale} epochs")
    ae_history = train(ae, p, p, job, epochs=job.epochs // scale, quiet=quiet)
    reconstruction = ae.forward(p)
    print(f"  max abs error over the 18 patterns: {np.max(np.abs(reconstruction - p)):.4f}")

    # 2. the spirals
    job = SPIRALS
    xy, labels = two_spirals(200, seed=0)
    mean, std = xy.mean(axis=0), xy.std(axis=0)

    def standardise(a: np.ndarray) -> np.ndarray:
        return (a - mean) / std

    x = standardise(xy)
    clf = Network(list(job.sizes), list(job.activations), job.loss, seed=0)
    _section(f"{job.title}: {clf}")
    print(f"  {len(x)} points (inputs standardised), mini-batch SGD (batch size "
          f"{job.batch_size}), lr {job.lr}, {job.epochs // scale} epochs")
    clf_history = train(clf, x, labels, job, epochs=job.epochs // scale, quiet=quiet)
    held_xy, held_labels = two_spirals(200, seed=1)
    accuracy = np.mean(clf.forward(x).argmax(axis=1) == labels)
    held = np.mean(clf.forward(standardise(held_xy)).argmax(axis=1) == held_labels)
    print(f"  accuracy: {100 * accuracy:.1f}% on the training points, {100 * held:.1f}% on "
          "400 fresh ones (another noise draw)")

    # 3. the oracle
    _section("the oracle checks the autoencoder's gradients (all 18 patterns)")
    ae_report = _check(ae, p, p, quiet)
    print(ae_report)
    batch = slice(0, 400, 25)  # 16 points spread along both spirals
    _section("the oracle checks the classifier's gradients (16 of the points)")
    clf_report = _check(clf, x[batch], labels[batch], quiet)
    print(clf_report)
    broken = Network(list(SPIRALS.sizes), ["tanh", tanh_prime_at_y(), "softmax"], SPIRALS.loss)
    broken.weights = clf.weights
    _section("the same classifier with act' taken at Y in layer 1 (the original program's bug)")
    broken_report = _check(broken, x[batch], labels[batch], quiet, fd="none", check_step=False)
    print(f"  {broken_report.headline}")

    # 4. the pictures
    _section("pictures")
    sweep = sweep_network_entry(ae, p, p, layer=0)
    drawn = [
        (pictures.plot_losses({f"{AUTOENCODER.title}\nNetwork{list(AUTOENCODER.sizes)}":
                               ae_history,
                               f"{SPIRALS.title}\nNetwork{list(SPIRALS.sizes)}": clf_history},
                              out / "loss.png"),
         "training loss per epoch, log scale"),
        (pictures.plot_steps(sweep, out / "fd_steps.png"),
         f"finite-difference error against step size, {sweep.entry} of the autoencoder"),
        (pictures.plot_error_map({"classifier as derived": clf_report,
                                  "act' taken at Y in layer 1": broken_report},
                                 broken.n_layers, out / "gradient_error_map.png"),
         "the oracle's error per term and layer: the classifier, and a broken copy"),
        (pictures.plot_decision_regions(
            clf, xy, labels, out / "spirals_regions.png", transform=standardise,
            resolution=100 if fast else 300,
            title=f"Two spirals: Network{list(SPIRALS.sizes)}, "
                  f"training accuracy {100 * accuracy:.1f}%"),
         "the classifier's decision regions"),
        (pictures.plot_reconstructions(
            patterns, reconstruction.reshape(patterns.shape), out / "reconstructions.png",
            names=PATTERN_NAMES,
            title="The autoencoder: each pattern (input) above its reconstruction (output)"),
         "the autoencoder's 18 patterns and its reconstructions"),
    ]
    for path, what in drawn:
        print(f"  {path}: {what}")
    print(f"  step sweep: {sweep.headline}")

    ok = ae_report.ok and clf_report.ok
    _section("verdict")
    print("  both networks' hand-derived gradients agree with JAX and finite differences"
          if ok else "  a hand-derived gradient is wrong: see the reports above")
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    """The demo's command line (``--out``, ``--quiet``, ``--fast``)."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Train the 3x3-pattern autoencoder and a two-spirals classifier on "
                    "built-in data, check both networks' gradients with the oracle, and "
                    "write pictures.",
        epilog=f"example:\n  {PROG} --out out          # what `make demo` runs",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--out", default="out", help="folder for the pictures (default out)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--fast", action="store_true",
                        help="train for 1/20 of the epochs (a quick run, for tests)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo from the command line; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return run(Path(args.out), quiet=args.quiet, fast=args.fast)
    except ImportError as exc:  # matplotlib or JAX missing: say which extra to install
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
