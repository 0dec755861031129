"""`longwrite config`: the settings in effect and where each comes from; `config path`,
`config edit`, `config set KEY VALUE`, `config unset KEY`.

These commands must work on the file that every other command refuses (a typo in a key
stops `longwrite` itself, exit 2), so only the listing reads the file strictly: `path`,
`edit`, `set` and `unset` are how a damaged file is mended. `edit` opens a copy in the
user's editor and puts it in place only once the schema takes it; a copy it refuses is kept
and named, never lost.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from longwrite.config.file import ConfigError, config_path
from longwrite.errors import say

config_app = typer.Typer(invoke_without_command=True, add_completion=False)


def _value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


@config_app.callback()
def config_show(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Show every setting: its value now and where it comes from (the environment, the config
    file or the built-in default); a flag given to a command wins over all three."""
    if ctx.invoked_subcommand is not None:
        return
    from longwrite.config.load import load
    from longwrite.config.precedence import effective
    from longwrite.redact import public_url

    cfg = load()
    rows = effective(cfg.values)
    key_from = _key_source(cfg)
    if as_json:
        report = {
            "path": str(cfg.path),
            "exists": cfg.exists,
            "settings": {
                r.key.name: {"value": r.value, "source": r.source, "env": r.key.env} for r in rows
            },
            "servers": {
                name: {"url": public_url(t["url"]), "api_key_env": t.get("api_key_env")}
                for name, t in cfg.servers.items()
            },
            "api_key": key_from,
        }
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo(f"config file: {cfg.path}" + ("" if cfg.exists else " (none yet)"))
    width = max(len(r.key.name) for r in rows)
    shown = [_value(r.value) for r in rows]
    vwidth = min(40, max(len(v) for v in shown))
    for row, value in zip(rows, shown, strict=True):
        source = row.key.env if row.source == "environment" else row.source
        typer.echo(f"{row.key.name:<{width}}  {value:<{vwidth}}  {source}")
    for name, table in sorted(cfg.servers.items()):
        key = f"  (key: ${table['api_key_env']})" if table.get("api_key_env") else ""
        typer.echo(f"[servers.{name}]  {public_url(table['url'])}{key}")
    typer.echo(f"api key: {key_from}")


def _key_source(cfg: Any) -> str:
    """Where the API key of the servers in effect comes from; never the key."""
    import os

    from longwrite.config.servers import ENV_API_KEY, resolve_all

    if os.environ.get(ENV_API_KEY, "").strip():
        return f"{ENV_API_KEY} (set)"
    given = os.environ.get("LONGWRITE_SERVER", "").split() or cfg.values.get("server") or []
    try:
        servers = resolve_all([given] if isinstance(given, str) else given, cfg.servers,
                              cfg.values.get("api_key_env"))  # fmt: skip
    except ConfigError as e:
        return f"unknown ({e})"
    names = sorted({s.key_env for s in servers if s.key_env})
    if not names and cfg.values.get("api_key_env"):
        names = [cfg.values["api_key_env"]]
    if not names:
        return f"none ({ENV_API_KEY} is not set)"
    state = ", ".join(f"${n} ({'set' if os.environ.get(n, '').strip() else 'NOT set'})"
                      for n in names)  # fmt: skip
    return f"{state}, as the config file says"


@config_app.command("path")
def config_path_cmd() -> None:
    """Print the config file's path (LONGWRITE_CONFIG, else $XDG_CONFIG_HOME/longwrite/)."""
    typer.echo(str(config_path()))


@config_app.command("set")
def config_set(
    key: Annotated[str, typer.Argument(help="A key, as `longwrite config` lists them "
                   "(servers.NAME.url for a named server).", metavar="KEY",
                   autocompletion=_keys)],
    value: Annotated[str, typer.Argument(help="Its value (true/false, a number, text; "
                     "a list: comma-separated).", metavar="VALUE")],
) -> None:  # fmt: skip
    """Set KEY to VALUE in the config file (created if need be; comments kept)."""
    from longwrite.config.edit import set_key

    path = config_path()
    value_set = set_key(path, key, value)
    say(f"{key} = {json.dumps(value_set, ensure_ascii=False)} in {path}")


def _keys(incomplete: str) -> list[str]:
    from longwrite.config.keys import KEYS

    return [k for k in sorted(KEYS) if k.startswith(incomplete)]


@config_app.command("unset")
def config_unset(
    key: Annotated[str, typer.Argument(help="The key (or table, as servers.gpu) to remove.",
                                       metavar="KEY", autocompletion=_keys)],
) -> None:  # fmt: skip
    """Remove KEY from the config file: the default (or the environment) applies again."""
    from longwrite.config.edit import unset_key
    from longwrite.config.file import parse, read_text
    from longwrite.config.schema import key_names, nearest

    path = config_path()
    if unset_key(path, key):
        say(f"{key} removed from {path}")
        return
    servers = list(parse(read_text(path) or "", path).get("servers") or {})
    tables = {name.rpartition(".")[0] for name in key_names(servers)} - {""}
    if key not in key_names(servers) and key not in tables | {"servers"}:
        raise ConfigError(f"{path}: unknown key '{key}'{nearest(key, servers)}")
    say(f"{key} is not set in {path}: nothing to remove")


@config_app.command("edit")
def config_edit() -> None:
    """Open the config file in $VISUAL or $EDITOR; it is saved only once it checks out."""
    import os
    import tempfile

    from longwrite.config.edit import TEMPLATE, check_text, save
    from longwrite.config.file import read_text

    path = config_path()
    before = read_text(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".toml", dir=path.parent)
    copy = Path(name)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(before if before is not None else TEMPLATE)
    while True:
        _run_editor(copy)
        text = read_text(copy) or ""
        try:
            check_text(text, path)
        except ConfigError as e:
            if _tty() and typer.confirm(f"longwrite: error: {e}\nEdit again?", err=True):
                continue
            raise ConfigError(f"{e}; not saved: the edit is kept in {copy}") from None
        break
    copy.unlink(missing_ok=True)
    if text == (before if before is not None else TEMPLATE):
        say(f"{path}: unchanged")
        return
    save(path, text)
    say(f"saved {path}")


def _tty() -> bool:
    return sys.stdin is not None and sys.stdin.isatty()


def _run_editor(path: Path) -> None:
    from longwrite.config.edit import editor

    command = [*editor(), str(path)]
    try:
        done = subprocess.run(command, check=False)
    except OSError as e:
        raise ConfigError(
            f"cannot start the editor {command[0]!r}: {e.strerror or e}; set $EDITOR "
            f"(your edit is in {path})"
        ) from None
    if done.returncode != 0:
        raise ConfigError(
            f"the editor {command[0]!r} ended with {done.returncode}: nothing saved "
            f"(your edit is in {path})"
        )
