"""The write command's sectioned path: the display and the run log around `generate.sectioned`.

`cli.write` hands over once the engine is loaded and the budget known; how many sections, the
outline and the sections themselves are `generate.sectioned`'s (shared with `batch` and the
API). Here: the run log learns the run is sectioned before planning starts (so `continue` of
a run stopped while planning plans again), then the outline once settled; `--plan-only`
prints the outline (Markdown that `--plan FILE` reads back, or JSON) or writes it to `-o FILE`;
`continue` carries a sectioned run on from the section and character where the log stops, or
extends a finished one by more sections (`--words N`).
"""

from __future__ import annotations

import json
import math
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from longwrite.errors import EXIT_INTERRUPTED, say

if TYPE_CHECKING:
    from longwrite.display.renderer import Renderer
    from longwrite.engines.base import Engine
    from longwrite.generate.job import WriteOptions
    from longwrite.generate.plan import Outline
    from longwrite.generate.sections import Sectioned
    from longwrite.length.budget import Budget
    from longwrite.prompt.request import Request
    from longwrite.runlog.recorder import Recorder
    from longwrite.runlog.store import RunRecord, Store


def sections_wanted(opts: WriteOptions, request: Request, budget: Budget) -> int | None:
    """How many sections to write (None: one pass), said on stderr when chosen for the user."""
    from longwrite.generate.sectioned import sections_for

    return sections_for(opts, request, budget, tell=say)


def plan_only(opts: WriteOptions, request: Request, engine: Engine, budget: Budget, n: int) -> None:
    """`--plan-only`: the outline on stdout, or in `-o FILE`; the plan's thinking on stderr with
    `--thinking show`."""
    from longwrite.display.renderer import Renderer, RenderOptions
    from longwrite.generate.sectioned import settle_outline
    from longwrite.io.files import atomic_write_text

    shown = opts.thinking == "show"
    with Renderer(RenderOptions(thinking="show", answer="none")) if shown else nullcontext() as r:
        outline, _ = settle_outline(opts, request, engine, budget, n, plan_sink=r)
    text = outline.markdown()
    if opts.as_json:
        text = json.dumps(outline.to_json(), ensure_ascii=False) + "\n"
    if opts.output is not None:
        atomic_write_text(opts.output, text)
        say(f"longwrite: the outline ({len(outline.parts)} sections) is in {opts.output}")
    else:
        print(text, end="")


def write_sectioned(
    opts: WriteOptions,
    request: Request,
    engine: Engine,
    budget: Budget,
    n: int,
    renderer: Renderer,
    recorder: Recorder,
) -> Sectioned:
    """Plan (or read the user's plan), then every section through `renderer`; the run log
    gets the sectioning first, the plan's transcript, the outline (for `continue`) and every
    section."""
    from longwrite.generate.sectioned import produce_sectioned, sectioning

    recorder.note({"sectioned": sectioning(opts, n)})

    def on_outline(outline: Outline, settled: Request) -> None:
        recorder.note({"outline": outline.to_json(), "target_words": settled.target_words})
        renderer.options = replace(renderer.options, target_words=settled.target_words)

    def on_section(k: int, total: int) -> None:
        renderer.section = f"section {k}/{total}"

    def on_progress(text: str) -> None:
        renderer.section = text

    return produce_sectioned(
        opts, request, engine, budget, n, renderer, plan_sink=renderer, on_raw=recorder.add,
        on_cut=recorder.add_cut, on_section=on_section, on_outline=on_outline,
        on_section_raw=recorder.add_section, on_section_done=recorder.section_done,
        on_progress=on_progress,
    )  # fmt: skip


def continue_sectioned(
    store: Store,
    record: RunRecord,
    raw: str,
    wopts: WriteOptions,
    request: Request,
    engine: Engine,
    backend: str,
    *,
    output: Path | None,
    replay: bool,
    log: bool,
) -> int:
    """`longwrite continue` on a sectioned run: the same outline and plan, from the section
    and the character where the log stops (a run stopped while planning plans again; with a
    larger target a finished run gets more sections); the run log entry goes on."""
    from longwrite.cli.output import Halting, rendering
    from longwrite.display.renderer import Renderer, RenderOptions
    from longwrite.engines.base import FINISH_CANCELLED
    from longwrite.generate.plan import Outline
    from longwrite.generate.record import recording, run_options
    from longwrite.generate.sections import read_written, write_sections
    from longwrite.io.files import PartialFile
    from longwrite.runlog.recorder import Recorder, resume_run

    logged = record.options.get("outline")
    outline = Outline.from_json(logged) if logged else None
    written = read_written(raw, outline) if outline is not None else None
    if outline is not None and written is not None and request.target_words:
        outline, written = _extended(outline, written, request, engine, record)
    options = {**record.options, **run_options(wopts, request, engine, backend)}
    if outline is not None:
        options["outline"] = outline.to_json()
    render = RenderOptions(
        thinking=wopts.thinking,
        target_words=request.target_words,
        answer="none" if output is not None else "auto",
    )
    target = PartialFile(output) if output is not None else None
    with target if target is not None else nullcontext() as sink:
        recorder = resume_run(store, record.id, options, request.target_words) if log else None
        recorder = recorder or Recorder(None, None)
        with recording(recorder) as entry:
            renderer = Renderer(render, sink=sink)
            engine = Halting(engine, lambda: renderer.output_error is not None)
            with rendering(renderer, recorder, output):

                def on_section(k: int, total: int) -> None:
                    renderer.section = f"section {k}/{total}"

                if outline is None or written is None:  # stopped while planning: plan again
                    made = _plan_again(record, wopts, request, engine, renderer, recorder)
                elif wopts.parallel > 1:
                    made = _carry_on_parallel(
                        store, record, written, wopts, request, outline, engine, renderer,
                        recorder, replay=replay or output is not None,
                    )  # fmt: skip
                else:
                    made = write_sections(
                        engine, request, outline, renderer, max_rounds=wopts.max_rounds,
                        guards=wopts.guards, on_raw=recorder.add, on_cut=recorder.add_cut,
                        on_section=on_section, written=written,
                        replay=replay or output is not None, max_tokens=wopts.max_tokens,
                    )  # fmt: skip
            entry.done(made.result)
        if target is not None and made.result.finish_reason != FINISH_CANCELLED:
            target.commit()
    if made.result.finish_reason == FINISH_CANCELLED:
        say(f"interrupted: `longwrite continue {record.id}` carries on")
        return EXIT_INTERRUPTED
    return 0


def _carry_on_parallel(
    store: Store,
    record: RunRecord,
    written: Any,
    wopts: WriteOptions,
    request: Request,
    outline: Outline,
    engine: Engine,
    renderer: Renderer,
    recorder: Recorder,
    *,
    replay: bool,
) -> Sectioned:
    """A `--parallel` run carried on: the sections shown stay, the sections finished out of
    order are kept, each unfinished one goes on from its logged text."""
    from longwrite.generate.parallel import Logged, write_parallel
    from longwrite.generate.sections import answer_of

    shown = list(written.done)
    if written.partial is not None:  # the document holds whole sections only
        shown.append((outline.parts[len(shown)].heading, answer_of(written.partial)))

    def on_progress(text: str) -> None:
        renderer.section = text

    return write_parallel(
        engine, request, outline, renderer, parallel=wopts.parallel,
        max_rounds=wopts.max_rounds, guards=wopts.guards, on_raw=recorder.add,
        on_cut=recorder.add_cut, on_section_raw=recorder.add_section,
        on_section_done=recorder.section_done, on_progress=on_progress,
        logged=Logged(shown, store.sections(record.id)), replay=replay,
        max_tokens=wopts.max_tokens,
    )  # fmt: skip


def _plan_again(
    record: RunRecord,
    wopts: WriteOptions,
    request: Request,
    engine: Engine,
    renderer: Renderer,
    recorder: Recorder,
) -> Sectioned:
    """A sectioned run stopped before its outline was settled: plan it again, as it began."""
    from longwrite.generate.job import budget_request

    how = record.options.get("sectioned") or {}
    plan_file = how.get("plan_file")
    wopts = replace(
        wopts,
        sections=how.get("sections") if how.get("forced") else None,
        plan_file=Path(plan_file) if plan_file else None,
        max_tokens=wopts.max_tokens or how.get("max_tokens"),
    )
    request, budget = budget_request(wopts, request, engine)
    n = how.get("sections") or 0
    say(f"longwrite: run {record.id} stopped while planning: planning it again")
    return write_sectioned(wopts, request, engine, budget, n, renderer, recorder)


def _extended(
    outline: Outline, written: Any, request: Request, engine: Engine, record: RunRecord
) -> tuple[Outline, Any]:
    """A finished sectioned run asked for more words (`continue --words N`): the outline gets
    more sections for the missing words (their titles asked of the model), and every section
    written so far counts as finished."""
    from longwrite.generate.planning import ask_more_parts
    from longwrite.io.counting import count_words
    from longwrite.runlog.store import DONE

    so_far = count_words(written.document)
    missing = (request.target_words or 0) - so_far
    if record.status != DONE or missing <= outline.words // (2 * len(outline.parts)):
        return outline, written
    share = max(outline.words // len(outline.parts), 1)
    k = max(1, math.ceil(missing / share))
    more = ask_more_parts(engine, request, outline, k, missing)
    done = (*written.done, (outline.parts[-1].heading, _last_text(written)))
    say(
        f"longwrite: extending run {record.id} by {len(more)} sections "
        f"({missing:,} words) to reach {request.target_words:,}"
    )
    extended = replace(outline, parts=(*outline.parts, *more))
    return extended, replace(written, done=done, partial=None)


def _last_text(written: Any) -> str:
    """The text of the last section of a finished run (read as unfinished by `read_written`)."""
    from longwrite.generate.sections import answer_of

    return answer_of(written.partial or "")
