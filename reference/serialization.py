"""Save and load networks: ``.npz`` arrays plus a JSON configuration, never pickle.

File layout: ``config`` (a 0-d unicode array holding JSON) and ``W0 .. W{L-1}`` (float64).

Loading reads the file as hostile (``safe_files``): the config first, within the JSON limits;
then every declared size (the config's layer sizes, each array's .npy header, the zip
directory) is checked against the others and against the memory budget ``max_bytes`` (1 GiB by
default) **before anything is allocated**; only the expected members are read, each straight
into the network's own weight, and no pickle is ever run. Anything else is refused with a
``ValueError`` naming the file and the reason (a ``TooLargeError`` when a limit is exceeded).

Saving refuses what loading would refuse (a custom activation or loss, weights edited in place
into another dtype, type or shape, a NaN, a network over ``max_bytes``), before anything is
written; then it writes a temporary file beside the target and renames it over the target, so
a failed or interrupted save leaves the previous file as it was. **Symlinks are followed**: saving
to a path that is a symbolic link replaces the file the link points to (atomically, in the
target's folder) and keeps the link, as ``open(path, "w")`` would; a symlink loop is refused.
The new file keeps the permission bits of the file it replaces (a new file gets 0o666 less the
umask, as ``open`` gives). Every error names the path as given (``safe_files.write_atomically``).

The config holds exactly the keys ``save`` writes (``CONFIG_KEYS``; ``seed`` may be absent);
``load`` refuses any other key, and a key that appears twice.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .activations import ACTIVATIONS, Activation
from .errors import TooLargeError
from .initialization import INITIALIZERS
from .losses import LOSSES, Loss, get_loss
from .safe_files import (
    MAX_BYTES,
    MAX_JSON_CHARS,
    MAX_MEMBERS,
    MAX_NUMBER_CHARS,
    NpzArchive,
    brief,
    human_bytes,
    loads_json,
    short_names,
    write_atomically,
)
from .validation import (
    check_layer_sizes,
    check_network_in_place,
    check_path,
    check_weights,
    check_weights_in_place,
)

if TYPE_CHECKING:
    from .network import Network

__all__ = ["CONFIG_KEYS", "FORMAT", "MAX_BYTES", "VERSION", "load_network", "save_network"]

FORMAT = "simple-net"
VERSION = 1
CONFIG_KEYS = ("format", "version", "layer_sizes", "activations", "loss", "init", "seed")
"""The keys of a network's config, as ``save`` writes them; ``load`` refuses any other."""


def _weight_bytes(sizes: Sequence[int]) -> int:
    return 8 * sum((n + 1) * m for n, m in zip(sizes, sizes[1:]))


def _check_budget(max_bytes: object) -> int:
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)) or (
            max_bytes < 0):
        raise ValueError(f"max_bytes must be a non-negative int (bytes), got {max_bytes!r}")
    return int(max_bytes)


def _check_config(config: dict) -> list[int]:
    """What a network's config must satisfy, without building the network: the same rules for
    ``load`` (on the file's config) and ``save`` (on the config it is about to write).

    Returns the layer sizes. Raises TypeError or ValueError with ``Network``'s own messages."""
    sizes = check_layer_sizes(config["layer_sizes"])
    acts = config["activations"]
    if len(acts) != len(sizes) - 1:
        raise ValueError(f"expected {len(sizes) - 1} activations (one per layer), got "
                         f"{len(acts)}: {brief(acts)}")
    for name in acts:
        if name not in ACTIVATIONS:
            raise ValueError(f"unknown activation {brief(name)}; expected one of: "
                             f"{', '.join(ACTIVATIONS)}")
    if config["loss"] not in LOSSES:
        raise ValueError(f"unknown loss {brief(config['loss'])}; expected one of: "
                         f"{', '.join(LOSSES)}")
    required = get_loss(config["loss"]).output_activation
    if required is not None and acts[-1] != required:
        raise ValueError(f"loss {config['loss']!r} needs the last activation to be "
                         f"{required!r}, got {acts[-1]!r}")
    if config["init"] not in INITIALIZERS:
        raise ValueError(f"unknown init {brief(config['init'])}; expected one of: "
                         f"{', '.join(INITIALIZERS)}")
    seed = config.get("seed")
    if seed is not None and (type(seed) is not int or seed < 0):
        raise ValueError(f"seed must be a non-negative int or None, got {brief(seed)}")
    if seed is not None and seed >= 10**MAX_NUMBER_CHARS:  # compared, never printed in full
        digits = int(seed.bit_length() * math.log10(2)) + 1
        raise ValueError(f"seed must have at most {MAX_NUMBER_CHARS} digits (a file holds no "
                         f"longer number), got one of about {digits} digits")
    return sizes


# --- save --------------------------------------------------------------------------------------


def _config_of(net: Network) -> dict:
    """The config ``save`` writes, checked as ``load`` will check it."""
    from .network import Network

    if not isinstance(net, Network):
        raise TypeError(f"cannot save: expected a Network, got {type(net).__name__}")
    try:  # sizes, activations and loss edited in place: the message of every entry point
        check_network_in_place(net)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"cannot save: {exc}") from None
    acts = list(net.activations)
    for k, act in enumerate(acts):
        if not isinstance(act, Activation):
            raise TypeError(f"cannot save: net.activations[{k}] must be an Activation, got "
                            f"{type(act).__name__}: {act!r}")
        if not act.builtin or act.name not in ACTIVATIONS:
            raise ValueError(
                f"cannot save: layer {k} uses the custom activation {act.name!r}, and custom "
                "functions cannot be serialised by value (no pickle); save the weights with "
                "numpy and rebuild the network with the same Activation instead"
            )
    loss = net.loss_function
    if not isinstance(loss, Loss):
        raise TypeError(f"cannot save: net.loss_function must be a Loss, got "
                        f"{type(loss).__name__}: {loss!r}")
    if not loss.builtin or loss.name not in LOSSES:
        raise ValueError(
            f"cannot save: the custom loss {loss.name!r} cannot be serialised "
            "by value (no pickle)"
        )
    config = {
        "format": FORMAT,
        "version": VERSION,
        "layer_sizes": net.layer_sizes,
        "activations": [a.name for a in acts],
        "loss": loss.name,
        "init": net.init,
        "seed": net.seed,
    }
    try:
        config["layer_sizes"] = _check_config(config)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"cannot save: load would refuse its configuration: {exc}") from None
    return config


def save_network(net: Network, path: str | os.PathLike, *, max_bytes: int = MAX_BYTES) -> None:
    """Write ``net`` to ``path`` atomically; refuse, before writing anything, what
    ``load_network(path, max_bytes=max_bytes)`` would refuse.

    A symlink at ``path`` is followed: the file it points to is replaced, the link kept; a
    symlink loop is refused. The file keeps the mode of the file it replaces (a new one: 0o666
    less the umask).

    Raises:
        TypeError: ``path`` is not a str or os.PathLike; a weight replaced in place by another
            type or dtype.
        ValueError: a custom Activation or Loss (not serialisable by value), a weight of the
            wrong shape or not finite, a configuration load would refuse (a seed of more than
            100 digits, say).
        TooLargeError: the weights take more than ``max_bytes`` (load's budget).
        OSError: ``"cannot write {path}: {why}"``: a path ending in a separator, a directory,
            device or FIFO at ``path``, a missing folder, an overlong name, a symlink loop, a
            folder that cannot be written, a failed write.
    """
    path = check_path(path, "path")
    max_bytes = _check_budget(max_bytes)
    config = _config_of(net)
    sizes = config["layer_sizes"]
    try:
        weights = check_weights_in_place(net.weights, sizes)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"cannot save: {exc}") from None
    total = _weight_bytes(sizes)
    if total > max_bytes:
        raise TooLargeError(
            f"cannot save: the weights take {human_bytes(total)}, more than the memory budget "
            f"max_bytes = {human_bytes(max_bytes)} that load would allow; pass a larger "
            "max_bytes to both save and load")
    if len(weights) + 1 > MAX_MEMBERS:
        raise TooLargeError(f"cannot save: {len(weights)} layers make more than the "
                            f"{MAX_MEMBERS} arrays load reads from one file")
    text = json.dumps(config)
    if len(text) > MAX_JSON_CHARS:
        raise TooLargeError(f"cannot save: the config would be {len(text)} characters of JSON, "
                            f"more than the {MAX_JSON_CHARS} load reads")
    arrays = {"config": np.array(text)}
    arrays.update({f"W{k}": w for k, w in enumerate(weights)})
    write_atomically(path, lambda f: np.savez(f, **arrays))  # a symlink is followed


# --- load --------------------------------------------------------------------------------------


def _bad(path: str, why: str) -> ValueError:
    return ValueError(f"{path} is not a valid simple-net file: {why}")


def _read_config(z: NpzArchive, path: str) -> dict:
    if "config" not in z.names:
        raise _bad(path, "missing the 'config' entry (a JSON string)")
    header = z.header("config", kinds="biufU")  # objects: refused as needing pickle
    if header.dtype.kind != "U" or header.shape != ():
        raise _bad(path, "missing the 'config' entry (a JSON string)")
    if header.nbytes > 4 * MAX_JSON_CHARS:
        raise z.too_large(f"its config declares {header.nbytes // 4} characters, more than the "
                          f"limit of {MAX_JSON_CHARS}")
    # Read into an array of its own: the config is bounded by the JSON limit, not the budget.
    text = str(z.read("config", kinds="U", out=np.empty((), dtype=header.dtype))[()])
    try:
        config = loads_json(text, "config")
    except TooLargeError as exc:
        raise z.too_large(str(exc)) from None
    except ValueError as exc:
        raise _bad(path, str(exc)) from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise _bad(path, f"config has no format tag {FORMAT!r}")
    if type(config.get("version")) is not int or config["version"] != VERSION:
        raise _bad(path, f"unsupported version {brief(config.get('version'))}, expected "
                         f"{VERSION}")
    unknown = [key for key in config if key not in CONFIG_KEYS]
    if unknown:
        raise _bad(path, f"config has the unknown key{'s' * (len(unknown) > 1)} "
                         f"{short_names(unknown)}; a simple-net config holds only "
                         f"{', '.join(CONFIG_KEYS)}")
    for key, kind in (("layer_sizes", list), ("activations", list), ("loss", str), ("init", str)):
        if not isinstance(config.get(key), kind):
            raise _bad(path, f"config[{key!r}] must be a {kind.__name__}, got "
                             f"{brief(config.get(key))}")
    if not all(isinstance(a, str) for a in config["activations"]):
        raise _bad(path, "config['activations'] must be a list of names")
    return config


def load_network(path: str | os.PathLike, *, max_bytes: int = MAX_BYTES) -> Network:
    """Read a network written by ``save_network``, treating the file as hostile.

    Args:
        path: the .npz file.
        max_bytes: the memory budget: the weights the file declares may take at most this
            many bytes (default 1 GiB); checked before anything is allocated.

    Raises:
        FileNotFoundError: no such file.
        TooLargeError: the file declares more than ``max_bytes`` of weights, or exceeds a limit
            of ``reference.safe_files`` (zip directory, JSON nesting and number length).
        ValueError: the file is not a simple-net .npz, or any part of it is malformed.
        MemoryError: the declared weights fit the budget but not this machine's memory.
    """
    from .network import Network

    path = check_path(path, "path")
    max_bytes = _check_budget(max_bytes)
    if not os.path.exists(path):
        slash = path.endswith(os.sep) or bool(os.altsep and path.endswith(os.altsep))
        raise FileNotFoundError(f"no network file at {path}" + (
            f" (a path ending in {path[-1]!r} names a folder)" if slash else ""))
    if os.path.isdir(path):
        raise _bad(path, "it is a directory")
    with NpzArchive(path, f"{path} is not a valid simple-net file", max_bytes=max_bytes) as z:
        config = _read_config(z, path)
        try:
            sizes = _check_config(config)
        except TooLargeError as exc:
            raise z.too_large(f"its configuration is refused: {exc}") from None
        except (TypeError, ValueError) as exc:
            raise _bad(path, f"its configuration is refused: {exc}") from None
        total = _weight_bytes(sizes)
        if total > z.budget:
            shown = sizes if len(sizes) <= 8 else [*sizes[:4], "...", *sizes[-2:]]
            raise z.too_large(
                f"its config declares layer_sizes {shown}, whose weights take "
                f"{human_bytes(total)}: more than the memory budget max_bytes = "
                f"{human_bytes(max_bytes)} (pass a larger max_bytes to load it)")

        expected = [f"W{k}" for k in range(len(sizes) - 1)]
        found = sorted(n for n in z.names if n != "config")
        if found != sorted(expected):
            raise _bad(path, f"expected arrays {short_names(expected)}, found {short_names(found)}")
        shapes = [(n + 1, m) for n, m in zip(sizes, sizes[1:])]
        for k, (name, shape) in enumerate(zip(expected, shapes)):
            header = z.header(name, kinds="biufU")  # objects: refused as needing pickle
            if header.dtype != np.float64:
                raise _bad(path, f"{name} must be float64, got {header.dtype}")
            if header.shape != shape:
                raise _bad(path, f"weights[{k}] must have shape {shape} (n_in + 1 bias row, "
                                 f"n_out), got {header.shape}")
        try:
            net = Network(sizes, config["activations"], config["loss"],
                          seed=config.get("seed"), init=config["init"])
        except (TypeError, ValueError) as exc:
            raise _bad(path, f"its configuration is refused: {exc}") from None
        except MemoryError:
            raise MemoryError(f"not enough memory to load {path}: its weights take "
                              f"{human_bytes(total)}") from None
        # Each array is read straight into the network's own (freshly initialised) weight.
        own = net.weights
        direct = all(isinstance(w, np.ndarray) and w.dtype == np.float64 and w.shape == s
                     and w.flags.c_contiguous and w.flags.writeable
                     for w, s in zip(own, shapes))
        arrays = [z.read(name, out=w if direct else None) for name, w in zip(expected, own)]
    try:
        checked = check_weights(arrays, sizes)  # every entry finite
    except (TypeError, ValueError) as exc:
        raise _bad(path, str(exc)) from None
    if not direct:
        net.weights = checked
    return net
