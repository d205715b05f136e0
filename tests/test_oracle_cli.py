"""``python -m oracle``: exit status 0 / 1 / 2, the JSON report, and one-line errors.

Most tests call ``oracle.cli.main`` in-process (fast); a few run the real ``python -m oracle``
to prove the entry point, the exit status and the absence of tracebacks end to end. A wrong
gradient is planted by swapping a built-in activation or loss for one with a wrong derivative
(monkeypatch restores it).
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("jax")

from oracle.cli import main  # noqa: E402
from reference import ACTIVATIONS, LOSSES, Activation, Loss, Network  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def run(argv, capsys):
    """``main(argv)`` -> (exit status, stdout, stderr)."""
    status = main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def strict_json(text):
    """Parse JSON as strict parsers do (jq, JSON.parse): NaN and Infinity are refused."""
    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def wrong_tanh(monkeypatch):
    """Make the built-in 'tanh' carry a derivative that is 1 % too large."""
    tanh = ACTIVATIONS["tanh"]
    wrong = Activation("tanh", tanh.f, lambda v: 1.01 * (1.0 - np.tanh(v) ** 2), builtin=True)
    monkeypatch.setitem(ACTIVATIONS, "tanh", wrong)


# --- exit 0: every gradient agrees -----------------------------------------------------------


def test_check_of_a_right_network_exits_0_and_prints_the_table(capsys):
    status, out, err = run(["check", "--sizes", "4,8,3", "--activations", "tanh,softmax",
                            "--loss", "cross_entropy", "--batch", "5", "--seed", "0"], capsys)
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("OK: all") and lines[1] == "network check:"
    assert any("activation tanh" in line for line in lines)
    assert err == ""


def test_without_a_subcommand_check_is_meant(capsys):
    status, out, _ = run(["--sizes", "2,3,1", "--quiet"], capsys)
    assert status == 0 and out.startswith("OK: all")


@pytest.mark.parametrize("loss", list(LOSSES))
def test_drawn_targets_are_valid_for_every_loss_and_default_activations_fit_it(loss, capsys):
    status, out, err = run(["check", "--sizes", "3,4,3", "--loss", loss, "--json"], capsys)
    assert status == 0, err
    rows = strict_json(out)["rows"]
    names = {(r["layer"], r["term"]): r["name"] for r in rows if r["scope"] == "local"}
    output = {"mse": "identity", "cross_entropy": "softmax", "binary_cross_entropy": "sigmoid"}
    assert names[(0, "activation")] == "tanh"  # hidden layers default to tanh
    assert names[(1, "activation")] == output[loss]  # the loss's own output activation


def test_json_output_is_strict_json_with_the_report(capsys):
    status, out, _ = run(["check", "--sizes", "3,4,2", "--activations", "relu,identity",
                          "--json"], capsys)
    assert status == 0
    report = strict_json(out)
    assert report["ok"] is True and report["headline"].startswith("OK")
    assert report["counts"]["FAIL"] == 0
    terms = {(r["layer"], r["term"], r["scope"]) for r in report["rows"]}
    assert {(1, "loss", "local"), (0, "activation", "local"), (0, "dW", "total"),
            (0, "step", "total")} <= terms


def test_quiet_prints_the_headline_alone(capsys):
    status, out, _ = run(["check", "--sizes", "2,3,1", "--quiet"], capsys)
    assert status == 0 and len(out.splitlines()) == 1 and out.startswith("OK:")


@pytest.mark.parametrize("fd", ["auto", "exhaustive", "directional", "none"])
def test_every_fd_mode_runs(fd, capsys):
    status, out, _ = run(["check", "--sizes", "3,4,2", "--fd", fd, "--json"], capsys)
    assert status == 0
    sources = {tuple(r["sources"]) for r in strict_json(out)["rows"] if r["term"] == "dW"
               and r["scope"] == "total"}
    assert sources == ({("jax",)} if fd == "none" else {("jax", "fd")})


def test_a_config_file_gives_the_network_and_flags_override_it(tmp_path, capsys):
    config = tmp_path / "net.json"
    config.write_text(json.dumps({"sizes": [2, 3, 2], "activations": ["elu", "softmax"],
                                  "loss": "cross_entropy", "batch": 3, "seed": 4}))
    status, out, _ = run(["check", "--config", str(config), "--json"], capsys)
    assert status == 0
    loss_row = strict_json(out)["rows"][0]
    assert loss_row["name"] == "cross_entropy+softmax" and loss_row["size"] == 3 * 2
    status, out, _ = run(["check", "--config", str(config), "--loss", "mse", "--batch", "2",
                          "--json"], capsys)
    assert status == 0
    loss_row = strict_json(out)["rows"][0]
    assert loss_row["name"] == "mse" and loss_row["size"] == 2 * 2  # the flags won


def test_a_saved_network_and_a_data_file_are_checked(tmp_path, capsys):
    net = Network([3, 5, 2], ["relu", "softmax"], "cross_entropy", seed=3)
    net.save(tmp_path / "net.npz")
    np.savez(tmp_path / "data.npz", X=np.random.default_rng(0).normal(size=(6, 3)),
             T=np.array([0, 1, 1, 0, 1, 0]))
    status, out, err = run(["check", "--network", str(tmp_path / "net.npz"),
                            "--data", str(tmp_path / "data.npz"), "--json"], capsys)
    assert status == 0, err
    rows = strict_json(out)["rows"]
    assert rows[0]["name"] == "cross_entropy+softmax" and rows[0]["size"] == 6 * 2


@pytest.mark.parametrize("command", [["activation", "softmax"], ["activation", "relu"],
                                     ["loss", "binary_cross_entropy"]])
def test_activation_and_loss_commands_exit_0_on_the_builtins(command, capsys):
    status, out, _ = run([*command, "--json"], capsys)
    assert status == 0
    report = strict_json(out)
    assert report["ok"] is True and command[1] in report["title"]


# --- exit 1: a wrong gradient --------------------------------------------------------------------


def test_a_wrong_activation_derivative_exits_1_and_the_json_names_it(wrong_tanh, capsys):
    status, out, _ = run(["check", "--sizes", "3,4,2", "--activations", "tanh,identity",
                          "--json"], capsys)
    assert status == 1
    report = strict_json(out)
    assert report["ok"] is False
    assert report["headline"].startswith("FAIL: layer 0 activation 'tanh'")
    failing = [(r["layer"], r["term"], r["scope"]) for r in report["rows"]
               if r["status"] == "FAIL"]
    assert failing[0] == (0, "activation", "local")


def test_a_wrong_activation_exits_1_from_the_activation_command(wrong_tanh, capsys):
    status, out, _ = run(["activation", "tanh", "--quiet"], capsys)
    assert status == 1 and out.startswith("FAIL: derivative 'tanh'")


def test_a_wrong_loss_gradient_exits_1_from_the_loss_command(monkeypatch, capsys):
    mse = LOSSES["mse"]
    monkeypatch.setitem(LOSSES, "mse", Loss("mse", mse.value, lambda y, t: -mse.grad(y, t),
                                            builtin=True))
    status, out, _ = run(["loss", "mse"], capsys)
    assert status == 1 and out.startswith("FAIL: loss 'mse'")


def test_strict_turns_doubt_into_exit_1(monkeypatch, capsys):
    import jax

    tanh = ACTIVATIONS["tanh"]

    def f(v):  # JAX's derivative of this tanh is 1: the oracle's sources disagree
        return v + jax.lax.stop_gradient(tanh.f(v) - v) if not isinstance(v, np.ndarray) \
            else np.tanh(v)

    monkeypatch.setitem(ACTIVATIONS, "tanh", Activation("tanh", f, tanh.df, builtin=True))
    status, out, _ = run(["activation", "tanh", "--quiet"], capsys)
    assert status == 0 and out.startswith("OK, but the check itself is in doubt")
    status, out, _ = run(["activation", "tanh", "--quiet", "--strict"], capsys)
    assert status == 1 and out.startswith("FAIL (strict)")


# --- exit 2: bad usage, bad input: one line, no traceback ---------------------------------------


@pytest.fixture
def files(tmp_path):
    """Malformed inputs of every kind, by name."""
    paths = {name: tmp_path / name for name in (
        "net.npz", "big.npz", "data_nan.npz", "data_no_x.npz", "data_obj.npz", "array.npy",
        "garbage.npz", "cfg_unknown.json", "cfg_list.json", "cfg_broken.json")}
    Network([3, 5, 2], ["relu", "softmax"], "cross_entropy").save(paths["net.npz"])
    big = Network([3, 5, 2], ["identity", "softmax"], "cross_entropy")
    big.weights = [np.full((4, 5), 1e200), np.full((6, 2), 1e200)]  # forward overflows
    big.save(paths["big.npz"])
    np.savez(paths["data_nan.npz"], X=np.full((2, 3), np.nan), T=np.array([0, 1]))
    np.savez(paths["data_no_x.npz"], T=np.array([0, 1]))
    np.savez(paths["data_obj.npz"], X=np.array([1, None]), T=np.ones(2))
    np.save(paths["array.npy"], np.ones(3))
    paths["garbage.npz"].write_text("not a zip archive")
    paths["cfg_unknown.json"].write_text('{"sizes": [2, 3, 1], "colour": "red"}')
    paths["cfg_list.json"].write_text("[1, 2]")
    paths["cfg_broken.json"].write_text("{sizes: ")
    return {name: str(p) for name, p in paths.items()}


BAD = [
    (["check", "--sizes", "4,x"], "sizes must be comma-separated ints"),
    (["check", "--sizes", "4"], "at least 2 entries"),
    (["check", "--sizes", "4,0,2"], "layer_sizes[1] must be a positive int"),
    (["check", "--activations", "foo,identity"], "unknown activation 'foo'"),
    (["check", "--activations", "tanh"], "expected 2 activations"),
    (["check", "--sizes", "3,2", "--loss", "cross_entropy", "--activations", "tanh"],
     "needs the last activation to be 'softmax'"),
    (["check", "--loss", "hinge"], "invalid choice: 'hinge'"),
    (["check", "--batch", "0"], "batch must be a positive int"),
    (["check", "--seed", "-1"], "seed must be a non-negative int"),
    (["check", "--fd", "central"], "invalid choice: 'central'"),
    (["check", "--bogus"], "unrecognized arguments: --bogus"),
    (["activation", "swish"], "invalid choice: 'swish'"),
    (["loss"], "the following arguments are required"),
    (["check", "--network", "@net.npz", "--sizes", "3,2"], "drop --sizes"),
    (["check", "--network", "@net.npz", "--config", "@cfg_list.json"], "exclude each other"),
    (["check", "--network", "@missing"], "no network file"),
    (["check", "--network", "@garbage.npz"], "not a valid simple-net file"),
    (["check", "--network", "@big.npz"], "forward pass produces NaN/Inf"),
    (["check", "--network", "@net.npz", "--data", "@data_nan.npz"], "X must be finite"),
    (["check", "--data", "@data_no_x.npz"], "lacks array(s) ['X']"),
    (["check", "--data", "@data_obj.npz"], "array 'X' holds Python objects (dtype object), "
                                           "which would need pickle"),
    (["check", "--data", "@array.npy"], "is a single array"),
    (["check", "--data", "@garbage.npz"], "as an .npz archive"),
    (["check", "--data", "@missing"], "cannot read data"),
    (["check", "--network", "@net.npz", "--data", "@data_nan.npz", "--batch", "2"],
     "--batch and --data exclude each other"),
    (["check", "--config", "@cfg_unknown.json"], "unknown keys ['colour']"),
    (["check", "--config", "@cfg_list.json"], "must hold a JSON object"),
    (["check", "--config", "@cfg_broken.json"], "is not valid JSON"),
    (["check", "--config", "@missing"], "cannot read config"),
]


@pytest.mark.parametrize(("argv", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_usage_or_input_exits_2_with_one_line_on_stderr(argv, message, files, tmp_path,
                                                            capsys):
    files["missing"] = str(tmp_path / "missing")
    argv = [files[a[1:]] if a.startswith("@") else a for a in argv]
    status, out, err = run(argv, capsys)
    assert status == 2
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert err.startswith("python -m oracle: error: ") and message in err, err


def test_no_arguments_prints_the_usage_and_exits_2(capsys):
    status, out, err = run([], capsys)
    assert status == 2 and "usage: python -m oracle" in err and out == ""


@pytest.mark.parametrize("command", [[], ["check"], ["activation"], ["loss"]])
def test_each_help_shows_an_example(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    assert "example" in out and "python -m oracle " + (command[0] if command else "") in out


# --- the real entry point ---------------------------------------------------------------------


def python_m_oracle(*argv):
    return subprocess.run([sys.executable, "-m", "oracle", *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_python_m_oracle_exits_0_with_json_on_stdout():
    done = python_m_oracle("check", "--sizes", "3,4,2", "--activations", "tanh,sigmoid",
                           "--loss", "binary_cross_entropy", "--json")
    assert done.returncode == 0, done.stderr
    assert strict_json(done.stdout)["ok"] is True


def test_python_m_oracle_exits_2_on_bad_input_without_a_traceback(tmp_path):
    big = Network([3, 5, 2], ["identity", "softmax"], "cross_entropy")
    big.weights = [np.full((4, 5), 1e200), np.full((6, 2), 1e200)]
    big.save(tmp_path / "big.npz")
    for argv in (["check", "--sizes", "4,x"], ["check", "--network", str(tmp_path / "big.npz")]):
        done = python_m_oracle(*argv)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1, done.stderr
