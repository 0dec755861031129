"""Every help text reaches the reader whole.

Typer renders help through rich, where `[word ...]` is a style tag: "tensor-parallel GPUs
[all visible]" printed as "tensor-parallel GPUs ." This walks every command and option of
the app and refuses any help text that rich would eat part of."""

from __future__ import annotations

import re

import typer.main

from longwrite.cli.app import app

RICH_TAG = re.compile(r"(?<!\\)\[[a-z#/@][^\[\]]*\]")  # what rich.markup takes for a tag


def walk(command, path=()):
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from walk(sub, (*path, name))


def test_no_help_text_is_eaten_by_rich_markup():
    root = typer.main.get_command(app)
    eaten = []
    seen = 0
    for path, command in walk(root):
        texts = [("(command)", command.help or "")]
        texts += [(p.name, getattr(p, "help", None) or "") for p in command.params]
        for name, text in texts:
            seen += 1
            eaten += [f"{' '.join(path)} {name}: {m}" for m in RICH_TAG.findall(text)]
    assert seen > 100  # every command and option was looked at
    assert eaten == []
