"""Reading files that may be hostile: ``.npz`` archives and JSON text, within stated limits.

Everything is checked against what the file *declares*, before anything of that size is
allocated or inflated:

- **the zip directory** (its end record first): at most ``MAX_MEMBERS`` members and
  ``MAX_DIRECTORY_BYTES`` of directory; no duplicate names; members stored or deflated (the two
  methods numpy writes), never encrypted. Only the members asked for are ever read;
- **each member's .npy header**, parsed here (never by unpickling, never with a header longer
  than ``MAX_HEADER_BYTES``): a plain numeric dtype (bool, int, uint, float; unicode where
  asked), non-negative dimensions, and a declared size that agrees with the member's size in the
  zip directory (header + itemsize x entries);
- **the memory budget**: the arrays read from one file may take at most ``max_bytes`` in total
  (``MAX_BYTES``, 1 GiB, unless the caller gives another); a member is refused before its array
  is allocated, and reading stops at the declared size, so a member that would inflate to more
  is never inflated beyond it;
- **JSON** (``loads_json``): at most ``MAX_JSON_CHARS`` characters, nested at most
  ``MAX_JSON_DEPTH`` deep (measured in one linear pass before parsing), each number at most
  ``MAX_NUMBER_CHARS`` characters and finite, no NaN or Infinity, no key twice in one object.

Refusals are ``ValueError``s whose message names the file and the reason; when a limit is what
was exceeded, a ``TooLargeError`` (a ``ValueError`` too; the command lines exit 3 for it).
numpy only, like the rest of ``reference``.
"""

from __future__ import annotations

import ast
import contextlib
import errno
import json
import math
import os
import secrets
import stat
import struct
import zipfile
from dataclasses import dataclass

import numpy as np

from .errors import TooLargeError

__all__ = [
    "MAX_BYTES",
    "MAX_DIRECTORY_BYTES",
    "MAX_HEADER_BYTES",
    "MAX_JSON_CHARS",
    "MAX_JSON_DEPTH",
    "MAX_MEMBERS",
    "MAX_NUMBER_CHARS",
    "ArrayHeader",
    "NpzArchive",
    "brief",
    "check_writable",
    "human_bytes",
    "loads_json",
    "read_npz",
    "short_names",
    "write_atomically",
]

MAX_BYTES = 1 << 30
"""The default memory budget: the arrays read from one file take at most 1 GiB in total."""
MAX_MEMBERS = 10_000
"""At most this many members in an archive's zip directory."""
MAX_DIRECTORY_BYTES = 4 << 20
"""At most 4 MiB of zip directory (its entries are parsed into Python objects)."""
MAX_HEADER_BYTES = 10_000
"""An .npy header longer than this is refused before it is read (numpy's own limit)."""
MAX_JSON_CHARS = 1 << 20
"""JSON text (a network's config, a --config file) of at most 1 Mi characters."""
MAX_JSON_DEPTH = 32
"""Objects and arrays nested at most 32 deep (a network's config is 2 deep)."""
MAX_NUMBER_CHARS = 100
"""A JSON number of at most 100 characters (no 5,000-digit sizes)."""

_CHUNK = 1 << 22  # members are read 4 MiB at a time, straight into the array's memory
_NUMERIC_KINDS = "biuf"  # bool, signed and unsigned int, float
_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_EOCD64 = b"PK\x06\x06"


def human_bytes(n: int) -> str:
    """``n`` bytes in words: ``"2.0 GiB"``, ``"512 bytes"``."""
    if n < 1024:
        return f"{n} bytes"
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        n /= 1024
        if n < 1024 or unit == "EiB":
            return f"{n:.1f} {unit}" if n < 1e6 else f"{n:.3g} {unit}"
    raise AssertionError("unreachable")


# --- JSON ------------------------------------------------------------------------------------

def _depth(text: str) -> int:
    """How deep objects and arrays nest in JSON ``text`` (brackets inside strings ignored).

    One vectorised pass over the characters, linear in the text's length whatever it holds (a
    regular expression for strings backtracks quadratically on an unterminated string of
    escaped quotes): a quote opens or closes a string unless an odd run of backslashes precedes
    it, and brackets count only outside strings. Exact on valid JSON, and on any text up to
    its first syntax error, which is as far as the parser nests.
    """
    codes = np.array(text).reshape(1).view(np.uint32)  # code points, no encoding (surrogates)
    index = np.arange(codes.size, dtype=np.int32)
    backslash = codes == ord("\\")
    last_other = np.maximum.accumulate(np.where(backslash, -1, index))  # last non-backslash <= i
    escaped = np.zeros(codes.size, dtype=bool)  # preceded by an odd run of backslashes
    escaped[1:] = (index[:-1] - last_other[:-1]) % 2 == 1
    quote = (codes == ord('"')) & ~escaped
    outside = np.cumsum(quote, dtype=np.int32) % 2 == 0
    step = (np.isin(codes, (ord("["), ord("{"))) & outside).astype(np.int32)
    step -= np.isin(codes, (ord("]"), ord("}"))) & outside
    return int(np.max(np.cumsum(step), initial=0))


def _number(text: str, convert: type) -> int | float:
    if len(text) > MAX_NUMBER_CHARS:
        raise TooLargeError(f"it holds a number of {len(text)} characters ({text[:12]}...), "
                            f"more than the limit of {MAX_NUMBER_CHARS}")
    value = convert(text)
    if isinstance(value, float) and not math.isfinite(value):
        raise TooLargeError(f"it holds the number {text}, which overflows a float")
    return value


def _constant(name: str) -> None:
    raise ValueError(f"it holds {name}, which is not a JSON number")


def _object(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object, refused when a key appears twice (``json`` would keep the last)."""
    obj: dict = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"key {brief(key)} appears twice in one object")
        obj[key] = value
    return obj


def loads_json(text: str, what: str) -> object:
    """Parse JSON ``text`` within the limits above; ``what`` names it in the messages.

    Raises:
        TooLargeError: more than ``MAX_JSON_CHARS`` characters, nesting deeper than
            ``MAX_JSON_DEPTH``, a number longer than ``MAX_NUMBER_CHARS`` or overflowing.
        ValueError: not valid JSON (the message starts ``"{what} is not valid JSON"``),
            NaN/Infinity, or a key that appears twice in one object.
    """
    if len(text) > MAX_JSON_CHARS:
        raise TooLargeError(f"{what} is {len(text)} characters long, more than the limit of "
                            f"{MAX_JSON_CHARS}")
    depth = _depth(text)
    if depth > MAX_JSON_DEPTH:
        raise TooLargeError(f"{what} nests objects or arrays {depth} deep, more than the limit "
                            f"of {MAX_JSON_DEPTH}")
    try:
        return json.loads(text, parse_int=lambda s: _number(s, int),
                          parse_float=lambda s: _number(s, float), parse_constant=_constant,
                          object_pairs_hook=_object)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} is not valid JSON ({exc})") from None
    except TooLargeError as exc:
        raise TooLargeError(f"{what}: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"{what}: {exc}") from None
    except RecursionError:  # cannot happen below MAX_JSON_DEPTH; kept as a backstop
        raise TooLargeError(f"{what} nests too deeply to parse") from None


# --- .npz ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArrayHeader:
    """What an .npy member declares: its dtype, shape, order and where its data starts."""

    dtype: np.dtype
    shape: tuple[int, ...]
    fortran_order: bool
    data_offset: int

    @property
    def nbytes(self) -> int:
        """The bytes its data takes (a Python int: never overflows)."""
        return self.dtype.itemsize * math.prod(self.shape)


class NpzArchive:
    """An ``.npz`` file opened for careful reading (see the module's docstring).

        with NpzArchive(path, "data x.npz", max_bytes=...) as z:
            z.names                   # the arrays it holds, from the zip directory
            header = z.header("X")    # dtype and shape, from the member's .npy header
            x = z.read("X")           # after the budget and size checks

    Every refusal is ``ValueError(f"{describe}: {reason}")`` (``TooLargeError`` for a limit).

    Raises:
        FileNotFoundError, OSError: the file cannot be opened.
        ValueError: not a zip archive (``"expected an .npz (zip) archive"``), a single .npy
            array, a directory over the limits, duplicate or non-.npy members.
    """

    def __init__(self, path: str | os.PathLike, describe: str, *,
                 max_bytes: int = MAX_BYTES) -> None:
        self.path = os.fspath(path)
        self.describe = describe
        self.budget = max_bytes
        self._headers: dict[str, ArrayHeader] = {}
        if not stat.S_ISREG(os.stat(self.path).st_mode):  # a FIFO would block, a device never end
            raise self.bad("it is not a regular file (an .npz archive must be seekable)")
        self._fh = open(self.path, "rb")  # noqa: SIM115 (closed by close/__exit__)
        try:
            self._zip = self._open_zip()
            self.names = self._member_names()
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> NpzArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the archive and the file (idempotent)."""
        zf = self.__dict__.pop("_zip", None)
        if zf is not None:
            zf.close()
        self._fh.close()

    def bad(self, why: str) -> ValueError:
        """The refusal of this file: ``ValueError("{describe}: {why}")``."""
        return ValueError(f"{self.describe}: {why}")

    def too_large(self, why: str) -> TooLargeError:
        """The refusal of this file for a limit: ``TooLargeError("{describe}: {why}")``."""
        return TooLargeError(f"{self.describe}: {why}")

    # --- the directory ----------------------------------------------------------------------

    def _open_zip(self) -> zipfile.ZipFile:
        fh = self._fh
        magic = fh.read(6)
        if magic == b"\x93NUMPY":
            raise self.bad("it holds a single .npy array, expected an .npz archive")
        if not magic.startswith(b"PK"):
            raise self.bad("expected an .npz (zip) archive")
        self._check_directory()
        fh.seek(0)
        try:
            return zipfile.ZipFile(fh)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, struct.error) as exc:
            raise self.bad(f"cannot read it as .npz ({exc})") from None

    def _check_directory(self) -> None:
        """The zip's end record: the member count and directory size, before zipfile reads
        (and makes Python objects of) the whole directory."""
        fh = self._fh
        size = fh.seek(0, os.SEEK_END)
        tail_start = max(0, size - (22 + 0xFFFF))
        fh.seek(tail_start)
        tail = fh.read()
        at = len(tail)
        while True:  # the end record whose comment length reaches exactly the file's end
            at = tail.rfind(_EOCD, 0, at)
            if at < 0:
                raise self.bad("cannot read it as .npz (no zip directory at its end: "
                               "truncated?)")
            if len(tail) - at >= 22 and at + 22 + struct.unpack(
                    "<H", tail[at + 20:at + 22])[0] == len(tail):
                break
        count, dir_size = struct.unpack("<10xHI", tail[at:at + 16])
        locator = tail[at - 20:at] if at >= 20 else b""
        if locator.startswith(_EOCD64_LOCATOR):  # zip64: the true figures are in its record
            (offset,) = struct.unpack("<Q", locator[8:16])
            fh.seek(offset)
            record = fh.read(56)
            if len(record) < 56 or not record.startswith(_EOCD64):
                raise self.bad("cannot read it as .npz (a broken zip64 directory record)")
            count, dir_size = struct.unpack("<QQ", record[32:48])
        if count > MAX_MEMBERS:
            raise self.too_large(f"its zip directory lists {count} members, more than the "
                                 f"limit of {MAX_MEMBERS}")
        if dir_size > MAX_DIRECTORY_BYTES:
            raise self.too_large(f"its zip directory takes {human_bytes(dir_size)}, more than "
                                 f"the limit of {human_bytes(MAX_DIRECTORY_BYTES)}")

    def _member_names(self) -> list[str]:
        listed = self._zip.namelist()
        seen: set[str] = set()
        names = []
        for member in listed:
            if member in seen:
                raise self.bad(f"entry {brief(member)} appears twice in its zip directory")
            seen.add(member)
            if not member.endswith(".npy"):
                raise self.bad(f"entry {brief(member)} is not a .npy array")
            names.append(member[:-4])
        return names

    # --- one member -------------------------------------------------------------------------

    def _info(self, name: str) -> zipfile.ZipInfo:
        if name not in self.names:
            raise self.bad(f"it has no array {name!r}")
        info = self._zip.getinfo(name + ".npy")
        if info.flag_bits & 0x1:
            raise self.bad(f"array {name!r} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise self.bad(f"array {name!r} is compressed with zip method {info.compress_type}; "
                           "only stored and deflated members (what numpy writes) are read")
        return info

    def _open(self, name: str):
        try:
            return self._zip.open(self._info(name))
        except (zipfile.BadZipFile, OSError, EOFError, struct.error) as exc:
            raise self.bad(f"cannot read array {name!r} ({exc})") from None

    def header(self, name: str, *, kinds: str = _NUMERIC_KINDS) -> ArrayHeader:
        """Array ``name``'s .npy header, checked: a dtype of one of ``kinds`` (numpy's
        ``dtype.kind`` letters; default bool/int/uint/float), and a declared size equal to
        the member's size in the zip directory. Nothing of the data is read."""
        info = self._info(name)
        header = self._headers.get(name)
        if header is None:
            with self._open(name) as member:
                try:
                    header = self._headers[name] = self._parse_header(name, member)
                except (zipfile.BadZipFile, OSError, EOFError, struct.error) as exc:
                    raise self.bad(f"cannot read array {name!r} ({exc})") from None
        if header.dtype.hasobject:
            raise self.bad(f"array {name!r} holds Python objects (dtype object), which "
                           "would need pickle; files are read with allow_pickle=False")
        if header.dtype.kind not in kinds:
            raise self.bad(f"array {name!r} has dtype {header.dtype}, expected "
                           f"{_kind_words(kinds)}")
        if info.file_size != header.data_offset + header.nbytes:
            raise self.bad(
                f"array {name!r} declares shape {header.shape} of {header.dtype} "
                f"({human_bytes(header.nbytes)}), but its zip member holds "
                f"{human_bytes(max(info.file_size - header.data_offset, 0))} of data")
        return header

    def _parse_header(self, name: str, member) -> ArrayHeader:
        start = member.read(10)
        if len(start) < 10 or not start.startswith(b"\x93NUMPY"):
            raise self.bad(f"entry {name!r} is not a .npy array")
        major = start[6]
        if major == 1:
            (length,) = struct.unpack("<H", start[8:10])
            offset = 10
        elif major in (2, 3):
            rest = member.read(2)
            if len(rest) < 2:
                raise self.bad(f"entry {name!r} is not a .npy array (truncated header)")
            (length,) = struct.unpack("<I", start[8:10] + rest)
            offset = 12
        else:
            raise self.bad(f"array {name!r} has .npy format version {major}, expected 1-3")
        if length > MAX_HEADER_BYTES:
            raise self.too_large(f"array {name!r} declares a .npy header of {length} bytes, "
                                 f"more than the limit of {MAX_HEADER_BYTES}")
        raw = member.read(length)
        if len(raw) < length:
            raise self.bad(f"array {name!r} has a truncated .npy header")
        try:
            fields = ast.literal_eval(raw.decode("utf-8" if major == 3 else "latin1"))
        except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError,
                UnicodeDecodeError):
            raise self.bad(f"array {name!r} has an .npy header that is not a plain Python "
                           "literal") from None
        if not (isinstance(fields, dict)
                and set(fields) == {"descr", "fortran_order", "shape"}):
            raise self.bad(f"array {name!r} has an .npy header without exactly the keys descr, "
                           "fortran_order and shape")
        shape, order, descr = fields["shape"], fields["fortran_order"], fields["descr"]
        if not (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)):
            raise self.bad(f"array {name!r} declares the shape {brief(shape)}, expected a "
                           "tuple of non-negative ints")
        if type(order) is not bool:
            raise self.bad(f"array {name!r} declares fortran_order {brief(order)}, expected "
                           "True or False")
        if not isinstance(descr, str):  # structured dtypes (lists of fields) are not read
            raise self.bad(f"array {name!r} has the structured dtype {brief(descr)}, expected "
                           "a plain numeric dtype")
        try:
            dtype = np.dtype(descr)
        except (TypeError, ValueError):
            raise self.bad(f"array {name!r} has the unknown dtype {brief(descr)}") from None
        return ArrayHeader(dtype, shape, order, offset + length)

    def read(self, name: str, *, kinds: str = _NUMERIC_KINDS,
             out: np.ndarray | None = None) -> np.ndarray:
        """Array ``name``, read after ``header``'s checks and the memory budget.

        With ``out`` (a C-contiguous array of the header's dtype and shape, e.g. a network's
        own weight), the data is read straight into it; nothing is allocated but a chunk.

        Raises:
            TooLargeError: the array would take the file's budget beyond ``max_bytes``.
            ValueError: a bad header, or data that ends early or fails its checksum.
        """
        header = self.header(name, kinds=kinds)
        if out is None:
            if header.nbytes > self.budget:
                raise self.too_large(
                    f"array {name!r} declares shape {header.shape} of {header.dtype}, "
                    f"{human_bytes(header.nbytes)}: more than the memory budget "
                    f"({human_bytes(self.budget)} left of max_bytes)")
            self.budget -= header.nbytes
        elif not (out.flags.c_contiguous and out.flags.writeable and out.dtype == header.dtype
                  and out.shape == header.shape):
            raise ValueError(f"read({name!r}, out=...) needs a writable C-contiguous "
                             f"{header.dtype} array of shape {header.shape}")
        if out is None or header.fortran_order:
            shape = header.shape[::-1] if header.fortran_order else header.shape
            buffer = np.empty(shape, dtype=header.dtype)
        else:
            buffer = out
        with self._open(name) as member:
            try:
                member.read(header.data_offset)
                self._fill(name, member, buffer)
            except (zipfile.BadZipFile, OSError, EOFError, struct.error) as exc:
                raise self.bad(f"cannot read array {name!r} ({exc})") from None
        array = buffer.T if header.fortran_order else buffer
        if out is not None and array is not out:
            out[...] = array
            return out
        return array

    def _fill(self, name: str, member, buffer: np.ndarray) -> None:
        view = memoryview(buffer.reshape(-1).view(np.uint8)) if buffer.size else memoryview(b"")
        done, total = 0, view.nbytes
        while done < total:
            chunk = member.read(min(_CHUNK, total - done))
            if not chunk:
                raise self.bad(f"array {name!r} ends after {done} of its {total} bytes of data")
            view[done:done + len(chunk)] = chunk
            done += len(chunk)


def read_npz(path: str | os.PathLike, describe: str, *, names: list[str] | None = None,
             max_bytes: int = MAX_BYTES) -> dict[str, np.ndarray]:
    """The numeric arrays ``names`` (default: every member) of an ``.npz``, read as hostile:
    every header checked, and their total against ``max_bytes``, before any is allocated.

    Raises:
        OSError: the file cannot be opened.
        ValueError: as ``NpzArchive`` (``"{describe}: {reason}"``), or a missing name.
        TooLargeError: the arrays declare more than ``max_bytes`` together.
    """
    with NpzArchive(path, describe, max_bytes=max_bytes) as z:
        wanted = z.names if names is None else list(names)
        total = sum(z.header(name).nbytes for name in wanted)  # also: each name is present
        if total > z.budget:
            raise z.too_large(f"its arrays declare {human_bytes(total)}, more than the memory "
                              f"budget of {human_bytes(z.budget)}")
        return {name: z.read(name) for name in wanted}


def short_names(names: list[str]) -> str:
    """Member names for a message: each cut to 40 characters, and at most 12 of them."""
    cut = [n if len(n) <= 40 else n[:37] + "..." for n in names]
    if len(cut) <= 12:
        return str(cut)
    return f"{len(cut)} arrays {cut[:4]} ... {cut[-2:]}"


def _kind_words(kinds: str) -> str:
    words = {"b": "bool", "i": "int", "u": "unsigned int", "f": "float", "U": "unicode text"}
    return " or ".join(words[k] for k in kinds)


def brief(value: object, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters: what a message may echo of an input."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


# --- writing -----------------------------------------------------------------------------------


def _cannot(kind: type[OSError], code: int | None, path: str, why: str) -> OSError:
    """``kind("cannot write {path}: {why}")`` with ``errno`` ``code``: the message names the
    path the user gave (never a temporary name or a link's target)."""
    error = kind(f"cannot write {path}: {why}")
    error.errno = code
    return error


def _destination(path: str) -> tuple[str, int | None]:
    """Where saving to ``path`` writes (its symlinks resolved) and the permission bits to give
    the new file (the replaced file's own; None for a new file, which gets 0o666 less the
    umask, as ``open(path, "w")`` would). Everything that can be known before writing is
    checked here, and refused with an ``OSError`` naming ``path``."""
    if path.endswith(os.sep) or (os.altsep and path.endswith(os.altsep)):
        raise _cannot(IsADirectoryError, errno.EISDIR, path,
                      f"a path ending in {path[-1]!r} names a folder; give a file name")
    target = os.path.realpath(path)
    if os.path.islink(target):  # realpath stops where the links loop
        raise _cannot(OSError, errno.ELOOP, path, "it is a symbolic link loop (the links "
                      "point at each other and never reach a file); remove or fix the link")
    folder = os.path.dirname(target)
    name = os.fsencode(os.path.basename(target))
    try:
        longest = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):  # no such folder (said below), or no limit to ask for
        longest = 255
    if len(name) > longest:
        raise _cannot(OSError, errno.ENAMETOOLONG, path, f"its file name is {len(name)} bytes "
                      f"long, more than the {longest} its folder allows")
    try:
        info = os.stat(target)
    except (FileNotFoundError, NotADirectoryError):  # no such file, or no such folder (below)
        info = None
    except OSError as exc:
        raise _cannot(type(exc), exc.errno, path, exc.strerror or str(exc)) from None
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise _cannot(IsADirectoryError, errno.EISDIR, path, "it is a directory, not a file")
    if info is not None and not stat.S_ISREG(info.st_mode):
        raise _cannot(OSError, errno.EINVAL, path, "it is not a regular file (a device, FIFO "
                      "or socket), and saving replaces a file; give a file name")
    if not os.path.isdir(folder):
        given = os.path.dirname(path) or "."  # the folder as the user wrote it, if it is this one
        shown = given if os.path.realpath(given) == folder else folder
        raise _cannot(FileNotFoundError, errno.ENOENT, path, f"there is no folder {shown}")
    return target, None if info is None else stat.S_IMODE(info.st_mode) & 0o777


def _temporary(path: str, target: str) -> tuple[int, str]:
    """A new file beside ``target``, opened for writing, mode 0o666 less the umask; named after
    the target (``net.npz.5f3a9c0e12ab.tmp``), so that one left by a killed save says whose."""
    folder = os.path.dirname(target)
    stem = os.path.basename(target)[:40]
    for _ in range(100):
        tmp = os.path.join(folder, f"{stem}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666), tmp
        except FileExistsError:
            continue
        except OSError as exc:
            raise _cannot(type(exc), exc.errno, path, f"cannot create a file in its folder "
                          f"{folder} ({exc.strerror or exc})") from None
    raise _cannot(FileExistsError, errno.EEXIST, path, f"no free temporary name in {folder}")


def check_writable(path: str) -> str:
    """Check that ``write_atomically(path, ...)`` could write, without changing anything: the
    same checks, and a temporary file created beside the target and removed. Returns the
    target (``path`` with its symlinks resolved).

    Raises:
        OSError: as ``write_atomically``, its message naming ``path``.
    """
    target, _ = _destination(path)
    fd, tmp = _temporary(path, target)
    os.close(fd)
    os.remove(tmp)
    return target


def write_atomically(path: str, write) -> str:
    """Call ``write(f)`` on a temporary file beside ``path``'s target, then rename it over the
    target: a failed or interrupted write leaves the previous file as it was. Returns the path
    written.

    - A symlink at ``path`` is followed (its target is replaced, the link kept); a symlink
      loop is refused.
    - The file keeps the permission bits of the file it replaces; a new file gets 0o666 less
      the umask, as ``open(path, "w")`` gives.
    - Refused before anything is written: a path ending in a separator, a directory, a device,
      FIFO or socket at the path, a missing folder, a file name longer than its folder allows,
      a folder where no file can be created.

    Raises:
        OSError (its own subclass: IsADirectoryError, FileNotFoundError, PermissionError, ...):
            the file cannot be written; the message is ``"cannot write {path}: {why}"``,
            naming ``path`` as given (never the temporary file). Whatever ``write`` raises
            otherwise.
    """
    target, mode = _destination(path)
    fd, tmp = _temporary(path, target)
    try:
        try:
            with os.fdopen(fd, "wb") as f:
                if mode is not None:
                    os.fchmod(f.fileno(), mode)
                write(f)
            os.replace(tmp, target)
        except OSError as exc:
            if exc.errno is None:  # not the system's word on the file: passed on as it is
                raise
            raise _cannot(type(exc), exc.errno, path, exc.strerror or str(exc)) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    return target
