"""Attack suite, part 2: both command lines never crash (issue 13).

Every failure is one line on stderr (``PROG: error: ...``), never a traceback, with an exit
status that keeps one meaning in both command lines:

    0 done / all agree   1 diverged / a gradient is wrong   2 bad usage or input
    3 too large (an input over a limit, or out of memory)   4 internal error (a bug)
    130 interrupted

Most attempts call ``main`` in-process (fast); the ones that would really exhaust memory run the
real ``python -m ...`` in a subprocess with a memory limit (``RLIMIT_AS``) and a timeout.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest

import reference.cli as reference_cli
from reference import Network
from reference.cli import main as reference_main
from reference.datasets import patterns_3x3
from reference.errors import DivergenceError, TooLargeError

ROOT = Path(__file__).resolve().parents[1]
REF, ORA = "python -m reference", "python -m oracle"


def one_line(err: str, prog: str) -> str:
    """The message of a one-line failure (asserting it is one line, no traceback)."""
    assert err.count("\n") == 1 and err.startswith(f"{prog}: error: "), err
    assert "Traceback" not in err
    return err[len(f"{prog}: error: "):-1]


def ref(capsys, *argv) -> tuple[int, str, str]:
    status = reference_main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def ora(capsys, *argv) -> tuple[int, str, str]:
    from oracle.cli import main

    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def patterns(tmp_path) -> Path:
    path = tmp_path / "patterns.npz"
    x = patterns_3x3().reshape(18, 9)
    np.savez(path, X=x, T=x)
    return path


@pytest.fixture
def net_file(tmp_path) -> Path:
    path = tmp_path / "net.npz"
    Network([3, 4, 2], ["tanh", "identity"], seed=0).save(path)
    return path


# --- the exit status of each kind of failure, in both command lines ----------------------------

FAILURES = [
    (MemoryError(), 3, "out of memory (MemoryError)"),
    (MemoryError("Unable to allocate 74.5 GiB"), 3, "out of memory (Unable to allocate 74.5 GiB)"),
    (RecursionError("maximum recursion depth exceeded"), 3,
     "input nested too deeply for the stack (maximum recursion depth exceeded)"),
    (TooLargeError("x.npz: too big"), 3, "x.npz: too big"),
    (ValueError("a\nmulti-line   message"), 2, "a multi-line message"),
    (TypeError("bad type"), 2, "bad type"),
    (FileNotFoundError(2, "No such file or directory"), 2, "No such file or directory"),
    (OSError(), 2, "OSError"),
    (RuntimeError("boom"), 4, "internal error, please report it: RuntimeError: boom (set "
                              "SIMPLE_NET_TRACEBACK=1 to see the traceback)"),
    (ZeroDivisionError("division by zero"), 4, "internal error, please report it: "
                                               "ZeroDivisionError: division by zero"),
    (AssertionError(), 4, "internal error, please report it: AssertionError: AssertionError"),
    (KeyError("k"), 4, "internal error, please report it: KeyError: 'k'"),
    (FloatingPointError("overflow"), 4, "FloatingPointError: overflow"),
    (AttributeError("no attribute"), 4, "AttributeError: no attribute"),
    (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), 2,
     "'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"),
]


def _raiser(exc):
    def raise_it(*args, **kwargs):
        raise exc
    return raise_it


@pytest.mark.parametrize(("exc", "status", "message"), FAILURES,
                         ids=[type(f[0]).__name__ + str(k) for k, f in enumerate(FAILURES)])
def test_reference_maps_each_failure_to_its_status_on_one_line(patterns, tmp_path, capsys,
                                                               monkeypatch, exc, status, message):
    monkeypatch.setattr(Network, "fit", _raiser(exc))
    got, out, err = ref(capsys, "train", "--sizes", "9,9", "--data", patterns, "--quiet",
                        "--out", tmp_path / "net.npz")
    assert got == status
    assert message in one_line(err, REF)
    assert not (tmp_path / "net.npz").exists()


@pytest.mark.parametrize(("exc", "status", "message"), FAILURES,
                         ids=[type(f[0]).__name__ + str(k) for k, f in enumerate(FAILURES)])
def test_oracle_maps_each_failure_to_its_status_on_one_line(capsys, monkeypatch, exc, status,
                                                            message):
    import oracle

    monkeypatch.setattr(oracle, "check_network", _raiser(exc))
    got, out, err = ora(capsys, "check", "--sizes", "2,2")
    assert got == status and out == ""
    assert message in one_line(err, ORA)


@pytest.mark.parametrize("main", ["reference", "oracle"])
def test_ctrl_c_is_exit_130_with_one_line(capsys, monkeypatch, patterns, main):
    if main == "reference":
        monkeypatch.setattr(Network, "fit", _raiser(KeyboardInterrupt()))
        got, _, err = ref(capsys, "train", "--sizes", "9,9", "--data", patterns, "--quiet")
        prog = REF
    else:
        import oracle
        monkeypatch.setattr(oracle, "check_network", _raiser(KeyboardInterrupt()))
        got, _, err = ora(capsys, "check")
        prog = ORA
    assert got == 130 and err == f"{prog}: interrupted\n"


@pytest.mark.parametrize("main", ["reference", "oracle"])
def test_a_closed_output_pipe_stops_quietly_with_141(capsys, monkeypatch, patterns, main):
    if main == "reference":
        monkeypatch.setattr(Network, "fit", _raiser(BrokenPipeError(32, "Broken pipe")))
        got, _, err = ref(capsys, "train", "--sizes", "9,9", "--data", patterns, "--quiet")
    else:
        import oracle
        monkeypatch.setattr(oracle, "check_network", _raiser(BrokenPipeError(32, "Broken pipe")))
        got, _, err = ora(capsys, "check")
    assert got == 141 and err == ""


def test_a_real_process_whose_reader_left_exits_141_without_a_word(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3); "
                              "from reference.cli import main; raise SystemExit(main())",
                              "data", "patterns", "--out", str(tmp_path / "p.npz")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    child.stdout.close()  # the reader goes away before the child prints
    with child.stderr:
        err = child.stderr.read()
    assert child.wait(timeout=60) == 141 and err == b""


def test_an_internal_error_shows_its_traceback_only_when_asked(patterns, capsys, monkeypatch):
    monkeypatch.setattr(Network, "fit", _raiser(RuntimeError("boom")))
    monkeypatch.setenv("SIMPLE_NET_TRACEBACK", "1")
    got, _, err = ref(capsys, "train", "--sizes", "9,9", "--data", patterns, "--quiet")
    assert got == 4
    assert "Traceback (most recent call last)" in err and "RuntimeError: boom" in err
    assert err.endswith("(set SIMPLE_NET_TRACEBACK=1 to see the traceback)\n")


def test_divergence_keeps_exit_1_and_help_still_exits_0(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(Network, "fit", _raiser(DivergenceError("the loss is inf")))
    x = np.ones((4, 2))
    np.savez(tmp_path / "d.npz", X=x, T=x)
    got, _, err = ref(capsys, "train", "--sizes", "2,2", "--data", tmp_path / "d.npz",
                      "--quiet", "--out", tmp_path / "net.npz")
    assert got == 1 and "the loss is inf; nothing saved" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    for main in (reference_main,):
        with pytest.raises(SystemExit) as done:
            main(["--help"])
        assert done.value.code == 0


@pytest.mark.parametrize("main", ["reference", "oracle"])
def test_a_warning_on_the_way_is_one_line_too(capsys, monkeypatch, patterns, main):
    def warn_then_fail(*args, **kwargs):
        warnings.warn("something odd\nover two lines", UserWarning, stacklevel=1)
        raise ValueError("refused")

    with warnings.catch_warnings():
        warnings.simplefilter("always")  # pytest makes warnings errors; a user's shell does not
        if main == "reference":
            monkeypatch.setattr(Network, "fit", warn_then_fail)
            got, _, err = ref(capsys, "train", "--sizes", "9,9", "--data", patterns, "--quiet")
            prog = REF
        else:
            import oracle
            monkeypatch.setattr(oracle, "check_network", warn_then_fail)
            got, _, err = ora(capsys, "check")
            prog = ORA
    assert got == 2
    assert err == f"{prog}: warning: something odd over two lines\n{prog}: error: refused\n"


# --- reference: bad flags, each one line and exit 2 (3 for the sizes numpy cannot address) ------

BAD_TRAIN_FLAGS = [
    (["--sizes", ""], 2, "sizes must be comma-separated ints like 9,9,9, got ''"),
    (["--sizes", "a,b"], 2, "sizes must be comma-separated ints"),
    (["--sizes", "9"], 2, "layer_sizes needs at least 2 entries"),
    (["--sizes", "9,0"], 2, "layer_sizes[1] must be a positive int, got 0"),
    (["--sizes", "9,-3"], 2, "layer_sizes[1] must be a positive int, got -3"),
    (["--sizes", "9,1.5"], 2, "sizes must be comma-separated ints"),
    (["--sizes", "9,1e3"], 2, "sizes must be comma-separated ints"),
    (["--sizes", "9," + "9" * 5000], 2, "sizes must be comma-separated ints"),
    (["--sizes", f"9,{2**63}"], 3, "more than this machine can address"),
    (["--sizes", f"{10**30},9"], 3, "more than this machine can address"),
    (["--sizes", "9,9", "--epochs", "0"], 2, "epochs must be an int >= 1, got 0"),
    (["--sizes", "9,9", "--epochs", "-5"], 2, "epochs must be an int >= 1, got -5"),
    (["--sizes", "9,9", "--epochs", "x"], 2, "argument --epochs: invalid int value: 'x'"),
    (["--sizes", "9,9", "--epochs", "1e9"], 2, "argument --epochs: invalid int value"),
    (["--sizes", "9,9", "--lr", "nan"], 2, "lr must be a finite positive number, got nan"),
    (["--sizes", "9,9", "--lr", "inf"], 2, "lr must be a finite positive number, got inf"),
    (["--sizes", "9,9", "--lr", "0"], 2, "lr must be a finite positive number, got 0.0"),
    (["--sizes", "9,9", "--lr", "-0.1"], 2, "lr must be a finite positive number, got -0.1"),
    (["--sizes", "9,9", "--lr", "fast"], 2, "argument --lr: invalid float value: 'fast'"),
    (["--sizes", "9,9", "--batch-size", "-1"], 2, "batch_size must be an int >= 0, got -1"),
    (["--sizes", "9,9", "--seed", "-1"], 2, "seed must be an int >= 0, got -1"),
    (["--sizes", "9,9", "--log", "x"], 2, "argument --log: invalid int value"),
    (["--sizes", "9,9", "--activations", "tanh,tanh"], 2, "expected 1 activations"),
    (["--sizes", "9,9", "--activations", "swish"], 2, "unknown activation 'swish'"),
    (["--sizes", "9,9", "--activations", ""], 2, "unknown activation ''"),
    (["--sizes", "9,9", "--loss", "cross_entropy", "--activations", "tanh"], 2,
     "needs the last activation to be 'softmax'"),
    (["--sizes", "9,9", "--bogus"], 2, "unrecognized arguments: --bogus"),
    (["--sizes", "9,9", "--init"], 2, "argument --init: expected one argument"),
]


@pytest.mark.parametrize(("flags", "status", "message"), BAD_TRAIN_FLAGS,
                         ids=[" ".join(f)[:40] for f, _, _ in BAD_TRAIN_FLAGS])
def test_a_bad_train_flag_is_one_line_and_saves_nothing(patterns, tmp_path, capsys, flags,
                                                        status, message):
    got, out, err = ref(capsys, "train", "--data", patterns, "--quiet",
                        "--out", tmp_path / "net.npz", *flags)
    assert got == status
    assert message in one_line(err, REF)
    assert len(err) < 400  # the 5,000-digit size is not echoed
    assert not (tmp_path / "net.npz").exists()


@pytest.mark.parametrize("argv", [[], ["fly"], ["train"], ["data"], ["data", "mnist"],
                                  ["--version"], ["-x"]])
def test_bad_commands_exit_2(capsys, argv):
    got, out, err = ref(capsys, *argv)
    assert got == 2 and out == ""
    assert "Traceback" not in err


# --- reference: --out writes exactly what it says, and is checked before training ---------------


@pytest.mark.parametrize("name", ["pat", "pat.npz", "pat.data", "sub/pat", ".hidden"])
def test_data_writes_exactly_the_file_it_names(tmp_path, capsys, name):
    (tmp_path / "sub").mkdir()
    path = tmp_path / name
    got, out, err = ref(capsys, "data", "patterns", "--out", path)
    assert got == 0 and err == ""
    assert out == f"wrote {path}: X (18, 9), T (18, 9)\n"
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")
                     if p.is_file())
    assert written == [Path(name).as_posix()]
    with np.load(path) as z:
        assert z["X"].shape == (18, 9)


@pytest.mark.parametrize("command", ["data", "train"])
def test_an_out_that_is_a_directory_or_in_no_folder_is_refused_first(tmp_path, patterns, capsys,
                                                                      command, monkeypatch):
    trained = []
    monkeypatch.setattr(Network, "fit", lambda *a, **k: trained.append(1) or [0.0])
    args = (["data", "patterns"] if command == "data"
            else ["train", "--sizes", "9,9", "--data", patterns, "--quiet"])
    (tmp_path / "folder").mkdir()
    for out, message in [(tmp_path / "folder", "is a directory"),
                         (tmp_path / "nowhere" / "x.npz", "there is no folder")]:
        got, _, err = ref(capsys, *args, "--out", out)
        assert got == 2 and message in one_line(err, REF)
    assert trained == []
    assert os.listdir(tmp_path / "folder") == []


def test_train_saves_through_a_symlink_and_keeps_it(tmp_path, patterns, capsys):
    target = tmp_path / "real.npz"
    link = tmp_path / "latest.npz"
    link.symlink_to(target)
    got, out, _ = ref(capsys, "train", "--sizes", "9,9", "--data", patterns, "--epochs", "1",
                      "--quiet", "--out", link)
    assert got == 0 and link.is_symlink() and target.is_file()
    Network.load(link)


def _loop(folder: Path) -> Path:
    (folder / "loop1").symlink_to(folder / "loop2")
    (folder / "loop2").symlink_to(folder / "loop1")
    return folder / "loop1"


def _fifo(folder: Path) -> Path:
    os.mkfifo(folder / "pipe.npz")
    return folder / "pipe.npz"


BAD_OUTS = [
    ("/proc/version", lambda d: "/proc/version",
     "--out: cannot write /proc/version: cannot create a file in its folder /proc (No such file "
     "or directory)"),
    ("a trailing slash", lambda d: f"{d}/dir_y/",
     "--out: cannot write {d}/dir_y/: a path ending in '/' names a folder; give a file name"),
    ("a symlink loop", _loop,
     "--out: cannot write {d}/loop1: it is a symbolic link loop (the links point at each other "
     "and never reach a file); remove or fix the link"),
    ("a 300-byte name", lambda d: d / ("n" * 296 + ".npz"),
     "its file name is 300 bytes long, more than the 255 its folder allows"),
    ("a FIFO", _fifo, "--out: cannot write {d}/pipe.npz: it is not a regular file (a device, "
                      "FIFO or socket), and saving replaces a file; give a file name"),
    ("a folder that is a file", lambda d: (d / "f").write_text("x") and d / "f" / "x.npz",
     "--out: cannot write {d}/f/x.npz: there is no folder {d}/f"),
]


@pytest.mark.parametrize("command", ["data", "train"])
@pytest.mark.parametrize(("label", "make", "message"), BAD_OUTS, ids=[b[0] for b in BAD_OUTS])
def test_an_out_that_cannot_be_written_is_refused_before_any_work(tmp_path, patterns, capsys,
                                                                   monkeypatch, command, label,
                                                                   make, message):
    if label == "/proc/version" and not os.path.isfile("/proc/version"):
        pytest.skip("no /proc")
    work = tmp_path / "work"
    work.mkdir()
    out = make(work)
    before = sorted(p.name for p in work.iterdir())
    trained = []
    monkeypatch.setattr(Network, "fit", lambda *a, **k: trained.append(1) or [0.0])
    args = (["data", "patterns"] if command == "data"
            else ["train", "--sizes", "9,9", "--data", patterns, "--quiet"])
    got, out_text, err = ref(capsys, *args, "--out", out)
    assert got == 2 and out_text == ""
    assert message.format(d=work) in one_line(err, REF)
    assert ".tmp" not in err
    assert trained == [] and sorted(p.name for p in work.iterdir()) == before


@pytest.mark.parametrize("command", ["steps", "vjp"])
@pytest.mark.parametrize(("label", "make", "message"), BAD_OUTS, ids=[b[0] for b in BAD_OUTS])
def test_the_oracles_outputs_that_cannot_be_written_are_refused_before_any_work(
        tmp_path, capsys, monkeypatch, command, label, make, message):
    """``oracle steps --out`` and ``oracle vjp --junit`` (whose missing folder is created):
    refused before the sweep or the check runs, with exit 2 and nothing left behind."""
    import oracle.step_sweep
    import oracle.vjp_check

    if label == "/proc/version" and not os.path.isfile("/proc/version"):
        pytest.skip("no /proc")
    work = tmp_path / "work"
    work.mkdir()
    out = make(work)
    before = sorted(p.name for p in work.iterdir())
    ran = []
    monkeypatch.setattr(oracle.step_sweep, "sweep_network_entry", lambda *a, **k: ran.append(1))
    monkeypatch.setattr(oracle.vjp_check, "check_vjp", lambda *a, **k: ran.append(1))
    if command == "steps":
        got, out_text, err = ora(capsys, "steps", "--sizes", "2,3,1", "--out", out)
        flag = "--out"
    else:
        got, out_text, err = ora(capsys, "vjp", "numpy:sin", "numpy:cos", "--shapes", "x=3",
                                 "--junit", out)
        flag = "--junit"
    assert got == 2 and out_text == "", err
    assert message.replace("--out", flag).format(d=work) in one_line(err, ORA)
    assert ".tmp" not in err
    assert ran == [] and sorted(p.name for p in work.iterdir()) == before


def test_a_save_that_fails_after_training_names_out_and_keeps_the_old_file(tmp_path, patterns,
                                                                            capsys, monkeypatch):
    import errno

    out = tmp_path / "net.npz"
    Network([9, 9], ["identity"], seed=3).save(out)
    before = out.read_bytes()

    def full_disk(f, **arrays):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    got, _, err = ref(capsys, "train", "--sizes", "9,9", "--data", patterns, "--epochs", "1",
                      "--quiet", "--out", out)
    assert got == 2
    assert one_line(err, REF) == f"cannot write {out}: No space left on device"
    assert out.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["net.npz", "patterns.npz"]


@pytest.mark.parametrize("command", ["data", "train"])
def test_outputs_keep_the_mode_they_replace_or_get_the_umasks(tmp_path, patterns, capsys,
                                                              command):
    args = (["data", "patterns"] if command == "data"
            else ["train", "--sizes", "9,9", "--data", patterns, "--epochs", "1", "--quiet"])
    old = os.umask(0o022)
    try:
        assert ref(capsys, *args, "--out", tmp_path / "new.npz")[0] == 0
        (tmp_path / "kept.npz").write_bytes(b"old")
        (tmp_path / "kept.npz").chmod(0o640)
        assert ref(capsys, *args, "--out", tmp_path / "kept.npz")[0] == 0
    finally:
        os.umask(old)
    assert oct(os.stat(tmp_path / "new.npz").st_mode & 0o777) == oct(0o644)
    assert oct(os.stat(tmp_path / "kept.npz").st_mode & 0o777) == oct(0o640)


# --- reference: data files ---------------------------------------------------------------------

CSV = [
    ("", "has no rows of numbers"),
    ("\n\n", "has no rows of numbers"),
    ("x0,x1,t\n", "has no rows of numbers"),
    ("# only a comment\n", "has no rows of numbers"),
    ("1,2\n3\n", "is not a CSV table of numbers"),
    ("1,2,3\n4,5\n", "is not a CSV table of numbers"),
    ("a,b,c\nd,e,f\n", "is not a CSV table of numbers"),
    ("1;2;3\n", "has no rows of numbers"),  # not numbers: a header, then nothing
    ("1,2\n", "has 2 columns; expected 2 inputs then 1 target columns"),
    ("1,2,3,4\n", "has 4 columns; expected 2 inputs then 1 target columns"),
    ("1,nan,3\n", "X must be finite, found 1 NaN/Inf entries (first at index (0, 1): nan)"),
    ("1,2,3\n4,5,inf\n", "T must be finite, found 1 NaN/Inf entries (first at index (1, 0): inf)"),
    ("1,2,1e999\n", "T must be finite"),
    ("0x10,2,3\n", "has no rows of numbers"),
    ("\x00\x01\x02\n", "has no rows of numbers"),
    ("x,y,t\n1,2\n", "has 2 columns; expected 2 inputs then 1 target columns"),
    ("1,2,3\n0x10,2,3\n", "is not a CSV table of numbers"),
]


LABELS = ["1e300", "-1e300", "9223372036854775808", "1e19", "1E+16", "inf", "-inf", "nan",
          "NaN", "2.5", "-1", "3", "1.0000001", "0x1", "1" + "0" * 200]


@pytest.mark.parametrize("label", LABELS, ids=[b[:20] for b in LABELS])
def test_a_csv_label_that_is_no_class_is_named_as_given(tmp_path, capsys, label):
    path = tmp_path / "d.csv"
    path.write_text(f"x0,x1,label\n# a comment\n0.5,0.5,1\n\n0.1,0.2, {label} # the label\n")
    shown = repr(label) if len(label) <= 40 else repr(label)[:37] + "..."
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # "invalid value encountered in cast" would show
        got, _, err = ref(capsys, "train", "--sizes", "2,3", "--loss", "cross_entropy", "--data",
                          path, "--quiet", "--out", tmp_path / "net.npz")
    assert got == 2
    if label == "0x1":  # not a number numpy reads: the table is refused as a whole
        assert got == 2 and "is not a CSV table of numbers" in one_line(err, REF)
        return
    assert one_line(err, REF) == (f"data {path}: the label column must hold integer class "
                                  f"labels 0 .. 2 for 3 outputs, got {shown} on line 5")
    assert not (tmp_path / "net.npz").exists()


@pytest.mark.parametrize(("text", "message"), CSV, ids=[repr(t)[:30] for t, _ in CSV])
def test_a_bad_csv_is_one_line_with_no_numpy_warning(tmp_path, capsys, text, message):
    path = tmp_path / "d.csv"
    path.write_text(text)
    with warnings.catch_warnings():
        warnings.simplefilter("always")  # a leaked numpy warning would show on stderr
        got, out, err = ref(capsys, "train", "--sizes", "2,1", "--data", path, "--quiet",
                            "--out", tmp_path / "net.npz")
    assert got == 2
    assert message in one_line(err, REF)
    assert not (tmp_path / "net.npz").exists()


def test_a_csv_over_the_size_limit_is_too_large_before_it_is_read(tmp_path, capsys, monkeypatch):
    path = tmp_path / "huge.csv"
    with open(path, "wb") as f:  # sparse: 300 MiB declared, nothing written
        f.truncate(300 << 20)
    monkeypatch.setattr(np, "loadtxt", _raiser(AssertionError("read it")))
    got, _, err = ref(capsys, "train", "--sizes", "2,1", "--data", path, "--quiet")
    assert got == 3
    assert one_line(err, REF) == (f"data {path} is 300.0 MiB of CSV text, more than the limit of "
                                  "256.0 MiB; save it as an .npz (numpy.savez(path, X=..., "
                                  "T=...)) instead")


@pytest.mark.parametrize("kind", ["fifo", "device", "directory"])
def test_a_csv_that_is_not_a_regular_file_is_refused_without_reading(tmp_path, capsys, kind):
    path = tmp_path / "d.csv"
    if kind == "fifo":
        os.mkfifo(path)  # reading it would block
    elif kind == "device":
        path.symlink_to("/dev/zero")  # reading it would never end
    else:
        path.mkdir()
    got, _, err = ref(capsys, "train", "--sizes", "2,1", "--data", path, "--quiet")
    why = "Is a directory" if kind == "directory" else "not a regular file"
    assert got == 2 and one_line(err, REF) == f"cannot read data {path}: {why}"


NPZ = [
    ("missing", None, 2, "cannot read data {path}: No such file or directory"),
    ("a directory", "dir", 2, "cannot read data {path}: Is a directory"),
    ("text", b"hello", 2, "cannot read data {path} as .npz or .csv (it is not a zip archive and "
                          "its name does not end in .csv)"),
    ("empty", b"", 2, "cannot read data {path} as .npz or .csv"),
    ("a single array", "npy", 2, "data {path} is a single array"),
    ("no T", {"X": np.zeros((2, 2))}, 2, "data {path} lacks array(s) ['T']; found ['X']"),
    ("objects", {"X": np.array([[1, None]], dtype=object), "T": np.zeros(2)}, 2,
     "data {path}: array 'X' holds Python objects (dtype object), which would need pickle"),
    ("strings", {"X": np.array([["a", "b"]]), "T": np.zeros(1)}, 2,
     "data {path}: array 'X' has dtype <U1"),
    ("NaN at X[1, 0]", {"X": np.array([[0.0, 1.0], [np.nan, 0.0]]), "T": np.zeros((2, 2))}, 2,
     "X must be finite, found 1 NaN/Inf entries (first at index (1, 0): nan)"),
    ("wrong width", {"X": np.zeros((2, 3)), "T": np.zeros((2, 2))}, 2,
     "X has 3 values per sample"),
    ("T wrong", {"X": np.zeros((2, 2)), "T": np.zeros((3, 2))}, 2, "T must have shape (2, 2)"),
    ("complex", {"X": np.zeros((2, 2), complex), "T": np.zeros((2, 2))}, 2,
     "array 'X' has dtype complex128"),
    ("empty batch", {"X": np.zeros((0, 2)), "T": np.zeros((0, 2))}, 2, "X is an empty batch"),
]


@pytest.mark.parametrize(("label", "content", "status", "message"), NPZ,
                         ids=[n[0] for n in NPZ])
def test_a_bad_npz_data_file_is_one_line(tmp_path, capsys, label, content, status, message):
    path = tmp_path / "d.npz"
    if content == "dir":
        path.mkdir()
    elif content == "npy":
        with open(path, "wb") as f:
            np.save(f, np.zeros((2, 2)))
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, dict):
        np.savez(path, **content)
    for prog, run in ((REF, ref), (ORA, ora)):
        if prog == REF:
            got, _, err = run(capsys, "train", "--sizes", "2,2", "--data", path, "--quiet",
                              "--out", tmp_path / "net.npz")
        else:
            got, _, err = run(capsys, "check", "--sizes", "2,2", "--data", path)
        expected = message.format(path=path)
        if prog == ORA:
            expected = expected.replace("as .npz or .csv (it is not a zip archive and its name "
                                        "does not end in .csv)", "as an .npz archive (it is "
                                        "not a zip archive)").replace(".npz or .csv", "an .npz")
        assert got == status, err
        assert expected in one_line(err, prog)
    assert not (tmp_path / "net.npz").exists()


# --- configs (--config) in both command lines ---------------------------------------------------

CONFIGS = [
    ("deep lists", "[" * 100_000 + "]" * 100_000, 3, "nests objects or arrays 100000 deep, more "
                                                     "than the limit of 32"),
    ("deep objects", '{"a": ' * 5000 + "1" + "}" * 5000, 3, "nests objects or arrays 5000 deep"),
    ("5,000-digit size", '{"sizes": [2, ' + "9" * 5000 + "]}", 3,
     "holds a number of 5000 characters (999999999999...), more than the limit of 100"),
    ("1e999", '{"sizes": [2, 2], "seed": 1e999}', 3, "holds the number 1e999, which overflows"),
    ("NaN", '{"sizes": [2, 2], "seed": NaN}', 2, "holds NaN, which is not a JSON number"),
    ("2 MB", '{"sizes": [2, 2], "x": "' + "y" * (2 << 20) + '"}', 3,
     "characters long, more than the limit of 1048576"),
    ("not UTF-8", b'{"sizes": [2, 2], "loss": "\xff"}', 2, "is not UTF-8 text (invalid start "
                                                           "byte at byte 27)"),
    ("binary", b"\x00\x01\x02", 2, "is not valid JSON"),
    ("empty", "", 2, "is not valid JSON (Expecting value: line 1 column 1 (char 0))"),
    ("a number", "3", 2, "must hold a JSON object, got int"),
    ("unknown key", '{"sizes": [2, 2], "colour": "red"}', 2, "unknown keys ['colour']"),
    ("sizes as str", '{"sizes": "2,x"}', 2, "sizes must be comma-separated ints"),
    ("sizes 2^63", '{"sizes": [2, 9223372036854775808]}', 3, "more than this machine can "
                                                             "address"),
    ("seed -1", '{"sizes": [2, 2], "seed": -1}', 2, "seed must be"),
    ("seed 1.5", '{"sizes": [2, 2], "seed": 1.5}', 2, "seed must be"),
    ("loss 3", '{"sizes": [2, 2], "loss": 3}', 2, "loss"),
    ("activations 3", '{"sizes": [2, 2], "activations": 3}', 2, "activations must be a list"),
    ("a key twice", '{"sizes": [2, 2], "sizes": [2, 3]}', 2,
     "key 'sizes' appears twice in one object"),
    ("a key twice, nested", '{"sizes": [2, 2], "activations": {"a": 1, "a": 2}}', 2,
     "key 'a' appears twice in one object"),
    ("64,000 escaped quotes", '"' + '\\"' * 32_000, 2, "is not valid JSON (Unterminated string"),
]


@pytest.mark.parametrize(("label", "text", "status", "message"), CONFIGS,
                         ids=[c[0] for c in CONFIGS])
@pytest.mark.parametrize("prog", [REF, ORA])
def test_a_hostile_config_is_one_line_with_its_status(tmp_path, patterns, capsys, label, text,
                                                      status, message, prog):
    path = tmp_path / "c.json"
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    if prog == REF:
        got, _, err = ref(capsys, "train", "--config", path, "--data", patterns, "--quiet",
                          "--out", tmp_path / "net.npz")
    else:
        got, _, err = ora(capsys, "check", "--config", path)
    assert got == status, err
    assert message in one_line(err, prog)
    assert len(err) < 500
    assert not (tmp_path / "net.npz").exists()


def test_a_config_that_is_a_directory_or_missing_is_exit_2(tmp_path, capsys):
    for path, why in ((tmp_path, "Is a directory"), (tmp_path / "no.json",
                                                      "No such file or directory")):
        got, _, err = ora(capsys, "check", "--config", path)
        assert got == 2 and one_line(err, ORA) == f"cannot read config {path}: {why}"


# --- oracle: steps, and the network file ---------------------------------------------------------

STEPS = [
    (["--layer", "-1"], "--layer must be in 0 .. 1 for a 2-layer network, got -1"),
    (["--layer", "2"], "--layer must be in 0 .. 1 for a 2-layer network, got 2"),
    (["--layer", "-100"], "--layer must be in 0 .. 1"),
    (["--layer", "x"], "argument --layer: invalid int value: 'x'"),
    (["--entry=-1,0"], "--entry must be two ints I,J with 0 <= I < 4 and 0 <= J < 4 (W0 has "
                       "shape (4, 4)), got -1,0"),
    (["--entry", "0,-1"], "--entry must be two ints"),
    (["--entry", "-1,0"], "argument --entry: expected one argument"),  # argparse: an option
    (["--entry", "4,0"], "--entry must be two ints"),
    (["--entry", "0,4"], "--entry must be two ints"),
    (["--entry", "1"], "--entry must be two ints"),
    (["--entry", "1,2,3"], "--entry must be two ints"),
    (["--entry", "a,b"], "entry must be comma-separated ints"),
    (["--layer", "1", "--entry", "5,0"], "W1 has shape (5, 2)"),
    (["--layer", "1", "--entry", "0,2"], "W1 has shape (5, 2)"),
]


@pytest.mark.parametrize(("flags", "message"), STEPS, ids=[" ".join(f) for f, _ in STEPS])
def test_steps_refuses_a_layer_or_entry_outside_the_network(capsys, tmp_path, flags, message):
    got, out, err = ora(capsys, "steps", "--sizes", "3,4,2", "--no-plot", *flags,
                        "--out", tmp_path / "s.png")
    assert got == 2 and out == ""
    assert message in one_line(err, ORA)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", ["pat", "pat.png", "pat.svg"])
def test_steps_writes_exactly_the_picture_it_names(capsys, tmp_path, name):
    pytest.importorskip("matplotlib")
    got, out, err = ora(capsys, "steps", "--sizes", "2,2", "--exact", "hand", "--quiet",
                        "--out", tmp_path / name)
    assert got == 0, err
    assert err == f"wrote {tmp_path / name}\n"
    assert os.listdir(tmp_path) == [name]
    magic = (tmp_path / name).read_bytes()[:5]
    assert magic == (b"<?xml" if name.endswith(".svg") else b"\x89PNG\r")


def test_oracle_refuses_hostile_network_files_with_their_status(tmp_path, capsys):
    big = tmp_path / "big.npz"
    np.savez(big, config=np.array(json.dumps({
        "format": "simple-net", "version": 1, "layer_sizes": [16000, 16000],
        "activations": ["identity"], "loss": "mse", "init": "glorot", "seed": 0})),
        W0=np.zeros((4, 4)))
    deep = tmp_path / "deep.npz"
    np.savez(deep, config=np.array("[" * 50_000 + "]" * 50_000))
    for path, status, message in [(big, 3, "whose weights take 1.9 GiB: more than the memory "
                                           "budget max_bytes = 1.0 GiB"),
                                  (deep, 3, "config nests objects or arrays 50000 deep"),
                                  (tmp_path, 2, "it is a directory")]:
        got, _, err = ora(capsys, "check", "--network", path)
        assert got == status
        assert message in one_line(err, ORA)


# --- the real processes, with a memory limit where it could hurt ----------------------------------


LIMITED = """
import resource, runpy, sys
size = int(float(sys.argv[1]) * (1 << 30))
resource.setrlimit(resource.RLIMIT_AS, (size, size))
sys.argv = [sys.argv[2], *sys.argv[3:]]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


def python_m(module: str, *argv, gib: float, cwd: Path = ROOT):
    """``python -m module argv`` in a child that limits its own address space to ``gib`` GiB
    (set in the child itself: a preexec_fn would fork this multithreaded JAX process)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
    env.pop("SIMPLE_NET_TRACEBACK", None)
    return subprocess.run([sys.executable, "-c", LIMITED, str(gib), module, *map(str, argv)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_a_network_too_large_for_memory_exits_3_without_a_traceback(patterns):
    done = python_m("reference", "train", "--sizes", "100000,100000", "--data", patterns,
                    "--quiet", gib=1)
    assert done.returncode == 3, done.stderr
    assert one_line(done.stderr, REF) == (
        "layer sizes 100000,100000 need 74.5 GiB of weights, more than the memory budget of "
        "1.0 GiB (the same as for files)")


def test_a_zip_bomb_and_deep_json_exit_2_and_3_in_a_real_process(tmp_path, patterns):
    import zipfile
    bomb = tmp_path / "bomb.npz"
    honest = io.BytesIO()
    np.save(honest, np.zeros((2, 9)))
    head = honest.getvalue()[:-144]  # the .npy header of a (2, 9) float64 array
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("X.npy", head + bytes(64 << 20))  # says (2, 9), inflates to 64 MiB
        z.writestr("T.npy", honest.getvalue())
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    for argv, status, message in [
        (["--sizes", "9,9", "--data", bomb], 2, "array 'X' declares shape (2, 9) of float64 "
                                                "(144 bytes), but its zip member holds 64.0 MiB"),
        (["--config", deep, "--data", patterns], 3, "nests objects or arrays 200000 deep"),
    ]:
        done = python_m("reference", "train", *argv, "--quiet", "--out", tmp_path / "n.npz",
                        gib=0.75)
        assert done.returncode == status, done.stderr
        assert message in one_line(done.stderr, REF)
    assert not (tmp_path / "n.npz").exists()


def test_the_oracle_process_refuses_a_1_kb_file_declaring_2_gb(tmp_path):
    big = tmp_path / "big.npz"
    np.savez(big, config=np.array(json.dumps({
        "format": "simple-net", "version": 1, "layer_sizes": [16000, 16000],
        "activations": ["identity"], "loss": "mse", "init": "glorot", "seed": 0})),
        W0=np.zeros((4, 4)))
    assert big.stat().st_size < 2000
    done = python_m("oracle", "check", "--network", big, gib=2)
    assert done.returncode == 3, done.stderr
    assert "more than the memory budget max_bytes = 1.0 GiB" in one_line(done.stderr, ORA)


def test_reference_cli_module_documents_every_exit_status(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit):
        reference_main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for status in ("0 done", "1 training diverged", "2 bad usage or input", "3 too large",
                   "4 internal error", "130 interrupted", "141 output closed early"):
        assert status in text
    assert "3 too large" in reference_cli.__doc__


# --- sizes from flags and configs, and vjp --inputs: the files' memory budget, in a real process --

MANY = r"""
import contextlib, io, json, resource, sys
size = int(float(sys.argv[1]) * (1 << 30))
resource.setrlimit(resource.RLIMIT_AS, (size, size))
from oracle.cli import main as oracle_main
from reference.cli import main as reference_main
import oracle.adapters, oracle.vjp_check, oracle.step_sweep  # what the commands import lazily
mains = {"oracle": oracle_main, "reference": reference_main}

def peak_kb():  # this process's peak resident memory since its exec
    return int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])

results = []
for prog, argv in json.loads(open(sys.argv[2]).read()):
    err, before = io.StringIO(), peak_kb()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = mains[prog](argv)
    results.append([status, err.getvalue(), peak_kb() - before])
print(json.dumps(results))
"""

MODULE = '''
import numpy as np
def f(x):
    return np.sin(x)
def g(dout, x):
    return dout * np.cos(x)
def f_any(**inputs):
    return np.sin(inputs["x"])
def g_any(dout, **inputs):
    return {"x": dout * np.cos(inputs["x"])}
'''


def _inputs_files(folder: Path) -> dict[str, Path]:
    """The --inputs files of the attempts below, crafted byte by byte."""
    from test_hostile_files import header, npy, npy_header, raw_zip, write_bomb, write_zip

    x = npy(np.linspace(-1.0, 1.0, 3))
    files = {"good": write_zip(folder / "good.npz", {"x.npy": x})}
    # 1 KB on disk, 256 MiB unused: never inflated, refused by its name in the zip directory.
    files["unused bomb"] = write_bomb(folder / "unused.npz", "junk.npy",
                                      npy_header(header(shape=(32 << 20,))), others={"x.npy": x})
    # For a forward that takes anything: the header says (3,), the member inflates to 256 MiB.
    files["lying bomb"] = write_bomb(folder / "lying.npz", "x.npy",
                                     npy_header(header(shape=(3,))))
    # A header and a zip directory that agree on 2 GiB, with 100 bytes behind them.
    big = npy_header(header(shape=(1 << 28,)))
    files["2 GiB declared"] = raw_zip(folder / "big.npz", [
        ("x.npy", 0, big + bytes(100), zlib.crc32(big + bytes(100)), len(big) + (8 << 28))])
    half = npy_header(header(shape=(80 << 20,)))  # 640 MiB each: 1.25 GiB together
    files["two of 640 MiB"] = raw_zip(folder / "two.npz", [
        (f"{n}.npy", 0, half, zlib.crc32(half), len(half) + (640 << 20)) for n in ("x", "y")])
    obj = np.empty(2, dtype=object)
    obj[:] = [Evil(folder / "PWNED"), 1.0]
    files["pickle"] = write_zip(folder / "pickle.npz", {"x.npy": npy(obj)})
    files["strings"] = write_zip(folder / "strings.npz", {"x.npy": npy(np.array(["a", "b"]))})
    files["a lone .npy"] = folder / "lone.npz"
    files["a lone .npy"].write_bytes(x)
    files["10,001 members"] = write_zip(folder / "many.npz",
                                        {f"a{k}.npy": b"" for k in range(10_001)})
    os.mkfifo(folder / "fifo.npz")
    files["a FIFO"] = folder / "fifo.npz"
    files["missing"] = folder / "missing.npz"
    return files


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


INPUTS = [  # (file, forward, backward, status, message)
    ("good", "f", "g", 0, None),
    ("unused bomb", "f", "g", 2, "inputs {path}: it holds ['junk'], which the forward function "
                                 "(x) does not take; save only its inputs"),
    ("lying bomb", "f_any", "g_any", 2, "inputs {path}: array 'x' declares shape (3,) of float64 "
                                        "(24 bytes), but its zip member holds 256.0 MiB"),
    ("2 GiB declared", "f", "g", 3, "inputs {path}: its arrays declare 2.0 GiB, more than the "
                                    "memory budget of 1.0 GiB"),
    ("two of 640 MiB", "f_any", "g_any", 3, "inputs {path}: its arrays declare 1.2 GiB, more "
                                            "than the memory budget of 1.0 GiB"),
    ("pickle", "f", "g", 2, "inputs {path}: array 'x' holds Python objects (dtype object), which "
                            "would need pickle"),
    ("strings", "f", "g", 2, "inputs {path}: array 'x' has dtype <U1, expected bool or int or "
                             "unsigned int or float"),
    ("a lone .npy", "f", "g", 2, "inputs {path}: it holds a single .npy array, expected an .npz "
                                 "archive"),
    ("10,001 members", "f_any", "g_any", 3, "inputs {path}: its zip directory lists 10001 "
                                            "members, more than the limit of 10000"),
    ("a FIFO", "f", "g", 2, "cannot read inputs {path}: not a regular file"),
    ("missing", "f", "g", 2, "cannot read inputs {path}: No such file or directory"),
]

BUDGET = [  # (prog, argv, status, message): sizes over the 1 GiB budget, refused before allocating
    ("oracle", ["check", "--sizes", "30000,30000", "--fd", "none"], 3,
     "layer sizes 30000,30000 need 6.7 GiB of weights and 2.3 MiB of data for a batch of 5, more "
     "than the memory budget of 1.0 GiB (the same as for files)"),
    ("oracle", ["--sizes", "4,16384,16384,3"], 3, "layer sizes 4,16384,16384,3 need 2.0 GiB"),
    ("oracle", ["check", "--sizes", "4,3", "--batch", "100000000"], 3,
     "need 120 bytes of weights and 5.2 GiB of data for a batch of 100000000"),
    ("oracle", ["steps", "--sizes", "30000,30000", "--no-plot"], 3, "layer sizes 30000,30000 "),
    ("oracle", ["check", "--config", "{big}"], 3, "layer sizes 20000,20000 need 3.0 GiB"),
    ("reference", ["train", "--sizes", "30000,30000", "--data", "{data}", "--quiet", "--out",
                   "{out}"], 3, "layer sizes 30000,30000 need 6.7 GiB of weights, more than"),
    ("reference", ["train", "--config", "{big}", "--data", "{data}", "--quiet", "--out",
                   "{out}"], 3, "layer sizes 20000,20000 need 3.0 GiB of weights"),
    ("oracle", ["check", "--sizes", "64,64", "--fd", "none", "--quiet"], 0, None),  # well within
]
# The accepted attempts run last: each refused one must leave the peak memory where it was.
assert [b[2] for b in BUDGET][-1] == 0 and INPUTS[0][3] == 0


@pytest.fixture(scope="module")
def limited_runs(tmp_path_factory):
    """Every attempt of INPUTS and BUDGET in one child limited to 2 GiB of address space (one
    JAX import for all): its (status, stderr) per attempt, and its peak memory."""
    folder = tmp_path_factory.mktemp("limited")
    (folder / "mods.py").write_text(MODULE)
    files = _inputs_files(folder)
    (folder / "big.json").write_text('{"sizes": [20000, 20000]}')
    data = folder / "data.npz"
    np.savez(data, X=np.zeros((2, 30000)), T=np.zeros((2, 30000)))
    names = {"big": folder / "big.json", "data": data, "out": folder / "net.npz"}
    vjp = [["oracle", ["vjp", f"mods.py:{fw}", f"mods.py:{bw}", "--inputs", str(files[name]),
                       "--quiet", "--no-jax", "--fd", "exhaustive"]]
           for name, fw, bw, _, _ in INPUTS]
    sizes = [[prog, [a.format(**names) for a in argv]] for prog, argv, _, _ in BUDGET]
    plan = vjp[1:] + sizes[:-1] + [vjp[0], sizes[-1]]  # the accepted ones last
    (folder / "plan.json").write_text(json.dumps(plan))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
    env.pop("SIMPLE_NET_TRACEBACK", None)
    done = subprocess.run([sys.executable, "-c", MANY, "2", str(folder / "plan.json")],
                          cwd=folder, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.splitlines()[-1])
    n = len(INPUTS) - 1
    inputs = [out[-2]] + out[:n]
    budget = out[n:n + len(BUDGET) - 1] + [out[-1]]
    return {"folder": folder, "files": files, "inputs": inputs, "budget": budget}


@pytest.mark.parametrize("k", range(len(INPUTS)), ids=[f"{i[0]}-{i[1]}" for i in INPUTS])
def test_vjp_inputs_are_read_as_hostile_files(limited_runs, k):
    name, _, _, status, message = INPUTS[k]
    got, err, grew_kb = limited_runs["inputs"][k]
    assert got == status, err
    if message is None:
        assert err == ""
    else:
        assert message.format(path=limited_runs["files"][name]) in one_line(err, ORA)
        assert grew_kb < 64 << 10, grew_kb  # nothing it declares was inflated or allocated
    assert not (limited_runs["folder"] / "PWNED").exists()


@pytest.mark.parametrize("k", range(len(BUDGET)), ids=[" ".join(b[1][:3]) for b in BUDGET])
def test_sizes_over_the_memory_budget_exit_3_before_allocating(limited_runs, k):
    prog, _, status, message = BUDGET[k]
    got, err, grew_kb = limited_runs["budget"][k]
    assert got == status, err
    if message is not None:
        assert message in one_line(err, ORA if prog == "oracle" else REF)
        assert grew_kb < 64 << 10, grew_kb  # refused before the network was allocated
    assert not (limited_runs["folder"] / "net.npz").exists()
