"""`longwrite logs`: the runs in the run log, one document, the log's path, removing a run.

Reading the log first marks runs whose process has died as interrupted (`Store.reap`), so a
run killed with `kill -9` or cut by a reboot never shows as still running. A run is named by
its id, any unique prefix of it, or `last`. `logs show` prints the document through the
same renderer as the main command: Markdown on a terminal, raw text when piped.
"""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from longwrite.cli.completion import run_ids
from longwrite.cli.options import RunId, declared
from longwrite.errors import say

if TYPE_CHECKING:
    from longwrite.runlog.store import RunRecord, Store

logs_app = typer.Typer(invoke_without_command=True, add_completion=False)

PROMPT_WIDTH = 60


def open_log() -> Store | None:
    """The log for reading (dead runs marked interrupted), or None when there is none yet."""
    import sqlite3

    from longwrite.generate.record import answer_words
    from longwrite.runlog.store import LogError, Store, db_path

    path = db_path()
    if not path.exists():
        return None
    try:
        store = Store.open(path)
        store.reap(answer_words)
    except (sqlite3.Error, OSError) as e:
        raise LogError(f"cannot read the run log {path}: {e}") from None
    return store


def need_log() -> Store:
    from longwrite.runlog.store import LogError, db_path

    store = open_log()
    if store is None:
        raise LogError(f"the run log is empty ({db_path()}): nothing has been logged yet")
    return store


@logs_app.callback()
def logs_list(
    ctx: typer.Context,
    n: Annotated[int, typer.Option("-n", help="How many runs, newest first.", min=1)] = 20,
    status: Annotated[
        Literal["running", "done", "cut off", "interrupted", "failed"] | None,
        typer.Option(help="Only the runs with this status (e.g. interrupted: to continue)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON array of the runs.")] = False,
) -> None:
    """List recent runs: id, time, status, words / target, the start of the prompt."""
    if ctx.invoked_subcommand is not None:
        return
    from longwrite.runlog.store import db_path

    store = open_log()
    runs = [] if store is None else store.runs(n, status)
    if store is not None:
        store.close()
    if as_json:
        typer.echo(json.dumps([r.to_json() for r in runs], ensure_ascii=False, indent=2))
        return
    if not runs:
        say(f"no {status} runs in the log ({db_path()})" if status else
            f"no runs logged yet ({db_path()})")  # fmt: skip
        return
    for r in runs:
        typer.echo(list_line(r))


def list_line(r: RunRecord) -> str:
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created))
    if r.kind == "batch":
        size, about = "-", f"batch -> {r.output}"  # the whole path: it is where the work is
    else:
        words = "?" if r.words is None else f"{r.words:,}"
        size = words + (f" / {r.target:,}" if r.target else "")
        about = " ".join(r.user_prompt.split())
        if len(about) > PROMPT_WIDTH:
            about = about[: PROMPT_WIDTH - 1] + "…"
    return f"{r.id}  {when}  {r.status:<11}  {size:>15}  {about}"


@logs_app.command("show")
@declared
def logs_show(
    run: RunId,
    thinking: Annotated[
        Literal["hide", "show", "keep"],
        typer.Option(help="The planning: hide it, show it on stderr, or keep it in the output."),
    ] = "hide",
    as_json: Annotated[bool, typer.Option("--json", help="The whole record as JSON.")] = False,
    cut: Annotated[
        bool,
        typer.Option("--cut", help="Print the text the loop guard cut from the run, not the run."),
    ] = False,
    versions_of: Annotated[
        str | None,
        typer.Option(
            "--versions",
            metavar="K",
            help="List the versions of section K (`longwrite revise`): its number or the "
            "start of its heading.",
        ),
    ] = None,
) -> None:
    """Print a run's document (raw when piped, rendered on a terminal)."""
    from longwrite.generate.parser import split_think_answer

    store = need_log()
    try:
        record = store.resolve(run)
        raw = store.raw(record.id)
        candidates = store.candidates(record.id)
        cuts = store.cuts(record.id)
        revised = store.versions(record.id)
    finally:
        store.close()
    if versions_of is not None:
        show_versions(raw, revised, versions_of, as_json)
        return
    raw = with_versions(raw, revised)
    if cut:
        show_cuts(record.id, cuts, as_json)
        return
    if as_json:
        thought, answer = split_think_answer(raw)
        full = {**record.to_json(), "thinking": thought, "answer": answer, "raw": raw}
        if cuts:
            full["cuts"] = [{"at_char": at, "text": text} for at, text in cuts]
        if candidates:  # best-of: each candidate as it was sampled
            full["candidates"] = [{"index": i, "raw": text, "tokens": tokens}
                                  for i, (text, tokens) in sorted(candidates.items())]  # fmt: skip
        typer.echo(json.dumps(full, ensure_ascii=False, indent=2))
        return
    if not raw and candidates:
        say(
            f"run {record.id} stopped while sampling {len(candidates)} candidates, before one "
            f"was chosen: `longwrite continue {record.id}` carries on the longest; "
            f"`logs show {record.id} --json` holds them all"
        )
        return
    if record.kind == "batch":
        say(f"run {record.id} is a batch run: its results are in {record.output}")
        return
    render(raw, record.finish_reason, thinking)


def with_versions(raw: str, revised: list) -> str:
    """The run's raw text with each revised section's latest finished version in place; one
    line on stderr when a revision was left unfinished."""
    if not revised:
        return raw
    from longwrite.generate.parser import split_think_answer
    from longwrite.generate.revise import Version, current_document

    versions = [Version(*row) for row in revised]
    unfinished = sorted({v.k + 1 for v in versions if v.status not in ("done", "undone")})
    if unfinished:
        say(f"note: an unfinished revision of section {unfinished[0]} is not shown "
            f"(`--versions {unfinished[0]}` lists it)")  # fmt: skip
    answer = split_think_answer(raw)[1]
    doc = current_document(answer, versions).text()
    at = raw.rfind(answer) if answer else -1
    return raw[:at] + doc if at >= 0 else doc


def show_versions(raw: str, revised: list, ref: str, as_json: bool) -> None:
    """Every version of one section, the original first, each with how it ended."""
    from longwrite.generate.parser import split_think_answer
    from longwrite.generate.revise import Version, find_section, split_sections

    doc = split_sections(split_think_answer(raw)[1])
    k = find_section(doc, ref)
    heading, original = doc.sections[k]
    rows = [{"version": 1, "status": "original", "instruction": "", "text": original}]
    for n, v in enumerate((Version(*r) for r in revised if r[1] == k), start=2):
        rows.append({"version": n, "status": v.status, "instruction": v.instruction,
                     "text": v.text})  # fmt: skip
    if as_json:
        typer.echo(json.dumps({"section": k + 1, "heading": heading, "versions": rows},
                              ensure_ascii=False, indent=2))  # fmt: skip
        return
    current = max(r["version"] for r in rows if r["status"] in ("original", "done"))
    for r in rows:
        mark = " (current)" if r["version"] == current else ""
        told = f": {r['instruction']}" if r["instruction"] else ""
        say(f"-- section {k + 1} ({heading}), version {r['version']}, {r['status']}{mark}{told} --")
        sys.stdout.write(r["text"].rstrip("\n") + "\n\n")
    sys.stdout.flush()


def show_cuts(run_id: str, cuts: list[tuple[int, str]], as_json: bool) -> None:
    """What the loop guard cut from a run, each piece with where it was cut from."""
    if as_json:
        typer.echo(json.dumps([{"at_char": a, "text": t} for a, t in cuts], ensure_ascii=False))
        return
    if not cuts:
        say(f"run {run_id}: the loop guard cut nothing")
        return
    for n, (at, text) in enumerate(cuts, 1):
        say(f"-- cut {n} of {len(cuts)}, at character {at:,} of the answer --")
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def render(raw: str, finish_reason: str | None, thinking: str) -> None:
    """A stored raw completion through the parser and the main command's renderer."""
    from longwrite.display.renderer import Renderer, RenderOptions
    from longwrite.generate.parser import ThinkAnswerParser

    parser = ThinkAnswerParser()
    # stderr_tty=False: no status line (this is not a generation), thinking raw on stderr.
    with Renderer(RenderOptions(thinking=thinking), stderr_tty=False) as renderer:
        for event in parser.feed(raw) + parser.close(finish_reason):
            renderer.handle(event)


@logs_app.command("path")
def logs_path() -> None:
    """Print the run log's path."""
    from longwrite.runlog.store import db_path

    typer.echo(str(db_path()))


@logs_app.command("rm")
def logs_rm(
    run: Annotated[
        str,
        typer.Argument(
            help="Run id, a unique prefix, or `last`.", metavar="ID", autocompletion=run_ids
        ),
    ],
) -> None:
    """Remove a run (and its text) from the log."""
    from longwrite.runlog.store import RUNNING, LogError, owner_alive

    store = need_log()
    try:
        record = store.resolve(run)
        if record.status == RUNNING and owner_alive(record.owner):
            raise LogError(f"run {record.id} is still running: stop it first")
        store.delete(record.id)
    finally:
        store.close()
    say(f"removed run {record.id}")
