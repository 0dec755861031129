"""Where the config file is, and reading it with the standard library alone.

`LONGWRITE_CONFIG` names the file; else it is `$XDG_CONFIG_HOME/longwrite/config.toml`, and
`~/.config/longwrite/config.toml` without that variable, on every platform (one place to
document, where aichat, mods and the like keep theirs). A file that does not exist is no
config: every command runs on its defaults. Reading is `tomllib` (cheap, so a command that
finds no file pays nothing); the schema, which needs pydantic, checks what was read only when
there is a file (`config.schema`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from longwrite.errors import LongwriteError, one_line

ENV_CONFIG = "LONGWRITE_CONFIG"
MAX_BYTES = 1 << 20  # a config file is a few lines; a larger one is a mistake, not a config


class ConfigError(LongwriteError):
    """A config file that cannot be read or breaks the schema: one line, exit 2."""


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """The config file this process reads (it may not exist)."""
    env = os.environ if environ is None else environ
    named = env.get(ENV_CONFIG, "").strip()
    if named:
        return Path(named).expanduser()
    base = env.get("XDG_CONFIG_HOME", "").strip() or os.path.join("~", ".config")
    return Path(base).expanduser() / "longwrite" / "config.toml"


def read_text(path: Path) -> str | None:
    """The file's text, or None when there is no file; a file that cannot be read (a
    folder, no permission, not UTF-8, absurdly large) is a `ConfigError`."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ConfigError(
            f"cannot read the config file {path}: {e.strerror or one_line(e)}"
        ) from None
    if len(raw) > MAX_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_BYTES >> 20} MiB: not a config file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start})") from None


def parse(text: str, path: Path) -> dict[str, Any]:
    """TOML text as a dict; a syntax error is one line with its place."""
    import tomllib

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {one_line(e)}") from None
    except RecursionError:  # arrays nested thousands deep
        raise ConfigError(f"{path}: not valid TOML: nested too deeply") from None


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"judge": {"url": u}}` -> `{"judge.url": u}`: the dotted keys and their values.

    >>> flatten({"model": "m", "judge": {"url": "u"}, "servers": {"gpu": {"url": "g"}}})
    {'model': 'm', 'judge.url': 'u', 'servers.gpu.url': 'g'}
    """
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
