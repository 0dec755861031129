"""Declaring an option once: its flags, help, built-in default, config key and variable.

`setting(key, type, default, "--flag", help=...)` returns the `Annotated` type a command's
parameter takes; `key` is registered as a config key (`config.keys`) with the variable
`LONGWRITE_<KEY>`, and the option reads that variable (click's `envvar`) and shows it in
help. `option(type, default, ...)` is the same for an option no config file sets, and
`argument(...)` for an argument.

typer takes a default only from the signature (`x: T = 1`), which would put it back in every
command that takes the option; so the declaration carries it and `@declared` writes it into
the command's signature. A command lists its shared options after `*`, without defaults:

    @declared
    def write_cmd(prompt: ... = None, *, temperature: opt.Temperature, seed: opt.Seed): ...

A different default written in the signature as well is refused at import (two places
would drift; the same one is merely redundant). Options that always travel together are a
`group` (a shared options object): the command takes one parameter, `engine: opt.Engine`,
and receives what the group builds from its members (an `EngineOptions`), while typer, help
and the config file see each member as the option it is.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from longwrite.config import keys


@dataclass(frozen=True)
class Default:
    """The built-in default of an option no config key sets."""

    value: Any


def setting(
    key: str,
    annotation: Any,
    default: Any,
    *decls: str,
    help: str,
    panel: str | None = None,
    metavar: str | None = None,
    about: str | None = None,
    value_type: Any = None,
    **extra: Any,
) -> Any:
    """An option that the config file (`key`) and `LONGWRITE_<KEY>` can set; `value_type`:
    what the file may give when it is not what the option takes (a lone server for a list)."""
    declared_key = keys.declare(key, value_type or annotation, default, about or help)
    info = typer.Option(
        *decls, help=help, rich_help_panel=panel, metavar=metavar, envvar=declared_key.env,
        show_envvar=True, **extra,
    )  # fmt: skip
    return Annotated[annotation, info, declared_key]


def option(
    annotation: Any,
    default: Any,
    *decls: str,
    help: str,
    panel: str | None = None,
    metavar: str | None = None,
    **extra: Any,
) -> Any:
    """An option shared by several commands that no config file sets."""
    info = typer.Option(*decls, help=help, rich_help_panel=panel, metavar=metavar, **extra)
    return Annotated[annotation, info, Default(default)]


def argument(annotation: Any, default: Any, *, help: str, metavar: str, **extra: Any) -> Any:
    """An argument shared by several commands (a run id)."""
    info = typer.Argument(help=help, metavar=metavar, **extra)
    return Annotated[annotation, info, Default(default)]


_NONE = object()


def default_of(annotation: Any) -> Any:
    """The default an `Annotated` declaration carries, or `_NONE`."""
    for meta in (
        typing.get_args(annotation)[1:] if typing.get_origin(annotation) is Annotated else ()
    ):
        if isinstance(meta, keys.Key):
            return meta.default
        if isinstance(meta, Default):
            return meta.value
    return _NONE


@dataclass(frozen=True)
class Group:
    """Several declared options that a command receives as one value: `build(**values)`."""

    build: Callable[..., Any]
    members: tuple[tuple[str, Any], ...]  # (parameter name, its declaration), in help order


def group(build: Callable[..., Any], **members: Any) -> Any:
    """A shared options object: the command lists one parameter, typer sees every member
    (`@declared` expands it), and the command gets `build(**their values)`."""
    return Annotated[Any, Group(build, tuple(members.items()))]


def _group_of(annotation: Any) -> Group | None:
    metadata = typing.get_args(annotation)[1:] if typing.get_origin(annotation) is Annotated else ()
    return next((m for m in metadata if isinstance(m, Group)), None)


def declared(func: Any) -> Any:
    """Give `func`'s declared options their defaults and expand its option groups, for
    typer to read."""
    hints = typing.get_type_hints(func, include_extras=True)
    signature = inspect.signature(func)
    params, seen, groups = [], {}, {}
    for param in signature.parameters.values():
        annotation = hints.get(param.name, param.annotation)
        found = _group_of(annotation)
        if found is not None:
            groups[param.name] = found
            for name, member in found.members:
                kind = inspect.Parameter.KEYWORD_ONLY
                params.append(inspect.Parameter(name, kind, default=default_of(member),
                                                annotation=member))  # fmt: skip
                seen[name] = member
            continue
        params.append(_with_default(func, param.replace(annotation=annotation)))
        seen[param.name] = annotation
    target = func
    if groups:

        @functools.wraps(func)
        def target(**values: Any) -> Any:
            for name, found in groups.items():
                values[name] = found.build(**{m: values.pop(m) for m, _ in found.members})
            return func(**values)

    target.__signature__ = signature.replace(parameters=params)
    target.__annotations__ = seen  # evaluated once: typer's get_type_hints need not again
    return target


def _with_default(func: Any, param: inspect.Parameter) -> inspect.Parameter:
    default = default_of(param.annotation)
    if default is _NONE:
        return param
    if param.default is not param.empty and param.default != default:
        raise TypeError(
            f"{func.__name__}: {param.name} = {param.default!r} in the signature, but "
            f"{default!r} in its declaration: the declaration's is the default"
        )
    return param.replace(default=default)
