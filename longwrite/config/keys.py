"""The keys a config file may set, one `Key` each, declared where their option is.

A setting has four faces: the option a command takes, its built-in default, its key in the
config file and its environment variable. They are declared together, once, by the option
(`cli/options.py` calls `declare`): the key is the option's name (`--top-p` is `top_p`, a
judge's URL `judge.url`), the variable `LONGWRITE_` and the key in capitals (`.` as `_`).
This module is only the registry and the keys that are no option (the variable that holds
the API key, the named servers), so that the schema and `longwrite config` can list every
key without importing a command, and reading the registry costs nothing at start-up.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any

ENV_PREFIX = "LONGWRITE_"
SERVERS = "servers"  # [servers.NAME] tables: url, api_key_env
SERVER_FIELDS = ("url", "api_key_env")


@dataclass(frozen=True)
class Key:
    """One setting: its dotted `name`, the type of its value, its built-in default (None:
    unset, the command decides), its environment variable and one line about it."""

    name: str
    annotation: Any
    default: Any
    env: str | None
    about: str

    @property
    def value_type(self) -> Any:
        """The type a config file must give (`X | None` is X: a file leaves a key out)."""
        args = [a for a in typing.get_args(self.annotation) if a is not type(None)]
        if typing.get_origin(self.annotation) in (typing.Union, types.UnionType) and args:
            return args[0] if len(args) == 1 else typing.Union[tuple(args)]  # noqa: UP007
        return self.annotation


KEYS: dict[str, Key] = {}


def env_name(name: str) -> str:
    """`judge.url` -> `LONGWRITE_JUDGE_URL`."""
    return ENV_PREFIX + name.upper().replace(".", "_").replace("-", "_")


def declare(name: str, annotation: Any, default: Any, about: str, *, env: bool = True) -> Key:
    """Register `name` (once: a second declaration must be the same key)."""
    key = Key(name, annotation, default, env_name(name) if env else None, about)
    known = KEYS.setdefault(name, key)
    if known != key:
        raise TypeError(f"config key {name!r} is declared twice, differently")
    return key


declare(
    "api_key_env",
    str,
    None,
    "the NAME of the environment variable that holds the API key (never the key itself)",
    env=False,  # its environment is LONGWRITE_API_KEY itself, the key
)


def names() -> list[str]:
    """Every key a file may set, sorted, with one `servers.NAME.FIELD` pattern per field."""
    return sorted([*KEYS, *(f"{SERVERS}.NAME.{f}" for f in SERVER_FIELDS)])
