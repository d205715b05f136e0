"""The step-size sweep (``oracle.step_sweep``), its picture, and ``python -m oracle steps``."""

import json
import sys

import numpy as np
import pytest

pytest.importorskip("jax")

from oracle.cli import main  # noqa: E402
from oracle.finite_differences import EPS  # noqa: E402
from oracle.step_sweep import fit_slope, sweep_function, sweep_network_entry  # noqa: E402
from reference import Activation, Network, get_activation  # noqa: E402


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(7)
    return rng.normal(size=(6, 3)), rng.normal(size=(6, 2))


def test_fit_slope_recovers_a_power_law():
    h = np.logspace(-6, -1, 20)
    assert fit_slope(h, 3.0 * h**2) == pytest.approx(2.0)
    assert np.isnan(fit_slope(h[:2], h[:2]))


def test_a_smooth_function_shows_slope_2_then_minus_1():
    sweep = sweep_function(np.sin, 0.7, np.cos(0.7), entry="sin'")
    assert sweep.ok
    assert sweep.truncation_slope == pytest.approx(2.0, abs=0.1)
    assert sweep.roundoff_slope == pytest.approx(-1.0, abs=0.3)
    # The best step lies near cbrt(eps), where truncation and round-off balance.
    assert 1e-7 < sweep.best_step < 1e-4
    assert sweep.chosen_step == 2.0 ** round(np.log2(np.cbrt(EPS)))


def test_a_network_weight_shows_both_sides_and_the_oracles_step(batch):
    net = Network([3, 4, 2], ["tanh", "identity"], "mse", seed=0)
    sweep = sweep_network_entry(net, *batch, layer=0, index=(1, 2))
    assert sweep.ok and sweep.entry == "layer 0 dW[1, 2]"
    assert sweep.truncation_slope == pytest.approx(2.0, abs=0.2)
    assert sweep.roundoff_slope == pytest.approx(-1.0, abs=0.3)
    _, dw, _ = net.gradients(*batch)
    assert sweep.exact == pytest.approx(dw[0][1, 2], rel=1e-12)
    assert net.weights[0][1, 2] == sweep.value  # the network is left as it was


def test_a_wrong_hand_gradient_as_reference_leaves_a_floor(batch):
    tanh = get_activation("tanh")  # with the original program's bug: act' taken at Y
    at_y = Activation("tanh_at_y", tanh.f, lambda v: 1 - np.tanh(np.tanh(v)) ** 2)
    net = Network([3, 4, 2], [at_y, "identity"], "mse", seed=0)
    hand = sweep_network_entry(net, *batch, layer=0, reference="hand")
    assert not hand.ok
    assert hand.best_error > 1e-6 * hand.scale  # no step comes near the wrong value
    assert hand.headline.startswith("FAIL")
    jax = sweep_network_entry(net, *batch, layer=0, reference="jax")
    assert jax.entry == hand.entry  # the default entry is the largest hand-derived |dE/dW|
    assert jax.ok  # JAX differentiates the (right) forward, whatever act' says


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"layer": 5}, "layer must be in"),
    ({"index": (9, 0)}, "index must be two ints"),
    ({"reference": "numpy"}, "reference must be"),
])
def test_bad_arguments_are_refused(batch, kwargs, message):
    net = Network([3, 4, 2], ["tanh", "identity"], "mse", seed=0)
    with pytest.raises(ValueError, match=message):
        sweep_network_entry(net, *batch, **kwargs)


# --- the command ---------------------------------------------------------------------------


def test_steps_draws_the_picture(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "steps.png"
    status = main(["steps", "--sizes", "3,4,2", "--entry", "0,1", "--out", str(out)])
    printed, err = capsys.readouterr()
    assert status == 0, err
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"wrote {out}" in err
    assert printed.startswith("OK: layer 0 dW[0, 1]")
    assert "chosen step" in printed  # the table of errors


def test_steps_json_against_the_hand_gradient(capsys):
    status = main(["steps", "--sizes", "3,4,2", "--layer", "1", "--exact", "hand",
                   "--no-plot", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert status == 0 and data["ok"] is True and data["reference"] == "hand"
    assert data["entry"].startswith("layer 1 dW")
    assert len(data["steps"]) == len(data["central_error"]) > 100
    # The output layer of an mse network with an identity output is quadratic in its
    # weights: f''' = 0, so there is no truncation side (NaN, null in JSON), and it says so.
    assert data["truncation_slope"] is None and data["truncation_range"] == [None, None]
    assert "no truncation side" in data["headline"]


@pytest.mark.parametrize(("argv", "message"), [
    (["steps", "--sizes", "3,4,2", "--entry", "1", "--no-plot"], "--entry must be two ints"),
    (["steps", "--sizes", "3,4,2", "--entry", "0,-1", "--no-plot"], "--entry must be two ints"),
    (["steps", "--sizes", "3,4,2", "--layer", "-1", "--no-plot"], "--layer must be in 0 .. 1"),
    (["steps", "--sizes", "3,4,2", "--layer", "2", "--no-plot"], "layer must be in"),
    (["steps", "--sizes", "3,4,2", "--fd", "none"], "unrecognized"),
])
def test_steps_bad_usage_exits_2(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_steps_without_matplotlib_says_what_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import now fails
    status = main(["steps", "--sizes", "3,4,2", "--out", str(tmp_path / "s.png")])
    err = capsys.readouterr().err
    assert status == 2
    assert "simple-net[plot]" in err and "--no-plot" in err
    assert not (tmp_path / "s.png").exists()


def test_steps_help_shows_an_example(capsys):
    with pytest.raises(SystemExit):
        main(["steps", "--help"])
    assert "python -m oracle steps --sizes" in capsys.readouterr().out
