"""The one schema of the config file: the declared keys (`config.keys`), their types, nothing
else.

pydantic models built from the registry, strict as the training recipes are (`rl/schema.py`):
a key the schema does not know is an error that names the nearest one (`temprature` ->
`temperature`), and so is a value of another type (`"0.7"` is not a number, `1` is not
`true`; an integer is a good number). Only the first fault is said, in one line that names
the file and the key. The file never holds the API key: `api_key_env` must be the NAME of an
environment variable, and a value that is none is refused without being echoed (it may be
the key itself). pydantic is imported here only, and only when there is a file to check.
"""

from __future__ import annotations

import difflib
import functools
import re
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from longwrite.config.file import ConfigError
from longwrite.config.keys import KEYS, SERVER_FIELDS, SERVERS, Key
from longwrite.errors import quoted

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SERVER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
SECRET_WORDS = ("api_key", "key", "token", "secret", "password")  # keys that would hold one
_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


def _sections() -> dict[str, list[Key]]:
    """The declared keys by table: "" for the top level, else `judge`, `export`, ..."""
    out: dict[str, list[Key]] = {}
    for key in KEYS.values():
        head, _, _ = key.name.rpartition(".")
        out.setdefault(head, []).append(key)
    return out


@functools.cache
def _model() -> type[BaseModel]:
    server = create_model(
        "Server", __config__=_STRICT, url=(str, ...), api_key_env=(str | None, None)
    )
    tables: dict[str, Any] = {}
    for head, keys in _sections().items():
        fields = {k.name.rpartition(".")[2]: (k.value_type | None, None) for k in keys}
        if head:
            tables[head] = (create_model(f"Table_{head}", __config__=_STRICT, **fields) | None,
                            None)  # fmt: skip
        else:
            tables.update(fields)
    tables[SERVERS] = (dict[str, server] | None, None)
    return create_model("Config", __config__=_STRICT, **tables)


def key_names(servers: typing.Iterable[str] = ()) -> list[str]:
    """Every key a file may set: the declared ones, the fields of the named servers."""
    names = list(KEYS)
    for name in [*servers, "NAME"]:
        names += [f"{SERVERS}.{name}.{field}" for field in SERVER_FIELDS]
    return names


def nearest(key: str, servers: typing.Iterable[str] = ()) -> str:
    """' (did you mean 'x'?)' for the known key closest to `key`: one with the same last
    part, else a close last part in the same table, else in any (a key written below a
    [table] header belongs to that table), else the closest whole key however far."""
    candidates = [c for c in key_names(servers) if ".NAME." not in c]
    table, _, leaf = key.rpartition(".")
    found = next((c for c in candidates if c.rpartition(".")[2] == leaf), None)
    for pool in ([c for c in candidates if c.rpartition(".")[0] == table], candidates):
        if found is None:
            leaves = {c.rpartition(".")[2]: c for c in reversed(pool)}
            match = difflib.get_close_matches(leaf, list(leaves), n=1, cutoff=0.75)
            found = leaves[match[0]] if match else None
    if found is not None and table and "." not in found:
        return f" (did you mean '{found}'? a key of the top level goes above the first [table])"
    close = [found] if found else difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    if close:
        return f" (did you mean '{close[0]}'?)"
    ranked = sorted(candidates, key=lambda c: -difflib.SequenceMatcher(None, key, c).ratio())
    return f" (the nearest key is '{ranked[0]}'; `longwrite config` lists them all)"


def _key_of(loc: tuple[Any, ...]) -> str:
    """pydantic's location of a fault -> the dotted key (dropping a union's member names)."""
    parts = [str(p) for p in loc]
    if parts[0] == SERVERS:
        return ".".join(parts[:3])
    if parts[0] in _sections() and parts[0]:
        return ".".join(parts[:2])
    return parts[0]


def describe(tp: Any) -> str:
    """What a value of type `tp` is, in words."""
    if typing.get_origin(tp) is typing.Literal:
        return "one of " + ", ".join(map(str, typing.get_args(tp)))
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if tp in names:
        return names[tp]
    members = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) is list:
        return f"a list of {describe(members[0]).removeprefix('a ')}s"
    if members:
        return " or ".join(describe(m) for m in members)
    return "a table"


def _expected(key: str) -> str:
    if key in KEYS:
        return describe(KEYS[key].value_type)
    if key.startswith(f"{SERVERS}.") and key.count(".") == 2:
        return "a string"
    return f"a table ([{key}])"


def _fault(error: ValidationError, path: Path, data: dict[str, Any]) -> ConfigError:
    faults = error.errors()
    first = min(faults, key=lambda f: f["type"] != "extra_forbidden")
    key = _key_of(first["loc"])
    servers = list(data.get(SERVERS) or {}) if isinstance(data.get(SERVERS), dict) else []
    if first["type"] == "extra_forbidden":
        if key.rpartition(".")[2] in SECRET_WORDS:
            return ConfigError(
                f"{path}: {key}: the file never holds the API key; set api_key_env to the name "
                "of the environment variable that holds it"
            )
        return ConfigError(f"{path}: unknown key '{key}'{nearest(key, servers)}")
    if first["type"] == "missing":
        return ConfigError(f"{path}: {key} is missing: a named server needs its url")
    shown = "" if key.endswith("api_key_env") else f", not {quoted(first['input'])}"
    return ConfigError(f"{path}: {key}: expected {_expected(key)}{shown}")


def check(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """`data` (a parsed file) if the schema takes it; else the `ConfigError` of its first
    fault, naming `path` and the key."""
    try:
        _model().model_validate(data)
    except ValidationError as e:
        raise _fault(e, path, data) from None
    for name, server in (data.get(SERVERS) or {}).items():
        if not SERVER_NAME.fullmatch(name):
            raise ConfigError(
                f"{path}: [servers.{name}]: a server's name is letters, digits, - and _ "
                "(it is typed as --server NAME)"
            )
        _check_env_name(server.get("api_key_env"), f"servers.{name}.api_key_env", path)
    _check_env_name(data.get("api_key_env"), "api_key_env", path)
    return data


def _check_env_name(value: str | None, key: str, path: Path) -> None:
    if value is not None and not ENV_NAME.fullmatch(value):  # never echoed: it may be a key
        raise ConfigError(
            f"{path}: {key} must be the NAME of an environment variable (letters, digits, _), "
            "not the key itself"
        )


def parse_value(key: str, text: str, path: Path, servers: typing.Iterable[str] = ()) -> Any:
    """`config set KEY VALUE`: the text of VALUE as the key's type (checked again with the
    whole file afterwards)."""
    if key in KEYS:
        tp = KEYS[key].value_type
    elif key.startswith(f"{SERVERS}.") and key.count(".") == 2:
        field = key.rpartition(".")[2]
        if field not in SERVER_FIELDS:
            raise ConfigError(f"{path}: unknown key '{key}'{nearest(key, servers)}")
        tp = str
    else:
        raise ConfigError(f"{path}: unknown key '{key}'{nearest(key, servers)}")
    return _as_type(key, text, tp)


def _as_type(key: str, text: str, tp: Any) -> Any:
    value = text.strip()
    bad = ConfigError(f"{key}: expected {describe(tp)}, not {quoted(text)}")
    if tp is bool:
        words = {"true": True, "yes": True, "on": True, "1": True,
                 "false": False, "no": False, "off": False, "0": False}  # fmt: skip
        if value.lower() not in words:
            raise bad
        return words[value.lower()]
    if tp in (int, float):
        try:
            return tp(value)
        except ValueError:
            raise bad from None
    if typing.get_origin(tp) is typing.Literal:
        if value not in map(str, typing.get_args(tp)):
            raise bad
        return value
    members = typing.get_args(tp)
    if any(typing.get_origin(m) is list for m in members) and "," in value:
        return [part.strip() for part in value.split(",") if part.strip()]
    return value
