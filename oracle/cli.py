"""``python -m oracle``: the oracle's checks from the shell, for people and for CI.

Subcommands (each has ``--help`` with an example)::

    check       a whole network, given by flags, a JSON config or a saved .npz network
    activation  a built-in activation's derivative (check_activation)
    loss        a built-in loss's derivative (check_loss)
    steps       finite-difference error against step size for one weight (and its picture)
    vjp         your own forward/backward pair, MODULE:FUNCTION (``oracle.cli_vjp``; --junit)

Without a subcommand, ``check`` is meant: ``python -m oracle --sizes 4,8,3`` works.

Exit status (``reference.cli_tools``): 0 every gradient agrees; 1 a gradient is wrong (the
report says where); 2 bad usage or bad input; 3 too large (an input over a limit, or out of
memory); 4 internal error (a bug); 130 interrupted; 141 output closed early (``| head``).
Every failure is one line on stderr, never a traceback. ``--json`` prints ``report.to_json()``.
Network and data files are read as hostile (``reference.safe_files``: no pickle, sizes checked
against a 1 GiB budget before allocating); layer sizes from flags or a config are checked
against the same budget (with the drawn batch) before the network is built, and
``vjp --inputs`` reads its .npz the same way.

A new subcommand is one ``_add_<name>`` function (its arguments) and one ``_run_<name>``
function (it returns a Report), registered in ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

import numpy as np

from reference.cli_tools import (
    EXIT_STATUS_HELP,
    UsageError,
    check_network_budget,
    check_out,
    read_config,
    read_xt,
    run_command,
)
from reference.cli_tools import build_parser as build_parser_for

from .cli_vjp import EXAMPLES as VJP_EXAMPLES

__all__ = ["main"]

PROG = "python -m oracle"
DEFAULTS = {"sizes": "4,8,3", "loss": "mse", "seed": 0, "init": "glorot"}
"""Network options used when neither a flag nor the config file gives them."""
DEFAULT_BATCH = 5

OUTPUT_ACTIVATION = {"mse": "identity", "cross_entropy": "softmax",
                     "binary_cross_entropy": "sigmoid"}
"""The default last activation for each loss (hidden layers default to tanh)."""

CONFIG_KEYS = ("sizes", "activations", "loss", "batch", "seed", "init")


# --- check ---------------------------------------------------------------------------------

CHECK_EXAMPLES = f"""\
examples:
  {PROG} check --sizes 4,8,3 --activations tanh,softmax --loss cross_entropy --batch 5
  {PROG} check --config net.json          # {{"sizes": [4, 8, 3], "loss": "mse", ...}}
  {PROG} check --network net.npz --data data.npz --json
  {PROG} --sizes 2,3,1                     # the subcommand defaults to check

Without --data, X is drawn from a seeded normal and T is valid for the loss: integer labels
(cross_entropy), uniform [0, 1] (binary_cross_entropy) or normal (mse).
"""


def _add_network_and_data_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that say which network and which data: shared by ``check`` and ``steps``."""
    net = parser.add_argument_group("the network (one of --sizes, --config, --network)")
    net.add_argument("--sizes", help="layer sizes n0,n1,...,nL (default 4,8,3)")
    net.add_argument("--activations",
                     help="L names, comma-separated (default tanh for hidden layers and "
                          "the loss's own output activation: identity, softmax or sigmoid)")
    net.add_argument("--loss", choices=sorted(OUTPUT_ACTIVATION), help="default mse")
    net.add_argument("--init", choices=("glorot", "he", "uniform"), help="default glorot")
    net.add_argument("--config", metavar="FILE.json",
                     help=f"JSON object with any of the keys {', '.join(CONFIG_KEYS)}; "
                          "flags given as well override it")
    net.add_argument("--network", metavar="FILE.npz", help="a network saved by Network.save")
    data = parser.add_argument_group("the data")
    data.add_argument("--data", metavar="FILE.npz", help=".npz holding arrays X and T")
    data.add_argument("--batch", type=int,
                      help=f"samples drawn when there is no --data ({DEFAULT_BATCH})")
    data.add_argument("--seed", type=int,
                      help="seeds the weights and the drawn data, separately (default 0)")


def _add_check(parser: argparse.ArgumentParser) -> None:
    _add_network_and_data_flags(parser)
    parser.add_argument("--fd", choices=("auto", "exhaustive", "directional", "none"),
                        default="auto", help="finite differences: every entry (exhaustive), "
                        "random directions, none (JAX only), or auto (default)")
    _add_output_flags(parser)


def _options(args: argparse.Namespace) -> dict:
    """Network options: defaults < config file < flags."""
    given = {k: getattr(args, k) for k in CONFIG_KEYS if getattr(args, k) is not None}
    config = {}
    if args.config is not None:
        if args.network is not None:
            raise UsageError("--config and --network exclude each other")
        config = read_config(args.config, CONFIG_KEYS)
    if args.network is not None:
        clash = [f"--{k}" for k in ("sizes", "activations", "loss", "init") if k in given]
        if clash:
            raise UsageError(f"--network gives the whole network; drop {', '.join(clash)}")
    options = {**DEFAULTS, **config, **given}
    if isinstance(options["sizes"], str):
        options["sizes"] = _int_list(options["sizes"], "sizes")
    if isinstance(options.get("activations"), str):
        options["activations"] = [a.strip() for a in options["activations"].split(",")]
    if options.get("batch") is not None:
        _require_int(options["batch"], "batch", 1, "a positive int")
    _require_int(options["seed"], "seed", 0, "a non-negative int")
    return options


def _require_int(value: object, what: str, least: int, kind: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise UsageError(f"{what} must be {kind}, got {value!r}")


def _int_list(text: str, what: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",")]
    except ValueError:
        raise UsageError(f"{what} must be comma-separated ints like 4,8,3, got {text!r:.60}"
                         ) from None


def _build_network(options: dict, path: str | None):
    from reference import Network

    if path is not None:
        return Network.load(path)
    sizes, loss = options["sizes"], options["loss"]
    acts = options.get("activations")
    if acts is None:
        hidden = max(len(sizes) - 2, 0) if isinstance(sizes, list) else 0
        acts = ["tanh"] * hidden + [OUTPUT_ACTIVATION.get(loss, "identity")]
    # The weights and the drawn data against the files' memory budget, before allocating.
    check_network_budget(sizes, options.get("batch") or DEFAULT_BATCH)
    return Network(sizes, acts, loss, seed=options["seed"], init=options["init"])


def _data(net, path: str | None, batch: int | None, seed: int, batch_flag: bool):
    if path is not None:
        if batch_flag:
            raise UsageError("--batch and --data exclude each other (the data sets the batch)")
        return read_xt(path)  # numeric X and T only, sizes checked before allocating
    # A stream of its own, so the data does not repeat the draws of the weights' seed.
    rng = np.random.default_rng([seed, 1])
    batch = DEFAULT_BATCH if batch is None else batch
    n0, n_out = net.layer_sizes[0], net.layer_sizes[-1]
    x = rng.normal(size=(batch, n0))
    loss = net.loss_function.name
    if loss == "cross_entropy":
        t = rng.integers(0, n_out, size=batch)
    elif loss == "binary_cross_entropy":
        t = rng.uniform(size=(batch, n_out))
    else:
        t = rng.normal(size=(batch, n_out))
    return x, t


def _run_check(args: argparse.Namespace):
    from oracle import check_network

    options = _options(args)
    net = _build_network(options, args.network)
    x, t = _data(net, args.data, options.get("batch"), options["seed"], args.batch is not None)
    with np.errstate(all="ignore"):  # an overflowing forward is reported as bad input, once
        return check_network(net, x, t, strict=args.strict, fd=args.fd)


# --- activation, loss ----------------------------------------------------------------------


def _add_activation(parser: argparse.ArgumentParser) -> None:
    from reference import ACTIVATIONS

    parser.add_argument("name", choices=list(ACTIVATIONS), metavar="NAME",
                        help=f"one of: {', '.join(ACTIVATIONS)}")
    _add_output_flags(parser)


def _run_activation(args: argparse.Namespace):
    from oracle import check_activation

    return check_activation(args.name, strict=args.strict)


def _add_loss(parser: argparse.ArgumentParser) -> None:
    from reference import LOSSES

    parser.add_argument("name", choices=list(LOSSES), metavar="NAME",
                        help=f"one of: {', '.join(LOSSES)}")
    _add_output_flags(parser)


def _run_loss(args: argparse.Namespace):
    from oracle import check_loss

    return check_loss(args.name, strict=args.strict)


# --- steps ---------------------------------------------------------------------------------

STEPS_EXAMPLES = f"""\
examples:
  {PROG} steps --sizes 9,9,9 --activations tanh,tanh --layer 0 --entry 3,4 --out steps.png
  {PROG} steps --network net.npz --data data.npz --exact hand --no-plot --json

For one weight W_layer[i, j] the loss is swept over steps h = 1e-15 .. 1e-1: the central
difference's error has slope 2 where truncation dominates (large h) and -1 where round-off
does (small h). The error is measured against JAX's derivative (--exact jax) or the
hand-derived one (--exact hand: a wrong one shows as a floor the curve cannot go below).
Exit status 1 when the central difference never comes within 1e-8 (relative) of it.
"""


def _add_steps(parser: argparse.ArgumentParser) -> None:
    _add_network_and_data_flags(parser)
    entry = parser.add_argument_group("the entry and the picture")
    entry.add_argument("--layer", type=int, default=0,
                       help="which W, 0 .. L-1 for an L-layer network (default 0)")
    entry.add_argument("--entry", metavar="I,J",
                       help="the entry of W_layer, 0-based row and column (default: the "
                            "largest |dE/dW|)")
    entry.add_argument("--exact", choices=("jax", "hand"), default="jax",
                       help="the reference derivative (default jax)")
    entry.add_argument("--out", metavar="FILE.png", default="steps.png",
                       help="where to draw the picture (default steps.png)")
    entry.add_argument("--no-plot", dest="no_plot", action="store_true",
                       help="print the sweep only (no matplotlib needed)")
    out = parser.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print the sweep as JSON")
    out.add_argument("--quiet", action="store_true", help="print the headline only")


def _run_steps(args: argparse.Namespace):
    from .step_sweep import sweep_network_entry

    if not args.no_plot:
        check_out(args.out)  # before any work, as reference's train and data do
    options = _options(args)
    net = _build_network(options, args.network)
    x, t = _data(net, args.data, options.get("batch"), options["seed"], args.batch is not None)
    n_layers = len(net.layer_sizes) - 1
    if not 0 <= args.layer < n_layers:
        raise UsageError(f"--layer must be in 0 .. {n_layers - 1} for a {n_layers}-layer "
                         f"network, got {args.layer}")
    index = None if args.entry is None else tuple(_int_list(args.entry, "entry"))
    if index is not None:
        shape = (net.layer_sizes[args.layer] + 1, net.layer_sizes[args.layer + 1])
        if len(index) != 2 or not all(0 <= i < n for i, n in zip(index, shape)):
            raise UsageError(f"--entry must be two ints I,J with 0 <= I < {shape[0]} and "
                             f"0 <= J < {shape[1]} (W{args.layer} has shape {shape}), got "
                             f"{args.entry}")
    sweep = sweep_network_entry(net, x, t, layer=args.layer, index=index, reference=args.exact)
    if not args.no_plot:
        from .pictures import MissingMatplotlib, plot_steps

        try:
            path = plot_steps(sweep, args.out)
        except MissingMatplotlib as exc:
            raise UsageError(f"{exc}; or pass --no-plot") from None
        print(f"wrote {path}", file=sys.stderr)
    return sweep


# --- vjp (the arguments and the run live in oracle.cli_vjp) ---------------------------------


def _add_vjp(parser: argparse.ArgumentParser) -> None:
    from .cli_vjp import add_arguments

    add_arguments(parser)
    _add_output_flags(parser)


def _run_vjp(args: argparse.Namespace):
    from .cli_vjp import run

    return run(args)


# --- shared --------------------------------------------------------------------------------


def _add_output_flags(parser: argparse.ArgumentParser) -> None:
    out = parser.add_argument_group("verdict and output")
    out.add_argument("--strict", action="store_true",
                     help="count 'doubt' (the check itself unsure) as a failure")
    out.add_argument("--json", action="store_true", help="print the report as JSON (for CI)")
    out.add_argument("--quiet", action="store_true", help="print the headline only")


Command = tuple[str, Callable[[argparse.ArgumentParser], None], Callable, str]
COMMANDS: dict[str, Command] = {
    "check": ("check every term of a network's hand-derived backward pass",
              _add_check, _run_check, CHECK_EXAMPLES),
    "activation": ("check a built-in activation's derivative against JAX and FD",
                   _add_activation, _run_activation,
                   f"example:\n  {PROG} activation relu --json\n"),
    "loss": ("check a built-in loss's derivative against JAX and FD",
             _add_loss, _run_loss, f"example:\n  {PROG} loss cross_entropy\n"),
    "steps": ("finite-difference error against step size for one weight, with its picture",
              _add_steps, _run_steps, STEPS_EXAMPLES),
    "vjp": ("check your own backward(dout, *inputs) against JAX and FD of your forward",
            _add_vjp, _run_vjp, VJP_EXAMPLES),
}


def build_parser() -> argparse.ArgumentParser:
    return build_parser_for(
        PROG,
        "Check hand-derived gradients against JAX autodiff and finite differences. "
        + EXIT_STATUS_HELP.format(zero="all agree", one="a gradient is wrong") + ".",
        f"example:\n  {PROG} check --sizes 4,8,3 --activations tanh,softmax "
        f"--loss cross_entropy\nrun '{PROG} COMMAND --help' for a command's options",
        COMMANDS,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 agree, 1 wrong gradient, 2 bad usage or
    input, 3 too large or out of memory, 4 internal error, 130 interrupted, 141 output closed
    early)."""
    argv = [str(a) for a in (sys.argv[1:] if argv is None else argv)]
    parser = build_parser()
    if argv and argv[0] not in COMMANDS and argv[0] not in ("-h", "--help"):
        argv.insert(0, "check")  # the default subcommand

    def run() -> int:
        args, extra = parser.parse_known_args(argv)
        if extra:
            where = " ".join(filter(None, [PROG, args.command]))
            raise UsageError(f"unrecognized arguments: {' '.join(extra)} (see {where} --help)")
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        report = COMMANDS[args.command][2](args)
        if args.json:
            text = report.to_json(indent=2)
        elif args.quiet:
            text = report.headline
        else:
            text = str(report)
        print(text)
        return 0 if report.ok else 1

    return run_command(PROG, run)
