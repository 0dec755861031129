"""The main job's sectioned path, one for the command, `batch` and the Python API.

Why one module: the command, a batch line and `longwrite.write()` must split the same
requests into the same sections, from the same outline, or the README's promise that the API
"runs what the command runs" is false. So: `check_sections` (before any model loads: a plan
file that is missing, empty or at odds with `--sections`; `--sections` without a target),
`sections_for` (how many, and one line on stderr when chosen for the user), `settle_outline`
(`--plan FILE`, whose whole text is the plan the model reads and whose `#` heading is the
title, or the model's own plan) and `produce_sectioned` (settle, then `write_sections`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from longwrite.errors import LongwriteError, say

if TYPE_CHECKING:
    from longwrite.engines.base import Engine
    from longwrite.generate.options import WriteOptions
    from longwrite.generate.plan import Outline, UserPlan
    from longwrite.generate.rounds import CutHook, EventSink, RawHook
    from longwrite.generate.sections import Sectioned
    from longwrite.length.budget import Budget
    from longwrite.prompt.request import Request

Tell = Callable[[str], None]
MAX_SECTIONS = 2_000  # a section per thousand words of the longest target allowed


def read_plan_file(opts: WriteOptions, target: int | None) -> UserPlan:
    """`--plan FILE` read and checked: one line for a missing, unreadable or empty plan, or one
    whose sections are not the number `--sections` asks for."""
    from longwrite.generate.plan import user_plan
    from longwrite.io.files import read_user_text

    assert opts.plan_file is not None
    plan = user_plan(read_user_text(str(opts.plan_file)), target)
    if not plan.parts:
        raise LongwriteError(
            f"{opts.plan_file}: no sections to write to (## headings, or a numbered list)"
        )
    if opts.sections is not None and opts.sections != len(plan.parts):
        raise LongwriteError(
            f"--sections {opts.sections}, but {opts.plan_file} has {len(plan.parts)} sections"
        )
    return plan


def check_sections(opts: WriteOptions, request: Request) -> None:
    """Every sectioned option checked before a model loads."""
    if opts.sections is not None and opts.sections < 2:
        raise LongwriteError("--sections must be 2 or more (one section is one pass)")
    if opts.sections is not None and opts.sections > MAX_SECTIONS:
        raise LongwriteError(f"--sections must be at most {MAX_SECTIONS:,}")
    if opts.plan_file is not None:
        read_plan_file(opts, request.target_words)
        return
    if (opts.sections is not None or opts.plan_only) and request.target_words is None:
        what = "--sections" if opts.sections is not None else "--plan-only"
        raise LongwriteError(f"{what} needs a length target: give --words N")


def sections_for(
    opts: WriteOptions, request: Request, budget: Budget, *, tell: Tell | None = None
) -> int | None:
    """How many sections to write (None: one pass; 0: the plan file decides). `tell` gets the
    line that says so when the budget chose it for the user."""
    from longwrite.generate.sections import sections_needed

    if opts.plan_file is not None:
        return 0
    target = request.target_words
    if opts.sections is not None or opts.plan_only:
        assert target is not None  # check_sections
        return opts.sections or sections_needed(target, budget.max_words)
    hi = request.target_range[1] if request.target_range else None
    if budget.fits or hi is None or target is None:
        return None
    if opts.one_pass:
        if tell is not None:
            tell(
                f"longwrite: warning: a {hi:,}-word answer does not fit in one pass: the "
                f"context ({budget.context:,} tokens) leaves room for about "
                f"{budget.max_words:,} words"
            )
        return None
    n = sections_needed(target, budget.max_words)
    if tell is not None:
        tell(
            f"longwrite: a {target:,}-word document does not fit in one pass (about "
            f"{budget.max_words:,} words): planning it, then writing it in sections (at least "
            f"{n}; the plan sets how many)"
        )
    return n


def parallel_for(opts: WriteOptions, engine: Engine, *, tell: Tell | None = None) -> int:
    """Sections written at once on `engine`: `opts.parallel`, but one at a time on the
    transformers engine (one model in this process writes one stream at a time)."""
    if opts.parallel > 1 and engine.info.name == "transformers":
        if tell is not None:
            tell("longwrite: note: the transformers engine writes one section at a time "
                 "(--parallel needs a server or vLLM)")  # fmt: skip
        return 1
    return opts.parallel


def sectioning(opts: WriteOptions, n: int) -> dict[str, object]:
    """What the run log keeps of a sectioned run before it is planned: what `continue`
    needs to plan it again."""
    return {
        "sections": n,
        "forced": opts.sections is not None,
        "plan_file": str(opts.plan_file) if opts.plan_file is not None else None,
        "max_tokens": opts.max_tokens,
        "parallel": opts.parallel,
    }


def settle_outline(
    opts: WriteOptions,
    request: Request,
    engine: Engine,
    budget: Budget,
    n: int,
    *,
    plan_sink: EventSink | None = None,
) -> tuple[Outline, int]:
    """The outline to write to and the plan's tokens: `--plan FILE` (its text is the plan),
    else the model's own plan (its thinking streamed to `plan_sink`)."""
    from longwrite.generate.plan import Outline
    from longwrite.generate.planning import ask_title, plan_outline, title_from
    from longwrite.generate.sections import section_cap

    if opts.plan_file is not None:
        plan = read_plan_file(opts, request.target_words)
        title = plan.title or title_from(request.user_prompt, "") or ask_title(engine, request)
        return Outline(plan.parts, "file", plan.text.strip(), title), 0
    assert request.target_words is not None
    return plan_outline(
        engine, request, request.target_words, n, forced=opts.sections is not None,
        cap=section_cap(budget.max_words), sink=plan_sink, think_tokens=opts.think_budget,
    )  # fmt: skip


def produce_sectioned(
    opts: WriteOptions,
    request: Request,
    engine: Engine,
    budget: Budget,
    n: int,
    sink: EventSink,
    *,
    plan_sink: EventSink | None = None,
    on_raw: RawHook | None = None,
    on_cut: CutHook | None = None,
    on_section: Callable[[int, int], None] | None = None,
    on_outline: Callable[[Outline, Request], None] | None = None,
    on_section_raw: Callable[[int, str, int], None] | None = None,
    on_section_done: Callable[[int, str], None] | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> Sectioned:
    """Plan (or read the plan file), then every section into `sink` as one document.
    `on_outline` learns the outline (and the request, whose target a plan file may set) before
    the first section is written: the run log keeps it for `continue`. A grounded request
    (`--source`): each section is given the passages retrieved for it, and the document
    streams through `grounded.CitingSink`."""
    from longwrite.generate.sections import write_sections

    outline, plan_tokens = settle_outline(opts, request, engine, budget, n, plan_sink=plan_sink)
    if request.target_words is None:  # a plan file without a target: its counts are it
        request = replace(request, target_words=outline.words)
    if on_outline is not None:
        on_outline(outline, request)
    prompts = citing = None
    if request.sources is not None:
        from longwrite.generate.grounded import CitingSink, section_prompts

        prompts = section_prompts(request, outline, engine)
        sink = citing = CitingSink(sink, request.sources, request.language)
    if parallel_for(opts, engine, tell=say) > 1:
        from longwrite.generate.parallel import write_parallel

        made = write_parallel(
            engine, request, outline, sink, parallel=opts.parallel, max_rounds=opts.max_rounds,
            guards=opts.guards, on_raw=on_raw, on_cut=on_cut, on_section_raw=on_section_raw,
            on_section_done=on_section_done, on_progress=on_progress, plan_tokens=plan_tokens,
            max_tokens=opts.max_tokens, prompts=prompts,
        )  # fmt: skip
    else:
        made = write_sections(
            engine, request, outline, sink, max_rounds=opts.max_rounds, guards=opts.guards,
            on_raw=on_raw, on_cut=on_cut, on_section=on_section, plan_tokens=plan_tokens,
            best=opts.best_of, max_tokens=opts.max_tokens, prompts=prompts,
        )  # fmt: skip
    if citing is None:
        return made
    from longwrite.generate.grounded import finish

    return replace(made, result=finish(made.result, citing))
