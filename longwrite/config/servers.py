"""Named servers (`[servers.gpu]` in the config file: `--server gpu`) and the API key, found
by the name of the variable that holds it.

A server is given as a URL or as the name of a `[servers.NAME]` table (`url`, optional
`api_key_env`), wherever a server is given: `--server`, `LONGWRITE_SERVER`, the file's
`server`, a line of `--servers-file`, a judge's URL. A bare word that names no server (no
scheme, port, dot or slash) is refused with the nearest name, rather than sent to `http://gpuu`.

The key itself is never in the file. `LONGWRITE_API_KEY` wins when it is set; else the key is
read from the variable the server's `api_key_env` names, else from the file's `api_key_env`.
The engines read `LONGWRITE_API_KEY` (`engines.base.env_api_key`), so the key found is put
there, in this process only. One run sends one key: servers that name different variables
cannot share a run unless `LONGWRITE_API_KEY` says which key.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from longwrite.config.file import ConfigError

ENV_API_KEY = "LONGWRITE_API_KEY"  # the same name as engines.base's, which this must not import
BARE_WORD = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Server:
    url: str
    key_env: str | None  # the variable that holds its key (None: the file's, or none)
    name: str | None = None  # the [servers.NAME] it came from


def resolve(
    value: str, servers: Mapping[str, Mapping[str, str]], default_key_env: str | None = None
) -> Server:
    """`value` as a server: a named one's URL and key variable, or the URL as given."""
    text = value.strip()
    if text in servers:
        table = servers[text]
        return Server(table["url"], table.get("api_key_env") or default_key_env, text)
    if BARE_WORD.fullmatch(text) and text.lower() != "localhost":
        close = difflib.get_close_matches(text, list(servers), n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        named = ", ".join(sorted(servers)) or "none"
        raise ConfigError(
            f"--server {text}: no [servers.{text}] in the config file{hint} (named: {named}); "
            "a URL looks like http://HOST:PORT"
        )
    return Server(text, default_key_env)


def resolve_all(
    values: Iterable[str],
    servers: Mapping[str, Mapping[str, str]],
    default_key_env: str | None = None,
) -> list[Server]:
    """Each of `values` resolved, duplicates (by URL) dropped, the first kept."""
    out: dict[str, Server] = {}
    for value in values:
        if value.strip():
            server = resolve(value, servers, default_key_env)
            out.setdefault(server.url, server)
    return list(out.values())


def use_key(servers: Iterable[Server], environ: dict[str, str] | None = None) -> str | None:
    """Put the key these servers take into `LONGWRITE_API_KEY` (of `environ`, by default this
    process's) unless it is set already; returns the variable it came from, if any."""
    env = os.environ if environ is None else environ
    if env.get(ENV_API_KEY, "").strip():
        return None
    names = sorted({s.key_env for s in servers if s.key_env})
    if not names:
        return None
    if len(names) > 1:
        raise ConfigError(
            f"these servers take their keys from different variables ({', '.join(names)}); a "
            f"run sends one key: set {ENV_API_KEY} to the one to use"
        )
    key = env.get(names[0], "").strip()
    if not key:
        raise ConfigError(
            f"the config file says the API key is in ${names[0]}, which is not set: "
            f"export {names[0]}=... (or set {ENV_API_KEY})"
        )
    env[ENV_API_KEY] = key
    return names[0]


def use(values: Iterable[str | None]) -> list[str]:
    """The URLs of the servers `values` give (names looked up in the config file), and the
    API key they take put in place (`use_key`): what a command does with its `--server`."""
    from longwrite.config.load import load

    given = [v for v in values if v and v.strip()]
    if not given:
        return []
    cfg = load()
    found = resolve_all(given, cfg.servers, cfg.values.get("api_key_env"))
    use_key(found)
    return [s.url for s in found]


def use_one(value: str | None) -> str | None:
    """`use` for an option that takes one server (a judge, the range model)."""
    found = use([value])
    return found[0] if found else None
