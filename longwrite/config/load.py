"""The config file's settings as a command reads them: found, parsed, checked, split into
values by dotted key and the named servers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from longwrite.config.file import config_path, flatten, parse, read_text
from longwrite.config.keys import SERVERS


@dataclass(frozen=True)
class Config:
    """The settings of one file: `values` by dotted key, `servers` by name."""

    path: Path
    exists: bool
    values: dict[str, Any] = field(default_factory=dict)
    servers: dict[str, dict[str, str]] = field(default_factory=dict)


def load(path: Path | None = None) -> Config:
    """The config file at `path` (default: `config_path()`), read and checked."""
    path = config_path() if path is None else path
    text = read_text(path)
    if text is None:
        return Config(path, exists=False)
    data = parse(text, path)
    if data:
        from longwrite.config.schema import check

        check(data, path)
    servers = data.pop(SERVERS, None) or {}
    return Config(path, exists=True, values=flatten(data), servers=servers)
