"""``python -m oracle vjp`` and JUnit XML: a user's own functions checked from the shell, with
exit status 0 / 1 / 2, JSON and JUnit XML for CI.

The user's functions are written to files in a temporary folder (a wrong one has a planted bug:
the bias gradient averaged over the batch); the CLI runs in this process through
``oracle.cli.main``. Doubt is made by evaluation noise in a forward.
"""

import json
import sys
import textwrap
import xml.etree.ElementTree as ET

import numpy as np
import pytest

pytest.importorskip("jax")

from oracle import check_gradient  # noqa: E402
from oracle.cli import main  # noqa: E402
from oracle.junit import junit_xml  # noqa: E402
from reference.array_namespace import namespace_of  # noqa: E402

LAYERS = textwrap.dedent('''
    import numpy as np

    def affine_forward(x, w, b):
        return x @ w + b

    def affine_backward(dout, x, w, b):
        return dout @ w.T, x.T @ dout, dout.sum(axis=0)

    def affine_bias_averaged(dout, x, w, b):
        return dout @ w.T, x.T @ dout, dout.mean(axis=0)

    def softmax_loss(scores, y):
        z = scores - scores.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return -log_p[np.arange(len(y)), y].mean()

    def softmax_loss_backward(dout, scores, y):
        p = np.exp(scores - scores.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(len(y)), y] -= 1
        return dout * p / len(y)

    def cached_forward(x, w):
        out = np.tanh(x @ w)
        return out, (x, w, out)

    def cached_backward(dout, cache):
        x, w, out = cache
        dv = dout * (1 - out ** 2)
        return dv @ w.T, x.T @ dv

    def raising_forward(x):
        raise RuntimeError("boom")

    NOT_A_FUNCTION = 3
''')


@pytest.fixture
def layers(tmp_path, monkeypatch):
    """The user's module, as a file in the working directory: its path for MODULE:NAME."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "user_layers.py").write_text(LAYERS, encoding="utf-8")
    return "user_layers.py"


def run(argv, capsys):
    status = main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def test_a_right_pair_exits_0(layers, capsys):
    status, out, err = run(["vjp", f"{layers}:affine_forward", f"{layers}:affine_backward",
                            "--shapes", "x=4,3", "w=3,2", "b=2"], capsys)
    assert status == 0, err
    assert out.splitlines()[0] == "OK: all 3 inputs agree [judged by JAX and finite differences]"


def test_a_wrong_pair_exits_1_and_says_which_input(layers, capsys):
    status, out, _ = run(["vjp", f"{layers}:affine_forward", f"{layers}:affine_bias_averaged",
                          "--shapes", "4,3", "3,2", "2", "--quiet"], capsys)
    assert status == 1
    assert out.startswith("FAIL: db (total): db wrong")


def test_a_module_in_the_working_directory_is_imported_by_name(layers, capsys, monkeypatch):
    monkeypatch.delitem(sys.modules, "user_layers", raising=False)
    status, out, err = run(["vjp", "user_layers:affine_forward", "user_layers:affine_backward",
                            "--shapes", "x=2,3", "w=3,1", "b=1", "--quiet"], capsys)
    assert status == 0, err
    monkeypatch.delitem(sys.modules, "user_layers", raising=False)


def test_integer_labels_and_a_scalar_output(layers, capsys):
    status, out, err = run(["vjp", f"{layers}:softmax_loss", f"{layers}:softmax_loss_backward",
                            "--shapes", "scores=5,3", "y=5:int3", "--quiet"], capsys)
    assert status == 0, err
    assert out.strip() == "OK: dscores agrees [judged by JAX and finite differences]"


def test_the_cs231n_convention_with_a_cache(layers, capsys):
    status, out, err = run(["vjp", f"{layers}:cached_forward", f"{layers}:cached_backward",
                            "--cached", "--shapes", "x=3,4", "w=4,2", "--quiet"], capsys)
    assert status == 0, err
    assert out.startswith("OK: all 2 inputs agree")


def test_inputs_from_an_npz(layers, capsys, tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "point.npz", x=rng.normal(size=(3, 2)), w=rng.normal(size=(2, 2)),
             b=rng.normal(size=2))
    status, out, err = run(["vjp", f"{layers}:affine_forward", f"{layers}:affine_bias_averaged",
                            "--inputs", "point.npz", "--json"], capsys)
    assert status == 1, err
    data = json.loads(out)
    assert data["ok"] is False and [r["input"] for r in data["rows"]] == ["x", "w", "b"]
    assert [r["status"] for r in data["rows"]] == ["pass", "pass", "FAIL"]


def test_junit_xml_has_one_test_case_per_input_and_the_failure(layers, capsys, tmp_path):
    status, _, err = run(["vjp", f"{layers}:affine_forward", f"{layers}:affine_bias_averaged",
                          "--shapes", "x=4,3", "w=3,2", "b=2", "--junit",
                          "reports/gradcheck.xml"], capsys)
    assert status == 1, err
    root = ET.parse(tmp_path / "reports" / "gradcheck.xml").getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("3", "1", "0")
    cases = root.findall("./testsuite/testcase")
    assert [c.get("name") for c in cases] == ["dx (total)", "dw (total)", "db (total)"]
    failures = [c.find("failure") for c in cases]
    assert failures[0] is None and failures[1] is None
    assert failures[2].get("message").startswith("db (total): db wrong")
    assert "vjp check:" in failures[2].text  # the whole table, for the CI's failure page


NOISE = np.random.default_rng(1)


def noisy_sine_sum(x):
    """Evaluation noise of 1e-5 leaves finite differences unable to confirm anything: doubt."""
    xp = namespace_of(x)
    return xp.sum(xp.sin(x)) + 1e-5 * NOISE.normal()


def test_junit_xml_shows_doubt_as_skipped_unless_strict():
    x = np.linspace(-1.5, 1.5, 5)
    for strict, tag in ((False, "skipped"), (True, "failure")):
        report = check_gradient(noisy_sine_sum, np.cos, x, strict=strict)
        root = ET.fromstring(junit_xml({"ste": report}))
        (case,) = root.findall("./testsuite/testcase")
        assert case.find(tag) is not None, (strict, junit_xml(report))
        assert root.get("skipped" if tag == "skipped" else "failures") == "1"


@pytest.mark.parametrize("argv, message", [
    (["vjp", "no_such_module:f", "no_such_module:g", "--shapes", "3"],
     "cannot import 'no_such_module'"),
    (["vjp", "user_layers.py:nope", "user_layers.py:affine_backward", "--shapes", "3"],
     "has no attribute 'nope'"),
    (["vjp", "user_layers.py:NOT_A_FUNCTION", "user_layers.py:affine_backward",
      "--shapes", "3"], "is a int, not a function"),
    (["vjp", "affine_forward", "affine_backward", "--shapes", "3"], "expected MODULE:FUNCTION"),
    (["vjp", "user_layers.py:affine_forward", "user_layers.py:affine_backward",
      "--shapes", "x=4,3", "3,2"], "all named"),
    (["vjp", "user_layers.py:affine_forward", "user_layers.py:affine_backward",
      "--shapes", "x=4;3"], "bad --shapes entry"),
    (["vjp", "user_layers.py:affine_forward", "user_layers.py:affine_backward"],
     "one of --shapes or --inputs"),
    (["vjp", "user_layers.py:raising_forward", "user_layers.py:affine_backward",
      "--shapes", "3"], "forward raised RuntimeError"),
])
def test_bad_usage_exits_2_with_one_line(layers, capsys, argv, message):
    status, out, err = run(argv, capsys)
    assert status == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err, err
