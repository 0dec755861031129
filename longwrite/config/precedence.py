"""Flag > environment > config file > built-in default, for every setting of every command.

click already ranks the sources of an option's value this way: the command line, then the
option's `envvar`, then the context's `default_map`, then its default (`ParameterSource`).
So each declared option carries its variable (`cli/options.py`), and the file's values are
handed to click as the `default_map` of the command tree: every option whose variable is a
declared key's, in every command and subcommand, gets that key's value. One walk of the
tree, no per-command code, and a command added later takes its keys from its declarations.

Help shows each default as it will apply: an option whose value comes from the environment
or the file says so in its `[default: ...]` (`note_sources`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from longwrite.config.keys import KEYS, Key

ENVIRONMENT, FILE, DEFAULT = "environment", "config file", "default"


def by_env() -> dict[str, Key]:
    return {k.env: k for k in KEYS.values() if k.env}


def from_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The declared keys set in the environment (a blank variable is unset), by key."""
    env = os.environ if environ is None else environ
    return {k.name: env[k.env] for k in KEYS.values() if k.env and env.get(k.env, "").strip()}


def _walk(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in (getattr(command, "commands", None) or {}).items():
        yield from _walk(sub, (*path, name))


def keyed_params(root: Any) -> Iterator[tuple[tuple[str, ...], Any, Key]]:
    """(the command's path, the option, its key) for each option that reads a key."""
    keys = by_env()
    for path, command in _walk(root):
        for param in command.params:
            key = keys.get(param.envvar) if isinstance(param.envvar, str) else None
            if key is not None:
                yield path, param, key


def _fit(param: Any, value: Any) -> Any:
    """A value of the file as the option takes it: a list for a repeatable one."""
    if getattr(param, "multiple", False):
        return list(value) if isinstance(value, list) else [value]
    return value[0] if isinstance(value, list) and value else value


def default_map(root: Any, values: Mapping[str, Any]) -> dict[str, Any]:
    """click's `default_map` for the tree under `root`: the file's `values` (by key) placed
    under each command path whose options read them."""
    out: dict[str, Any] = {}
    for path, param, key in keyed_params(root):
        if key.name not in values:
            continue
        node = out
        for name in path:
            node = node.setdefault(name, {})
        node[param.name] = _fit(param, values[key.name])
    return out


def shown(param: Any, value: Any) -> str:
    """A value as help shows it: `--no-think` for a switch, lists joined with commas."""
    if isinstance(value, bool) and getattr(param, "is_flag", False):
        secondary = getattr(param, "secondary_opts", None) or []
        if value:
            return param.opts[-1]
        return secondary[-1] if secondary else "off"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


def note_sources(root: Any, values: Mapping[str, Any], env: Mapping[str, str]) -> None:
    """Make help say where a default that is not built in comes from: each option whose key
    is set in the environment (`env`, by key) or the file (`values`) shows that value."""
    for _, param, key in keyed_params(root):
        if key.name in env:
            param.show_default = f"{env[key.name]} from {key.env}"
        elif key.name in values:
            param.show_default = f"{shown(param, values[key.name])} from the config file"


@dataclass(frozen=True)
class Effective:
    """One row of `longwrite config`: a key, the value it has now and where it comes from."""

    key: Key
    value: Any
    source: str  # ENVIRONMENT, FILE or DEFAULT


def effective(
    values: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> list[Effective]:
    """Every declared key with the value a command would take when no flag is given."""
    env = from_env(environ)
    rows = []
    for name in sorted(KEYS):
        key = KEYS[name]
        if name in env:
            rows.append(Effective(key, env[name], ENVIRONMENT))
        elif name in values:
            rows.append(Effective(key, values[name], FILE))
        else:
            rows.append(Effective(key, key.default, DEFAULT))
    return rows
