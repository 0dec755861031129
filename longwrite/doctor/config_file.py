"""Doctor and the config file: the file in use, every key it does not know, its server.

Every other command stops at a config file's first fault; doctor is where a user looks when
something is wrong, so it never stops there and names every unknown key, each with the
nearest known one. A file with no unknown key is checked as a command checks it (types,
the API key's variable), and its fault, if any, is the problem shown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from longwrite.doctor.checks import ABSENT, OK, PROBLEM, Check

if TYPE_CHECKING:
    from longwrite.config.servers import Server


def unknown_keys(data: dict) -> list[str]:
    """The dotted keys of `data` (a parsed file) that the schema does not know."""
    from longwrite.config.file import flatten
    from longwrite.config.keys import SERVERS
    from longwrite.config.schema import key_names

    servers = data.get(SERVERS)
    names = list(servers) if isinstance(servers, dict) else []
    known = set(key_names(names))
    tables = {k.rpartition(".")[0] for k in known} | {SERVERS}
    return [k for k in flatten(data) if k not in known and k not in tables]


def config_check() -> Check:
    from longwrite.config.file import ConfigError, config_path, parse, read_text
    from longwrite.config.load import load
    from longwrite.config.schema import nearest

    path = config_path()
    data = {"path": str(path), "exists": False}
    try:
        text = read_text(path)
        if text is None:
            return Check("config", ABSENT, f"no config file ({path})", None, data)
        data["exists"] = True
        parsed = parse(text, path)
        unknown = unknown_keys(parsed)
        if unknown:
            named = parsed.get("servers")
            servers = list(named) if isinstance(named, dict) else []
            said = "; ".join(f"'{k}'{nearest(k, servers)}" for k in unknown)
            data["unknown"] = unknown
            fix = " && ".join(f"longwrite config unset {k}" for k in unknown)
            return Check("config", PROBLEM, f"{path}: unknown key(s) {said}", fix, data)
        cfg = load(path)
    except ConfigError as e:
        return Check("config", PROBLEM, str(e), "longwrite config edit", data)
    data.update(keys=sorted(cfg.values), servers=sorted(cfg.servers))
    names = f", servers: {', '.join(sorted(cfg.servers))}" if cfg.servers else ""
    return Check("config", OK, f"config file {path} ({len(cfg.values)} key(s){names})", None, data)


def configured_server() -> Server | None:
    """The config file's `server` (its first; a name resolved) with the variable of its key,
    for the server check when LONGWRITE_SERVER is not set; None when it names none."""
    from longwrite.config.file import ConfigError
    from longwrite.config.load import load
    from longwrite.config.servers import resolve

    cfg = load()
    value = cfg.values.get("server")
    first = value[0] if isinstance(value, list) and value else value
    if not isinstance(first, str):
        return None
    try:
        return resolve(first, cfg.servers, cfg.values.get("api_key_env"))
    except ConfigError:
        return None
