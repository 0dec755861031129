"""The docs stay true: every example is one the command accepts, marked ones run, links resolve.

- Every `longwrite ...` line of every shell example in README.md and docs/*.md is parsed by
  the real command line (click's parser, as `longwrite` routes its first word), so a renamed
  or removed option or command can never leave a stale example.
- Blocks marked `<!-- runs -->` (the line before the fence) are run for real, in order, in a
  fresh folder, run log and config file, against a scripted model server
  (tests/section_server.py) as `LONGWRITE_SERVER` (`> FILE` writes stdout there, `EDITOR` is
  `true`): every command must exit 0. Python blocks so marked are run with the server's URL in
  place of `http://127.0.0.1:8000`. The others need a GPU (`serve`, `rl train` on GPUs), hosts
  named for the example (`http://gpu1:8000`), earlier runs with the ids shown, or files of the
  reader's: they are parsed, not run.
- Every relative link between README.md and docs/ names a file that exists and, after `#`, a
  heading it has.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from longwrite.cli.app import SUBCOMMANDS, app, route
from tests.section_server import SectionServer

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"(<!-- runs -->\n)?```(sh|python)\n(.*?)```", re.S)
STOPS = {"|", ">", ">>", "<", "&&", "||", ";", "2>", "2>&1", "&"}


def blocks(kind: str) -> list[tuple[Path, bool, str]]:
    """(page, marked to run, text) of each `kind` code block."""
    out = []
    for page in PAGES:
        for m in FENCE.finditer(page.read_text(encoding="utf-8")):
            if m.group(2) == kind:
                out.append((page, bool(m.group(1)), m.group(3)))
    return out


def commands(text: str) -> list[list[str]]:
    """The `longwrite` command lines of a shell block, as argument lists (continuation lines
    joined, comments, redirections and pipes left out)."""
    return [args for args, _ in command_lines(text)]


def command_lines(text: str) -> list[tuple[list[str], str | None]]:
    """(arguments, the file `>` sends stdout to) of each `longwrite` line of a shell block."""
    joined = re.sub(r"\\\n\s*", " ", text)
    out = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        while words and "=" in words[0] and not words[0].startswith("-"):
            words = words[1:]  # VAR=value before the command
        if not words or Path(words[0]).name != "longwrite":
            continue
        args, into = [], None
        for i, w in enumerate(words[1:]):
            if w in STOPS:
                if w == ">" and i + 2 < len(words):
                    into = words[i + 2]
                break
            args.append(w)
        out.append((args, into))
    return out


EXAMPLES = [(p, args) for p, _, text in blocks("sh") for args in commands(text)]


def test_the_docs_hold_examples_of_every_command():
    used = {args[0] for _, args in EXAMPLES if args and args[0] in SUBCOMMANDS}
    assert {"continue", "logs", "batch", "eval", "revise", "export", "doctor"} <= used
    assert len(EXAMPLES) > 60


def _parse(args: list[str]) -> None:
    """Parse `args` as `longwrite` would: its first word routed (a prompt goes to `write`),
    groups walked by name (`logs show`, `eval length`), the command's own options parsed."""
    args = route(args)  # as `main` routes its first word (a prompt goes to `write`)
    command, name = typer.main.get_command(app), "longwrite"
    while getattr(command, "commands", None) and args and not args[0].startswith("-"):
        sub = command.get_command(None, args[0])
        assert sub is not None, f"no command {args[0]!r} under {name}"
        command, name, args = sub, args[0], args[1:]
    command.make_context(name, list(args))


@pytest.mark.parametrize(
    ("page", "args"), EXAMPLES, ids=[f"{p.name}: {' '.join(a)[:50]}" for p, a in EXAMPLES]
)
def test_every_example_is_one_the_command_accepts(page, args):
    if {"--help", "-h", "--version"} & set(args):
        return  # the parser exits on these: nothing more to check
    try:
        _parse(args)
    except (typer.Exit, typer.Abort):
        pass
    except typer.TyperException as e:  # the parser's usage errors
        pytest.fail(f"{page.name}: `longwrite {' '.join(args)}`: {e.format_message()}")


@pytest.mark.slow
def test_the_marked_shell_examples_run(tmp_path):
    marked = [(page, text) for page, runs, text in blocks("sh") if runs]
    assert len(marked) >= 3, "the marked shell examples are gone"
    with SectionServer() as server:
        env = {**os.environ, "LONGWRITE_SERVER": server.url, "LONGWRITE_HOME": str(tmp_path / "h"),
               "LONGWRITE_NO_LOG": "", "EDITOR": "true", "VISUAL": "true",
               "LONGWRITE_CONFIG": str(tmp_path / "config.toml")}  # fmt: skip
        for page, text in marked:
            for args, into in command_lines(text):
                argv = [sys.executable, "-m", "longwrite", *args]
                proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True,
                                      timeout=300, env=env)  # fmt: skip
                assert proc.returncode == 0, (page.name, args, proc.stderr[-800:])
                if into is not None:  # `> FILE`, as the shell would
                    (tmp_path / into).write_text(proc.stdout, encoding="utf-8")


@pytest.mark.slow
def test_the_marked_python_examples_run(tmp_path):
    marked = [(page, text) for page, runs, text in blocks("python") if runs]
    assert marked, "no Python example is marked <!-- runs -->"
    with SectionServer() as server:
        for page, text in marked:
            code = text.replace("http://127.0.0.1:8000", server.url)
            env = {**os.environ, "LONGWRITE_HOME": str(tmp_path / "h")}
            proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                                  text=True, timeout=300, env=env)  # fmt: skip
            assert proc.returncode == 0, (page.name, proc.stderr[-800:])
            assert proc.stdout.strip(), page.name


def slug(heading: str) -> str:
    """The anchor a forge gives a heading: lower case, punctuation dropped, spaces as '-'."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", text, re.M)}


def test_every_relative_link_resolves():
    bad = []
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # http(s), mailto: not ours to check offline
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                bad.append(f"{page.name}: {target} (no such file)")
            elif anchor and file.suffix == ".md" and anchor not in anchors(file):
                bad.append(f"{page.name}: {target} (no such heading)")
    assert not bad, bad


def test_the_readme_is_a_short_way_in():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"(docs/{page.name})" in readme, f"README does not lead to {page.name}"
