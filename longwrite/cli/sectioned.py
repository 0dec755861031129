"""The write command's sectioned path: when to split, the outline, and the one stream.

`cli.write` hands over once the engine is loaded and the budget known. Sections are used when
the target does not fit one pass (said on stderr, with how many), when `--sections N` forces
them, or with `--plan FILE`; `--one-pass` keeps today's single pass and its warning.
`--plan-only` prints the outline (Markdown that `--plan FILE` reads back, or JSON) and stops.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from longwrite.errors import LongwriteError, say

if TYPE_CHECKING:
    from longwrite.display.renderer import Renderer
    from longwrite.engines.base import Engine
    from longwrite.generate.job import WriteOptions
    from longwrite.generate.plan import Outline
    from longwrite.generate.rounds import RawHook
    from longwrite.generate.sections import Sectioned
    from longwrite.length.budget import Budget
    from longwrite.prompt.request import Request


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
    if opts.one_pass or opts.best_of > 1:
        if opts.best_of > 1:
            say("longwrite: note: --best-of writes one pass (sections do not take it yet)")
        say(
            f"longwrite: warning: a {hi:,}-word answer does not fit in one pass: the context "
            f"({budget.context:,} tokens) leaves room for about {budget.max_words:,} words"
        )
        return None
    n = sections_needed(request.target_words, budget.max_words)
    say(
        f"longwrite: a {request.target_words:,}-word document does not fit in one pass (about "
        f"{budget.max_words:,} words): planning it, then writing it in {n} sections"
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
    from longwrite.generate.sections import plan_outline, section_cap
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
    on_raw: RawHook | None,
) -> Sectioned:
    """Plan (or read the user's outline), then every section through `renderer`."""
    from longwrite.generate.sections import write_sections

    if opts.best_of > 1:
        raise LongwriteError("--best-of is not available with sections yet: use --one-pass")
    outline, plan_tokens = get_outline(opts, request, engine, budget, n, renderer)
    if outline.source == "file" and request.target_words is None:
        from dataclasses import replace

        request = replace(request, target_words=outline.words)
        renderer.options = replace(renderer.options, target_words=outline.words)

    def on_section(k: int, total: int) -> None:
        renderer.section = f"section {k}/{total}"

    return write_sections(
        engine, request, outline, renderer, max_rounds=opts.max_rounds, guards=opts.guards,
        on_raw=on_raw, on_section=on_section, plan_tokens=plan_tokens,
    )  # fmt: skip
