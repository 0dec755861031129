"""`longwrite completion bash|zsh|fish`: the script that lets the shell complete longwrite,
and the completers it calls back (run ids, named servers).

The machinery is click's, as typer ships it: the script runs `longwrite` again with
`_LONGWRITE_COMPLETE=complete_SHELL` in its environment, and the command tree answers with
what may follow the words typed so far: subcommands, options, choices, and whatever an
option's `autocompletion` returns. typer's `--install-completion` stays off (it edits rc
files behind the user's back); this prints the script, to source or to save where the shell
looks for it (README, "Config file").

A completer never disturbs the shell: whatever goes wrong, it offers nothing. The run-id
completer (`run_ids`) is one function for every argument that names a run (`RunId` in
`cli/options.py`: `logs show`, `continue`, `export`, and `revise` once it exists).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
from collections.abc import Callable, MutableMapping
from typing import Annotated, Any

import typer

PROG = "longwrite"
COMPLETE_VAR = "_LONGWRITE_COMPLETE"
SHELLS = ("bash", "zsh", "fish")
RUNS_OFFERED = 50  # the newest runs offered; older ones are typed (a prefix is enough)
PROMPT_SHOWN = 50


def script(shell: str) -> str:
    """The completion script for `shell` (typer's, which calls back with COMPLETE_VAR)."""
    from typer.completion import get_completion_script

    return get_completion_script(prog_name=PROG, complete_var=COMPLETE_VAR, shell=shell)


def completion_command(
    shell: Annotated[str, typer.Argument(help="bash, zsh or fish.", metavar="SHELL",
                                         autocompletion=shells)],
) -> None:  # fmt: skip
    """Print the completion script for SHELL."""
    from longwrite.errors import LongwriteError

    if shell not in SHELLS:
        raise LongwriteError(f"completion: no script for {shell!r}: choose {', '.join(SHELLS)}")
    typer.echo(script(shell))


def run_ids(incomplete: str) -> list[tuple[str, str]]:
    """The ids of the newest logged runs that start with `incomplete` (and `last`), each
    with its status and the start of its prompt."""
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # a warning would garble the prompt
            runs = _runs()
    except Exception:  # noqa: BLE001 - completing must never fail the shell
        return []
    items = [("last", "the newest run")] if "last".startswith(incomplete) else []
    for run in runs:
        if run.id.startswith(incomplete):
            prompt = " ".join(run.user_prompt.split())[:PROMPT_SHOWN]
            items.append((run.id, f"{run.status}: {prompt}"))
    return items


def _runs() -> list[Any]:
    from longwrite.runlog.store import Store, db_path

    path = db_path()
    if not path.exists():
        return []
    store = Store.open(path)
    try:
        return store.runs(RUNS_OFFERED)
    finally:
        store.close()


def server_names(incomplete: str) -> list[tuple[str, str]]:
    """The named servers of the config file (`[servers.NAME]`), each with its URL."""
    try:
        from longwrite.config.load import load
        from longwrite.redact import public_url

        servers = load().servers
    except Exception:  # noqa: BLE001 - a damaged file completes nothing; commands say why
        return []
    return [
        (name, public_url(table["url"]))
        for name, table in sorted(servers.items())
        if name.startswith(incomplete)
    ]


def shells(incomplete: str) -> list[str]:
    return [s for s in SHELLS if s.startswith(incomplete)]


def completing(environ: MutableMapping[str, str] | None = None) -> bool:
    return COMPLETE_VAR in (os.environ if environ is None else environ)


def route_words(
    route: Callable[[list[str]], list[str]], environ: MutableMapping[str, str] | None = None
) -> None:
    """`longwrite tides --ser<TAB>`: the words the shell hands over, routed as `main` routes a
    command line (`route`: a first word that is no subcommand starts the prompt of `write`)."""
    env = os.environ if environ is None else environ
    shell = env.get(COMPLETE_VAR, "").rpartition("_")[2]
    name = "COMP_WORDS" if shell == "bash" else "_TYPER_COMPLETE_ARGS"
    line = env.get(name)
    if not line:
        return
    try:
        words = shlex.split(line)
    except ValueError:  # an open quote: a prompt being typed, not routed
        return
    if shell == "bash":
        done = int(env.get("COMP_CWORD", len(words)))
    else:
        done = len(words) - (0 if line.endswith(" ") else 1)
    typed = words[1:done]  # the words before the one being completed
    if not typed or typed[0] == "write" or route(typed)[0] != "write":
        return
    first = re.match(r"\s*\S+(\s)", line)  # bash joins the words with newlines, zsh with spaces
    if first is None:
        return
    env[name] = line[: first.start(1)] + first.group(1) + "write" + line[first.start(1) :]
    if shell == "bash":
        env["COMP_CWORD"] = str(done + 1)


def enable() -> None:
    """Register the shells' completion classes (typer does so only with its own
    `--install-completion`, which is off)."""
    from typer.completion import completion_init

    completion_init()
