"""Every help text reaches the reader whole.

Typer renders help through rich, where `[word ...]` is a style tag: "tensor-parallel GPUs
[all visible]" printed as "tensor-parallel GPUs ." This walks every command and option of
the app and refuses any help text that rich would eat part of."""

from __future__ import annotations

import re

import typer.main

from longwrite.cli import options as opt
from longwrite.cli.app import app, command

RICH_TAG = re.compile(r"(?<!\\)\[[a-z#/@][^\[\]]*\]")  # what rich.markup takes for a tag


def walk(command, path=()):
    """Every command of the tree, the lazily imported ones built (`cli/lazy.py`)."""
    yield path, command
    for name in command.list_commands(None) if hasattr(command, "list_commands") else ():
        yield from walk(command.get_command(None, name), (*path, name))


def test_no_help_text_is_eaten_by_rich_markup():
    root = typer.main.get_command(app)
    eaten = []
    seen = 0
    for path, cmd in walk(root):
        texts = [("(command)", cmd.help or "")]
        texts += [(p.name, getattr(p, "help", None) or "") for p in cmd.params]
        for name, text in texts:
            seen += 1
            eaten += [f"{' '.join(path)} {name}: {m}" for m in RICH_TAG.findall(text)]
    assert seen > 100  # every command and option was looked at
    assert eaten == []


TYPE_LABEL = re.compile(r"<(bool|int|float|str|path|text|integer)>|list\[")


def rendered(path: tuple[str, ...]) -> str:
    """`longwrite PATH --help` as a user sees it (in process, 200 columns)."""
    import contextlib
    import io
    import os

    from longwrite.cli.app import command

    out = io.StringIO()
    before = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "200"
    try:
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            command().main(args=[*path, "--help"], prog_name="longwrite", standalone_mode=False)
    finally:
        os.environ.pop("COLUMNS")
        if before is not None:
            os.environ["COLUMNS"] = before
    return out.getvalue()


def test_no_option_shows_a_type_where_a_value_goes():
    """A switch shows no value (`--no-think`, not `--no-think <bool>`), an option a word for
    its value (`--words N`, `--server URL|NAME`), never a Python type."""
    root = command()
    shown = []
    for path, cmd in walk(root):
        text = rendered(path)
        assert "--help" in text, path
        rows = [line for line in text.splitlines() if re.match(r"[│|]\s+-", line)]
        assert rows or not [p for p in cmd.params if p.param_type_name == "option"], path
        shown += [f"{' '.join(path)}: {row.strip()}" for row in rows if TYPE_LABEL.search(row)]
    assert shown == []


def test_every_switch_has_no_metavar_and_every_repeatable_option_says_so():
    flags = repeatable = 0
    for path, cmd in walk(command()):
        for p in cmd.params:
            if getattr(p, "is_flag", False):
                flags += 1
                assert p.metavar == "", (path, p.name)
            if getattr(p, "multiple", False):
                repeatable += 1
                assert "repeat" in (p.help or "").lower(), (path, p.name)
    assert flags > 20 and repeatable >= 3


def test_a_shared_option_is_one_declaration():
    """`longwrite` and `batch` show the same help, default and variable for each option they
    share, and every variable an option reads is a key of the config file."""
    from longwrite.config.keys import KEYS

    root = command()
    write, batch = root.get_command(None, "write"), root.get_command(None, "batch")
    mine = {p.name: p for p in write.params}
    own = ("output", "export_format")  # each command's own -o and --format
    shared = [p for p in batch.params if p.name in mine and p.name not in own]
    assert len(shared) >= 20
    for p in shared:
        q = mine[p.name]
        assert (p.help, p.default, p.envvar, p.opts) == (q.help, q.default, q.envvar, q.opts)
    envs = {k.env for k in KEYS.values()}
    for _, cmd in walk(root):
        for p in cmd.params:
            if isinstance(p.envvar, str) and p.envvar.startswith("LONGWRITE_"):
                assert p.envvar in envs, p.name


def test_a_default_given_twice_differently_is_refused():
    import pytest

    def command_with(temperature: opt.Temperature = 0.9) -> None: ...

    with pytest.raises(TypeError, match="temperature = 0.9 in the signature"):
        opt.declared(command_with)


def _probe(code: str) -> str:
    """What `code` prints in a fresh interpreter (nothing of this one's imports)."""
    import subprocess
    import sys
    import textwrap

    run = [sys.executable, "-c", textwrap.dedent(code)]
    return subprocess.run(run, capture_output=True, text=True, check=True).stdout


def test_the_config_file_knows_every_key_before_a_subcommand_is_imported():
    """Subcommands are imported when used (`cli/lazy.py`); a setting declared in one of them
    would be an unknown key to the file until then. Every key is declared at start-up."""
    out = _probe("""
        import longwrite.cli.app
        from longwrite.cli.lazy import LAZY, build
        from longwrite.config.keys import KEYS
        before = set(KEYS)
        for name, lazy in LAZY.items():
            build(name, lazy)
        print(len(before), sorted(set(KEYS) - before))
    """)
    count, late = out.strip().split(" ", 1)
    assert late == "[]" and int(count) > 30


def test_subcommands_are_imported_when_used_and_listed_without_it():
    """`longwrite --help` lists every subcommand without importing their modules; asking for
    one by name builds it, with its own help."""
    from longwrite.cli.lazy import LAZY

    out = _probe("""
        import contextlib, io, sys
        from longwrite.cli import app
        shown = io.StringIO()
        with contextlib.redirect_stdout(shown):
            try:
                app.main(["--help"])
            except SystemExit:
                pass
        print(sorted(m for m in sys.modules if m.startswith("longwrite.")))
        print(shown.getvalue())
    """)
    modules, shown = out.split("\n", 1)
    for name, lazy in LAZY.items():
        module = lazy.target.split(":")[0]
        if module != "longwrite.cli.completion":  # the options' completers live there
            assert f"'{module}'" not in modules, name
        assert f"│ {name} " in shown, name
    root = command()
    for name, lazy in LAZY.items():
        sub = root.get_command(None, name)
        assert sub is not None and sub.name == name
        assert " ".join((sub.help or "").split()) == " ".join(lazy.help.split()), name
