"""Attack suite, part 1: files built to hurt (issue 13).

Every file here is crafted in the test itself: lying .npy headers and zip directories, zip bombs,
configs that declare huge networks, deeply nested JSON, 5,000-digit numbers, pickles, broken
archives. Each is loaded in **one subprocess** with a memory limit (``RLIMIT_AS``) and a timeout:
a file that made the loader allocate what it declares would end in a MemoryError or a kill
instead of the refusal asserted, and the child's peak memory proves nothing big was inflated.

The promise asserted for each: the exact error type (``TooLargeError`` for a limit, else
``ValueError``; never MemoryError, RecursionError or a numpy/zipfile exception), a message that
names the file and gives the reason, and no pickle payload run. What saving must refuse (anything
loading would refuse) is at the end, with the symlink behaviour.
"""

from __future__ import annotations

import errno
import functools
import io
import json
import os
import stat
import struct
import subprocess
import sys
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from reference import Activation, Network
from reference.errors import TooLargeError
from reference.safe_files import MAX_JSON_CHARS, MAX_JSON_DEPTH, MAX_NUMBER_CHARS, loads_json

ROOT = Path(__file__).resolve().parents[1]
MEMORY_LIMIT = 768 << 20  # the loader's child process: far below what any attack declares
PEAK_LIMIT_KB = 150 << 10  # and its peak resident memory after every attack: nothing inflated

GOOD_CONFIG = {"format": "simple-net", "version": 1, "layer_sizes": [3, 4, 2],
               "activations": ["tanh", "sigmoid"], "loss": "binary_cross_entropy",
               "init": "glorot", "seed": 0}


# --- builders: .npy members and zip archives, byte by byte ---------------------------------------


def npy(array: np.ndarray) -> bytes:
    """An honest .npy member."""
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


def npy_header(header: str | dict, *, version: int = 1, length: int | None = None,
               data: bytes = b"") -> bytes:
    """A .npy member whose header says whatever we like (``length``: the declared length)."""
    text = header if isinstance(header, (str, bytes)) else repr(header)
    raw = (text if isinstance(text, bytes) else text.encode("latin1")) + b" " * 8 + b"\n"
    declared = len(raw) if length is None else length
    if version == 1:
        prefix = b"\x93NUMPY\x01\x00" + struct.pack("<H", declared)
    else:
        prefix = b"\x93NUMPY" + bytes([version, 0]) + struct.pack("<I", declared)
    return prefix + raw + data


def header(descr: object = "<f8", shape: object = (4, 4), fortran: object = False) -> dict:
    return {"descr": descr, "fortran_order": fortran, "shape": shape}


def config_member(config: object) -> bytes:
    """The config member: raw bytes as they are, a str as the JSON text, else JSON of it."""
    if isinstance(config, bytes):
        return config
    return npy(np.array(config if isinstance(config, str) else json.dumps(config)))


def good_weights() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"W0": rng.normal(size=(4, 4)), "W1": rng.normal(size=(5, 2))}


def net_members(config: object = GOOD_CONFIG, **arrays: object) -> dict[str, bytes]:
    """Members of a network file: the config and the arrays (ndarrays or raw member bytes)."""
    members = {"config.npy": config_member(config)}
    for name, value in {**good_weights(), **arrays}.items():
        if value is not None:
            members[name + ".npy"] = value if isinstance(value, bytes) else npy(value)
    return members


def write_zip(path: Path, members: dict[str, bytes] | list[tuple[str, bytes]],
              compression: int = zipfile.ZIP_STORED) -> Path:
    items = members.items() if isinstance(members, dict) else members
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile's "Duplicate name" for the duplicate attack
        with zipfile.ZipFile(path, "w", compression=compression) as z:
            for name, data in items:
                z.writestr(name, data)
    return path


def patch(path: Path, signature: bytes, offset: int, fmt: str, value: int,
          which: int = -1) -> Path:
    """Overwrite a field of a zip record (found by its signature) in place."""
    data = bytearray(path.read_bytes())
    hits = [i for i in range(len(data)) if data.startswith(signature, i)]
    at = hits[which] + offset
    data[at:at + struct.calcsize(fmt)] = struct.pack(fmt, value)
    path.write_bytes(bytes(data))
    return path


@functools.cache
def _deflated_zeros(mib: int) -> tuple[bytes, int]:
    """``mib`` MiB of zeros as a raw deflate stream (final block), and its CRC-32; made once."""
    zeros, stream, crc = bytes(16 << 20), zlib.compressobj(9, zlib.DEFLATED, -15), 0
    parts = []
    for _ in range(mib // 16):
        parts.append(stream.compress(zeros))
        crc = zlib.crc32(zeros, crc)
    return b"".join(parts) + stream.flush(), crc


def raw_zip(path: Path, members: list[tuple[str, int, bytes, int, int]]) -> Path:
    """A zip written byte by byte from (name, method, payload, crc, size) members."""
    out, central = bytearray(), bytearray()
    for name, method, payload, crc, size in members:
        encoded = name.encode()
        offset = len(out)
        out += struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, method, 0, 0, crc, len(payload),
                           size, len(encoded), 0) + encoded + payload
        central += struct.pack("<4s6H3I5HII", b"PK\x01\x02", 20, 20, 0, method, 0, 0, crc,
                               len(payload), size, len(encoded), 0, 0, 0, 0, 0, offset) + encoded
    start = len(out)
    out += central + struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, len(members), len(members),
                                 len(central), start, 0)
    path.write_bytes(bytes(out))
    return path


def write_bomb(path: Path, name: str, prefix: bytes, mib: int = 256,
               others: dict[str, bytes] | None = None) -> Path:
    """A small zip whose member ``name`` inflates to ``prefix`` + ``mib`` MiB of zeros.

    The prefix is deflated as a block of its own, flushed to a byte boundary, so that the
    (cached) stream of zeros can follow it as it is."""
    head = zlib.compressobj(9, zlib.DEFLATED, -15)
    head_bytes = head.compress(prefix) + head.flush(zlib.Z_FULL_FLUSH)
    zeros, zeros_crc = _deflated_zeros(mib)
    crc = zlib.crc32(bytes(mib << 20), zlib.crc32(prefix)) if prefix else zeros_crc
    members = [(n, 0, data, zlib.crc32(data), len(data)) for n, data in (others or {}).items()]
    members.append((name, 8, head_bytes + zeros, crc, len(prefix) + (mib << 20)))
    return raw_zip(path, members)


# --- the catalogue -------------------------------------------------------------------------------


@dataclass
class Attack:
    """A crafted file, how to open it, and the refusal it must get."""

    id: str
    build: object  # (path) -> None
    error: str  # the exact type name
    reason: str  # a fragment the message must hold, after the file's name
    op: str = "load"  # "load": Network.load; "data": the command lines' read_xt; "npz": read_npz
    kwargs: dict | None = None


def _big_config(sizes: list[int]) -> dict:
    return {**GOOD_CONFIG, "layer_sizes": sizes,
            "activations": ["tanh"] * (len(sizes) - 2) + ["sigmoid"]}


def _deep(depth: int, kind: str = "list") -> str:
    if kind == "list":
        return "[" * depth + "]" * depth
    return '{"a": ' * depth + "1" + "}" * depth


ATTACKS: list[Attack] = []


def attack(id: str, error: str, reason: str, op: str = "load", **kwargs):
    def register(build):
        ATTACKS.append(Attack(id, build, error, reason, op, kwargs or None))
        return build
    return register


def file_attack(id: str, members, error: str, reason: str, op: str = "load", **kwargs) -> None:
    """An attack that is just a zip of these members (a dict, or a function making one)."""
    def build(path):
        write_zip(path, members() if callable(members) else members)
    ATTACKS.append(Attack(id, build, error, reason, op, kwargs or None))


# 1. Files that declare more than the memory budget (the config, the headers, the directory).
for sizes, label in [([16000, 16000], "16000x16000"), ([3, 40000, 40000, 2], "deep-wide"),
                     ([1000] * 400, "400 layers"), ([2**40, 2], "2^40 inputs")]:
    file_attack(f"config declares {label}", lambda s=sizes: net_members(_big_config(s)),
                "TooLargeError", "more than the memory budget max_bytes = 1.0 GiB")
file_attack("config declares 2^63 inputs", net_members(_big_config([2**63, 2])),
            "TooLargeError", "more than this machine can address")
file_attack("config declares 10^30 units", net_members(_big_config([10**30, 10**30, 1])),
            "TooLargeError", "more than this machine can address")
file_attack("config over a small budget", net_members(_big_config([8191, 4096, 1])),
            "TooLargeError", "more than the memory budget max_bytes = 64.0 MiB",
            max_bytes=64 << 20)
file_attack("W0 header declares (100000, 100000)",
            net_members(W0=npy_header(header(shape=(100000, 100000)), data=bytes(128))),
            "ValueError", "array 'W0' declares shape (100000, 100000) of float64 (74.5 GiB), "
                          "but its zip member holds 128 bytes of data")
file_attack("W0 header declares 10^20 entries",
            net_members(W0=npy_header(header(shape=(10**10, 10**10)))),
            "ValueError", "array 'W0' declares shape (10000000000, 10000000000)")
file_attack("W0 header declares (2^31, 2^31) float64",
            net_members(W0=npy_header(header(shape=(2**31, 2**31)))),
            "ValueError", "but its zip member holds 0 bytes of data")
file_attack("config header declares 10^9 characters",
            net_members(config=npy_header(header("<U1000000000", ()))),
            "ValueError", "array 'config' has the unknown dtype '<U1000000000'")
file_attack("config header declares 10^8 characters",
            net_members(config=npy_header(header("<U100000000", ()))),
            "ValueError", "array 'config' declares shape () of <U100000000 (381.5 MiB), but its "
                          "zip member holds 0 bytes of data")
file_attack("config declares 16000x16000, headers agree",
            lambda: net_members(_big_config([16000, 16000]),
                                W0=npy_header(header(shape=(16001, 16000))), W1=None),
            "TooLargeError", "whose weights take 1.9 GiB: more than the memory budget")
file_attack("data X header declares (100000, 100000)",
            {"X.npy": npy_header(header(shape=(100000, 100000))), "T.npy": npy(np.zeros(2))},
            "ValueError", "array 'X' declares shape (100000, 100000)", op="data")
file_attack("data X and T over a small budget",
            {"X.npy": npy(np.zeros((600, 1000))), "T.npy": npy(np.zeros((600, 1000)))},
            "TooLargeError", "arrays X and T declare 9.2 MiB, more than the memory budget",
            op="data", max_bytes=8 << 20)
file_attack("config longer than the JSON limit",
            net_members(config=json.dumps({**GOOD_CONFIG, "pad": "x" * MAX_JSON_CHARS})),
            "TooLargeError", f"more than the limit of {MAX_JSON_CHARS}")


# 2. Zip bombs: a few hundred KB that inflate to 256 MiB, never inflated.
@attack("zip bomb as an extra member", "ValueError",
        "expected arrays ['W0', 'W1'], found ['W0', 'W1', 'bomb']")
def _(path):
    write_bomb(path, "bomb.npy", b"", others=net_members())


@attack("zip bomb as W0 (header says (4, 4))", "ValueError",
        "array 'W0' declares shape (4, 4) of float64 (128 bytes), but its zip member holds "
        "256.0 MiB of data")
def _(path):
    members = net_members()
    del members["W0.npy"]
    write_bomb(path, "W0.npy", npy_header(header()), others=members)


@attack("zip bomb as data X over the budget", "TooLargeError",
        "arrays X and T declare 256.0 MiB, more than the memory budget of 64.0 MiB",
        op="data", max_bytes=64 << 20)
def _(path):
    write_bomb(path, "X.npy", npy_header(header("<f8", (32 << 20,))),
               others={"T.npy": npy(np.zeros(2))})


@attack("zip bomb as an extra member of a data file", "UsageError",
        "lacks array(s) ['T']; found ['X', 'bomb']", op="data")
def _(path):
    write_bomb(path, "bomb.npy", b"", others={"X.npy": npy(np.zeros((2, 2)))})


# 3. JSON built to exhaust the stack or the int parser.
for depth in (MAX_JSON_DEPTH + 1, 1000, 100_000):
    file_attack(f"config nested {depth} deep (lists)", net_members(config=_deep(depth)),
                "TooLargeError", f"config nests objects or arrays {depth} deep")
    file_attack(f"config nested {depth} deep (objects)",
                net_members(config=_deep(depth, "dict")),
                "TooLargeError", f"config nests objects or arrays {depth} deep")
file_attack("config nested at the limit, not a config",
            net_members(config=_deep(MAX_JSON_DEPTH)), "ValueError",
            "config has no format tag 'simple-net'")
for digits in (MAX_NUMBER_CHARS + 1, 5000, 100_000):
    text = json.dumps(GOOD_CONFIG).replace("[3, 4, 2]", f"[{'9' * digits}, 4, 2]")
    file_attack(f"a {digits}-digit layer size", net_members(config=text),
                "TooLargeError", f"config: it holds a number of {digits} characters")
for literal, reason in [("1e999", "overflows a float"), ("NaN", "holds NaN"),
                        ("Infinity", "holds Infinity"), ("-Infinity", "holds -Infinity"),
                        ("0." + "1" * 200, "a number of 202 characters")]:
    text = json.dumps(GOOD_CONFIG).replace('"seed": 0', f'"seed": {literal}')
    error = "ValueError" if "holds" in reason and "number" not in reason else "TooLargeError"
    file_attack(f"seed {literal[:12]}", net_members(config=text), error, reason)

# 4. Pickles: object arrays are refused from their header; the payload never runs (below).
file_attack("object W0", lambda: net_members(W0=npy(np.array([[1, None]], dtype=object))),
            "ValueError", "array 'W0' holds Python objects (dtype object), which would need "
                          "pickle")
file_attack("object config", lambda: net_members(
    config=npy(np.array(json.dumps(GOOD_CONFIG), dtype=object))),
    "ValueError", "array 'config' holds Python objects")
file_attack("object data X", {"X.npy": npy(np.array([1, None], dtype=object)),
                              "T.npy": npy(np.zeros(2))},
            "ValueError", "array 'X' holds Python objects", op="data")
file_attack("header that is code", net_members(W0=npy_header(
    "{'descr': __import__('os').system('touch PWNED'), 'fortran_order': False, "
    "'shape': (4, 4)}")), "ValueError", "array 'W0' has an .npy header that is not a plain "
                                        "Python literal")

# 5. Lying or malformed .npy headers.
for label, head, reason in [
    ("negative dimension", header(shape=(-4, 4)), "declares the shape (-4, 4)"),
    ("float dimension", header(shape=(4.0, 4)), "declares the shape (4.0, 4)"),
    ("shape as a string", header(shape="(4, 4)"), "declares the shape '(4, 4)'"),
    ("shape as a list", header(shape=[4, 4]), "declares the shape [4, 4]"),
    ("bool dimension", header(shape=(True, 4)), "declares the shape (True, 4)"),
    ("fortran_order a string", header(fortran="yes"), "declares fortran_order 'yes'"),
    ("fortran_order an int", header(fortran=1), "declares fortran_order 1"),
    ("structured dtype", header(descr=[("a", "<f8")]), "has the structured dtype"),
    ("unknown dtype", header(descr="<q9"), "has the unknown dtype '<q9'"),
    ("complex dtype", header(descr="<c16"), "has dtype complex128, expected"),
    ("void dtype", header(descr="|V8"), "has dtype |V8, expected"),
    ("datetime dtype", header(descr="<M8[s]"), "has dtype datetime64[s], expected"),
    ("bytes dtype", header(descr="|S8"), "has dtype |S8, expected"),
    ("missing key", {"descr": "<f8", "shape": (4, 4)}, "has an .npy header without exactly"),
    ("extra key", {**header(), "evil": 1}, "has an .npy header without exactly the keys"),
    ("a list, not a dict", "[1, 2, 3]", "has an .npy header without exactly the keys"),
    ("not a literal", "{'descr': '<f8', 'fortran_order': False, 'shape': (4, 4)",
     "has an .npy header that is not a plain Python literal"),
    ("5000-digit dimension", "{'descr': '<f8', 'fortran_order': False, 'shape': (%s, 4)}"
     % ("9" * 5000), "has an .npy header that is not a plain Python literal"),
    ("nested parentheses", "{'descr': '<f8', 'fortran_order': False, 'shape': %s}"
     % ("(" * 500 + ")" * 500), "has an .npy header that is not a plain Python literal"),
    ("a set", "{1, 2}", "has an .npy header without exactly the keys"),
    ("a lambda", "lambda: 0", "has an .npy header that is not a plain Python literal"),
    ("an f-string", "f'{1}'", "has an .npy header that is not a plain Python literal"),
]:
    file_attack(f"W0 header: {label}", net_members(W0=npy_header(head, data=bytes(128))),
                "ValueError", f"array 'W0' {reason}")
file_attack("W0 header declares 4 GiB of header (v2)",
            net_members(W0=npy_header(header(), version=2, length=2**32 - 1)),
            "TooLargeError", "array 'W0' declares a .npy header of 4294967295 bytes")
file_attack("W0 header declares 64 KiB of header (v1)",
            net_members(W0=npy_header(header(), length=65535)),
            "TooLargeError", "declares a .npy header of 65535 bytes, more than the limit")
file_attack("W0 header: not UTF-8 (v3)", net_members(W0=npy_header(
    b"{'descr': '\xff\xfe', 'fortran_order': False, 'shape': (4, 4)}", version=3)),
    "ValueError", "array 'W0' has an .npy header that is not a plain Python literal")
file_attack("W0 .npy version 9", net_members(W0=npy_header(header(), version=9)),
            "ValueError", "array 'W0' has .npy format version 9")
file_attack("W0 truncated header", net_members(W0=npy_header(header())[:20]),
            "ValueError", "array 'W0' has a truncated .npy header")
file_attack("W0 without the .npy magic", net_members(W0=b"PK\x03\x04" + bytes(200)),
            "ValueError", "entry 'W0' is not a .npy array")
file_attack("W0 empty member", net_members(W0=b""), "ValueError",
            "entry 'W0' is not a .npy array")
file_attack("W0 data cut short", net_members(W0=npy(np.zeros((4, 4)))[:-8]),
            "ValueError", "but its zip member holds 120 bytes of data")
file_attack("W0 data too long", net_members(W0=npy(np.zeros((4, 4))) + bytes(8)),
            "ValueError", "but its zip member holds 136 bytes of data")
file_attack("W0 float32", net_members(W0=np.zeros((4, 4), np.float32)), "ValueError",
            "W0 must be float64, got float32")
file_attack("W0 float16", net_members(W0=np.zeros((4, 4), np.float16)), "ValueError",
            "W0 must be float64, got float16")
file_attack("W0 big-endian float64", net_members(W0=np.zeros((4, 4), ">f8")), "ValueError",
            "W0 must be float64, got >f8")
file_attack("W0 int64", net_members(W0=np.zeros((4, 4), np.int64)), "ValueError",
            "W0 must be float64, got int64")
file_attack("W0 bool", net_members(W0=np.zeros((4, 4), bool)), "ValueError",
            "W0 must be float64, got bool")
file_attack("W0 wrong shape", net_members(W0=np.zeros((4, 5))), "ValueError",
            "weights[0] must have shape (4, 4) (n_in + 1 bias row, n_out), got (4, 5)")
file_attack("W0 0-d", net_members(W0=np.zeros(())), "ValueError",
            "weights[0] must have shape (4, 4) (n_in + 1 bias row, n_out), got ()")
file_attack("W1 NaN", net_members(W1=np.full((5, 2), np.nan)), "ValueError",
            "weights[1] must be finite, found 10 NaN/Inf entries (first at index (0, 0): nan)")
file_attack("W1 Inf at (4, 1)", lambda: net_members(
    W1=np.where(np.arange(10).reshape(5, 2) == 9, np.inf, 0.0)), "ValueError",
    "weights[1] must be finite, found 1 NaN/Inf entries (first at index (4, 1): inf)")
file_attack("config as float array", net_members(config=npy(np.zeros(3))), "ValueError",
            "missing the 'config' entry (a JSON string)")
file_attack("config as a 1-element array", net_members(
    config=npy(np.array([json.dumps(GOOD_CONFIG)]))), "ValueError",
    "missing the 'config' entry (a JSON string)")
file_attack("config as bytes", net_members(
    config=npy(np.array(json.dumps(GOOD_CONFIG).encode()))), "ValueError",
    "array 'config' has dtype |S")

# 6. Zip structure: directories that lie, duplicates, methods, encryption, checksums.
file_attack("duplicate W0", lambda: [*net_members().items(), ("W0.npy", npy(np.ones((4, 4))))],
            "ValueError", "entry 'W0.npy' appears twice in its zip directory")
file_attack("a member without .npy", {**net_members(), "notes.txt": b"hello"}, "ValueError",
            "entry 'notes.txt' is not a .npy array")
file_attack("a member with a 60 KB name", {**net_members(), "n" * 60000 + ".npy": b""},
            "ValueError", "expected arrays ['W0', 'W1'], found ['W0', 'W1', 'nnnn")
file_attack("a path-traversal member", {**net_members(), "../../etc/passwd.npy": b""},
            "ValueError", "found ['../../etc/passwd', 'W0', 'W1']")
file_attack("an extra W2", net_members(W2=np.zeros((3, 3))), "ValueError",
            "expected arrays ['W0', 'W1'], found ['W0', 'W1', 'W2']")
file_attack("W1 missing", net_members(W1=None), "ValueError",
            "expected arrays ['W0', 'W1'], found ['W0']")
file_attack("config missing", {k: v for k, v in net_members().items() if k != "config.npy"},
            "ValueError", "missing the 'config' entry (a JSON string)")
file_attack("an empty archive", {}, "ValueError", "missing the 'config' entry")
file_attack("10,000 layers, no arrays", net_members(_big_config([1] * 10_001), W0=None,
                                                    W1=None),
            "ValueError", "expected arrays 10000 arrays ['W0', 'W1', 'W2', 'W3'] ... "
                          "['W9998', 'W9999'], found []")


@attack("bzip2 members", "ValueError", "is compressed with zip method 12; only stored and "
                                       "deflated members")
def _(path):
    write_zip(path, net_members(), compression=zipfile.ZIP_BZIP2)


@attack("lzma members", "ValueError", "is compressed with zip method 14")
def _(path):
    write_zip(path, net_members(), compression=zipfile.ZIP_LZMA)


@attack("deflated members load fine, but a NaN is still refused", "ValueError",
        "weights[1] must be finite")
def _(path):
    write_zip(path, net_members(W1=np.full((5, 2), np.nan)), compression=zipfile.ZIP_DEFLATED)


@attack("an encrypted W0", "ValueError", "array 'W0' is encrypted")
def _(path):
    write_zip(path, net_members())
    names = [i.filename for i in zipfile.ZipFile(path).infolist()]
    patch(path, b"PK\x01\x02", 8, "<H", 1, which=names.index("W0.npy"))


@attack("a corrupted W1 byte (bad CRC)", "ValueError", "cannot read array 'W1' (Bad CRC-32")
def _(path):
    write_zip(path, net_members(W1=np.full((5, 2), 1.5)))
    data = bytearray(path.read_bytes())
    at = data.index(np.full((5, 2), 1.5).tobytes())
    data[at + 3] ^= 0xFF
    path.write_bytes(bytes(data))


@attack("a directory that lists 60,000 members", "TooLargeError",
        "its zip directory lists 60000 members, more than the limit of 10000")
def _(path):
    write_zip(path, net_members())
    patch(path, b"PK\x05\x06", 10, "<H", 60000)


@attack("a directory that declares 100 MiB", "TooLargeError",
        "its zip directory takes 100.0 MiB, more than the limit of 4.0 MiB")
def _(path):
    write_zip(path, net_members())
    patch(path, b"PK\x05\x06", 12, "<I", 100 << 20)


@attack("a zip64 locator pointing at nothing", "ValueError", "a broken zip64 directory record")
def _(path):
    write_zip(path, net_members())
    data = path.read_bytes()
    at = data.rindex(b"PK\x05\x06")
    locator = b"PK\x06\x07" + struct.pack("<IQI", 0, 3, 1)
    path.write_bytes(data[:at] + locator + data[at:])


@attack("a zip64 record declaring 2^40 members", "TooLargeError",
        "its zip directory lists 1099511627776 members")
def _(path):
    write_zip(path, net_members())
    data = path.read_bytes()
    at = data.rindex(b"PK\x05\x06")
    record = (b"PK\x06\x06" + struct.pack("<QHHIIQQQQ", 44, 45, 45, 0, 0, 2**40, 2**40,
                                          100, 0))
    locator = b"PK\x06\x07" + struct.pack("<IQI", 0, at, 1)
    path.write_bytes(data[:at] + record + locator + data[at:])


@attack("an end record cut off", "ValueError", "cannot read it as .npz (no zip directory")
def _(path):
    write_zip(path, net_members())
    path.write_bytes(path.read_bytes()[:-10])


@attack("cut after the first member", "ValueError", "cannot read it as .npz")
def _(path):
    write_zip(path, net_members())
    path.write_bytes(path.read_bytes()[:200])


@attack("an end record but nothing before it", "ValueError", "cannot read it as .npz")
def _(path):
    path.write_bytes(b"PK" + bytes(10) + b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, 3, 3,
                                                                       200, 0, 0))


@attack("a directory with a 64 KB comment of end records", "ValueError",
        "cannot read it as .npz")  # zipfile itself cannot find its directory
def _(path):
    with zipfile.ZipFile(path, "w") as z:
        z.comment = b"PK\x05\x06" * 16383
        z.writestr("W0.npy", npy(np.zeros((4, 4))))


@attack("plain text", "ValueError", "expected an .npz (zip) archive")
def _(path):
    path.write_text("hello, I am not an archive\n")


@attack("an empty file", "ValueError", "expected an .npz (zip) archive")
def _(path):
    path.write_bytes(b"")


@attack("a single .npy", "ValueError", "it holds a single .npy array, expected an .npz archive")
def _(path):
    path.write_bytes(npy(np.zeros((4, 4))))


@attack("a single .npy that declares 80 GB", "ValueError", "it holds a single .npy array")
def _(path):
    path.write_bytes(npy_header(header(shape=(100000, 100000))))


@attack("a directory", "ValueError", "it is a directory")
def _(path):
    path.mkdir()


@attack("a FIFO (would block)", "ValueError", "it is not a regular file")
def _(path):
    os.mkfifo(path)


@attack("data: a FIFO (would block)", "UsageError", "not a regular file", op="data")
def _(path):
    os.mkfifo(path)


@attack("a symlink to /dev/zero (never ends)", "ValueError", "it is not a regular file")
def _(path):
    path.symlink_to("/dev/zero")


@attack("data: a symlink to /dev/zero", "UsageError", "not a regular file", op="data")
def _(path):
    path.symlink_to("/dev/zero")


@attack("a gzip file", "ValueError", "expected an .npz (zip) archive")
def _(path):
    import gzip
    path.write_bytes(gzip.compress(b"PK" * 1000))


# 7. Configs that are valid JSON but not a network.
for label, changes, reason in [
    ("bool layer size", {"layer_sizes": [True, 4, 2]}, "layer_sizes[0] must be an int, got bool"),
    ("float layer size", {"layer_sizes": [3.5, 4, 2]}, "layer_sizes[0] must be an int"),
    ("zero layer size", {"layer_sizes": [3, 0, 2]}, "layer_sizes[1] must be a positive int"),
    ("negative layer size", {"layer_sizes": [3, -4, 2]}, "layer_sizes[1] must be a positive"),
    ("nested layer sizes", {"layer_sizes": [[3], 4, 2]}, "layer_sizes[0] must be an int"),
    ("one layer size", {"layer_sizes": [3], "activations": []}, "at least 2 entries"),
    ("layer sizes as an object", {"layer_sizes": {"a": 1}}, "config['layer_sizes'] must be a "
                                                            "list"),
    ("layer sizes as a string", {"layer_sizes": "3,4,2"}, "config['layer_sizes'] must be a list"),
    ("unknown activation", {"activations": ["tanh", "swish"]}, "unknown activation 'swish'"),
    ("activation as a number", {"activations": ["tanh", 3]}, "must be a list of names"),
    ("too many activations", {"activations": ["tanh", "tanh", "sigmoid"]},
     "expected 2 activations (one per layer), got 3"),
    ("wrong output activation", {"activations": ["tanh", "tanh"]},
     "needs the last activation to be 'sigmoid', got 'tanh'"),
    ("unknown loss", {"loss": "hinge"}, "unknown loss 'hinge'"),
    ("loss as a list", {"loss": ["mse"]}, "config['loss'] must be a str"),
    ("unknown init", {"init": "xavier"}, "unknown init 'xavier'"),
    ("negative seed", {"seed": -1}, "seed must be a non-negative int or None, got -1"),
    ("seed as a float", {"seed": 1.5}, "seed must be a non-negative int or None, got 1.5"),
    ("seed as bool", {"seed": True}, "seed must be a non-negative int or None, got True"),
    ("version 2", {"version": 2}, "unsupported version 2, expected 1"),
    ("version as a string", {"version": "1"}, "unsupported version '1', expected 1"),
    ("version as bool", {"version": True}, "unsupported version True, expected 1"),
    ("format tag missing", {"format": None}, "config has no format tag 'simple-net'"),
]:
    file_attack(f"config: {label}", net_members({**GOOD_CONFIG, **changes}), "ValueError", reason)
for label, text, reason in [
    ("not JSON", "{'format': simple-net", "config is not valid JSON (Expecting property name"),
    ("empty", "", "config is not valid JSON (Expecting value"),
    ("a bare string", '"simple-net"', "config has no format tag"),
    ("a list", '["simple-net", 1]', "config has no format tag"),
    ("trailing garbage", json.dumps(GOOD_CONFIG) + "x", "config is not valid JSON (Extra data"),
    ("lone surrogate", json.dumps(GOOD_CONFIG), "its configuration is refused"),
]:
    if label == "lone surrogate":  # a lone surrogate is valid JSON; then the config is checked
        text = text.replace('"init": "glorot"', '"init": "\\ud800"')
        reason = "unknown init '\\ud800'"
    file_attack(f"config text: {label}", net_members(config=text), "ValueError", reason)

# 8. Data files for the command lines (read_xt).
for label, members, error, reason in [
    ("lacks T", {"X.npy": npy(np.zeros((2, 2)))}, "UsageError", "lacks array(s) ['T']"),
    ("lacks both", {"Y.npy": npy(np.zeros(2))}, "UsageError", "lacks array(s) ['X', 'T']"),
    ("string X", {"X.npy": npy(np.array(["a", "b"])), "T.npy": npy(np.zeros(2))},
     "ValueError", "array 'X' has dtype <U1, expected bool or int or unsigned int or float"),
    ("complex T", {"X.npy": npy(np.zeros(2)), "T.npy": npy(np.zeros(2, complex))},
     "ValueError", "array 'T' has dtype complex128"),
    ("X header lies", {"X.npy": npy(np.zeros(4))[:-8], "T.npy": npy(np.zeros(2))},
     "ValueError", "array 'X' declares shape (4,) of float64 (32 bytes), but its zip member "
                   "holds 24 bytes"),
    ("a raw member", {"X.npy": npy(np.zeros(2)), "T.npy": npy(np.zeros(2)), "raw": b"x"},
     "ValueError", "entry 'raw' is not a .npy array"),
]:
    file_attack(f"data: {label}", members, error, reason, op="data")


@attack("data: a single .npy", "UsageError", "is a single array; expected an .npz archive",
        op="data")
def _(path):
    path.write_bytes(npy(np.zeros((4, 4))))


@attack("data: text", "UsageError", "as an .npz archive (it is not a zip archive)", op="data")
def _(path):
    path.write_text("1,2,3\n")



# 9. Long names echoed back: every message stays short.
LONG = "x" * 100_000
for label, changes, reason in [
    ("a 100,000-character activation", {"activations": ["tanh", LONG]}, "unknown activation 'xxx"),
    ("a 100,000-character loss", {"loss": LONG}, "unknown loss 'xxx"),
    ("a 100,000-character init", {"init": LONG}, "unknown init 'xxx"),
    ("a 100,000-character layer size", {"layer_sizes": [LONG, 4, 2]},
     "layer_sizes[0] must be an int, got str"),
    ("a 100,000-character version", {"version": LONG}, "unsupported version 'xxx"),
    ("a 10,000-entry loss", {"loss": [1] * 10_000}, "config['loss'] must be a str, got [1, 1"),
    ("a 10,000-entry seed", {"seed": [1] * 10_000}, "seed must be a non-negative int or None"),
]:
    file_attack(f"config: {label}", net_members({**GOOD_CONFIG, **changes}), "ValueError", reason)

# 10. Zip directory fields that disagree with the members.


def _patched_member(field: int, fmt: str, value: int, member: str = "W0.npy"):
    def build(path):
        write_zip(path, net_members())
        names = [i.filename for i in zipfile.ZipFile(path).infolist()]
        patch(path, b"PK\x01\x02", field, fmt, value, which=names.index(member))
    return build


for label, field, value, error, reason in [
    ("W0 declares 4 GiB uncompressed", 24, 2**32 - 1, "ValueError",
     "array 'W0' declares shape (4, 4) of float64 (128 bytes), but its zip member holds"),
    ("W0 declares 1 MiB uncompressed", 24, 1 << 20, "ValueError",
     "but its zip member holds 1023.9 KiB of data"),
    ("W0 declares 10 bytes uncompressed", 24, 10, "ValueError", "array 'W0'"),
    ("W0 declares 10 bytes compressed", 20, 10, "ValueError", "array 'W0'"),
    ("W0 points at W1's data", 42, 0, "ValueError", "cannot read array 'W0'"),
    ("W0 declares method 99", 10, 99, "ValueError", "is compressed with zip method 99"),
]:
    ATTACKS.append(Attack(f"directory: {label}", _patched_member(field, "<I" if field != 10
                                                                  else "<H", value),
                          error, reason))


@attack("data: X encrypted", "ValueError", "array 'X' is encrypted", op="data")
def _(path):
    write_zip(path, {"X.npy": npy(np.zeros(2)), "T.npy": npy(np.zeros(2))})
    patch(path, b"PK\x01\x02", 8, "<H", 1, which=0)


@attack("data: zip bomb as X, header says (2,)", "ValueError",
        "array 'X' declares shape (2,) of float64 (16 bytes), but its zip member holds 256.0 MiB",
        op="data")
def _(path):
    write_bomb(path, "X.npy", npy_header(header(shape=(2,))), others={"T.npy": npy(np.zeros(2))})


file_attack("npz: objects", {"a.npy": npy(np.array([None])), "b.npy": npy(np.zeros(2))},
            "ValueError", "array 'a' holds Python objects", op="npz")
file_attack("npz: a raw member", {"a.npy": npy(np.zeros(2)), "b": b"raw"},
            "ValueError", "entry 'b' is not a .npy array", op="npz")
file_attack("npz: a header that lies", {"a.npy": npy(np.zeros(8))[:-8]},
            "ValueError", "array 'a' declares shape (8,) of float64 (64 bytes), but its zip "
                          "member holds 56 bytes", op="npz")


@attack("npz: a zip bomb over a small budget", "TooLargeError",
        "its arrays declare 256.0 MiB, more than the memory budget of 64.0 MiB", op="npz",
        max_bytes=64 << 20)
def _(path):
    write_bomb(path, "a.npy", npy_header(header("<f8", (32 << 20,))),
               others={"b.npy": npy(np.zeros(2))})


file_attack("data: X declares a 4 GiB header", {"X.npy": npy_header(header(), version=2,
                                                                     length=2**32 - 1),
                                                "T.npy": npy(np.zeros(2))},
            "TooLargeError", "array 'X' declares a .npy header of 4294967295 bytes", op="data")
file_attack("data: T header is code", {"X.npy": npy(np.zeros(2)), "T.npy": npy_header(
    "{'descr': open('/etc/passwd').read(), 'fortran_order': False, 'shape': (2,)}")},
    "ValueError", "array 'T' has an .npy header that is not a plain Python literal", op="data")
file_attack("data: duplicate X", [("X.npy", npy(np.zeros(2))), ("X.npy", npy(np.ones(2))),
                                  ("T.npy", npy(np.zeros(2)))],
            "ValueError", "entry 'X.npy' appears twice", op="data")
file_attack("data: 60 KB member name", {"X.npy": npy(np.zeros(2)), "n" * 60000: b""},
            "ValueError", "entry 'nnnnnnnnn", op="data")

# 11. Configs that say more than save writes: unknown keys, keys twice (json keeps the last).
for label, text, reason in [
    ("an unknown key", json.dumps({**GOOD_CONFIG, "extra": {"a": 1}}),
     "config has the unknown key ['extra']; a simple-net config holds only format, version, "
     "layer_sizes, activations, loss, init, seed"),
    ("two unknown keys", json.dumps({**GOOD_CONFIG, "x": 1, "y": 2}),
     "config has the unknown keys ['x', 'y']"),
    ("an unknown key of 100,000 characters", json.dumps({**GOOD_CONFIG, "k" * 100_000: 1}),
     "config has the unknown key ['kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...']"),
    ("a misspelt key", json.dumps({**GOOD_CONFIG, "activation": ["tanh", "sigmoid"]}),
     "config has the unknown key ['activation']"),
    ("seed twice", json.dumps(GOOD_CONFIG)[:-1] + ', "seed": 1}',
     "config: key 'seed' appears twice in one object"),
    ("layer_sizes twice, the second one huge", json.dumps(GOOD_CONFIG)[:-1]
     + ', "layer_sizes": [16000, 16000]}', "config: key 'layer_sizes' appears twice"),
    ("format twice", '{"format": "other", ' + json.dumps(GOOD_CONFIG)[1:],
     "config: key 'format' appears twice"),
    ("a key twice in a nested object", json.dumps(GOOD_CONFIG)[:-1] + ', "x": {"a": 1, "a": 2}}',
     "config: key 'a' appears twice in one object"),
]:
    file_attack(f"config: {label}", net_members(config=text), "ValueError", reason)

# 12. Strings that made the nesting check quadratic (a regex backtracking on every quote): an
# unterminated string of escaped quotes, 2,000,000 characters of config in a 2 KB file.
for label, text, error, reason in [
    ("unterminated escaped quotes, 64,000", '"' + '\\"' * 32_000, "ValueError",
     "config is not valid JSON (Unterminated string"),
    ("unterminated escaped quotes at the limit", '"' + '\\"' * ((MAX_JSON_CHARS - 1) // 2),
     "ValueError", "config is not valid JSON (Unterminated string"),
    ("escaped backslashes then a quote, at the limit",
     '{"a": "' + "\\\\" * ((MAX_JSON_CHARS - 20) // 2) + '"}', "ValueError",
     "config has no format tag"),
    ("brackets after an escaped quote stay in the string",
     '{"format": "simple-net", "x": "\\"' + "[" * 100_000 + '"}', "ValueError",
     "unsupported version None, expected 1"),
    ("past the limit by one", '"' + '\\"' * (MAX_JSON_CHARS // 2), "TooLargeError",
     f"its config declares {MAX_JSON_CHARS + 1} characters, more than the limit of "
     f"{MAX_JSON_CHARS}"),
]:
    file_attack(f"config text: {label}", lambda text=text: net_members(config=text), error,
                reason)


# --- running them all in a child with a memory limit ----------------------------------------------

RUNNER = r"""
import json, resource, sys
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from reference.cli_tools import read_xt
from reference.safe_files import read_npz
from reference.serialization import load_network
ops = {"load": load_network, "data": read_xt,
       "npz": lambda path, **kw: read_npz(path, f"inputs {path}", **kw)}
out = {}
for cid, op, path, kwargs in json.loads(open(sys.argv[1]).read()):
    try:
        ops[op](path, **(kwargs or {}))
        out[cid] = {"type": None}
    except BaseException as exc:
        out[cid] = {"type": type(exc).__name__, "message": str(exc)}
# The peak resident memory of this process since its exec (VmHWM: getrusage's ru_maxrss would
# include the forking parent's, a pytest worker holding JAX).
status = open("/proc/self/status").read()
out["__peak_kb__"] = int(status.split("VmHWM:")[1].split()[0])
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """Build every attack's file, load them all in one limited child; its results by id."""
    folder = tmp_path_factory.mktemp("attacks")
    plan = []
    for k, a in enumerate(ATTACKS):
        path = folder / f"attack{k}.npz"
        a.build(path)
        plan.append([a.id, a.op, str(path), a.kwargs])
    (folder / "plan.json").write_text(json.dumps(plan))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1",
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", RUNNER, str(folder / "plan.json"),
                           str(MEMORY_LIMIT)], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout)
    results["__paths__"] = {a.id: p for (a, (_, _, p, _)) in zip(ATTACKS, plan)}
    results["__folder__"] = str(folder)
    return results


def test_the_catalogue_is_large_and_its_ids_unique():
    assert len(ATTACKS) >= 150
    assert len({a.id for a in ATTACKS}) == len(ATTACKS)


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.id for a in ATTACKS])
def test_a_crafted_file_is_refused_with_its_reason_naming_the_file(outcomes, attack):
    got = outcomes[attack.id]
    path = outcomes["__paths__"][attack.id]
    assert got["type"] == attack.error, got
    if attack.op == "load":
        assert got["message"].startswith(f"{path} is not a valid simple-net file: "), got
    else:
        assert path in got["message"], got
    assert attack.reason in got["message"], got
    assert len(got["message"]) < 600, got  # no 5,000-digit or 60 KB echo


def test_the_bombs_are_real_small_files_that_inflate_to_what_they_say(tmp_path):
    # Made as the attacks' 256 MiB bombs are (a prefix block, then the cached zeros), smaller.
    path = write_bomb(tmp_path / "b.npz", "W0.npy", npy_header(header()), mib=64,
                      others=net_members())
    assert path.stat().st_size < 100 << 10
    total = 0
    with zipfile.ZipFile(path) as z, z.open("W0.npy") as member:  # CRC checked at the end
        while chunk := member.read(16 << 20):
            total += len(chunk)
    assert total == len(npy_header(header())) + (64 << 20)


def test_nothing_the_files_declare_was_allocated_or_inflated(outcomes):
    # Four 256 MiB bombs and files declaring 2 GB .. 10^60 bytes, all under this peak.
    assert outcomes["__peak_kb__"] < PEAK_LIMIT_KB, outcomes["__peak_kb__"]


def test_a_header_that_is_code_never_runs(outcomes):
    assert not (Path(outcomes["__folder__"]) / "PWNED").exists()


# --- pickles never run (in process: the payload would make a directory) ------------------------


class Evil:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


@pytest.mark.parametrize("where", ["W0", "config", "X"])
def test_a_pickled_payload_is_refused_and_never_runs(tmp_path, where):
    marker = tmp_path / "payload-ran"
    evil = np.empty((4, 4), dtype=object)
    evil[...] = Evil(marker)
    if where == "X":
        path = write_zip(tmp_path / "d.npz", {"X.npy": npy(evil), "T.npy": npy(np.zeros(4))})
        from reference.cli_tools import read_xt
        with pytest.raises(ValueError, match="holds Python objects"):
            read_xt(str(path))
    else:
        arrays = {where: evil} if where == "W0" else {}
        members = net_members(**arrays) if where == "W0" else net_members(config=npy(evil))
        path = write_zip(tmp_path / "n.npz", members)
        with pytest.raises(ValueError, match="holds Python objects"):
            Network.load(path)
    assert not marker.exists()


# --- the limits themselves, exactly at and past the edge ---------------------------------------


def test_json_at_the_limits_parses_and_past_them_is_refused():
    assert loads_json(_deep(MAX_JSON_DEPTH), "x") is not None
    with pytest.raises(TooLargeError, match=f"x nests objects or arrays {MAX_JSON_DEPTH + 1} "):
        loads_json(_deep(MAX_JSON_DEPTH + 1), "x")
    assert loads_json("1" * MAX_NUMBER_CHARS, "x") == int("1" * MAX_NUMBER_CHARS)
    with pytest.raises(TooLargeError, match=f"a number of {MAX_NUMBER_CHARS + 1} characters"):
        loads_json("1" * (MAX_NUMBER_CHARS + 1), "x")
    assert loads_json('"[[[["', "x") == "[[[["  # brackets inside strings do not nest
    assert loads_json('"\\"[[["', "x") == '"[[['
    with pytest.raises(TooLargeError, match="characters long"):
        loads_json(" " * (MAX_JSON_CHARS + 1), "x")


def test_a_network_exactly_at_the_budget_loads_and_one_byte_less_refuses(tmp_path):
    net = Network([3, 4, 2], ["tanh", "sigmoid"], "binary_cross_entropy", seed=1)
    path = tmp_path / "net.npz"
    net.save(path)
    need = 8 * (4 * 4 + 5 * 2)
    back = Network.load(path, max_bytes=need)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(net.weights, back.weights))
    with pytest.raises(TooLargeError, match=r"weights take 208 bytes: more than the memory "
                                            r"budget max_bytes = 207 bytes"):
        Network.load(path, max_bytes=need - 1)


def test_a_fortran_ordered_and_a_deflated_file_load_the_same_weights(tmp_path):
    w = good_weights()
    members = net_members(W0=npy(np.asfortranarray(w["W0"])), W1=w["W1"])
    for compression in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        path = write_zip(tmp_path / f"f{compression}.npz", members, compression)
        net = Network.load(path)
        assert net.weights[0].tobytes() == w["W0"].tobytes()
        assert net.weights[0].flags.c_contiguous
        assert net.weights[1].tobytes() == w["W1"].tobytes()


@pytest.mark.parametrize("bad", [None, 3, b"net.npz", "", ["net.npz"]])
def test_load_and_save_refuse_a_path_that_is_not_one(tmp_path, bad):
    error = ValueError if bad == "" else TypeError
    with pytest.raises(error, match=r"^path must be a file path"):
        Network.load(bad)
    net = Network([2, 1], ["identity"])
    with pytest.raises(error, match=r"^path must be a file path"):
        net.save(bad)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("bad", [-1, 1.5, "1GB", True, None])
def test_load_and_save_refuse_a_budget_that_is_not_one(tmp_path, bad):
    path = tmp_path / "net.npz"
    Network([2, 1], ["identity"]).save(path)
    before = path.read_bytes()
    with pytest.raises((TypeError, ValueError), match=r"max_bytes must be a non-negative int"):
        Network.load(path, max_bytes=bad) if bad is not None else Network.load(
            path, max_bytes="x")
    with pytest.raises((TypeError, ValueError), match=r"max_bytes must be a non-negative int"):
        Network([2, 1], ["identity"], seed=9).save(path, max_bytes=bad if bad is not None
                                                    else "x")
    assert path.read_bytes() == before


# --- save refuses what load would refuse, before it replaces anything ----------------------------


def in_place_edits():
    """Ways a user can break a network's state in place, each with the message save gives."""
    def edit(fn, error, message):
        return fn, error, message

    return {
        "float32 weight": edit(lambda n: n.weights.__setitem__(0, n.weights[0].astype(np.float32)),
                               TypeError, "weights[0] was replaced in place by a float32 array"),
        "float16 weight": edit(lambda n: n.weights.__setitem__(1, n.weights[1].astype(np.float16)),
                               TypeError, "weights[1] was replaced in place by a float16 array"),
        "int weight": edit(lambda n: n.weights.__setitem__(0, np.zeros((4, 4), int)),
                           TypeError, "weights[0] was replaced in place by a int64 array"),
        "nested list": edit(lambda n: n.weights.__setitem__(0, n.weights[0].tolist()),
                            TypeError, "weights[0] was replaced in place by a list"),
        "None weight": edit(lambda n: n.weights.__setitem__(1, None),
                            TypeError, "weights[1] was replaced in place by a NoneType"),
        "wrong shape": edit(lambda n: n.weights.__setitem__(0, np.zeros((3, 4))),
                            ValueError, "weights[0] must have shape (4, 4)"),
        "NaN entry": edit(lambda n: n.weights[1].__setitem__((2, 1), np.nan),
                          ValueError, "weights[1] must be finite, found 1 NaN/Inf entries "
                                      "(first at index (2, 1): nan)"),
        "Inf entry": edit(lambda n: n.weights[0].__setitem__((0, 0), -np.inf),
                          ValueError, "weights[0] must be finite"),
        "an extra weight": edit(lambda n: n.weights.append(np.zeros((2, 2))),
                                ValueError, "expected 2 weight arrays, got 3"),
        "a weight removed": edit(lambda n: n.weights.pop(), ValueError,
                                 "expected 2 weight arrays, got 1"),
        "layer_sizes edited": edit(lambda n: n.layer_sizes.__setitem__(1, 0), ValueError,
                                   "net.layer_sizes was edited in place: layer_sizes[1] must be "
                                   "a positive int, got 0"),
        "init edited": edit(lambda n: setattr(n, "init", "xavier"), ValueError,
                            "load would refuse its configuration: unknown init 'xavier'"),
        "seed edited": edit(lambda n: setattr(n, "seed", -3), ValueError,
                            "seed must be a non-negative int or None, got -3"),
        "activation as a string": edit(lambda n: n.activations.__setitem__(0, "tanh"),
                                       TypeError, "net.activations[0] was replaced in place by "
                                                  "a str ('tanh')"),
        "custom activation": edit(lambda n: n.activations.__setitem__(0, Activation(
            "tanh", np.tanh, lambda v: 1 - np.tanh(v) ** 2)), ValueError,
            "layer 0 uses the custom activation 'tanh'"),
        "an activation removed": edit(lambda n: n.activations.pop(0), ValueError,
                                      "net.activations holds 1 activations, but the network has "
                                      "2 layers"),
        "loss edited": edit(lambda n: setattr(n, "loss_function", "mse"), TypeError,
                            "net.loss_function was replaced by a str ('mse')"),
        "a seed of 101 digits": edit(lambda n: setattr(n, "seed", 10**100), ValueError,
                                     "load would refuse its configuration: seed must have at "
                                     "most 100 digits (a file holds no longer number), got one "
                                     "of about 101 digits"),
        "a seed of 5,001 digits": edit(lambda n: setattr(n, "seed", 10**5000), ValueError,
                                       "seed must have at most 100 digits"),
    }


@pytest.mark.parametrize("edit", list(in_place_edits()))
def test_save_refuses_what_load_would_refuse_and_keeps_the_good_file(tmp_path, edit):
    make_bad, error, message = in_place_edits()[edit]
    path = tmp_path / "net.npz"
    good = Network([3, 4, 2], ["tanh", "sigmoid"], "binary_cross_entropy", seed=1)
    good.save(path)
    before = path.read_bytes()
    bad = Network([3, 4, 2], ["tanh", "sigmoid"], "binary_cross_entropy", seed=2)
    make_bad(bad)
    with pytest.raises(error) as info:
        bad.save(path)
    assert str(info.value).startswith("cannot save: ") and message in str(info.value)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["net.npz"]  # no temporary file left behind
    Network.load(path)  # still the good one


def test_save_refuses_a_network_over_the_budget_load_would_refuse(tmp_path):
    net = Network([3, 4, 2], ["tanh", "sigmoid"], "binary_cross_entropy")
    with pytest.raises(TooLargeError, match=r"cannot save: the weights take 208 bytes, more than "
                                            r"the memory budget max_bytes = 100 bytes"):
        net.save(tmp_path / "net.npz", max_bytes=100)
    assert os.listdir(tmp_path) == []
    net.save(tmp_path / "net.npz", max_bytes=208)
    Network.load(tmp_path / "net.npz", max_bytes=208)


def test_saving_to_a_directory_is_refused_before_writing(tmp_path):
    (tmp_path / "net.npz").mkdir()
    with pytest.raises(IsADirectoryError):
        Network([2, 1], ["identity"]).save(tmp_path / "net.npz")
    assert os.listdir(tmp_path) == ["net.npz"] and os.listdir(tmp_path / "net.npz") == []


# --- symlinks: followed, the link kept ---------------------------------------------------------


def test_saving_over_a_symlink_replaces_its_target_and_keeps_the_link(tmp_path):
    (tmp_path / "runs").mkdir()
    target = tmp_path / "runs" / "net.npz"
    Network([2, 1], ["identity"], seed=1).save(target)
    link = tmp_path / "latest.npz"
    link.symlink_to(target)
    new = Network([2, 1], ["identity"], seed=2)
    new.save(link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert Network.load(target).weights[0].tobytes() == new.weights[0].tobytes()
    assert sorted(os.listdir(tmp_path / "runs")) == ["net.npz"]  # the temp file was beside it


def test_saving_over_a_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "latest.npz"
    link.symlink_to(tmp_path / "made.npz")
    Network([2, 1], ["identity"]).save(link)
    assert link.is_symlink() and (tmp_path / "made.npz").is_file()
    Network.load(link)


def test_a_refused_save_over_a_symlink_changes_neither_link_nor_target(tmp_path):
    target = tmp_path / "net.npz"
    Network([2, 1], ["identity"], seed=1).save(target)
    before = target.read_bytes()
    link = tmp_path / "latest.npz"
    link.symlink_to(target)
    bad = Network([2, 1], ["identity"], seed=2)
    bad.weights[0][0, 0] = np.nan
    with pytest.raises(ValueError, match="cannot save: weights\\[0\\] must be finite"):
        bad.save(link)
    assert link.is_symlink() and target.read_bytes() == before


def test_a_symlink_loop_is_refused_and_left_as_it_was(tmp_path):
    one, two = tmp_path / "loop1", tmp_path / "loop2"
    one.symlink_to(two)
    two.symlink_to(one)
    with pytest.raises(OSError) as info:
        Network([2, 1], ["identity"]).save(one)
    assert str(info.value).startswith(f"cannot write {one}: it is a symbolic link loop")
    assert info.value.errno == errno.ELOOP
    assert one.is_symlink() and two.is_symlink() and os.readlink(one) == str(two)
    assert sorted(os.listdir(tmp_path)) == ["loop1", "loop2"]


# --- the mode of what save writes: the replaced file's, or what open() would give -----------------


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o600, 0o444, 0o755])
def test_saving_over_a_file_keeps_its_mode(tmp_path, mode):
    path = tmp_path / "net.npz"
    Network([2, 1], ["identity"], seed=1).save(path)
    path.chmod(mode)
    Network([2, 1], ["identity"], seed=2).save(path)
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert Network.load(path).seed == 2


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_a_new_file_gets_what_open_would_give_under_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        Network([2, 1], ["identity"]).save(tmp_path / "net.npz")
        (tmp_path / "plain").write_bytes(b"")  # what open(path, "w") gives, for comparison
    finally:
        os.umask(old)
    got = stat.S_IMODE((tmp_path / "net.npz").stat().st_mode)
    assert got == 0o666 & ~umask == stat.S_IMODE((tmp_path / "plain").stat().st_mode)


def test_saving_through_a_symlink_keeps_the_targets_mode(tmp_path):
    target = tmp_path / "real.npz"
    Network([2, 1], ["identity"], seed=1).save(target)
    target.chmod(0o640)
    link = tmp_path / "latest.npz"
    link.symlink_to(target)
    Network([2, 1], ["identity"], seed=2).save(link)
    assert link.is_symlink() and stat.S_IMODE(target.stat().st_mode) == 0o640


# --- every save error names the path the user gave, and nothing is left behind -----------------


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


SAVE_PATHS = [
    ("a missing folder", lambda d: d / "nowhere" / "net.npz", FileNotFoundError, errno.ENOENT,
     "there is no folder {d}/nowhere"),
    ("a trailing slash", lambda d: str(d / "zz") + "/", IsADirectoryError, errno.EISDIR,
     "a path ending in '/' names a folder; give a file name"),
    ("a directory", lambda d: (d / "sub").mkdir() or d / "sub", IsADirectoryError, errno.EISDIR,
     "it is a directory, not a file"),
    ("a name of 300 bytes", lambda d: d / ("n" * 296 + ".npz"), OSError, errno.ENAMETOOLONG,
     "its file name is 300 bytes long, more than the 255 its folder allows"),
    ("a FIFO", lambda d: _fifo(d / "pipe.npz"), OSError, errno.EINVAL,
     "it is not a regular file (a device, FIFO or socket)"),
    ("a folder of /proc", lambda d: "/proc/version", FileNotFoundError, errno.ENOENT,
     "cannot create a file in its folder /proc"),
]


@pytest.mark.parametrize(("label", "make", "error", "code", "reason"), SAVE_PATHS,
                         ids=[p[0] for p in SAVE_PATHS])
def test_a_save_that_cannot_write_names_the_path_given_and_changes_nothing(
        tmp_path, label, make, error, code, reason):
    if label == "a folder of /proc" and not os.path.isfile("/proc/version"):
        pytest.skip("no /proc")
    path = make(tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(error) as info:
        Network([2, 1], ["identity"]).save(path)
    message = str(info.value)
    assert message.startswith(f"cannot write {path}: "), message
    assert reason.format(d=tmp_path) in message and ".tmp" not in message, message
    assert info.value.errno == code
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_load_of_a_trailing_slash_says_it_names_a_folder(tmp_path):
    path = tmp_path / "zz"
    Network([2, 1], ["identity"]).save(path)
    with pytest.raises(FileNotFoundError, match=r"no network file at .*zz/ \(a path ending in "
                                                r"'/' names a folder\)"):
        Network.load(str(path) + "/")


def test_a_write_that_fails_half_way_names_the_path_and_keeps_the_old_file(tmp_path,
                                                                            monkeypatch):
    path = tmp_path / "net.npz"
    Network([2, 1], ["identity"], seed=1).save(path)
    path.chmod(0o640)
    before = path.read_bytes()

    def full_disk(f, **arrays):
        f.write(b"PK" + bytes(100))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.raises(OSError) as info:
        Network([2, 1], ["identity"], seed=2).save(path)
    assert str(info.value) == f"cannot write {path}: No space left on device"
    assert info.value.errno == errno.ENOSPC
    assert path.read_bytes() == before and stat.S_IMODE(path.stat().st_mode) == 0o640
    assert os.listdir(tmp_path) == ["net.npz"]


def test_save_refuses_a_seed_load_would_refuse_and_keeps_one_it_accepts(tmp_path):
    path = tmp_path / "net.npz"
    with pytest.raises(ValueError, match=r"^cannot save: load would refuse its configuration: "
                                         r"seed must have at most 100 digits"):
        Network([2, 1], ["identity"], seed=10**100).save(path)
    assert os.listdir(tmp_path) == []
    Network([2, 1], ["identity"], seed=10**100 - 1).save(path)
    assert Network.load(path).seed == 10**100 - 1


# --- JSON: the nesting check is exact on escapes and linear in the text -----------------------


@pytest.mark.parametrize(("text", "depth"), [
    ('"\\\\"' + "[]", 1),  # an escaped backslash ends the string: the brackets count
    ('"\\""' + "[[]]", 2),  # an escaped quote does not end it
    ('["\\\\\\"[[[["]', 1),  # \\ then \" inside: still one string
    ('{"a": ["]]]", "[[["]}', 2),
    ('"\\ud800"', 0),  # a lone surrogate: counted, not encoded
    ('', 0),
    ('"unterminated [[[', 0),
    ("[" * 40 + '"' + "]" * 40, 40),
])
def test_the_nesting_depth_counts_brackets_outside_strings_exactly(text, depth):
    from reference.safe_files import _depth

    assert _depth(text) == depth


DEPTH_TIMING = r"""
import json, sys, time
from reference.safe_files import MAX_JSON_CHARS, loads_json
from reference import Network
from reference.cli import main
worst = {"escaped quotes": '"' + '\\"' * ((MAX_JSON_CHARS - 1) // 2),
         "backslashes": '"' + '\\' * (MAX_JSON_CHARS - 1),
         "quotes": '"' * MAX_JSON_CHARS,
         "brackets in a string": '"' + '[' * (MAX_JSON_CHARS - 1)}
times = {}
for label, text in worst.items():
    start = time.perf_counter()
    try:
        loads_json(text, "config")
    except ValueError:
        pass
    times[label] = time.perf_counter() - start
start = time.perf_counter()
try:
    Network.load(sys.argv[1])
except ValueError:
    pass
times["Network.load"] = time.perf_counter() - start
start = time.perf_counter()
status = main(["train", "--config", sys.argv[2], "--data", sys.argv[3], "--quiet", "--out",
               sys.argv[4]])
times["--config"] = time.perf_counter() - start
print(json.dumps({"times": times, "status": status}))
"""


def test_an_unterminated_string_of_escaped_quotes_is_refused_in_linear_time(tmp_path):
    text = '"' + '\\"' * ((MAX_JSON_CHARS - 1) // 2)
    small = write_zip(tmp_path / "redos.npz", {"config.npy": config_member(text)},
                      zipfile.ZIP_DEFLATED)
    assert small.stat().st_size < 20_000  # 4 MiB of config, deflated
    config = tmp_path / "redos.json"
    config.write_text(text)
    data = tmp_path / "data.npz"
    np.savez(data, X=np.zeros((2, 2)), T=np.zeros((2, 1)))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", DEPTH_TIMING, str(small), str(config),
                           str(data), str(tmp_path / "out.npz")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["status"] == 2  # "config ... is not valid JSON (Unterminated string ...)"
    assert "is not valid JSON (Unterminated string" in done.stderr
    slow = {k: t for k, t in result["times"].items() if t > 2.0}
    assert not slow, result["times"]  # was 14 s for 64,000 characters, ~1 h at the limit
    assert not (tmp_path / "out.npz").exists()
