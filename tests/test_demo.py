"""``make demo``: the demo trains both networks, checks them, prints, and draws every picture.

Run in-process with ``--fast`` (a twentieth of the epochs), headless, with sockets refused.
"""

import contextlib
import io
import re
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("jax")

from oracle import demo  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PICTURES = ("loss.png", "fd_steps.png", "gradient_error_map.png", "spirals_regions.png",
            "reconstructions.png")


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's header; fails on anything that is not a PNG."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    return struct.unpack(">II", head[16:24])


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """One fast run of the demo: (exit status, stdout, stderr, output folder, pyplot loaded).

    Module-scoped (capsys is not), so stdout and stderr are captured by hand.
    """
    out = tmp_path_factory.mktemp("demo") / "out"
    mp = pytest.MonkeyPatch()

    def refuse(*args, **kwargs):
        raise AssertionError("the demo tried to open a network connection")

    mp.setattr(socket.socket, "connect", refuse)
    pyplot_before = "matplotlib.pyplot" in sys.modules
    stdout, stderr = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            status = demo.main(["--out", str(out), "--fast", "--quiet"])
    finally:
        mp.undo()
    pyplot_loaded = not pyplot_before and "matplotlib.pyplot" in sys.modules
    return status, stdout.getvalue(), stderr.getvalue(), out, pyplot_loaded


def test_the_demo_exits_0_and_says_where_the_pictures_are(demo_run):
    status, out, _, folder, _ = demo_run
    assert status == 0, out
    assert f"the pictures go to {folder.resolve()}" in out


def test_the_demo_draws_every_picture_headless(demo_run):
    _, out, _, folder, pyplot_loaded = demo_run
    for name in PICTURES:
        path = folder / name
        assert path.is_file(), f"{name} was not written"
        width, height = png_size(path)
        assert width >= 400 and height >= 300, f"{name} is {width}x{height}"
        assert str(path) in out, f"the demo does not print where {name} is"
    assert not pyplot_loaded, "the pictures must not need pyplot (no display, no backend)"


def test_the_demo_prints_the_loss_falling_for_both_networks(demo_run):
    _, out, _, _, _ = demo_run
    sections = out.split("\n== ")
    for title in ("3x3-pattern autoencoder", "two-spirals classifier"):
        section = next(s for s in sections if s.startswith(title))
        losses = [float(x) for x in re.findall(r"epoch +\d+ +loss (\S+)", section)]
        assert len(losses) >= 5, section
        assert losses[-1] < losses[0], f"{title}: the loss did not fall: {losses}"


def test_the_demo_prints_the_oracles_reports(demo_run):
    _, out, _, _, _ = demo_run
    assert "OK: all 13 terms agree" in out  # the autoencoder: 2 layers
    assert "OK: all 19 terms agree" in out  # the classifier: 3 layers
    assert "network check:" in out  # the full tables, not only headlines
    # The deliberately broken copy: the oracle names the layer and the term.
    assert "FAIL: layer 1 activation \"tanh'(Y)\" (local)" in out


def test_the_demo_draws_no_progress_bar_when_quiet_or_not_on_a_terminal(demo_run):
    _, _, err, _, _ = demo_run
    assert "%" not in err and "\r" not in err, err


def test_the_demo_command_has_help_with_an_example(capsys):
    with pytest.raises(SystemExit) as exit_:
        demo.main(["--help"])
    assert exit_.value.code == 0
    help_text = capsys.readouterr().out
    assert "python -m oracle.demo --out out" in help_text
    assert "--quiet" in help_text and "--fast" in help_text


def test_make_demo_runs_the_oracle_demo_with_an_output_folder():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = re.search(r"^demo:.*\n\t(.*)$", makefile, re.M)
    assert recipe, "the Makefile has no demo target"
    assert recipe.group(1).strip() == "$(PY) -m oracle.demo --out $(OUT)"


def test_the_plotting_modules_import_matplotlib_only_when_drawing():
    code = ("import sys; import oracle.pictures, oracle.demo, oracle.cli, oracle.step_sweep; "
            "assert 'matplotlib' not in sys.modules, sorted(m for m in sys.modules "
            "if m.startswith('matplotlib'))")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
