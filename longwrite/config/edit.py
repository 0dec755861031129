"""Changing the config file: `config set KEY VALUE`, `config unset KEY`, `config edit`.

The file is the user's: a change touches one key and keeps the rest as written (comments,
order, blank lines), which is what tomlkit is for. What `set` and `edit` would write is
checked by the schema first and written atomically, so a mistake never replaces a working
file. `unset` removes whatever is there, a key the schema does not know included: that is how
an unknown key is taken out of a file every command refuses.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from longwrite.config.file import ConfigError, parse, read_text
from longwrite.config.keys import SERVERS

TEMPLATE = """\
# longwrite's config file: defaults for every command (a flag or a LONGWRITE_* variable
# wins over a key here). `longwrite config` shows each setting and where it comes from.
# The API key is never written here: api_key_env names the variable that holds it.
#
# server = "gpu"                  # a URL, or the name of a [servers.NAME] table
# model = "longwriter-zero"
# thinking = "show"
#
# [servers.gpu]
# url = "http://gpu-box:8000/v1"
# api_key_env = "GPU_BOX_KEY"
"""


def _document(path: Path) -> Any:
    import tomlkit

    text = read_text(path) or ""
    parse(text, path)  # a syntax error is said the way every command says it
    return tomlkit.parse(text)


def _write(path: Path, text: str) -> None:
    from longwrite.io.files import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        atomic_write_text(path, text)
    except OSError as e:
        raise ConfigError(f"cannot write the config file {path}: {e.strerror or e}") from None


def _servers(doc: Any) -> list[str]:
    table = doc.get(SERVERS)
    return list(table) if isinstance(table, dict) else []


def set_key(path: Path, key: str, text: str) -> Any:
    """Set `key` to VALUE `text` (as the key's type) in the file at `path`, created if need
    be; returns the value written."""
    import tomlkit

    from longwrite.config.schema import check, parse_value

    doc = _document(path)
    value = parse_value(key, text, path, _servers(doc))
    *tables, leaf = key.split(".")
    node = doc
    for depth, name in enumerate(tables):
        child = node.get(name)
        if not isinstance(child, dict):
            child = tomlkit.table(is_super_table=depth == 0 and name == SERVERS)
            node[name] = child
        node = child
    node[leaf] = value
    new = tomlkit.dumps(doc)
    check(tomllib.loads(new), path)
    _write(path, new)
    return value


def unset_key(path: Path, key: str) -> bool:
    """Remove `key` (a value or a whole table) from the file; False when it was not there."""
    import tomlkit

    doc = _document(path)
    *tables, leaf = key.split(".")
    node = doc
    for name in tables:
        node = node.get(name) if isinstance(node, dict) else None
    if not isinstance(node, dict) or leaf not in node:
        return False
    del node[leaf]
    for depth in range(len(tables), 0, -1):  # a table left empty goes too
        parent = doc
        for name in tables[: depth - 1]:
            parent = parent[name]
        if len(parent[tables[depth - 1]]) == 0:
            del parent[tables[depth - 1]]
    _write(path, tomlkit.dumps(doc))
    return True


def editor() -> list[str]:
    """The user's editor command ($VISUAL, then $EDITOR, then vi), split like a shell would."""
    import shlex

    command = os.environ.get("VISUAL", "").strip() or os.environ.get("EDITOR", "").strip() or "vi"
    return shlex.split(command)


def check_text(text: str, path: Path) -> None:
    """What `config edit` saved, checked as a file at `path` would be."""
    from longwrite.config.schema import check

    data = parse(text, path)
    if data:
        check(data, path)


def save(path: Path, text: str) -> None:
    _write(path, text)
