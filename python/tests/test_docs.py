"""The documentation runs as written: README.md and docs/**/*.md.

* Every ```python block of a markdown file runs: a file's blocks run in order in ONE fresh
  subprocess (``sys.executable``), so later blocks may use names from earlier ones; the working
  directory is a pytest temporary directory (blocks write only there) and the package comes from
  wherever the interpreter finds it installed, never from this checkout. One test per file that
  has python blocks; a failure names the block, the line it starts on and the block's stderr.
  Blocks that are not meant to run use another fence language (```bash, ```text).
* Every relative link (and image) of every markdown file points to a file or directory that
  exists inside the repository; links that leave the repository fail.
"""
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TIMEOUT_S = 600


def markdown_files():
    files = [ROOT / "README.md"] + sorted((ROOT / "docs").rglob("*.md"))
    return [f for f in files if f.is_file()]


def relative(path):
    return path.relative_to(ROOT).as_posix()


_FENCE = re.compile(r"^(?P<indent> {0,3}|[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


def fenced_blocks(text):
    """[(language, first content line (1-based), code)] of the fenced code blocks, in order.

    A block opens with ``` or ~~~ (three or more, optionally indented, e.g. inside a list item)
    followed by an info string whose first word is the language, and closes with a fence of the
    same character at least as long and nothing after it. The opening indentation is removed from
    the content lines. An unclosed block runs to the end of the file (as CommonMark says).
    """
    blocks = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if not match or (match.group("fence")[0] == "`" and "`" in match.group("info")):
            i += 1
            continue
        indent, fence = len(match.group("indent").expandtabs(4)), match.group("fence")
        words = match.group("info").split()
        language = words[0].lower() if words else ""
        start, body = i + 2, []
        i += 1
        while i < len(lines):
            closing = _FENCE.match(lines[i])
            if (closing and closing.group("fence")[0] == fence[0] and len(closing.group("fence")) >= len(fence)
                    and not closing.group("info").strip()):
                break
            line = lines[i].expandtabs(4)
            strip = min(indent, len(line) - len(line.lstrip(" ")))
            body.append(line[strip:])
            i += 1
        blocks.append((language, start, "\n".join(body) + "\n"))
        i += 1
    return blocks


def python_blocks(path):
    return [(line, code) for language, line, code in fenced_blocks(path.read_text(encoding="utf-8"))
            if language == "python"]


FILES_WITH_PYTHON = [f for f in markdown_files() if python_blocks(f)]

# Runs the blocks of one file in order in one namespace; on the first failure prints the traceback
# (file names such as "README.md, python block 2 (line 40)") and a marker line, and exits 1.
DRIVER = r"""
import json, sys, traceback
source, blocks = json.load(open(sys.argv[1], encoding="utf-8"))
namespace = {"__name__": "__main__", "__file__": source}
for number, (line, code) in enumerate(blocks, 1):
    name = "%s, python block %d (line %d)" % (source, number, line)
    try:
        exec(compile(code, name, "exec"), namespace)
    except BaseException:
        traceback.print_exc()
        sys.stderr.write("\nDOCS-BLOCK-FAILED %d %d\n" % (number, line))
        sys.stderr.flush()
        sys.exit(1)
    sys.stdout.flush()
"""


@pytest.mark.parametrize("path", FILES_WITH_PYTHON, ids=relative)
def test_python_blocks_run(path, tmp_path):
    blocks = python_blocks(path)
    spec = tmp_path / "blocks.json"
    spec.write_text(json.dumps([relative(path), blocks]), encoding="utf-8")
    work = tmp_path / "cwd"
    work.mkdir()
    env = dict(os.environ, MPLBACKEND="Agg")
    try:
        result = subprocess.run([sys.executable, "-c", DRIVER, str(spec)], cwd=work, env=env,
                                capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as error:
        pytest.fail("%s: its %d python blocks did not finish within %d s\nstderr:\n%s"
                    % (relative(path), len(blocks), TIMEOUT_S, error.stderr or ""))
    if result.returncode != 0:
        marker = re.search(r"DOCS-BLOCK-FAILED (\d+) (\d+)", result.stderr)
        where = ("python block %s of %d (starting at line %s)" % (marker.group(1), len(blocks), marker.group(2))
                 if marker else "the interpreter (exit status %d, before or between blocks)" % result.returncode)
        pytest.fail("%s: %s failed\nstderr:\n%s\nstdout (tail):\n%s"
                    % (relative(path), where, result.stderr, result.stdout[-3000:]), pytrace=False)


def test_readme_has_a_runnable_example():
    assert python_blocks(ROOT / "README.md"), "README.md has no ```python block"


_INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1", re.S)
_INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*(<[^>]*>|[^)\s]*)(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)")
_REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)", re.M)
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def link_targets(text):
    """[(line, target)] of inline links, images and reference definitions outside code."""
    lines = text.split("\n")
    for language, start, code in fenced_blocks(text):  # blank out fenced blocks, keep line numbers
        for k in range(start - 1, min(start - 1 + code.count("\n"), len(lines))):
            lines[k] = ""
    prose = "\n".join(lines)
    prose = _INLINE_CODE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), prose)
    found = []
    for pattern in (_INLINE_LINK, _REFERENCE):
        for match in pattern.finditer(prose):
            target = match.group(1).strip("<>")
            found.append((prose.count("\n", 0, match.start()) + 1, target))
    return sorted(found)


def link_problems(path):
    problems = []
    text = path.read_text(encoding="utf-8")
    root = os.path.realpath(ROOT)
    for line, target in link_targets(text):
        where = "%s:%d: link %r" % (relative(path), line, target)
        if target.startswith("file:"):
            problems.append(where + " points outside the repository (a file: URL)")
            continue
        if _SCHEME.match(target) or target.startswith("#") or not target:
            continue  # web addresses, in-page anchors
        local = target.split("#", 1)[0].split("?", 1)[0]
        if local.startswith("/"):
            resolved = os.path.realpath(os.path.join(root, local.lstrip("/")))
        else:
            resolved = os.path.realpath(os.path.join(path.parent, local))
        if os.path.commonpath([root, resolved]) != root:
            problems.append(where + " points outside the repository")
        elif not os.path.exists(resolved):
            problems.append(where + " points to %s, which does not exist" % os.path.relpath(resolved, root))
    return problems


@pytest.mark.parametrize("path", markdown_files(), ids=relative)
def test_links_stay_inside_the_repository_and_exist(path):
    problems = link_problems(path)
    assert not problems, "\n".join(problems)


def test_the_checks_catch_what_they_should(tmp_path, monkeypatch):
    """The parser and the link checker on a made-up file (the checks themselves are tested)."""
    text = ("Intro [ok](README.md) and [anchor](#x) and [web](https://openmm.org) `[code](../nowhere)`\n"
            "[out](../outside/DESIGN.md) ![img](docs/missing.png)\n"
            "[ref]: ../../etc/passwd\n"
            "- item\n\n  ```python\n  a = 1\n  ```\n"
            "```bash\n[x](../in/code)\n```\n"
            "~~~python title\nb = a + 1\n~~~\n")
    blocks = fenced_blocks(text)
    assert [(language, code) for language, _, code in blocks] == [("python", "a = 1\n"), ("bash", "[x](../in/code)\n"),
                                                                  ("python", "b = a + 1\n")]
    fake = ROOT / "README.md"
    monkeypatch.setattr(pathlib.Path, "read_text", lambda self, encoding=None: text)
    problems = "\n".join(link_problems(fake))
    assert "'../outside/DESIGN.md' points outside" in problems
    assert "'../../etc/passwd' points outside" in problems
    assert "'docs/missing.png' points to docs/missing.png, which does not exist" in problems
    for fine in ("'README.md'", "#x", "openmm.org", "../nowhere", "../in/code"):
        assert fine not in problems
