"""`longwrite doctor`: what this machine has and whether longwrite will work on it.

One line per check on stdout (`--json`: one object, its schema in README), each problem with
its fix; exit 0 when nothing is a problem, 1 otherwise. Only metadata is read unless `--check`
names a package to import (`--check torch` also asks torch for its build and devices).
"""

from __future__ import annotations

import json
import os
from typing import Annotated

import typer

from longwrite.errors import EXIT_FAILED, LongwriteError

LABELS = {"ok": "ok", "warn": "warn", "problem": "PROBLEM", "absent": "-"}


def doctor_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    check: Annotated[
        list[str] | None,
        typer.Option(
            "--check",
            help="Import this package to check it (torch also reports its build and GPUs); "
            "repeatable, or 'all'.",
        ),
    ] = None,
) -> None:
    from longwrite import __version__
    from longwrite.doctor.checks import OK, PROBLEM, run_checks
    from longwrite.doctor.config_file import config_check, configured_server
    from longwrite.doctor.gather import MODULES, gather
    from longwrite.doctor.matrix import load

    names = tuple(check or ())
    unknown = sorted(set(names) - set(MODULES) - {"all"})
    if unknown:
        choices = ", ".join([*MODULES, "all"])
        raise LongwriteError(f"--check {unknown[0]}: not a package doctor knows ({choices})")
    if "all" in names:
        names = tuple(MODULES)
    matrix = load()
    machine = gather(names)
    config = config_check()
    server = configured_server() if machine.server is None and config.status == OK else None
    if server is not None:  # the server the config file names, with the key it names
        machine.server = server.url
        key = os.environ.get(server.key_env or "", "").strip()
        machine.api_key = machine.api_key or key or None
    checks = [*run_checks(machine, matrix), config]
    problems = [c for c in checks if c.status == PROBLEM]
    if as_json:
        report = {
            "ok": not problems,
            "longwrite": __version__,
            "checks": [
                {"name": c.name, "status": c.status, "found": c.found, "fix": c.fix, "data": c.data}
                for c in checks
            ],
            "tested": [
                {"name": r.name, "for": list(r.uses), **{p: str(s) for p, s in r.specs.items()}}
                for r in matrix.rows
            ],
        }
        typer.echo(json.dumps(report, indent=2))
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            fix = f"  -> fix: {c.fix}" if c.fix and c.status == PROBLEM else ""
            fix = f"  -> to match: {c.fix}" if c.fix and c.status == "warn" else fix
            typer.echo(f"{LABELS[c.status]:<8} {c.name:<{width}}  {c.found}{fix}")
        typer.echo(f"{len(problems)} problem(s)" if problems else "all well")
    if problems:
        raise typer.Exit(EXIT_FAILED)
