"""``python -m reference``: train from flags or a JSON config on .npz/.csv data, save; and the
progress bar that long work shows."""

import io
import json
import locale
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reference import Network
from reference.cli import main
from reference.datasets import patterns_3x3, two_spirals
from reference.progress import progress_bar

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def patterns(tmp_path):
    path = tmp_path / "patterns.npz"
    x = patterns_3x3().reshape(18, 9)
    np.savez(path, X=x, T=x)
    return path


def run(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


# --- train ---------------------------------------------------------------------------------


def test_train_from_flags_saves_a_network_that_learned(patterns, tmp_path, capsys):
    out = tmp_path / "net.npz"
    status, printed, err = run(capsys, "train", "--sizes", "9,9,9", "--activations",
                               "tanh,tanh", "--data", patterns, "--epochs", "60", "--lr",
                               "0.1", "--batch-size", "1", "--out", out, "--quiet")
    assert status == 0, err
    net = Network.load(out)
    assert net.layer_sizes == [9, 9, 9]
    assert [a.name for a in net.activations] == ["tanh", "tanh"]
    x = patterns_3x3().reshape(18, 9)
    untrained = Network([9, 9, 9], ["tanh", "tanh"], "mse", seed=0)
    assert net.loss(x, x) < 0.1 * untrained.loss(x, x)
    losses = [float(v) for v in
              [line.split()[-1] for line in printed.splitlines() if "  epoch" in line]]
    assert len(losses) >= 5 and losses[-1] < losses[0]
    assert f"saved to {out}" in printed


def test_train_from_a_json_config_on_csv_with_integer_labels(tmp_path, capsys):
    x, labels = two_spirals(20, seed=0)
    data = tmp_path / "spirals.csv"
    np.savetxt(data, np.column_stack([x, labels]), delimiter=",", header="x1,x2,label")
    config = tmp_path / "net.json"
    config.write_text(json.dumps({"sizes": [2, 8, 2], "activations": ["tanh", "softmax"],
                                  "loss": "cross_entropy", "epochs": 5, "lr": 0.05,
                                  "batch_size": 4, "seed": 3}))
    out = tmp_path / "clf.npz"
    status, printed, err = run(capsys, "train", "--config", config, "--data", data,
                               "--out", out)
    assert status == 0, err
    net = Network.load(out)
    assert net.layer_sizes == [2, 8, 2] and net.loss_function.name == "cross_entropy"
    assert net.seed == 3
    assert "40 samples, 5 epochs, lr 0.05, batch size 4" in printed


def test_flags_override_the_config(patterns, tmp_path, capsys):
    config = tmp_path / "net.json"
    config.write_text(json.dumps({"layer_sizes": [9, 4, 9], "epochs": 1000}))
    out = tmp_path / "net.npz"
    status, printed, err = run(capsys, "train", "--config", config, "--sizes", "9,5,9",
                               "--epochs", "2", "--data", patterns, "--out", out)
    assert status == 0, err
    assert Network.load(out).layer_sizes == [9, 5, 9]
    assert "2 epochs" in printed


def test_csv_with_target_columns_for_mse(tmp_path, capsys):
    x = np.random.default_rng(0).normal(size=(12, 3))
    t = x @ np.array([[1.0], [-2.0], [0.5]])
    data = tmp_path / "lin.csv"
    np.savetxt(data, np.column_stack([x, t]), delimiter=",")
    out = tmp_path / "lin.npz"
    status, _, err = run(capsys, "train", "--sizes", "3,1", "--activations", "identity",
                         "--data", data, "--epochs", "200", "--batch-size", "0", "--out", out)
    assert status == 0, err
    w = Network.load(out).weights[0]
    np.testing.assert_allclose(w[:-1, 0], [1.0, -2.0, 0.5], atol=0.05)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--data", "{data}"], "give the layer sizes"),
        (["train", "--sizes", "9,x", "--data", "{data}"], "comma-separated ints"),
        (["train", "--sizes", "9,9", "--data", "{tmp}/missing.npz"], "cannot read data"),
        (["train", "--sizes", "9,9", "--data", "{data}", "--lr", "-1"], "lr"),
        (["train", "--sizes", "9,9", "--data", "{data}", "--epochs", "0"], "epochs"),
        (["train", "--sizes", "4,9", "--data", "{data}"], "first layer expects 4"),
        (["train", "--config", "{tmp}/bad.json", "--data", "{data}"], "unknown keys"),
        (["train", "--sizes", "2,2", "--data", "{tmp}/wide.csv"], "expected 2 inputs"),
        (["train", "--sizes", "9,9", "--data", "{data}", "--bogus"], "unrecognized"),
        ([], ""),
    ],
)
def test_bad_usage_is_one_line_on_stderr_and_exit_2(patterns, tmp_path, capsys, args,
                                                    message):
    (tmp_path / "bad.json").write_text(json.dumps({"sizes": [9, 9], "colour": "red"}))
    np.savetxt(tmp_path / "wide.csv", np.ones((3, 5)), delimiter=",")
    argv = [a.format(data=patterns, tmp=tmp_path) for a in args]
    status, out, err = run(capsys, *argv)
    assert status == 2
    assert message in err
    if args:
        assert err.count("\n") == 1 and "Traceback" not in err, err
    assert not list(tmp_path.glob("net.npz"))


def test_a_diverging_run_exits_1_and_saves_nothing(tmp_path, capsys):
    x = np.random.default_rng(0).normal(scale=10.0, size=(8, 2))
    data = tmp_path / "d.npz"
    np.savez(data, X=x, T=x @ np.ones((2, 1)))
    out = tmp_path / "net.npz"
    status, _, err = run(capsys, "train", "--sizes", "2,1", "--activations", "identity",
                         "--data", data, "--lr", "10", "--epochs", "500", "--out", out)
    assert status == 1
    assert "diverged" in err and "nothing saved" in err
    assert not out.exists()


def test_data_writes_the_built_in_sets(tmp_path, capsys):
    status, printed, _ = run(capsys, "data", "patterns", "--out", tmp_path / "p.npz")
    assert status == 0 and "X (18, 9), T (18, 9)" in printed
    status, printed, _ = run(capsys, "data", "spirals", "--out", tmp_path / "s.npz")
    with np.load(tmp_path / "s.npz") as z:
        assert z["X"].shape == (400, 2) and z["T"].dtype.kind == "i"


@pytest.mark.parametrize("command", ["train", "data"])
def test_help_shows_an_example(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert f"python -m reference {command} " in capsys.readouterr().out


def test_the_command_line_loads_neither_jax_nor_oracle_nor_matplotlib(tmp_path):
    code = (
        "import sys; from reference.__main__ import main; "
        f"main(['data', 'patterns', '--out', {str(tmp_path / 'p.npz')!r}]); "
        f"main(['train', '--sizes', '9,9', '--data', {str(tmp_path / 'p.npz')!r}, "
        f"'--epochs', '2', '--out', {str(tmp_path / 'n.npz')!r}]); "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('jax', 'jaxlib', 'oracle', 'matplotlib')); assert not bad, bad"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "n.npz").exists()


# --- the progress bar ----------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_bar_is_off_when_quiet_or_not_a_terminal(capsys):
    for stream, quiet in ((Terminal(), True), (io.StringIO(), False)):
        with progress_bar(10, "work", quiet=quiet, stream=stream) as bar:
            for _ in range(10):
                bar.update()
            bar.write("a line")
        assert stream.getvalue() == ""
    assert capsys.readouterr().out == "a line\na line\n"  # lines are printed either way


def test_the_bar_draws_on_a_terminal_with_tqdm(capsys):
    pytest.importorskip("tqdm")
    stream = Terminal()
    with progress_bar(4, "work", stream=stream) as bar:
        bar.update(2)
        bar.write("halfway")
        bar.update(2)
    assert "work" in stream.getvalue()
    assert "halfway" in capsys.readouterr().out


def test_the_plain_bar_draws_when_tqdm_is_missing(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm now raises ImportError
    stream = Terminal()
    with progress_bar(4, "work", stream=stream) as bar:
        bar.update(2)
        bar.write("halfway")
        bar.set_done(4)
    drawn = stream.getvalue()
    assert "work:  50% (2/4)" in drawn and "work: 100% (4/4)" in drawn
    assert capsys.readouterr().out == "halfway\n"


# --- what --help documents ---------------------------------------------------------------------


def help_of(capsys, monkeypatch, *argv):
    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    return out, " ".join(out.split())


TRAIN_OPTIONS = [
    "the network (flags override --config):",
    "--sizes SIZES layer sizes n0,n1,...,nL, e.g. 9,9,9",
    "--activations ACTIVATIONS L names, comma-separated (default tanh for hidden layers and the "
    "loss's own output activation: identity, softmax or sigmoid)",
    "--loss {binary_cross_entropy,cross_entropy,mse} default mse",
    "--init {glorot,he,uniform} default glorot",
    "--seed SEED seeds the weights and the shuffling (default 0)",
    "--config FILE.json JSON object with any of sizes, activations, loss, init, seed, epochs, lr, "
    "batch_size",
    "training:",
    "--data FILE .npz with arrays X and T, or .csv (input columns, then targets)",
    "--epochs EPOCHS passes over the data (100)",
    "--lr LR learning rate of eq 10 (0.1)",
    "--batch-size BATCH_SIZE samples per SGD step (32); 0 = all",
    "--out FILE.npz where to save the trained network (default net.npz)",
    "--log N print the loss N times during training (default 10)",
    "--quiet no progress bar",
]
DATA_OPTIONS = [
    "{patterns,spirals} patterns: the original demo's 18 3x3 images (X = T, for a 9-9-9 "
    "autoencoder); spirals: two interleaved spirals, 200 per class",
    "--out FILE.npz where to write it",
]


@pytest.mark.parametrize(("command", "documented"),
                         [("train", TRAIN_OPTIONS), ("data", DATA_OPTIONS)])
def test_the_help_of_a_command_documents_each_option(capsys, monkeypatch, command, documented):
    out, words = help_of(capsys, monkeypatch, command)
    assert words.startswith(f"usage: python -m reference {command} ")
    for line in documented:
        assert line in words, line
    summary = {"train": "train a network on a .npz or .csv data set and save it",
               "data": "write a built-in data set to a .npz file"}[command]
    assert f"\n\n{summary}\n\n" in out  # the description, above the options
    example = {"train": "train --config net.json --data samples.csv --out net.npz\n",
               "data": "data spirals --out spirals.npz     # X (400, 2), T integer labels 0/1\n"}
    assert f"\n  python -m reference {example[command]}" in out  # examples kept line by line


def test_the_main_help_lists_the_commands_and_the_exit_statuses(capsys, monkeypatch):
    out, words = help_of(capsys, monkeypatch)
    assert words.startswith("usage: python -m reference [-h] COMMAND ... Train simple-net "
                            "networks from the shell (numpy only). Exit status: 0 done, 1 "
                            "training diverged (nothing saved), 2 bad usage or input, 3 too "
                            "large (an input over a limit, or out of memory), 4 internal error "
                            "(a bug), 130 interrupted, 141 output closed early. ")
    assert "train train a network on a .npz or .csv data set and save it" in words
    assert "data write a built-in data set to a .npz file" in words
    assert "\n  python -m reference data patterns --out patterns.npz\n" in out
    assert out.endswith("\nrun 'python -m reference COMMAND --help' for a command's options\n")


# --- refusals, each one exact line on stderr ---------------------------------------------------


def only_error(err):
    assert err.count("\n") == 1 and err.startswith("python -m reference: error: "), err
    return err[len("python -m reference: error: "):-1]


def test_a_bad_option_value_of_a_command_is_one_line_naming_its_help(patterns, capsys):
    status, _, err = run(capsys, "train", "--sizes", "9,9", "--data", patterns, "--epochs", "x")
    assert status == 2
    assert only_error(err) == ("argument --epochs: invalid int value: 'x' (see python -m "
                               "reference train --help)")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--sizes", "9,9"],
         "the following arguments are required: --data (see python -m reference train --help)"),
        (["train", "--data", "{data}"],
         "give the layer sizes: --sizes 9,9,9, or \"sizes\" in a --config file"),
        (["train", "--sizes", "9,9", "--data", "{data}", "--init", "xavier"],
         "argument --init: invalid choice: 'xavier' (choose from 'glorot', 'he', 'uniform')"),
        (["train", "--sizes", "9,9", "--data", "{data}", "--loss", "hinge"],
         "argument --loss: invalid choice: 'hinge' (choose from 'binary_cross_entropy', "
         "'cross_entropy', 'mse')"),
        (["data", "mnist", "--out", "{tmp}/m.npz"],
         "argument name: invalid choice: 'mnist' (choose from 'patterns', 'spirals')"),
        (["data", "patterns"],
         "the following arguments are required: --out (see python -m reference data --help)"),
    ],
)
def test_a_refused_command_line_gets_exactly_this_message(patterns, tmp_path, capsys, argv,
                                                          message):
    argv = [a.format(data=patterns, tmp=tmp_path) for a in argv]
    status, out, err = run(capsys, *argv)
    assert status == 2 and out == ""
    assert only_error(err).startswith(message.split(" (see")[0].split(" (choose")[0])
    assert only_error(err) == message or "(choose from" in message  # argparse's quoting varies
    assert not list(tmp_path.glob("m.npz"))


def test_a_config_that_cannot_be_used_is_refused_with_the_reason(patterns, tmp_path, capsys):
    cases = {
        "missing.json": None,
        "bad.json": "{'sizes': [9, 9]}",
        "list.json": "[9, 9]",
        "both.json": json.dumps({"sizes": [9, 9], "layer_sizes": [9, 9]}),
        "epochs_bool.json": json.dumps({"sizes": [9, 9], "epochs": True}),
        "epochs_str.json": json.dumps({"sizes": [9, 9], "epochs": "3"}),
        "hinge.json": json.dumps({"sizes": [9, 9], "loss": "hinge"}),
    }
    reasons = {
        "missing.json": "cannot read config {path}: No such file or directory",
        "bad.json": "config {path} is not valid JSON (Expecting property name enclosed in double "
                    "quotes: line 1 column 2 (char 1))",
        "list.json": "config {path} must hold a JSON object, got list",
        "both.json": "config {path}: unknown keys ['layer_sizes']; expected any of ['sizes', "
                     "'activations', 'loss', 'init', 'seed', 'epochs', 'lr', 'batch_size']",
        "epochs_bool.json": "epochs must be an int >= 1, got True",
        "epochs_str.json": "epochs must be an int >= 1, got '3'",
        "hinge.json": "unknown loss 'hinge'; expected one of: mse, cross_entropy, "
                      "binary_cross_entropy",
    }
    for name, text in cases.items():
        path = tmp_path / name
        if text is not None:
            path.write_text(text)
        status, _, err = run(capsys, "train", "--config", path, "--data", patterns)
        assert status == 2
        assert only_error(err) == reasons[name].format(path=path), name


def test_a_utf8_config_is_read_as_utf8_whatever_the_locale(patterns, tmp_path, capsys):
    path = tmp_path / "net.json"
    path.write_bytes(json.dumps({"sizes": [9, 9], "loss": "h\u00e9"}, ensure_ascii=False)
                     .encode("utf-8"))
    before = locale.setlocale(locale.LC_CTYPE)
    locale.setlocale(locale.LC_CTYPE, "C")  # an ASCII locale, as on some servers
    try:
        status, _, err = run(capsys, "train", "--config", path, "--data", patterns)
    finally:
        locale.setlocale(locale.LC_CTYPE, before)
    assert status == 2 and "unknown loss 'h\u00e9'" in err


def single_array(path):
    with open(path, "wb") as f:
        np.save(f, np.zeros((2, 9)))


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: None, "cannot read data {path}: No such file or directory"),
        (lambda p: p.write_text("just text\n"), "cannot read data {path} as .npz or .csv ("),
        (single_array,
         "data {path} is a single array; expected an .npz archive with arrays X and T "
         "(numpy.savez(path, X=..., T=...)) or a .csv"),
        (lambda p: np.savez(p, X=np.zeros((2, 9))),
         "data {path} lacks array(s) ['T']; found ['X']"),
    ],
)
def test_an_npz_data_file_that_cannot_be_used_is_refused_with_the_reason(tmp_path, capsys, make,
                                                                          reason):
    path = tmp_path / "d.npz"
    make(path)
    status, _, err = run(capsys, "train", "--sizes", "9,9", "--data", path, "--quiet")
    assert status == 2
    assert only_error(err).startswith(reason.format(path=path))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (None, "cannot read data {path}: No such file or directory"),
        ("a,b,c\nd,e,f\n", "data {path} is not a CSV table of numbers (could not convert "),
        ("1,2,0\n3,4,0.5\n", "data {path}: the label column must hold integer class labels"),
    ],
)
def test_a_csv_data_file_that_cannot_be_used_is_refused_with_the_reason(tmp_path, capsys, text,
                                                                         reason):
    path = tmp_path / "d.csv"
    if text is not None:
        path.write_text(text)
    status, _, err = run(capsys, "train", "--sizes", "2,2", "--loss", "cross_entropy",
                         "--data", path)
    assert status == 2
    assert only_error(err).startswith(reason.format(path=path))


class Evil:
    """Unpickling this makes a directory: loading data must never unpickle."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def test_data_is_loaded_without_pickle_so_a_pickled_payload_never_runs(tmp_path, capsys):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "evil.npz"
    x = np.empty((2, 2), dtype=object)
    x[...] = [[Evil(marker), 1.0], [2.0, 3.0]]
    np.savez(path, X=x, T=np.zeros((2, 1)))
    status, _, err = run(capsys, "train", "--sizes", "2,1", "--data", path, "--quiet")
    assert status == 2 and "allow_pickle=False" in err
    assert not marker.exists()


def test_an_error_without_a_message_is_reported_by_its_type(tmp_path, capsys, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError

    monkeypatch.setattr(np, "savez", full_disk)
    status, _, err = run(capsys, "data", "patterns", "--out", tmp_path / "p.npz")
    assert status == 2 and only_error(err) == "OSError"


def test_without_a_command_the_help_goes_to_stderr(capsys):
    status, out, err = run(capsys)
    assert status == 2 and out == ""
    assert err.startswith("usage: python -m reference [-h] COMMAND ...")


def test_main_reads_its_arguments_from_sys_argv_by_default(tmp_path, capsys, monkeypatch):
    out = tmp_path / "p.npz"
    monkeypatch.setattr(sys, "argv", ["python -m reference", "data", "patterns", "--out",
                                      str(out)])
    assert main() == 0
    assert out.exists()


# --- training from the command line, exactly as Network.fit ------------------------------------


def test_the_command_line_trains_exactly_as_network_fit(tmp_path, capsys):
    rng = np.random.default_rng(1)
    x, onehot = rng.normal(size=(10, 2)), np.eye(3)[rng.integers(0, 3, size=10)]
    data = tmp_path / "d.csv"
    np.savetxt(data, np.column_stack([x, onehot]), delimiter=",")  # one-hot target columns
    status, _, err = run(capsys, "train", "--sizes", "2,4,3", "--loss", "cross_entropy",
                         "--init", "he", "--seed", "3", "--data", data, "--epochs", "3",
                         "--lr", "0.5", "--batch-size", "4", "--out", tmp_path / "n.npz",
                         "--quiet")
    assert status == 0, err
    trained = Network.load(tmp_path / "n.npz")
    assert trained.init == "he" and trained.seed == 3
    assert [a.name for a in trained.activations] == ["tanh", "softmax"]
    net = Network([2, 4, 3], ["tanh", "softmax"], "cross_entropy", seed=3, init="he")
    net.fit(x, onehot, epochs=3, lr=0.5, batch_size=4, seed=3)
    assert [w.tobytes() for w in trained.weights] == [w.tobytes() for w in net.weights]


@pytest.mark.parametrize(("loss", "last"), [("mse", "identity"), ("cross_entropy", "softmax"),
                                            ("binary_cross_entropy", "sigmoid")])
def test_the_default_activations_are_tanh_then_the_loss_s_own(tmp_path, capsys, loss, last):
    data = tmp_path / "d.npz"
    np.savez(data, X=np.zeros((2, 3)), T=np.array([[1.0, 0.0], [0.0, 1.0]]))
    status, _, err = run(capsys, "train", "--sizes", "3,4,4,2", "--loss", loss, "--data", data,
                         "--epochs", "1", "--out", tmp_path / "n.npz")
    assert status == 0, err
    assert [a.name for a in Network.load(tmp_path / "n.npz").activations] == \
        ["tanh", "tanh", last]


def test_without_out_the_network_is_saved_as_net_npz_in_the_working_folder(patterns, tmp_path,
                                                                           capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status, printed, err = run(capsys, "train", "--sizes", "9,9", "--data", patterns,
                               "--epochs", "1")
    assert status == 0, err
    assert Network.load(tmp_path / "net.npz").layer_sizes == [9, 9]
    assert printed.endswith("; saved to net.npz\n")


@pytest.mark.parametrize(
    ("batch", "shown"), [("0", "batch size 18"), ("4", "batch size 4"), ("1", "batch size 1")])
def test_the_first_line_says_how_the_run_is_set_up(patterns, tmp_path, capsys, batch, shown):
    status, printed, err = run(capsys, "train", "--sizes", "9,9", "--data", patterns,
                               "--epochs", "1", "--batch-size", batch, "--out",
                               tmp_path / "n.npz")
    assert status == 0, err
    assert printed.splitlines()[0].endswith(f": 18 samples, 1 epochs, lr 0.1, {shown}")


@pytest.mark.parametrize(
    ("epochs", "log", "shown"),
    [
        ("100", None, [1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]),
        ("100", "3", [1, 33, 66, 99, 100]),
        ("10", "3", [1, 3, 6, 9, 10]),
        ("5", "1", [1, 5]),
        ("4", "10", [1, 2, 3, 4]),
        ("1", None, [1]),
    ],
)
def test_the_loss_is_printed_log_times_plus_the_first_and_last_epoch(patterns, tmp_path, capsys,
                                                                     epochs, log, shown):
    log_args = () if log is None else ("--log", log)
    status, printed, err = run(capsys, "train", "--sizes", "9,9", "--data", patterns,
                               "--batch-size", "0", "--epochs", epochs, *log_args, "--out",
                               tmp_path / "n.npz")
    assert status == 0, err
    lines = [line for line in printed.splitlines() if line.startswith("  epoch ")]
    assert [int(line.split()[1]) for line in lines] == shown
    width = len(epochs)
    assert all(line[len("  epoch "):].startswith(f"{n:>{width}}  loss ")
               for n, line in zip(shown, lines))


# --- CSV data ------------------------------------------------------------------------------------


def train_on_csv(capsys, tmp_path, text, *argv):
    data = tmp_path / "d.csv"
    data.write_text(text)
    status, printed, err = run(capsys, "train", *argv, "--data", data, "--epochs", "1",
                               "--out", tmp_path / "n.npz")
    assert status == 0, err
    return printed.splitlines()[0]


def test_a_csv_without_header_keeps_its_first_row(tmp_path, capsys):
    assert "3 samples" in train_on_csv(capsys, tmp_path, "1,2,3\n4,5,6\n7,8,9\n", "--sizes", "2,1")


def test_a_csv_header_line_is_skipped(tmp_path, capsys):
    assert "3 samples" in train_on_csv(capsys, tmp_path, "x1,x2,t\n1,2,3\n4,5,6\n7,8,9\n",
                                       "--sizes", "2,1")


def test_a_csv_of_one_row_is_one_sample(tmp_path, capsys):
    assert "1 samples" in train_on_csv(capsys, tmp_path, "1,2,3\n", "--sizes", "2,1")


def test_csv_targets_are_the_columns_after_the_inputs_whatever_the_hidden_layers(tmp_path,
                                                                                 capsys):
    line = train_on_csv(capsys, tmp_path, "1,2,3,4\n4,5,6,7\n", "--sizes", "3,5,1")
    assert "2 samples" in line


def test_a_single_target_column_of_one_softmax_output_is_a_target_not_a_label(tmp_path, capsys):
    # One output: the column holds the probability row (1.0), not class labels.
    line = train_on_csv(capsys, tmp_path, "1,2,1\n3,4,1\n", "--sizes", "2,1",
                        "--activations", "softmax", "--loss", "cross_entropy")
    assert "2 samples" in line


# --- the progress bar of train -------------------------------------------------------------------


@pytest.mark.parametrize("quiet", [False, True])
def test_train_draws_its_bar_on_a_terminal_unless_quiet(patterns, tmp_path, capsys, monkeypatch,
                                                        quiet):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # the plain bar, drawn the same everywhere
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    argv = ["train", "--sizes", "9,9", "--data", str(patterns), "--epochs", "5", "--out",
            str(tmp_path / "n.npz")]
    assert main(argv + ["--quiet"] * quiet) == 0
    drawn = terminal.getvalue()
    if quiet:
        assert drawn == ""
    else:
        assert "\rtraining:  20% (1/5)" in drawn and "\rtraining: 100% (5/5)" in drawn


def test_a_run_with_one_epoch_is_allowed(patterns, tmp_path, capsys):
    status, _, err = run(capsys, "train", "--sizes", "9,9", "--data", patterns, "--epochs", "1",
                         "--out", tmp_path / "n.npz")
    assert status == 0, err


# --- the built-in data sets ----------------------------------------------------------------------


def noiseless_spirals(n=50, turns=1.5):
    return two_spirals(n, turns=turns, noise=0.0)


def test_the_spirals_wind_outwards_from_radius_0_15_to_1_by_the_given_turns():
    for turns in (1.5, 0.3):
        x, labels = noiseless_spirals(turns=turns)
        r = np.linspace(0.15, 1.0, 50)
        theta = r * turns * 2 * np.pi
        np.testing.assert_allclose(x[:50], np.column_stack([r * np.cos(theta),
                                                            r * np.sin(theta)]), atol=1e-15)
        np.testing.assert_allclose(x[50:], -x[:50], atol=1e-15)  # class 1: turned by pi
        np.testing.assert_array_equal(labels, [0] * 50 + [1] * 50)
        assert labels.dtype.kind == "i"


def test_the_default_spirals_are_200_per_class_with_1_5_turns_and_noise_0_05():
    x, labels = two_spirals()
    assert x.shape == (400, 2) and labels.shape == (400,)
    residual = x - noiseless_spirals(200)[0]
    assert 0.045 < residual.std() < 0.055  # independent N(0, 0.05^2) per coordinate
    assert abs(np.corrcoef(residual[:, 0], residual[:, 1])[0, 1]) < 0.15


def test_the_spirals_are_seeded_with_0_by_default():
    a, b, c = two_spirals(), two_spirals(seed=0), two_spirals(seed=1)
    assert a[0].tobytes() == b[0].tobytes() == two_spirals()[0].tobytes()
    assert a[0].tobytes() != c[0].tobytes()


# --- the progress bar, in detail -----------------------------------------------------------------


def plain_bar(monkeypatch, total, stream=None):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    stream = Terminal() if stream is None else stream
    return progress_bar(total, "work", stream=stream), stream


CLEAR = "\r\033[K"


def test_the_plain_bar_draws_nothing_until_it_advances(monkeypatch, capsys):
    bar, stream = plain_bar(monkeypatch, 4)
    bar.set_done(0)
    bar.write("a line")
    bar.close()
    assert stream.getvalue() == ""
    assert capsys.readouterr().out == "a line\n"


def test_the_plain_bar_advances_one_step_per_update_and_reaches_100_percent(monkeypatch):
    bar, stream = plain_bar(monkeypatch, 4)
    bar.update()
    assert stream.getvalue() == "\rwork:  25% (1/4)"
    one, stream1 = plain_bar(monkeypatch, 1)
    one.update()
    assert stream1.getvalue() == "\rwork: 100% (1/1)"


def test_the_plain_bar_at_0_percent_is_cleared_by_a_line_and_by_close(monkeypatch, capsys):
    bar, stream = plain_bar(monkeypatch, 1000)
    bar.update()
    bar.write("a line")
    assert stream.getvalue() == "\rwork:   0% (1/1000)" + CLEAR
    bar.update()
    bar.close()
    assert stream.getvalue() == "\rwork:   0% (1/1000)" + CLEAR + "\rwork:   0% (2/1000)" + CLEAR


def test_after_a_line_the_plain_bar_is_redrawn_even_at_the_same_percentage(monkeypatch, capsys):
    bar, stream = plain_bar(monkeypatch, 200)
    bar.update(2)
    bar.write("a line")
    bar.update()
    assert stream.getvalue() == "\rwork:   1% (2/200)" + CLEAR + "\rwork:   1% (3/200)"
    bar.write("another")
    bar.close()  # the line is already clear
    assert stream.getvalue().endswith("\rwork:   1% (3/200)" + CLEAR)


def test_a_closed_plain_bar_draws_nothing_more(monkeypatch, capsys):
    bar, stream = plain_bar(monkeypatch, 4)
    bar.update()
    bar.close()
    drawn = stream.getvalue()
    assert drawn == "\rwork:  25% (1/4)" + CLEAR
    bar.update()
    bar.write("a line")
    bar.close()
    assert stream.getvalue() == drawn
    assert capsys.readouterr().out == "a line\n"


class CountingStdout(io.StringIO):
    flushes = 0

    def flush(self):
        self.flushes += 1


def test_a_written_line_is_flushed_at_once(monkeypatch):
    stdout = CountingStdout()
    monkeypatch.setattr(sys, "stdout", stdout)
    bar, _ = plain_bar(monkeypatch, 4, stream=io.StringIO())
    bar.write("a line")
    assert stdout.getvalue() == "a line\n" and stdout.flushes >= 1


def test_the_bar_goes_to_stderr_by_default(monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setitem(sys.modules, "tqdm", None)
    with progress_bar(2, "work") as bar:
        bar.update()
    assert terminal.getvalue().startswith("\rwork:  50% (1/2)")


class Writer:
    """A stream with no isatty: not a terminal."""

    def __init__(self):
        self.text = ""

    def write(self, s):
        self.text += s

    def flush(self):
        pass


def test_a_stream_without_isatty_gets_no_bar(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    stream = Writer()
    with progress_bar(2, "work", stream=stream) as bar:
        bar.update(2)
    assert stream.text == ""


def test_the_tqdm_bar_shows_the_total_and_is_removed_on_close(capsys):
    pytest.importorskip("tqdm")
    stream = Terminal()
    bar = progress_bar(4, "work", stream=stream)
    bar.update(4)
    bar.close()
    drawn = stream.getvalue()
    assert drawn.startswith("\rwork:   0%|") and "| 0/4 [" in drawn  # tqdm's bar, with the total
    assert drawn.endswith("\r") and not drawn.endswith("\n")  # the line is left blank
    bar.close()  # closing twice, and writing after close, are harmless
    bar.write("a line")
    assert capsys.readouterr().out == "a line\n"
    assert stream.getvalue() == drawn


class ResizableTerminal(Terminal):
    def fileno(self):
        return 2  # never used: the size comes from the patched os.get_terminal_size


def test_the_tqdm_bar_follows_the_terminal_width_when_it_is_resized(monkeypatch):
    tqdm_std = pytest.importorskip("tqdm.std")
    width, clock = [60], [1000.0]
    monkeypatch.setattr(os, "get_terminal_size", lambda fd=None: os.terminal_size((width[0], 24)))
    monkeypatch.setattr(tqdm_std, "time", lambda: clock[0])  # tqdm redraws at most every 0.1 s
    stream = ResizableTerminal()
    with progress_bar(10, "work", stream=stream) as bar:
        clock[0] += 1
        width[0] = 100
        bar.update()
        drawn = [len(line) for line in stream.getvalue().split("\r") if line]
    assert drawn[:2] == [59, 99]  # tqdm leaves the last column free
