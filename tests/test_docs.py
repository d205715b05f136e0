"""The docs cannot rot: their code runs, their output is what they show, their links hold.

Every fenced block of README.md and docs/*.md, file by file, in order, in a fresh temporary
working directory (so a block can write files that a later block reads):

- ```python file=NAME: a file of the page's own small project, saved as NAME in the working
  directory (not run: later blocks import it, or run pytest on it).
- ```python with ``>>>`` prompts: a doctest (ELLIPSIS and NORMALIZE_WHITESPACE), so every
  output shown is checked; blocks of one file share their names, like one session.
- ```python without prompts: executed; if the next block is plain output (```text or no
  language) introduced by a short sentence saying the code "prints" it, the printed output
  must match it.
- ```console: a shell session. Each ``$ python -m MODULE ...`` runs in-process through the
  module's ``main`` and must exit 0; the lines under it, if any, are its expected stdout.
  ``$ pytest ...`` runs ``python -m pytest`` in a subprocess in the working directory (with the
  oracle's plugin, named by ``-p`` so that an install older than the plugin works too), with
  its expected stdout likewise (ELLIPSIS). A trailing ``# exits N`` expects exit status N.
  ``$ make TARGET`` only checks that the Makefile has the target.
- ```sh / ```bash: a listing of commands. ``python -m MODULE ...`` lines are parsed by the
  module's own argument parser (so a renamed flag fails); ``make TARGET`` must exist.

Links from the docs into the code, like ``[`input_grad`](../reference/layer.py#L80-L82 "eq
11")``, name a function (``Class.method`` for a method) in backticks, a line range, and in
the title a text those lines must contain. A link must point into that function and at that
text, so a moved function or equation cannot leave a dead link. When code moves, run
``python tests/test_docs.py --fix`` to rewrite the ranges (it prints what it changed).
"""

from __future__ import annotations

import ast
import doctest
import importlib
import importlib.util
import io
import os
import re
import shlex
import subprocess
import sys
import textwrap
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [p for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))] if p.exists()]
OWN_DOCS = [ROOT / "docs" / "derivation.md", ROOT / "docs" / "tutorial.md"]
"""Docs whose in-page and cross-page heading anchors are checked too."""

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
FENCE = re.compile(r"^([ \t]*)```([\w+-]*)([^\n]*)\n(.*?)^\1```[ \t]*$", re.M | re.S)
"""A fenced block, possibly indented (inside a list item): indent, language, info, code."""
FILE = re.compile(r"\bfile=([\w.-]+)")
"""```python file=NAME: the block is a file of the page's project, saved as NAME."""
EXITS = re.compile(r"#\s*exits (\d+)\s*$")
"""A console command's expected exit status, when not 0: ``$ pytest  # exits 1``."""
LINK = re.compile(r"\[((?:[^\[\]]|\[[^\]]*\])*)\]\(([^)\s]+)(?:\s+\"([^\"]*)\")?\)")
LINES = re.compile(r"^L(\d+)(?:-L(\d+))?$")
SHELL_SKIP = {"cd", "git", "pip", "source"}
DEFAULT_SUBCOMMAND = {"oracle.cli": "check"}
"""``python -m oracle --sizes ...`` means ``check`` (oracle.cli.main inserts it)."""


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


# --- blocks ------------------------------------------------------------------------------------


@dataclass
class Block:
    lang: str
    code: str
    line: int  # the line of the opening fence, 1-based
    before: str  # the text between the previous block (or the file's start) and this one
    info: str = ""  # the rest of the fence's first line (```python file=my_layers.py)


def blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    found, last = [], 0
    for m in FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        code = textwrap.dedent(m.group(4))
        found.append(Block(m.group(2).lower(), code, line, text[last:m.start()],
                           m.group(3).strip()))
        last = m.end()
    return found


def _shows_output(block: Block, following: Block | None) -> bool:
    """True when ``following`` is the printed output of ``block`` (see the module docstring)."""
    if following is None or following.lang not in ("", "text"):
        return False
    between = following.before.strip()
    return (len(between) < 200 and "#" not in between
            and re.search(r"\b(prints|output)\b", between) is not None)


def _python(block: Block, following: Block | None, globs: dict, where: str) -> None:
    if re.search(r"^\s*>>> ", block.code, re.M):
        test = doctest.DocTestParser().get_doctest(block.code, globs, where, where, block.line)
        report = io.StringIO()
        runner = doctest.DocTestRunner(optionflags=FLAGS)
        runner.run(test, out=report.write, clear_globs=False)
        globs.update(test.globs)  # DocTest ran on a copy; later blocks see its names
        if runner.failures:
            pytest.fail(f"{where}: the output differs from the docs\n{report.getvalue()}",
                        pytrace=False)
        return
    out = io.StringIO()
    with redirect_stdout(out):
        exec(compile(block.code, where, "exec"), globs)  # the docs' own code
    if _shows_output(block, following):
        want, got = following.code, out.getvalue()
        if not doctest.OutputChecker().check_output(want, got, FLAGS):
            pytest.fail(f"{where}: printed\n{got}\nbut the docs show\n{want}", pytrace=False)


# --- shell blocks ------------------------------------------------------------------------------


def _main_of(module: str):
    """The ``main`` that ``python -m module`` calls, and the module that defines it."""
    spec = importlib.util.find_spec(module)
    if spec is None:
        raise AssertionError(f"no module {module!r}")
    target = f"{module}.__main__" if spec.submodule_search_locations else module
    main = importlib.import_module(target).main
    return main, sys.modules[main.__module__]


def _run_module(module: str, args: list[str]) -> tuple[int, str, str]:
    main, _ = _main_of(module)
    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = [f"python -m {module}", *args]
    try:
        with redirect_stdout(out), redirect_stderr(err):
            status = main(args)
    except SystemExit as exc:  # argparse's --help, or a main that exits
        status = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
    return status, out.getvalue(), err.getvalue()


def _make_target(target: str, where: str) -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(rf"^{re.escape(target)}\s*:", makefile, re.M), (
        f"{where}: the Makefile has no target {target!r}")


def _command(line: str, where: str) -> list[str] | None:
    """The argv after ``python -m``, or None for a command that is checked otherwise."""
    argv = shlex.split(line, comments=True)
    if not argv:
        return None
    if argv[0] == "make":
        for target in argv[1:] or ["all"]:
            if "=" not in target:
                _make_target(target, where)
        return None
    if argv[0] in SHELL_SKIP:
        return None
    if argv[:2] == ["python", "-m"] and len(argv) > 2:
        return argv[2:]
    raise AssertionError(f"{where}: the docs test cannot check the command {line!r}; use "
                         "python -m MODULE ..., make TARGET, or extend tests/test_docs.py")


def _run_pytest(args: list[str]) -> tuple[int, str, str]:
    """``python -m pytest ARGS`` in the working directory, as a user runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "HYPOTHESIS_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["COLUMNS"] = "100"
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "simple_net_gradcheck",
                           "-p", "no:cacheprovider", *args], env=env, capture_output=True,
                          text=True, timeout=600)
    return done.returncode, done.stdout, done.stderr


def _console(block: Block, where: str) -> None:
    sessions: list[tuple[str, list[str]]] = []
    for line in block.code.splitlines():
        if line.startswith("$ "):
            sessions.append((line[2:], []))
        elif sessions:
            sessions[-1][1].append(line)
    assert sessions, f"{where}: a console block needs '$ ' prompts"
    for line, expected in sessions:
        exits = EXITS.search(line)
        want_status = int(exits.group(1)) if exits else 0
        words = shlex.split(line, comments=True)
        if words[:1] == ["pytest"]:
            status, out, err = _run_pytest(words[1:])
        else:
            argv = _command(line, where)
            if argv is None:
                continue
            status, out, err = _run_module(argv[0], argv[1:])
        assert status == want_status, f"{where}: `{line}` exited {status}\n{out}\n{err}"
        want = "\n".join(expected).strip("\n")
        if want and not doctest.OutputChecker().check_output(want + "\n", out, FLAGS):
            pytest.fail(f"{where}: `{line}` printed\n{out}\nbut the docs show\n{want}",
                        pytrace=False)


def _listing(block: Block, where: str) -> None:
    for line in block.code.splitlines():
        argv = _command(line, where)
        if argv is None:
            continue
        module, args = argv[0], argv[1:]
        _, defining = _main_of(module)
        parser = defining.build_parser()
        default = DEFAULT_SUBCOMMAND.get(defining.__name__)
        commands = getattr(defining, "COMMANDS", {})
        if default and args and args[0] not in commands and args[0] not in ("-h", "--help"):
            args = [default, *args]
        err = io.StringIO()
        try:
            with redirect_stderr(err):
                _, extra = parser.parse_known_args(args)
        except SystemExit:
            raise AssertionError(f"{where}: `{line}` does not parse: {err.getvalue()}") from None
        except Exception as exc:  # the CLIs' one-line usage errors
            raise AssertionError(f"{where}: `{line}` does not parse: {exc}") from None
        assert not extra, f"{where}: `{line}`: unknown arguments {extra}"


def run_doc(path: Path) -> None:
    """Run every block of ``path`` in order (the caller sets the working directory)."""
    globs: dict = {"__name__": "__docs__"}
    found = blocks(path)
    for i, block in enumerate(found):
        where = f"{_rel(path)}:{block.line}"
        following = found[i + 1] if i + 1 < len(found) else None
        name = FILE.search(block.info)
        if block.lang in ("python", "py") and name:
            Path(name.group(1)).write_text(block.code, encoding="utf-8")
            importlib.invalidate_caches()  # importable at once, even within the same second
        elif block.lang in ("python", "py", "pycon"):
            _python(block, following, globs, where)
        elif block.lang == "console":
            _console(block, where)
        elif block.lang in ("sh", "bash", "shell"):
            _listing(block, where)


@pytest.mark.parametrize("path", DOCS, ids=_rel)
def test_every_code_block_of_the_docs_runs(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(ROOT))
    monkeypatch.syspath_prepend(str(tmp_path))  # the page's own files (```python file=...)
    run_doc(path)


def test_the_derivation_and_the_tutorial_are_among_the_docs_tested():
    for doc in OWN_DOCS:
        assert doc in DOCS, f"{_rel(doc)} is missing"
        kinds = {b.lang for b in blocks(doc)}
        assert "python" in kinds, f"{_rel(doc)} has no python block"


BROKEN_DOCS = {
    "a doctest whose output is wrong": "```python\n>>> 1 + 1\n3\n```\n",
    "printed output that differs": ("```python\nprint('a')\n```\n\nprints:\n\n"
                                    "```text\nb\n```\n"),
    "a command that fails": "```console\n$ python -m reference train --sizes 9\n```\n",
    "a command whose output differs": ("```console\n$ python -m reference data patterns "
                                       "--out p.npz\nwrote nothing\n```\n"),
    "a renamed flag in a listing": "```sh\npython -m oracle check --no-such-flag\n```\n",
    "a missing make target": "```sh\nmake no-such-target\n```\n",
    "a command the test cannot check": "```sh\ncurl http://example.com\n```\n",
    "a pytest run whose exit status differs": "```console\n$ pytest -q no_such_test.py\n```\n",
    "an exception": "```python\nraise RuntimeError('docs rot')\n```\n",
}


@pytest.mark.parametrize("text", BROKEN_DOCS.values(), ids=BROKEN_DOCS.keys())
def test_the_runner_refuses_broken_docs(text, tmp_path, monkeypatch):
    # Proves the runner can fail: each of these small pages must be refused.
    doc = tmp_path / "broken.md"
    doc.write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with pytest.raises((pytest.fail.Exception, AssertionError, RuntimeError)):
        run_doc(doc)


def test_the_runner_accepts_what_it_should(tmp_path, monkeypatch):
    doc = tmp_path / "fine.md"
    doc.write_text("```python\n>>> x = 2\n\n```\n\n```python\nprint(x + 1)\n```\n\n"
                   "It prints:\n\n```\n3\n```\n\n```sh\nmake demo  # a comment\n"
                   "python -m oracle --sizes 2,3,1\n```\n\n"
                   "```python file=test_fine.py\ndef test_fine():\n    assert False\n```\n\n"
                   "```console\n$ pytest -q test_fine.py  # exits 1\n"
                   "F ...\n...1 failed in ...\n```\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    run_doc(doc)
    assert (tmp_path / "test_fine.py").exists()


# --- links -------------------------------------------------------------------------------------


@dataclass
class CodeLink:
    doc: Path
    text: str
    target: Path
    start: int
    end: int
    marker: str | None
    raw: str


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    return {_slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*?)\s*#*$", text, re.M)}


def links(path: Path):
    text = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), path.read_text(encoding="utf-8"))
    for m in LINK.finditer(text):
        yield m.group(1), m.group(2), m.group(3), m.group(0)


def code_links(path: Path) -> list[CodeLink]:
    found = []
    for text, target, title, raw in links(path):
        file, _, anchor = target.partition("#")
        lines = LINES.match(anchor)
        if not file.endswith(".py") or not lines:
            continue
        start = int(lines.group(1))
        end = int(lines.group(2) or start)
        found.append(CodeLink(path, text, (path.parent / file).resolve(), start, end, title,
                              raw))
    return found


def _definition(source: str, qualname: str) -> tuple[int, int] | None:
    """``(first line incl. decorators, last line)`` of ``qualname`` in ``source``."""
    scope: list[ast.AST] = [ast.parse(source)]
    node = None
    for part in qualname.split("."):
        node = next((n for parent in scope for n in ast.iter_child_nodes(parent)
                     if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                     and n.name == part), None)
        if node is None:
            return None
        scope = [node]
    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
    return first, node.end_lineno


def _name(link: CodeLink) -> str | None:
    names = re.findall(r"`([A-Za-z_][\w.]*)`", link.text)
    return names[0] if len(names) == 1 else None


def check_code_link(link: CodeLink) -> tuple[str | None, tuple[int, int] | None]:
    """``(problem, suggested range)``; problem is None when the link is sound."""
    if not link.target.is_file():
        return f"{link.raw}: no file {link.target}", None
    name = _name(link)
    if name is None:
        return f"{link.raw}: the link text must name one function in backticks", None
    source = link.target.read_text(encoding="utf-8")
    lines = source.splitlines()
    span = _definition(source, name)
    if span is None:
        return f"{link.raw}: {name} is not defined in {_rel(link.target)}", None
    first, last = span
    if link.marker is None:
        if (link.start, link.end) == span:
            return None, None
        if first <= link.start <= link.end <= last:
            return None, None
        return f"{link.raw}: {name} is at lines {first}-{last}", span
    hits = [i for i in range(first, last + 1) if link.marker in lines[i - 1]]
    if not hits:
        return f"{link.raw}: {name} (lines {first}-{last}) no longer contains " \
               f"{link.marker!r}", None
    inside = first <= link.start <= link.end <= last
    cited = "\n".join(lines[link.start - 1:link.end]) if link.end <= len(lines) else ""
    if inside and link.marker in cited:
        return None, None
    length = max(link.end - link.start, 0)
    hit = next((h for h in hits if h >= link.start), hits[0])
    suggestion = (hit, min(hit + length, last))
    return (f"{link.raw}: lines {link.start}-{link.end} of {_rel(link.target)} are not "
            f"{name}'s {link.marker!r}; it is at line {hit}"), suggestion


ALL_CODE_LINKS = [link for doc in DOCS for link in code_links(doc)]


def test_the_derivation_links_to_the_code():
    cited = {link.target for link in code_links(ROOT / "docs" / "derivation.md")}
    for module in ("layer.py", "passes.py", "activations.py", "losses.py", "network.py"):
        assert ROOT / "reference" / module in cited, f"derivation.md cites nothing in {module}"


@pytest.mark.parametrize("link", ALL_CODE_LINKS,
                         ids=lambda link: f"{_rel(link.doc)}:{_name(link)}:{link.marker}")
def test_a_link_into_the_code_points_at_what_it_names(link):
    problem, suggestion = check_code_link(link)
    hint = "" if suggestion is None else (
        f"; it should read #L{suggestion[0]}-L{suggestion[1]} "
        "(python tests/test_docs.py --fix rewrites it)")
    assert problem is None, problem + hint


MODULE = """\
def first(x):
    return x + 1  # eq 5: V


class Layer:
    @staticmethod
    def backward(g):
        h = g * 2
        return h  # eq 11: dX
"""


def test_the_link_check_catches_a_moved_function_and_a_moved_equation(tmp_path):
    # The check can fail: a link shifted by a line, a wrong marker, a missing function.
    (tmp_path / "m.py").write_text(MODULE, encoding="utf-8")
    doc = tmp_path / "doc.md"

    def link(text, start, end, marker):
        return CodeLink(doc, text, tmp_path / "m.py", start, end, marker, "[link]")

    assert check_code_link(link("`first`", 2, 2, "eq 5: V"))[0] is None
    assert check_code_link(link("`Layer.backward`", 8, 9, "eq 11: dX"))[0] is None
    assert check_code_link(link("`Layer.backward`", 6, 9, None))[0] is None  # whole method
    problem, fix = check_code_link(link("`Layer.backward`", 7, 7, "eq 11: dX"))  # moved
    assert problem is not None and fix == (9, 9)
    assert check_code_link(link("`first`", 2, 2, "eq 99: nowhere"))[0] is not None
    assert check_code_link(link("`second`", 2, 2, None))[0] is not None
    assert check_code_link(link("`first`", 8, 9, "eq 11: dX"))[0] is not None  # not in first
    assert check_code_link(link("a link with no name", 2, 2, None))[0] is not None


@pytest.mark.parametrize("doc", DOCS, ids=_rel)
def test_relative_links_of_the_docs_lead_to_files_that_exist(doc):
    own = doc in OWN_DOCS
    for _, target, _, raw in links(doc):
        if re.match(r"^[a-z]+:", target):
            continue  # http(s), mailto
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        assert path.exists(), f"{_rel(doc)}: {raw} leads to nothing"
        if own and anchor and path.suffix == ".md":
            assert anchor in _anchors(path), f"{_rel(doc)}: {raw}: no heading #{anchor}"


# --- the fixer ---------------------------------------------------------------------------------


def fix_links() -> int:
    """Rewrite stale line ranges of code links in place; return how many were changed."""
    changed = 0
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for link in code_links(doc):
            problem, suggestion = check_code_link(link)
            if problem is None or suggestion is None:
                if problem:
                    print(f"cannot fix: {problem}")
                continue
            a, b = suggestion
            anchor = f"#L{a}" if a == b else f"#L{a}-L{b}"
            new = re.sub(r"#L\d+(?:-L\d+)?", anchor, link.raw, count=1)
            text = text.replace(link.raw, new, 1)
            print(f"{_rel(doc)}: {link.raw} -> {anchor}")
            changed += 1
        doc.write_text(text, encoding="utf-8")
    return changed


if __name__ == "__main__":
    if sys.argv[1:] != ["--fix"]:
        sys.exit("usage: python tests/test_docs.py --fix")
    print(f"{fix_links()} link(s) rewritten")
