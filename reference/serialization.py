"""Save and load networks: ``.npz`` arrays plus a JSON configuration, never pickle.

File layout: ``config`` (a 0-d unicode array holding JSON) and ``W0 .. W{L-1}`` (float64).
Loading uses ``allow_pickle=False`` and checks the format tag, every key, every shape, dtype
and value, and refuses anything else with a ``ValueError`` naming the problem.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .network import Network

__all__ = ["FORMAT", "VERSION", "load_network", "save_network"]

FORMAT = "simple-net"
VERSION = 1


def save_network(net: Network, path: str | os.PathLike) -> None:
    """Write ``net`` to ``path`` atomically (a failed save leaves no partial file).

    Raises:
        ValueError: a custom Activation or Loss cannot be saved by value.
    """
    for k, act in enumerate(net.activations):
        if not act.builtin:
            raise ValueError(
                f"cannot save: layer {k} uses the custom activation {act.name!r}, and custom "
                "functions cannot be serialised by value (no pickle); save the weights with "
                "numpy and rebuild the network with the same Activation instead"
            )
    if not net.loss_function.builtin:
        raise ValueError(
            f"cannot save: the custom loss {net.loss_function.name!r} cannot be serialised "
            "by value (no pickle)"
        )
    config = {
        "format": FORMAT,
        "version": VERSION,
        "layer_sizes": net.layer_sizes,
        "activations": [a.name for a in net.activations],
        "loss": net.loss_function.name,
        "init": net.init,
        "seed": net.seed,
    }
    arrays = {"config": np.array(json.dumps(config))}
    arrays.update({f"W{k}": w for k, w in enumerate(net.weights)})
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _bad(path: str, why: str) -> ValueError:
    return ValueError(f"{path} is not a valid simple-net file: {why}")


def _read_npz(path: str) -> dict[str, np.ndarray]:
    """Every array of an .npz archive, read without pickle; the file is closed on any error."""
    with open(path, "rb") as fh:
        magic = fh.read(6)
        if magic == b"\x93NUMPY":
            raise _bad(path, "it holds a single .npy array, expected an .npz archive")
        if not magic.startswith(b"PK"):
            raise _bad(path, "expected an .npz (zip) archive")
        fh.seek(0)
        try:
            with np.load(fh, allow_pickle=False) as z:
                arrays = {}
                for name in z.files:
                    value = z[name]
                    if not isinstance(value, np.ndarray):
                        raise _bad(path, f"entry {name!r} is not a .npy array")
                    arrays[name] = value
        except ValueError as exc:
            if "is not a valid simple-net file" in str(exc):
                raise
            raise _bad(path, f"numpy refused an entry ({exc})") from None
        except (OSError, zipfile.BadZipFile, EOFError) as exc:
            raise _bad(path, f"cannot read it as .npz ({exc})") from None
    return arrays


def load_network(path: str | os.PathLike) -> Network:
    """Read a network written by ``save_network``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a simple-net .npz, or any part of it is malformed.
    """
    from .network import Network

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no network file at {path}")
    arrays = _read_npz(path)

    raw = arrays.pop("config", None)
    if raw is None or raw.shape != () or raw.dtype.kind != "U":
        raise _bad(path, "missing the 'config' entry (a JSON string)")
    try:
        config = json.loads(str(raw[()]))
    except json.JSONDecodeError as exc:
        raise _bad(path, f"config is not valid JSON ({exc})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise _bad(path, f"config has no format tag {FORMAT!r}")
    if type(config.get("version")) is not int or config["version"] != VERSION:
        raise _bad(path, f"unsupported version {config.get('version')!r}, expected {VERSION}")
    for key, kind in (("layer_sizes", list), ("activations", list), ("loss", str), ("init", str)):
        if not isinstance(config.get(key), kind):
            raise _bad(path, f"config[{key!r}] must be a {kind.__name__}, got {config.get(key)!r}")
    if not all(isinstance(a, str) for a in config["activations"]):
        raise _bad(path, "config['activations'] must be a list of names")
    try:
        net = Network(
            config["layer_sizes"], config["activations"], config["loss"],
            seed=config.get("seed"), init=config["init"],
        )
    except (TypeError, ValueError) as exc:
        raise _bad(path, f"its configuration is refused: {exc}") from None

    expected = [f"W{k}" for k in range(net.n_layers)]
    if sorted(arrays) != sorted(expected):
        raise _bad(path, f"expected arrays {expected}, found {sorted(arrays)}")
    for name in expected:
        w = arrays[name]
        if w.dtype != np.float64:
            raise _bad(path, f"{name} must be float64, got {w.dtype}")
    try:
        net.weights = [arrays[name] for name in expected]
    except (TypeError, ValueError) as exc:
        raise _bad(path, str(exc)) from None
    return net
