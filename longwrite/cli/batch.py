"""`longwrite batch IN.jsonl -o OUT.jsonl` and `longwrite batch merge OUT... -o ALL`: the
commands' options, exit codes and summaries.

The work itself (lines, servers, retries, the append-only output) is `batch.runner`; this
module parses options into the main command's `WriteOptions`, takes the one-writer lock on
OUT, runs the batch with its progress display and turns the outcome into an exit code.
`--shard K/N` keeps the lines of one shard (`batch.input`), and `batch merge` joins the
shards' OUT files once every id is there exactly once (`batch.merge`). `batch merge` is
routed to the `batch-merge` command, since `batch` itself takes a file name first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from longwrite.cli import options as opt
from longwrite.errors import EXIT_FAILED, EXIT_INTERRUPTED, LongwriteError, say

if TYPE_CHECKING:  # the batch machinery loads when the command runs, not for `--help`
    from longwrite.batch.input import Problem
    from longwrite.batch.runner import Outcome
    from longwrite.export.formats import Format
    from longwrite.generate.job import WriteOptions


@opt.declared
def batch_command(
    input: Annotated[Path, typer.Argument(help="JSON Lines: `prompt`, optional `id`, `words` "
                     "or `length`, `source` (as --source), and overrides: temperature, top_p, "
                     "max_tokens, seed, best_of, parallel.", show_default=False,
                     metavar="IN.jsonl")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Results, one JSON line per "
                      "prompt, appended as each finishes; re-running skips the ids there.",
                      show_default=False, metavar="OUT.jsonl")],
    *,
    concurrency: opt.Concurrency,
    best_of: opt.BestOf,
    max_rounds: opt.MaxRounds,
    range_model: opt.RangeModel,
    engine: opt.Engine,
    server: opt.Servers,
    servers_file: Annotated[Path | None, typer.Option(help="A file of servers, one per line: "
                            "URLs, or names of the config file's servers.", metavar="FILE",
                            rich_help_panel=opt.ENGINE)] = None,
    stream: Annotated[bool, typer.Option("--stream", help="Stream each prompt from the "
                      "server (a dropped connection resumes from the text so far) instead of "
                      "one whole reply per prompt (far less CPU here; a drop asks again).",
                      rich_help_panel=opt.ENGINE)] = False,
    shard: Annotated[str | None, typer.Option(help="Run only shard K of N (lines split "
                     "by a hash of their id); join the OUT files with `longwrite batch merge`.",
                     show_default=False, metavar="K/N")] = None,
    export_format: Annotated[Literal["docx", "epub", "html", "odt", "pdf", "md"] | None,
                             typer.Option("--format", help="Also export each document of OUT "
                             "as a file of this format, named by its id, once the batch has "
                             "run (again: only the missing ones).", rich_help_panel=opt.OUTPUT,
                             show_default=False)] = None,
    export_dir: Annotated[Path | None, typer.Option(help="The folder for --format (default: "
                          "OUT's name and the format beside OUT: results-docx/).",
                          rich_help_panel=opt.OUTPUT, show_default=False, metavar="DIR")] = None,
    sampling: opt.Sampling,
    no_log: opt.NoLog,
    guards: opt.Guards,
    parallel: opt.Parallel,
    embed_server: opt.EmbedServer,
) -> None:  # fmt: skip
    """Write a document for every line of a JSON Lines file; resumable."""
    from longwrite.batch.pool import server_urls
    from longwrite.config.servers import use, use_one
    from longwrite.generate.job import WriteOptions
    from longwrite.runlog.store import log_wanted

    base = WriteOptions(
        prompt="",
        **sampling,
        best_of=best_of,
        max_rounds=max_rounds,
        range_model=use_one(range_model),
        **guards,
        parallel=parallel,
        embed_server=use_one(embed_server),
        engine=engine,
    )
    exports = _export_plan(output, export_format, export_dir)
    urls = use(server_urls(server, servers_file))  # named servers: their URLs
    with _logged(input, output, base, urls, log_wanted(no_log)) as done:
        code = done(
            run_batch_command(input, output, base, urls, concurrency, stream=stream, shard=shard)
        )
    if exports is not None and code != EXIT_INTERRUPTED:
        code = _export(output, *exports) or code
    if code:
        raise typer.Exit(code)


def _export_plan(
    output: Path, name: str | None, folder: Path | None
) -> tuple[Format, Path, Path | None] | None:
    """`--format`: the format, its folder (created now) and the PDF engine, all checked
    before a line runs."""
    if name is None:
        if folder is not None:
            raise LongwriteError("--export-dir is the folder for --format: give --format too")
        return None
    from longwrite.export import check_ready
    from longwrite.export.batch import default_folder, prepare_folder
    from longwrite.export.formats import named_format

    fmt = named_format(name)
    engine = check_ready(fmt)
    folder = folder if folder is not None else default_folder(output, fmt)
    prepare_folder(folder)
    return fmt, folder, engine


def _export(output: Path, fmt: Format, folder: Path, engine: Path | None) -> int:
    from longwrite.export.batch import export_results

    done = export_results(output, folder, fmt, engine)
    already = f" ({done.already} already there)" if done.already else ""
    failed = f", {done.failed} failed" if done.failed else ""
    say(f"batch: exported {done.written} documents to {folder}{already}{failed}")
    return EXIT_FAILED if done.failed else 0


@contextmanager
def _logged(
    input: Path, output: Path, base: WriteOptions, servers: list[str], log: bool
) -> Iterator[Callable[[int], int]]:
    """One run-log row for the whole batch, pointing at OUT (items have OUT itself)."""
    from longwrite.generate.record import public_url, recording
    from longwrite.runlog.recorder import Recorder, start_run
    from longwrite.runlog.store import DONE, FAILED, INTERRUPTED

    options = {"engine": base.engine.engine, "model": base.engine.model, "input": str(input),
               "servers": [public_url(u) for u in servers]}  # fmt: skip
    recorder = (
        start_run(
            kind="batch",
            user_prompt=f"batch {input}",
            prompt="",
            options=options,
            output=str(output),
        )  # fmt: skip
        if log
        else Recorder(None, None)
    )

    def done(code: int) -> int:
        status = {0: DONE, EXIT_INTERRUPTED: INTERRUPTED}.get(code, FAILED)
        recorder.finish(status, finish_reason=f"exit {code}")
        return code

    with recording(recorder) as entry:
        yield done
        entry.closed = True


def run_batch_command(
    input: Path,
    output: Path,
    base: WriteOptions,
    servers: list[str],
    concurrency: int,
    *,
    stream: bool = False,
    shard: str | None = None,
) -> int:
    """The whole command: read, resume, load, run, report; returns the exit code."""
    from longwrite.batch.input import in_shard, parse_shard, read_items
    from longwrite.batch.pool import open_pool
    from longwrite.batch.runner import done_ids, run_batch
    from longwrite.display.batch_progress import BatchProgress
    from longwrite.generate.job import check_options
    from longwrite.io.files import check_apart
    from longwrite.io.jsonl import AppendLog

    if concurrency < 1:
        raise LongwriteError(f"--concurrency must be at least 1, not {concurrency}")
    check_options(base, with_prompt=False)
    check_apart([output], [input])  # results appended to the prompts would be read as lines
    part = parse_shard(shard) if shard is not None else None
    items, problems = read_items(input, base)
    if part is not None:
        items = in_shard(items, *part)
    for p in problems:
        say(f"longwrite: error: {input}:{p.line}: {p.message}; line skipped")
    log = AppendLog(output)
    log.lock()  # one writer per OUT: two runs would write the same ids twice
    try:
        finished = done_ids(log.load())
        if log.dropped_torn:
            say(f"longwrite: warning: {output} ended in a torn line (an earlier crash): cut off")
        todo = [item for item in items if item.id not in finished]
        already = len(items) - len(todo)
        if not items and part is not None:
            say(f"batch: no line of {input} falls in shard {part[0]}/{part[1]} (by a hash of "
                "its id): nothing to run here")  # fmt: skip
        elif not todo:
            say(f"batch: all {len(items)} lines are in {output}")
        if not todo:
            return EXIT_FAILED if problems else 0
        pool = open_pool(base.engine, servers, concurrency, stream=stream)
        try:
            with BatchProgress(len(items), already) as progress:
                outcome = run_batch(
                    todo, pool, log, base, concurrency=concurrency, progress=progress
                )
        finally:
            pool.close()
    finally:
        log.close()
    return _report(outcome, problems, already, output)


def _report(outcome: Outcome, problems: list[Problem], already: int, output: Path) -> int:
    from longwrite.batch.runner import BatchFailed

    parts = [f"{outcome.written} written to {output}"]
    if already:
        parts.append(f"{already} already there")
    if outcome.failed:
        parts.append(f"{len(outcome.failed)} failed")
    if problems:
        parts.append(f"{len(problems)} malformed line(s) skipped")
    if outcome.left:
        parts.append(f"{len(outcome.left)} not run")
    say("batch: " + ", ".join(parts))
    if outcome.stopped is not None:  # OUT refused a line (a full disk): every line is counted
        room = "free some space, then " if getattr(outcome.stopped, "full", False) else ""
        raise BatchFailed(
            f"{outcome.stopped}; {len(outcome.left)} line(s) not run. {output} keeps what "
            f"finished: {room}run the same command again to finish"
        )
    if outcome.interrupted:
        say("interrupted: run the same command again to finish")
        return EXIT_INTERRUPTED
    if outcome.all_dead and outcome.left:
        raise BatchFailed(
            f"every server failed; {len(outcome.left)} line(s) not run. {output} keeps what "
            "finished: run the same command again to finish"
        )
    if outcome.failed or problems:
        return EXIT_FAILED
    return 0


def merge_command(
    outputs: Annotated[list[Path], typer.Argument(help="The OUT files of the shards.",
                       show_default=False)],
    input: Annotated[Path, typer.Option("--input", "-i", help="The input file the shards ran "
                     "(its ids are the ones to find).", show_default=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="The joined file, in the "
                      "input's order (written atomically).", show_default=False)],
) -> None:  # fmt: skip
    """Join the OUT files of `batch --shard K/N` runs: every id of the input exactly once."""
    from longwrite.batch.input import read_items
    from longwrite.batch.merge import merge_records, write_merged
    from longwrite.generate.job import WriteOptions
    from longwrite.io.files import check_apart

    check_apart([output], [input, *outputs])
    items, _ = read_items(input, WriteOptions(prompt=""))
    merged = merge_records(outputs, [item.id for item in items])
    write_merged(output, merged)
    say(f"batch merge: {len(merged.records)} lines from {merged.files} file(s) in {output}")
