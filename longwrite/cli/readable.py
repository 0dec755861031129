"""Help that reads right, for every option of every command, in one pass over the tree.

typer labels each value with its Python type (`--resume <bool>`, `--set <list[str]>`), which
reads as if a switch took a value and says nothing of what a value is. Once the command tree
is built, `readable` gives a switch no label, any other option that names no metavar a word
for what it takes (N, NUMBER, TEXT, PATH; a declaration names a better one: URL, FILE, K/N),
an argument its name in capitals, and a repeatable option "Repeatable." at the end of its
help. It is one rule for the options there are and for those added later, wherever they are
declared.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

WORDS = {int: "N", float: "NUMBER", str: "TEXT", Path: "PATH"}
CLICK_WORDS = {"integer": "N", "float": "NUMBER", "text": "TEXT", "path": "PATH"}
REPEATABLE = "Repeatable."


def _walk(command: Any) -> Any:
    yield command
    for sub in (getattr(command, "commands", None) or {}).values():
        yield from _walk(sub)


def _word(param: Any) -> str | None:
    """The word for what `param` takes, None for a choice (its choices say it)."""
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is not None:  # typer with its own click
        if descriptor.is_choice:
            return None
        annotation = descriptor.annotation
        inner = getattr(annotation, "__args__", None)
        if descriptor.is_list and inner:
            annotation = inner[0]
        return WORDS.get(annotation, "VALUE")
    kind = getattr(getattr(param, "type", None), "name", "")
    return None if kind == "choice" else CLICK_WORDS.get(kind, "VALUE")


def _help_option(command: Any, names: list[str]) -> list[Any]:
    """The command's own `--help`, which click makes on first use and keeps (a click that
    makes a new one each time also draws a switch without a label)."""
    option = command.get_help_option(command.context_class(command, help_option_names=names))
    return [option] if option is not None else []


def readable(root: Any) -> Any:
    """`root` with every option's metavar and help put right (in place)."""
    names = (getattr(root, "context_settings", None) or {}).get("help_option_names", ["--help"])
    for command in _walk(root):
        for param in [*command.params, *_help_option(command, names)]:
            if getattr(param, "is_flag", False):
                param.metavar = ""  # a switch takes no value
                continue
            if param.metavar is None and param.param_type_name == "argument":
                param.metavar = (param.name or "value").upper()  # its name says what it is
            elif param.metavar is None:
                param.metavar = _word(param)
            if getattr(param, "multiple", False) and "repeat" not in (param.help or "").lower():
                param.help = f"{param.help or ''} {REPEATABLE}".strip()
    return root
