"""The write command's sectioned path: when to split, the outline, and the one stream.

`cli.write` hands over once the engine is loaded and the budget known. Sections are used when
the target does not fit one pass (said on stderr, with how many), when `--sections N` forces
them, or with `--plan FILE`; `--one-pass` keeps today's single pass and its warning.
`--plan-only` prints the outline (Markdown that `--plan FILE` reads back, or JSON) and stops.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from longwrite.errors import LongwriteError, say

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
    from longwrite.generate.sections import sections_needed

    hi = request.target_range[1] if request.target_range else None
    if opts.plan_file is not None:
        return 0  # the file decides
    if opts.sections is not None or opts.plan_only:
        if request.target_words is None:
            raise LongwriteError("sections need a length target: give --words N")
        return opts.sections or sections_needed(request.target_words, budget.max_words)
    if budget.fits or hi is None or request.target_words is None:
        return None
    if opts.one_pass:
        say(
            f"longwrite: warning: a {hi:,}-word answer does not fit in one pass: the context "
            f"({budget.context:,} tokens) leaves room for about {budget.max_words:,} words"
        )
        return None
    n = sections_needed(request.target_words, budget.max_words)
    say(
        f"longwrite: a {request.target_words:,}-word document does not fit in one pass (about "
        f"{budget.max_words:,} words): planning it, then writing it in sections (at least "
        f"{n}; the plan sets how many)"
    )
    return n


def get_outline(
    opts: WriteOptions,
    request: Request,
    engine: Engine,
    budget: Budget,
    n: int,
    renderer: Renderer | None,
) -> tuple[Outline, int]:
    """The user's outline (`--plan FILE`) or the model's plan: (outline, plan tokens)."""
    from longwrite.generate.plan import Outline, user_outline
    from longwrite.generate.planning import plan_outline
    from longwrite.generate.sections import section_cap
    from longwrite.io.files import read_user_text

    if opts.plan_file is not None:
        parts = user_outline(read_user_text(str(opts.plan_file)), request.target_words)
        if not parts:
            raise LongwriteError(f"{opts.plan_file}: no Markdown headings (## Title) to write to")
        return Outline(parts, "file"), 0
    assert request.target_words is not None
    return plan_outline(
        engine, request, request.target_words, n, forced=opts.sections is not None,
        cap=section_cap(budget.max_words), sink=renderer, think_tokens=opts.think_budget,
    )  # fmt: skip


def print_outline(opts: WriteOptions, outline: Outline) -> None:
    if opts.as_json:
        print(json.dumps(outline.to_json(), ensure_ascii=False))
    else:
        print(outline.markdown(), end="")


def write_sectioned(
    opts: WriteOptions,
    request: Request,
    engine: Engine,
    budget: Budget,
    n: int,
    renderer: Renderer,
    recorder: Recorder,
) -> Sectioned:
    """Plan (or read the user's outline), then every section through `renderer`; the run
    log gets the plan's transcript, the outline (for `continue`) and every section."""
    from longwrite.generate.sections import write_sections

    outline, plan_tokens = get_outline(opts, request, engine, budget, n, renderer)
    if outline.source == "file" and request.target_words is None:
        from dataclasses import replace

        request = replace(request, target_words=outline.words)
        renderer.options = replace(renderer.options, target_words=outline.words)

    def on_section(k: int, total: int) -> None:
        renderer.section = f"section {k}/{total}"
        if k == 1:  # the plan's transcript is logged: now the outline it belongs to
            recorder.note({"outline": outline.to_json()})

    return write_sections(
        engine, request, outline, renderer, max_rounds=opts.max_rounds, guards=opts.guards,
        on_raw=recorder.add, on_cut=recorder.add_cut, on_section=on_section,
        plan_tokens=plan_tokens, best=opts.best_of,
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
    and the character where the log stops; the run log entry goes on."""
    from longwrite.display.renderer import Renderer, RenderOptions
    from longwrite.engines.base import FINISH_CANCELLED
    from longwrite.errors import EXIT_INTERRUPTED
    from longwrite.generate.plan import Outline, Part
    from longwrite.generate.record import recording, run_options
    from longwrite.generate.sections import read_written, write_sections
    from longwrite.io.files import PartialFile
    from longwrite.runlog.recorder import Recorder, resume_run

    logged = record.options["outline"]
    parts = tuple(Part(p["heading"], p["words"]) for p in logged["parts"])
    outline = Outline(parts, logged["source"], logged.get("thinking", ""))
    written = read_written(raw, outline)
    options = {**record.options, **run_options(wopts, request, engine, backend)}
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
            with Renderer(render, sink=sink) as renderer:

                def on_section(k: int, total: int) -> None:
                    renderer.section = f"section {k}/{total}"

                made = write_sections(
                    engine, request, outline, renderer, max_rounds=wopts.max_rounds,
                    guards=wopts.guards, on_raw=recorder.add, on_cut=recorder.add_cut,
                    on_section=on_section,
                    written=written, replay=replay or output is not None,
                )  # fmt: skip
            entry.done(made.result)
        if target is not None and made.result.finish_reason != FINISH_CANCELLED:
            target.commit()
    if made.result.finish_reason == FINISH_CANCELLED:
        say(f"interrupted: `longwrite continue {record.id}` carries on")
        return EXIT_INTERRUPTED
    return 0
