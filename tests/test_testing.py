"""``oracle.testing``: each helper passes a right gradient and fails a planted bug with a message
pytest shows whole (headline first, then the table, then a reproducer that reruns by itself).

Truth comes from construction: every wrong backward below is a right one with a known mistake
planted (a bias gradient averaged instead of summed, one entry scaled by 1 + 1e-6, a derivative
1 % too large, act' taken at the output). Doubt is made by evaluation noise in the forward,
which leaves finite differences unable to confirm anything.
"""

import io
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("jax")

import simple_net_gradcheck as plugin  # noqa: E402
from oracle import Report, check_vjp  # noqa: E402
from oracle.testing import (  # noqa: E402
    GradCheck,
    GradientCheckError,
    assert_gradient,
    assert_layers,
    assert_network,
    assert_report,
    assert_snapshot,
    assert_vjp,
    reproducer,
)
from reference import Activation, Network  # noqa: E402
from reference.array_namespace import namespace_of  # noqa: E402


def affine(x, w, b):
    return x @ w + b


def affine_backward(dout, x, w, b):
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)


def affine_bias_averaged(dout, x, w, b):
    dx, dw, db = affine_backward(dout, x, w, b)
    return dx, dw, db / len(x)  # the classic: mean instead of sum over the batch


def affine_one_entry_off(dout, x, w, b):
    dx, dw, db = affine_backward(dout, x, w, b)
    dw[2, 1] *= 1 + 1e-6
    return dx, dw, db


def square_sum(x):
    return float(np.sum(x ** 2))


def square_sum_grad_wrong(x):
    return 2.01 * x  # 0.5 % too large


NOISE = np.random.default_rng(1)


def noisy_sine_sum(x):
    """sum(sin(x)) plus evaluation noise of 1e-5: finite differences of it measure noise (their
    error ~1e-5 / h ~ 1 dwarfs the gradient), so no source can confirm a right gradient:
    doubt, never a failure."""
    xp = namespace_of(x)
    return xp.sum(xp.sin(x)) + 1e-5 * NOISE.normal()


@pytest.fixture
def point():
    rng = np.random.default_rng(0)
    return rng.normal(size=(4, 3)), rng.normal(size=(3, 5)), rng.normal(size=5)


@pytest.fixture
def no_session(monkeypatch):
    """Helpers as outside pytest's plugin: strict off, nothing recorded."""
    monkeypatch.setattr(plugin, "STATE", plugin.State())
    return plugin.STATE


# --- Report's repr ------------------------------------------------------------------------------


def test_a_reports_repr_is_its_headline_not_its_rows(point):
    report = check_vjp(affine, affine_bias_averaged, point)
    assert repr(report) == f"<Report: {report.headline}>"
    assert "Row(" not in repr(report) and "rows=" not in repr(report)
    assert repr(report).startswith("<Report: FAIL: db")


# --- assert_vjp ---------------------------------------------------------------------------------


def test_assert_vjp_returns_the_report_of_a_right_backward(point, no_session):
    report = assert_vjp(affine, affine_backward, point)
    assert isinstance(report, Report) and report.ok


def test_assert_vjp_fails_with_the_headline_the_table_and_a_reproducer(point, no_session):
    with pytest.raises(AssertionError) as caught:
        assert_vjp(affine, affine_bias_averaged, point)
    error = caught.value
    assert isinstance(error, GradientCheckError)
    message = str(error)
    lines = message.splitlines()
    assert lines[0] == error.report.headline and lines[0].startswith("FAIL: db (total)")
    assert lines[1] == "vjp check:"
    assert any(line.split()[:5] == ["-", "db", "total", "jax+fd", "FAIL"] for line in lines)
    assert "Reproduce without the test suite:" in message
    assert "from test_testing import affine, affine_bias_averaged" in message
    assert "Report(" not in message and "Row(" not in message


def test_the_message_locates_a_single_entry_off_by_one_part_in_a_million(point, no_session):
    with pytest.raises(GradientCheckError) as caught:
        assert_vjp(affine, affine_one_entry_off, point)
    assert caught.value.report.wrong_entries("w") == [(2, 1)]
    assert "dw wrong [2, 1] (1 of 15 entries wrong)" in str(caught.value).splitlines()[0]


def test_the_reproducer_reruns_the_failing_check_by_itself(point, no_session):
    # In this process (test_layer_strategies.py runs one in a fresh interpreter).
    with pytest.raises(GradientCheckError) as caught:
        assert_vjp(affine, affine_bias_averaged, point, seed=3)
    script = caught.value.script
    assert "seed=3" in script
    out = io.StringIO()
    with redirect_stdout(out):
        exec(compile(script, "reproducer", "exec"), {"__name__": "__main__"})
    # The script prints the same verdict: the same worst entry, got and expected.
    assert out.getvalue().splitlines()[0] == caught.value.report.headline


def test_a_reproducer_names_what_it_cannot_import_instead_of_guessing():
    script = reproducer("check_vjp", {"forward": lambda x: x, "backward": affine_backward},
                        {"inputs": (np.ones(2),)}, {"cotangent": object()})
    line = next(line for line in script.splitlines() if line.startswith("forward = "))
    assert line.startswith("forward = ...  # ") and "<lambda>" in line
    assert line.endswith("cannot be imported by name: define it here")
    assert "from test_testing import affine_backward" in script
    assert "cotangent = ...  # a object with no literal form" in script
    assert script.splitlines()[-1] == (
        "print(check_vjp(forward, affine_backward, inputs, cotangent=cotangent))")


def test_a_reproducer_of_large_inputs_says_so_instead_of_printing_them():
    script = reproducer("check_gradient", {"f": square_sum, "grad": square_sum_grad_wrong},
                        {"x": np.zeros(5000)}, {})
    assert "x = ...  # 5000 entries, too many to print" in script


def test_a_reproducer_rebuilds_integer_bool_and_empty_arrays_exactly():
    values = {"y": np.array([0, 2, 1]), "m": np.array([True, False]),
              "e": np.zeros((0, 3)), "s": np.float64(1.5), "k": 0.1 + 0.2}
    script = reproducer("check_vjp", {}, {"inputs": values}, {})
    namespace: dict = {}
    exec(script.replace("from oracle import check_vjp", "check_vjp = lambda *a: 'ran'"),
         namespace)
    rebuilt = namespace["inputs"]
    for key, value in values.items():
        assert np.asarray(rebuilt[key]).dtype == np.asarray(value).dtype, key
        np.testing.assert_array_equal(rebuilt[key], value)
    assert rebuilt["k"] == 0.1 + 0.2  # bit for bit


# --- assert_gradient, assert_network, assert_layers ---------------------------------------------


def test_assert_gradient_fails_with_the_headline_and_a_reproducer(no_session):
    x = np.linspace(-1.0, 1.0, 6)
    assert assert_gradient(square_sum, lambda z: 2.0 * z, x).ok
    with pytest.raises(GradientCheckError) as caught:
        assert_gradient(square_sum, square_sum_grad_wrong, x)
    message = str(caught.value)
    assert message.splitlines()[0].startswith("FAIL: gradient (total): gradient wrong [0]")
    assert message.splitlines()[1] == "gradient check:"
    assert "from test_testing import square_sum, square_sum_grad_wrong" in message
    assert "print(check_gradient(square_sum, square_sum_grad_wrong, x))" in message


def test_assert_network_fails_naming_the_layer_and_term(no_session):
    def tanh(v):
        return namespace_of(v).tanh(v)

    wrong = Activation("tanh_1pc", tanh, lambda v: 1.01 * (1.0 - np.tanh(v) ** 2))
    rng = np.random.default_rng(0)
    x, t = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    net = Network([3, 4, 2], [wrong, "identity"], "mse", seed=0)
    with pytest.raises(GradientCheckError) as caught:
        assert_network(net, x, t, check_step=False)
    lines = str(caught.value).splitlines()
    assert lines[0].startswith("FAIL: layer 0 activation 'tanh_1pc' (local): derivative wrong")
    assert lines[1] == "network check:"
    assert caught.value.script == ""  # a network has no reproducer here: the report says where


class Dense:
    def __init__(self, n, m, rng):
        self.W, self.b = rng.normal(size=(n, m)), np.zeros(m)

    def forward(self, x):
        self.x, self.y = x, np.tanh(x @ self.W + self.b)
        return self.y

    def backward(self, dy):
        dv = dy * (1 - self.y ** 2)
        self.dW, self.db = self.x.T @ dv, dv.sum(axis=0)
        return dv @ self.W.T


class DenseActAtOutput(Dense):
    def backward(self, dy):
        dv = dy * (1 - np.tanh(self.y) ** 2)  # act' at Y: the write-up's original mistake
        self.dW, self.db = self.x.T @ dv, dv.sum(axis=0)
        return dv @ self.W.T


def mse(y, t):
    return 0.5 * np.sum((y - t) ** 2), y - t


def test_assert_layers_fails_naming_the_first_wrong_layer(no_session):
    x = np.random.default_rng(3).normal(size=(4, 3))
    good = [Dense(3, 3, np.random.default_rng(1)), Dense(3, 2, np.random.default_rng(2))]
    assert assert_layers(good, mse, x, np.zeros((4, 2))).ok
    bad = [Dense(3, 3, np.random.default_rng(1)),
           DenseActAtOutput(3, 2, np.random.default_rng(2))]
    with pytest.raises(GradientCheckError) as caught:
        assert_layers(bad, mse, x, np.zeros((4, 2)))
    first = str(caught.value).splitlines()[0]
    assert first.startswith("FAIL: layer 1 (DenseActAtOutput)"), first


# --- strictness and counting: the session -------------------------------------------------------


def test_doubt_passes_by_default_and_fails_when_strict(no_session):
    x = np.linspace(-1.5, 1.5, 5)
    report = assert_gradient(noisy_sine_sum, np.cos, x)
    assert report.count("doubt") == 1  # passed, but in doubt
    with pytest.raises(GradientCheckError) as caught:
        assert_gradient(noisy_sine_sum, np.cos, x, strict=True)
    assert str(caught.value).startswith("FAIL (strict)")


def test_the_sessions_strict_setting_is_the_default(no_session):
    no_session.strict = True  # what --gradcheck-strict sets
    x = np.linspace(-1.5, 1.5, 5)
    with pytest.raises(GradientCheckError):
        assert_gradient(noisy_sine_sum, np.cos, x)
    assert assert_gradient(noisy_sine_sum, np.cos, x, strict=False).ok  # an explicit one wins


def test_every_helper_call_is_counted_for_the_summary(point, no_session):
    assert_vjp(affine, affine_backward, point)
    with pytest.raises(GradientCheckError):
        assert_vjp(affine, affine_bias_averaged, point)
    assert_gradient(noisy_sine_sum, np.cos, np.linspace(-1, 1, 4))
    tally = no_session.tally
    assert (tally["checks"], tally["failed"], tally["doubtful"]) == (3, 1, 1)


def test_assert_report_turns_any_report_into_an_assertion(point, no_session):
    report = check_vjp(affine, affine_bias_averaged, point)
    with pytest.raises(AssertionError, match=r"^FAIL: db"):
        assert_report(report)
    assert assert_report(check_vjp(affine, affine_backward, point)).ok


def test_the_fixtures_object_fills_in_the_projects_settings(point, no_session, tmp_path):
    strict = GradCheck(strict=True, seed=5, snapshot_dir=tmp_path)
    x = np.linspace(-1.5, 1.5, 5)
    with pytest.raises(GradientCheckError):
        strict.gradient(noisy_sine_sum, np.cos, x)
    assert "seed 5" in " ".join(strict.vjp(affine, affine_backward, point).notes)
    strict.snapshot("affine", affine, affine_backward, point, update=True)
    assert (tmp_path / "affine.json").exists()
    assert strict.snapshot("affine", affine, affine_backward, point).ok


def test_a_missing_snapshot_is_counted_as_missing_not_drifted(point, no_session, tmp_path):
    with pytest.raises(AssertionError):
        assert_snapshot(tmp_path / "never_recorded.json", affine, affine_backward, point)
    tally = no_session.tally
    assert (tally["snapshots"], tally["missing"], tally["drifted"]) == (1, 1, 0)


def test_failures_in_a_test_that_passed_are_counted_as_expected(no_session):
    no_session.record(checks=3, failed=2, snapshots=1, drifted=1)
    assert no_session.settle(test_failed=True)["failed"] == 2
    passed = no_session.settle(test_failed=False)
    assert (passed["checks"], passed["failed"], passed["drifted"], passed["expected"]) == (
        3, 0, 0, 3)


def _explained(exc, where):
    exc.__notes__ = ["Failing test case: test_x(...)", "Explanation:",
                     "    These lines were always and only run by failing test cases:",
                     *(f"        {w}" for w in where),
                     "        (and 7 more with settings.verbosity >= verbose)"]
    return exc


def test_hypothesis_explanations_lose_the_oracles_lines_and_keep_the_users(point, no_session):
    import oracle

    inside = str(Path(oracle.__file__).parent / "autodiff.py") + ":248"
    mine = "/home/someone/project/my_layers.py:12"
    report = check_vjp(affine, affine_bias_averaged, point)
    error = _explained(GradientCheckError(report), [inside, mine])
    plugin.drop_oracle_explanations(error)
    assert error.__notes__ == ["Failing test case: test_x(...)", "Explanation:",
                               "    These lines were always and only run by failing test "
                               "cases:", f"        {mine}"]
    only_oracle = _explained(GradientCheckError(report), [inside])
    plugin.drop_oracle_explanations(only_oracle)
    assert only_oracle.__notes__ == ["Failing test case: test_x(...)"]
    other = _explained(AssertionError("not a gradient check"), [inside])
    plugin.drop_oracle_explanations(other)
    assert "Explanation:" in other.__notes__  # someone else's failure: left alone
