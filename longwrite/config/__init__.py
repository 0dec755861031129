"""The config file: a user's defaults, set once.

`file` finds and reads it (`LONGWRITE_CONFIG`, else `$XDG_CONFIG_HOME/longwrite/config.toml`);
`keys` is the registry of what it may set, filled by the options that read each key;
`schema` checks a file against that registry (pydantic, loaded only when there is a file);
`precedence` puts it below the environment and the command line (flag > environment > file >
built-in default); `servers` turns `--server NAME` into the URL of `[servers.NAME]` and finds
the API key by the name of its variable; `edit` writes `config set` and `config unset`.

`load.load()` is what a command asks for: the file's settings, checked. A missing file is an
empty config; a damaged one is a `ConfigError` (one line naming the file and the key, exit 2).
The package itself imports nothing: the registry is read at every start, the rest on demand.
"""
