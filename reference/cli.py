"""``python -m reference``: train a network from the shell and save it (numpy only).

Subcommands (each has ``--help`` with an example)::

    train  build a network from flags or a JSON config, train it on a .npz or .csv data set
           with mini-batch SGD, and save it with ``Network.save``
    data   write a built-in data set (the 3x3 patterns, the two spirals) to a .npz file

A saved network is checked by the oracle: ``python -m oracle check --network net.npz --data
data.npz``.

Data files: an ``.npz`` holds arrays ``X (N, n0)`` and ``T`` (targets for the loss); a ``.csv``
holds one sample per row, its first n0 columns the input and the rest the target (for
cross_entropy a single column of integer class labels is also accepted). Lines starting with
``#`` and one header line are skipped.

Exit status: 0 trained and saved; 1 training diverged (nothing is saved); 2 bad usage or input.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

from .cli_tools import UsageError, read_config
from .cli_tools import build_parser as build_parser_for

__all__ = ["main"]

PROG = "python -m reference"
OUTPUT_ACTIVATION = {"mse": "identity", "cross_entropy": "softmax",
                     "binary_cross_entropy": "sigmoid"}
"""The default last activation for each loss (hidden layers default to tanh)."""
NETWORK_KEYS = ("sizes", "activations", "loss", "init", "seed")
TRAINING_KEYS = ("epochs", "lr", "batch_size")
DEFAULTS = {"loss": "mse", "init": "glorot", "seed": 0, "epochs": 100, "lr": 0.1,
            "batch_size": 32}

TRAIN_EXAMPLES = f"""\
examples:
  {PROG} data patterns --out patterns.npz
  {PROG} train --sizes 9,9,9 --activations tanh,tanh --loss mse --data patterns.npz \\
      --epochs 2000 --lr 0.1 --batch-size 1 --out autoencoder.npz
  {PROG} train --config net.json --data samples.csv --out net.npz
      # net.json: {{"sizes": [2, 16, 2], "activations": ["tanh", "softmax"],
      #             "loss": "cross_entropy", "epochs": 300, "lr": 0.1, "batch_size": 16}}
  python -m oracle check --network autoencoder.npz --data patterns.npz
"""

DATA_EXAMPLES = f"""\
examples:
  {PROG} data patterns --out patterns.npz   # X = T: the 18 patterns, flattened to (18, 9)
  {PROG} data spirals --out spirals.npz     # X (400, 2), T integer labels 0/1
"""


# --- train ---------------------------------------------------------------------------------


def _add_train(parser: argparse.ArgumentParser) -> None:
    net = parser.add_argument_group("the network (flags override --config)")
    net.add_argument("--sizes", help="layer sizes n0,n1,...,nL, e.g. 9,9,9")
    net.add_argument("--activations",
                     help="L names, comma-separated (default tanh for hidden layers and the "
                          "loss's own output activation: identity, softmax or sigmoid)")
    net.add_argument("--loss", choices=sorted(OUTPUT_ACTIVATION), help="default mse")
    net.add_argument("--init", choices=("glorot", "he", "uniform"), help="default glorot")
    net.add_argument("--seed", type=int, help="seeds the weights and the shuffling (default 0)")
    net.add_argument("--config", metavar="FILE.json",
                     help=f"JSON object with any of {', '.join(NETWORK_KEYS + TRAINING_KEYS)}")
    train = parser.add_argument_group("training")
    train.add_argument("--data", metavar="FILE", required=True,
                       help=".npz with arrays X and T, or .csv (input columns, then targets)")
    train.add_argument("--epochs", type=int, help=f"passes over the data ({DEFAULTS['epochs']})")
    train.add_argument("--lr", type=float, help=f"learning rate of eq 10 ({DEFAULTS['lr']})")
    train.add_argument("--batch-size", dest="batch_size", type=int,
                       help=f"samples per SGD step ({DEFAULTS['batch_size']}); 0 = all")
    train.add_argument("--out", metavar="FILE.npz", default="net.npz",
                       help="where to save the trained network (default net.npz)")
    train.add_argument("--log", type=int, default=10, metavar="N",
                       help="print the loss N times during training (default 10)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")


def _options(args: argparse.Namespace) -> dict:
    """defaults < config file < flags; sizes and activations as lists."""
    keys = NETWORK_KEYS + TRAINING_KEYS
    config = read_config(args.config, keys) if args.config is not None else {}
    given = {k: getattr(args, k) for k in keys if getattr(args, k) is not None}
    options = {**DEFAULTS, **config, **given}
    if "sizes" not in options:
        raise UsageError("give the layer sizes: --sizes 9,9,9, or \"sizes\" in a --config file")
    if isinstance(options["sizes"], str):
        try:
            options["sizes"] = [int(s) for s in options["sizes"].split(",")]
        except ValueError:
            raise UsageError(f"sizes must be comma-separated ints like 9,9,9, got "
                             f"{options['sizes']!r}") from None
    if isinstance(options.get("activations"), str):
        options["activations"] = [a.strip() for a in options["activations"].split(",")]
    if options.get("activations") is None and isinstance(options["sizes"], list):
        hidden = max(len(options["sizes"]) - 2, 0)
        options["activations"] = ["tanh"] * hidden + [
            OUTPUT_ACTIVATION.get(options["loss"], "identity")]
    for key, least in (("epochs", 1), ("batch_size", 0), ("seed", 0)):
        value = options[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise UsageError(f"{key} must be an int >= {least}, got {value!r}")
    return options


def read_data(path: str, n_in: int, n_out: int, loss: str) -> tuple[np.ndarray, np.ndarray]:
    """``(X (N, n_in), T)`` from an ``.npz`` (arrays X and T) or a ``.csv`` (columns X | T).

    Raises:
        UsageError: the file cannot be read or does not hold such data.
    """
    if path.lower().endswith(".csv"):
        return _read_csv(path, n_in, n_out, loss)
    try:
        z = np.load(path, allow_pickle=False)
    except OSError as exc:
        raise UsageError(f"cannot read data {path}: {exc.strerror or exc}") from None
    except (ValueError, EOFError) as exc:
        raise UsageError(f"cannot read data {path} as .npz or .csv ({exc})") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise UsageError(f"data {path} is a single array; expected an .npz archive with "
                         "arrays X and T (numpy.savez(path, X=..., T=...)) or a .csv")
    with z:
        missing = [k for k in ("X", "T") if k not in z.files]
        if missing:
            raise UsageError(f"data {path} lacks array(s) {missing}; found {z.files}")
        return z["X"], z["T"]


def _read_csv(path: str, n_in: int, n_out: int, loss: str) -> tuple[np.ndarray, np.ndarray]:
    table = None
    for skip in (0, 1):  # a header line is skipped when the first line is not numbers
        try:
            table = np.loadtxt(path, delimiter=",", ndmin=2, skiprows=skip)
            break
        except OSError as exc:
            raise UsageError(f"cannot read data {path}: {exc.strerror or exc}") from None
        except ValueError as exc:
            problem = exc
    if table is None:
        raise UsageError(f"data {path} is not a CSV table of numbers ({problem})")
    labels = loss == "cross_entropy" and table.shape[1] == n_in + 1 and n_out > 1
    if table.shape[1] != n_in + n_out and not labels:
        raise UsageError(f"data {path} has {table.shape[1]} columns; expected {n_in} inputs "
                         f"then {n_out} target columns")
    x, t = table[:, :n_in], table[:, n_in:]
    if labels:
        column = t[:, 0]
        if not np.all(column == np.round(column)):
            raise UsageError(f"data {path}: the label column must hold integer class labels")
        t = column.astype(np.int64)
    return x, t


def _run_train(args: argparse.Namespace) -> int:
    from .errors import DivergenceError
    from .network import Network
    from .progress import progress_bar

    options = _options(args)
    net = Network(options["sizes"], options["activations"], options["loss"],
                  seed=options["seed"], init=options["init"])
    x, t = read_data(args.data, net.layer_sizes[0], net.layer_sizes[-1], net.loss_function.name)
    epochs, batch_size = options["epochs"], options["batch_size"] or None
    print(f"training {net} on {args.data}: {len(x)} samples, {epochs} epochs, "
          f"lr {options['lr']}, batch size {batch_size or len(x)}")
    every = max(1, epochs // max(args.log, 1))
    with progress_bar(epochs, "training", quiet=args.quiet) as bar:
        def report(epoch: int, loss: float) -> None:
            bar.update()
            if epoch == 0 or (epoch + 1) % every == 0 or epoch + 1 == epochs:
                bar.write(f"  epoch {epoch + 1:>{len(str(epochs))}}  loss {loss:.6g}")

        try:  # overflow on the way to a divergence is reported once, as DivergenceError
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                net.fit(x, t, epochs=epochs, lr=options["lr"], batch_size=batch_size,
                        seed=options["seed"], callback=report)
        except DivergenceError as exc:
            bar.close()
            print(f"{PROG}: {exc}; nothing saved", file=sys.stderr)
            return 1
    net.save(args.out)
    print(f"final loss {net.loss(x, t):.6g}; saved to {args.out}")
    return 0


# --- data ----------------------------------------------------------------------------------


def _add_data(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", choices=("patterns", "spirals"),
                        help="patterns: the original demo's 18 3x3 images (X = T, for a 9-9-9 "
                             "autoencoder); spirals: two interleaved spirals, 200 per class")
    parser.add_argument("--out", metavar="FILE.npz", required=True, help="where to write it")


def _run_data(args: argparse.Namespace) -> int:
    from .datasets import patterns_3x3, two_spirals

    if args.name == "patterns":
        x = patterns_3x3().reshape(18, 9)
        t = x
    else:
        x, t = two_spirals()
    np.savez(args.out, X=x, T=t)
    print(f"wrote {args.out}: X {x.shape}, T {t.shape}")
    return 0


# --- the command line ----------------------------------------------------------------------

COMMANDS = {
    "train": ("train a network on a .npz or .csv data set and save it",
              _add_train, _run_train, TRAIN_EXAMPLES),
    "data": ("write a built-in data set to a .npz file", _add_data, _run_data, DATA_EXAMPLES),
}


def build_parser() -> argparse.ArgumentParser:
    return build_parser_for(
        PROG,
        "Train simple-net networks from the shell (numpy only). Exit status: "
        "0 done, 1 training diverged, 2 bad usage or input.",
        TRAIN_EXAMPLES + f"run '{PROG} COMMAND --help' for a command's options",
        COMMANDS,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 done, 1 diverged, 2 bad usage/input)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        return COMMANDS[args.command][2](args)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, OSError) as exc:  # refused input, with the library's message
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2
