"""`longwrite continue [ID]`: carry a logged run on from exactly where it stopped.

The run log holds the exact prompt that was sent, the resolved settings and the raw
completion so far, so a continuation is the same mechanism as a continuation round: the
prompt plus the raw text, sent again as raw text. The text so far goes through a fresh parser
without being shown (`--all` shows it first), then only the new text streams; it is
appended to the same run. This works for an interrupted run, one cut off by `max_tokens`,
one that failed when its server went away, one that ended short of its target, and one still
thinking (the thinking carries on). A run that finished and reached its target is left alone
(exit 2) unless `--words N` asks for more.

Token allowance: `--max-tokens`; else what is left of the run's budget, or the whole budget
again when nothing useful is left (a cut-off run); with `--words N`, the budget for N words.

Claiming the run is atomic (`Store.claim`): of two `continue` on one run, the second is
refused (exit 2). A run whose settings in the log are damaged is refused in one line. An
output the disk refuses stops the continuation as in the main command (`write.Halting`).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from longwrite.cli import options as opt
from longwrite.errors import EXIT_INTERRUPTED, say

if TYPE_CHECKING:
    from longwrite.engines.base import Engine
    from longwrite.prompt.request import Request
    from longwrite.runlog.store import RunRecord, Store


@dataclass(frozen=True)
class ContinueOptions:
    run: str = "last"
    server: str | None = None
    model: str | None = None
    words: int | None = None
    max_tokens: int | None = None
    output: Path | None = None
    all: bool = False
    thinking: str | None = None
    log: bool = True


@opt.declared
def continue_command(
    run: opt.RunId,
    *,
    server: opt.RunServer,
    model: opt.RunModel,
    words: Annotated[int | None, typer.Option("--words", "-w", help="A new target length in "
                     "words (to extend a finished run).", rich_help_panel=opt.LENGTH)] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Most new tokens (default: what is "
                          "left of the run's budget).", rich_help_panel=opt.SAMPLING)] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the whole "
                      "document to FILE (atomically).", rich_help_panel=opt.OUTPUT)] = None,
    all_: Annotated[bool, typer.Option("--all", help="Print the document so far first.",
                    rich_help_panel=opt.OUTPUT)] = False,
    thinking: Annotated[Literal["hide", "show", "keep"] | None, typer.Option(help="The "
                        "planning: hide, show or keep (default: the run's).",
                        rich_help_panel=opt.OUTPUT)] = None,
    no_log: opt.NoLog,
) -> None:  # fmt: skip
    """Carry a logged run on from exactly where it stopped."""
    from longwrite.config.servers import use_one
    from longwrite.runlog.store import log_wanted

    server = use_one(server)
    options = ContinueOptions(
        run=run, server=server, model=model, words=words, max_tokens=max_tokens,
        output=output, all=all_, thinking=thinking, log=log_wanted(no_log),
    )  # fmt: skip
    code = run_continue(options)
    if code:
        raise typer.Exit(code)


def run_continue(c: ContinueOptions) -> int:
    """The whole command; returns the exit code (0, or 130 after Ctrl-C)."""
    from longwrite.cli.logs import need_log
    from longwrite.display.loading import load_local_engine
    from longwrite.engines import resolve_engine_name
    from longwrite.io.files import check_writable
    from longwrite.prompt.request import check_settings

    check_settings(words=c.words, max_tokens=c.max_tokens)
    store = need_log()
    try:
        record = store.resolve(c.run)
        raw = store.raw(record.id)
        chosen = None if raw else _longest_candidate(store, record)
        if chosen is not None:
            raw = chosen[1]
        _check_can_continue(record, raw, c)
        if chosen is not None:  # the run is carried on as this candidate from now on
            store.append(record.id, raw, chosen[2])
            say(
                f"longwrite: note: run {record.id} stopped while sampling its candidates: "
                f"carrying on candidate {chosen[0] + 1}, the longest"
            )
        wopts = run_write_options(record, c)
        request = logged_request(record, c)
        backend = resolve_engine_name(wopts.engine.engine, server=wopts.engine.server)
        if c.output is not None:
            check_writable(c.output)
        engine = load_local_engine(wopts.engine, backend)
        try:
            if "outline" in record.options or "sectioned" in record.options:  # by section
                from longwrite.cli.sectioned import continue_sectioned

                return continue_sectioned(
                    store, record, raw, wopts, request, engine, backend,
                    output=c.output, replay=c.all, log=c.log,
                )  # fmt: skip
            request = _allowance(record, request, engine, c)
            return _carry_on(store, record, raw, wopts, request, engine, backend, c)
        finally:
            engine.close()
    finally:
        store.close()


def _longest_candidate(store: Store, record: RunRecord) -> tuple[int, str, int] | None:
    """(index, raw text, tokens) of the best-of candidate with the most words, for a run
    killed before it chose one (the way `choose_best` picks among cut-off candidates)."""
    from longwrite.generate.record import answer_words

    candidates = store.candidates(record.id)
    if not candidates:
        return None
    index = max(candidates, key=lambda i: (answer_words(candidates[i][0]), -i))
    return index, *candidates[index]


def _check_can_continue(record: RunRecord, raw: str, c: ContinueOptions) -> None:
    from longwrite.generate.record import answer_words
    from longwrite.length.targets import paper_range
    from longwrite.runlog.store import DONE, RUNNING, LogError, owner_alive

    if record.kind != "write":
        raise LogError(
            f"run {record.id} is a {record.kind} run: run the same command again to finish it"
        )
    if record.status == RUNNING and owner_alive(record.owner):
        raise LogError(f"run {record.id} is still running: wait for it, or stop it first")
    if not all(k in record.options for k in ("max_tokens", "temperature", "top_p", "stop")):
        raise LogError(
            f"run {record.id}'s settings in the run log are damaged: it cannot be continued "
            f"(`longwrite logs show {record.id}` prints its text)"
        )
    words = answer_words(raw)
    if c.words is not None:
        lo = paper_range(c.words, "about").lo
        if words >= lo:
            raise LogError(f"run {record.id} already has {words:,} words (--words {c.words:,})")
        return
    rng = record.options.get("target_range")
    if record.status == DONE and (not rng or words >= rng[0]):
        target = f", target {rng[0]:,}-{rng[1]:,}" if rng else ", no target"
        raise LogError(
            f"run {record.id} is finished ({words:,} words{target}): `--words N` asks for more"
        )


def run_write_options(record: RunRecord, c: ContinueOptions) -> Any:
    """The run's engine and length settings, with the overrides."""
    from longwrite.defaults import GUARD_RETRIES, THINK_TOKENS
    from longwrite.engines import EngineOptions
    from longwrite.generate.job import WriteOptions

    o = record.options
    engine = "openai" if c.server else o.get("engine", "auto")
    model = c.model or (None if c.server else o.get("model"))
    local = {k: o[k] for k in ("device", "dtype", "tp", "max_model_len",
                               "gpu_memory_utilization") if k in o}  # fmt: skip
    return WriteOptions(
        prompt=record.user_prompt,
        max_tokens=c.max_tokens,
        max_rounds=o.get("max_rounds", 2),
        guard=o.get("guard", True),
        guard_retries=o.get("guard_retries", GUARD_RETRIES),
        think_budget=o.get("think_budget", THINK_TOKENS),
        parallel=o.get("parallel", 1),
        thinking=c.thinking or o.get("thinking", "hide"),
        output=c.output,
        log=c.log,
        engine=EngineOptions(
            engine=engine, model=model, server=c.server or o.get("server"), **local
        ),  # fmt: skip
    )


def logged_request(record: RunRecord, c: ContinueOptions) -> Request:
    from longwrite.generate.record import request_from
    from longwrite.length.targets import paper_range

    request = request_from(record.user_prompt, record.prompt, record.options)
    if c.words is not None:
        rng = paper_range(c.words, "about")
        request = replace(request, target_words=c.words, target_range=(rng.lo, rng.hi))
    return request


def _allowance(record: RunRecord, request: Request, engine: Engine, c: ContinueOptions) -> Request:
    """`request` with the new tokens this continuation may use as its `max_tokens`."""
    from longwrite.generate.rounds import MIN_ROUND_TOKENS
    from longwrite.length.budget import with_budget

    if c.max_tokens is not None:
        allowance = c.max_tokens
    elif c.words is not None:
        hi = request.target_range[1] if request.target_range else None
        budgeted, _ = with_budget(
            request, hi, context=engine.info.context, count_tokens=engine.count_tokens
        )
        allowance = budgeted.sampling.max_tokens
    else:
        budget = request.sampling.max_tokens
        left = budget - record.tokens
        allowance = left if left >= MIN_ROUND_TOKENS else budget
    return replace(request, sampling=replace(request.sampling, max_tokens=allowance))


def _carry_on(
    store: Store,
    record: RunRecord,
    raw: str,
    wopts: Any,
    request: Request,
    engine: Engine,
    backend: str,
    c: ContinueOptions,
) -> int:
    from longwrite.cli.write import Halting, rendering
    from longwrite.display.renderer import Renderer, RenderOptions
    from longwrite.engines.base import FINISH_CANCELLED
    from longwrite.generate.job import produce
    from longwrite.generate.record import recording, run_options
    from longwrite.generate.rounds import MIN_ROUND_TOKENS, Resume, tokens_left
    from longwrite.io.files import PartialFile
    from longwrite.runlog.recorder import Recorder, resume_run
    from longwrite.runlog.store import LogError

    if tokens_left(engine, request, raw, 0) < MIN_ROUND_TOKENS:
        raise LogError(f"run {record.id} fills the model's context: it cannot be carried further")
    options = {**record.options, **run_options(wopts, request, engine, backend)}
    options["max_tokens"] = c.max_tokens or record.options["max_tokens"]
    render = RenderOptions(
        thinking=wopts.thinking,
        target_words=request.target_words,
        answer="none" if c.output is not None else "auto",
    )
    # With -o the file gets the whole document, so the text so far goes through the renderer
    # (to the file only: stdout shows nothing with -o).
    resume = Resume(raw, record.finish_reason or FINISH_CANCELLED, c.all or c.output is not None)
    target = PartialFile(c.output) if c.output is not None else None
    # The output file is opened (or refused) before the run is claimed: a refusal leaves the
    # run as it was.
    with target if target is not None else nullcontext() as sink:
        recorder = resume_run(store, record.id, options, request.target_words) if c.log else None
        recorder = recorder or Recorder(None, None)
        with recording(recorder) as entry:
            renderer = Renderer(render, sink=sink)
            engine = Halting(engine, lambda: renderer.output_error is not None)
            with rendering(renderer, recorder, c.output):
                made = produce(
                    wopts,
                    request,
                    engine,
                    renderer,
                    on_raw=recorder.add,
                    resume=resume,
                    on_cut=recorder.add_cut,
                )
            result = made.result
            entry.done(result)
        if target is not None and result.finish_reason != FINISH_CANCELLED:
            target.commit()
    if result.finish_reason == FINISH_CANCELLED:
        say(f"interrupted: kept {result.words} words; `longwrite continue {record.id}` carries on")
        return EXIT_INTERRUPTED
    return 0
