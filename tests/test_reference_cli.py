"""``python -m reference``: train from flags or a JSON config on .npz/.csv data, save; and the
progress bar that long work shows."""

import io
import json
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
