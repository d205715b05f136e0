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

Data and config files are read as hostile (``safe_files``): an .npz's X and T are checked
against the memory budget (1 GiB) before they are allocated, a .csv may be at most 256 MiB of
text, a JSON config at most 1 Mi characters nested 32 deep, no key twice. The layer sizes are
checked against the same budget before the network is built, and ``--out`` is checked writable
(``cli_tools.check_out``) before any training; what is written keeps the mode of the file it
replaces (a new file: 0o666 less the umask).

Exit status (``cli_tools``): 0 trained and saved; 1 training diverged (nothing is saved);
2 bad usage or input; 3 too large (an input over a limit, or out of memory); 4 internal error
(a bug); 130 interrupted; 141 output closed early (``| head``). Every failure is one line on
stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

import numpy as np

from .cli_tools import (
    EXIT_STATUS_HELP,
    UsageError,
    check_network_budget,
    check_out,
    read_config,
    read_xt,
    regular_file,
    run_command,
)
from .cli_tools import build_parser as build_parser_for
from .errors import TooLargeError
from .safe_files import MAX_BYTES, brief, human_bytes, write_atomically

__all__ = ["main"]

PROG = "python -m reference"
OUTPUT_ACTIVATION = {"mse": "identity", "cross_entropy": "softmax",
                     "binary_cross_entropy": "sigmoid"}
"""The default last activation for each loss (hidden layers default to tanh)."""
NETWORK_KEYS = ("sizes", "activations", "loss", "init", "seed")
TRAINING_KEYS = ("epochs", "lr", "batch_size")
DEFAULTS = {"loss": "mse", "init": "glorot", "seed": 0, "epochs": 100, "lr": 0.1,
            "batch_size": 32}
MAX_CSV_BYTES = MAX_BYTES // 4
"""A .csv data file of at most 256 MiB: its numbers take up to 4x that as float64."""

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
                             f"{options['sizes']!r:.60}") from None
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
    return read_xt(path, csv=True)


def _read_csv(path: str, n_in: int, n_out: int, loss: str) -> tuple[np.ndarray, np.ndarray]:
    size = regular_file(path).st_size
    if size > MAX_CSV_BYTES:
        raise TooLargeError(f"data {path} is {human_bytes(size)} of CSV text, more than the "
                            f"limit of {human_bytes(MAX_CSV_BYTES)}; save it as an .npz "
                            "(numpy.savez(path, X=..., T=...)) instead")
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            first = f.readline(1 << 16)
    except OSError as exc:
        raise UsageError(f"cannot read data {path}: {exc.strerror or exc}") from None
    skip = 0 if _numbers(first) else 1  # a first line that is not numbers is a header
    try:
        with warnings.catch_warnings():  # "input contained no data": said below, once
            warnings.filterwarnings("ignore", "loadtxt: input contained no data")
            table = np.loadtxt(path, delimiter=",", ndmin=2, skiprows=skip)
    except OSError as exc:
        raise UsageError(f"cannot read data {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UsageError(f"data {path} is not a CSV table of numbers ({exc})") from None
    if table.size == 0:
        raise UsageError(f"data {path} has no rows of numbers")
    labels = loss == "cross_entropy" and table.shape[1] == n_in + 1 and n_out > 1
    if table.shape[1] != n_in + n_out and not labels:
        raise UsageError(f"data {path} has {table.shape[1]} columns; expected {n_in} inputs "
                         f"then {n_out} target columns")
    x, t = table[:, :n_in], table[:, n_in:]
    if labels:
        column = t[:, 0]
        bad = ~((column == np.round(column)) & (column >= 0) & (column < n_out))
        if np.any(bad):  # checked as floats, before any cast (1e300 is no int64)
            i = int(np.argmax(bad))
            raise UsageError(f"data {path}: the label column must hold integer class labels "
                             f"0 .. {n_out - 1} for {n_out} outputs, got "
                             f"{_as_given(path, skip, i, n_in, column[i])}")
        t = column.astype(np.int64)
    return x, t


def _as_given(path: str, skip: int, row: int, column: int, value: float) -> str:
    """Data row ``row``'s field ``column`` as the file writes it, and its line (for a message:
    ``9223372036854775808 on line 3``); numpy's reading of it if the line cannot be found."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, 1):
                text = line.split("#", 1)[0].strip()  # as loadtxt: comments and blanks skipped
                if number <= skip or not text:
                    continue
                if row == 0:
                    fields = text.split(",")
                    if column < len(fields) and fields[column].strip():
                        return f"{brief(fields[column].strip(), 40)} on line {number}"
                    break
                row -= 1
    except OSError:
        pass
    return f"{float(value)!r} in data row {row + 1}"


def _numbers(line: str) -> bool:
    """True when ``line`` is empty, a comment, or comma-separated numbers (not a header)."""
    text = line.strip()
    if not text or text.startswith("#"):
        return True
    try:
        [float(v) for v in text.split("#")[0].split(",")]
    except ValueError:
        return False
    return True


def _run_train(args: argparse.Namespace) -> int:
    from .errors import DivergenceError
    from .network import Network
    from .progress import progress_bar

    options = _options(args)
    check_out(args.out)  # before the training, not after it
    check_network_budget(options["sizes"])  # before the network is allocated
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
    net.save(args.out)  # errors name --out as given, never a temporary file
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
    check_out(args.out)
    # Exactly the path given (numpy.savez would add .npz to a name without it), atomically.
    write_atomically(args.out, lambda f: np.savez(f, X=x, T=t))
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
        "Train simple-net networks from the shell (numpy only). "
        + EXIT_STATUS_HELP.format(zero="done", one="training diverged (nothing saved)") + ".",
        TRAIN_EXAMPLES + f"run '{PROG} COMMAND --help' for a command's options",
        COMMANDS,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 done, 1 diverged, 2 bad usage or input,
    3 too large or out of memory, 4 internal error, 130 interrupted, 141 output closed early;
    see ``cli_tools``)."""
    argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    parser = build_parser()

    def run() -> int:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        return COMMANDS[args.command][2](args)

    return run_command(PROG, run)
