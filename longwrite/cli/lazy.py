"""Subcommands imported when they are used, not whenever `longwrite` starts.

Why: every call pays the start-up before anything else happens, and importing the thirteen
subcommand modules and building their click commands (typer reads every signature) was a
quarter of `longwrite --help` and of every `longwrite PROMPT`. The root group knows each
subcommand by its name and one-line help (`LAZY`, declared in `cli/app.py`), so the root's
help lists them without importing any; the module is imported and its command built the
first time click asks for it by name (to run it, to complete its options, or for its own
`--help`), and `readable` is applied to it then, as to the rest of the tree.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup


@dataclass(frozen=True)
class Lazy:
    """A subcommand: `target` ("module:name") is a command function, or with `group` a
    `typer.Typer` of its own; `setup` runs on that object once it is imported."""

    target: str
    help: str
    group: bool = False
    context_settings: dict[str, Any] = field(default_factory=dict)
    setup: Callable[[Any], None] | None = None


LAZY: dict[str, Lazy] = {}  # name -> subcommand; the root's help lists commands, then groups
CONTEXT: dict[str, Any] = {"help_option_names": ["-h", "--help"]}  # every command's settings


def build(name: str, lazy: Lazy) -> Any:
    """The click command of subcommand `name`, its module imported now."""
    from longwrite.cli.readable import readable

    module, attr = lazy.target.split(":")
    obj = getattr(importlib.import_module(module), attr)
    if lazy.setup is not None:
        lazy.setup(obj)
    holder = typer.Typer(
        add_completion=False, pretty_exceptions_enable=False, context_settings=CONTEXT
    )
    if lazy.group:
        holder.add_typer(obj, name=name, help=lazy.help, context_settings=CONTEXT)
        command = typer.main.get_command(holder).commands[name]
    else:
        settings = {**CONTEXT, **lazy.context_settings}
        holder.command(name, help=lazy.help, context_settings=settings)(obj)
        command = typer.main.get_command(holder)
    return readable(command)


class LazyGroup(TyperGroup):
    """The root group: its own commands, then the `LAZY` ones, each built when first asked
    for; while the root's help is written, a stand-in with the name and help is enough."""

    _listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        names = list(super().list_commands(ctx))
        later = [n for n, lazy in LAZY.items() if n not in names]
        return names + sorted(later, key=lambda n: LAZY[n].group)  # stable: commands first

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands and cmd_name in LAZY:
            if self._listing:
                return TyperCommand(name=cmd_name, help=LAZY[cmd_name].help)
            self.commands[cmd_name] = build(cmd_name, LAZY[cmd_name])
        return super().get_command(ctx, cmd_name)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False
