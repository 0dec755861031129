"""The main command's run: resolve, load, stream to the display and to `-o FILE`.

`cli.app` only parses options; this module does, in this order, so that every mistake is
reported before a model loads:
1. the request (`generate.job.resolve_request`: target, steering, validation);
2. `--dry-run`: print the resolved request (budget estimated without a tokenizer) and stop;
3. check the output path, load the engine (a spinner on a terminal), budget `max_tokens`
   with its tokenizer and context; a target that cannot fit in one pass is written in
   sections (`cli.sectioned`), or with `--one-pass` warned about;
4. stream one document through the renderer (with continuation rounds when it ends short),
   or sample `--best-of` candidates and show the best; `-o FILE` through `FILE.partial`,
   committed only when the run ended on its own; `--json` at the end. An output the disk
   refuses (`-o FILE` or a redirected stdout) stops the generation (`Halting`) and ends the
   run failed, its text in the run log, in one line that says how to get it (exit 1);
5. all along, the raw text goes to the run log (`generate.record`), unless `--no-log`.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from longwrite.cli.output import Halting, rendering
from longwrite.cli.sectioned import plan_only, sections_wanted, write_sectioned
from longwrite.engines.base import FINISH_CANCELLED, Engine
from longwrite.errors import EXIT_INTERRUPTED, say
from longwrite.generate.job import WriteOptions, budget_request, resolve_request
from longwrite.prompt.request import Request

if TYPE_CHECKING:
    from longwrite.display.renderer import Renderer
    from longwrite.generate.rounds import Result
    from longwrite.length.budget import Budget
    from longwrite.runlog.recorder import Recorder


def dry_run(opts: WriteOptions, request: Request) -> None:
    from longwrite.generate.sectioned import sections_for
    from longwrite.length.budget import THINK_TOKENS, with_budget

    hi = request.target_range[1] if request.target_range else None
    request, budget = with_budget(
        request, hi, keep_max_tokens=opts.max_tokens is not None, think_tokens=opts.think_budget
    )
    info = {
        **request.to_json(),
        "engine": opts.engine.engine,
        "model": opts.engine.model,
        "budget": budget.to_json(),
    }
    n = sections_for(opts, request, budget)
    if n is not None:  # the prompt shown is the plan request's
        think = opts.think_budget or THINK_TOKENS
        info["sectioned"] = {
            "sections": n or None,  # None: the plan file decides
            "plan_file": str(opts.plan_file) if opts.plan_file is not None else None,
            "think_budget": think,
            "plan_request": None if opts.plan_file or not request.think else {
                "max_tokens": think, "stop": list(request.sampling.stop)},
        }  # fmt: skip
    if opts.as_json:
        print(json.dumps(info, ensure_ascii=False, indent=2))
        return
    print(request.prompt)
    shown = ("language", "target_words", "target_range", "max_tokens", "temperature", "top_p")
    say("dry run, nothing generated: " + ", ".join(f"{k}={info[k]}" for k in shown))
    if n is not None:
        how = f"the sections of {opts.plan_file}" if opts.plan_file else f"at least {n} sections"
        say(f"dry run: written in {how}; the prompt above is the plan request "
            f"(max_tokens={info['sectioned']['think_budget']})")  # fmt: skip


def run_write(opts: WriteOptions, *, export_to: Path | None = None) -> int:
    """Run the main job; returns the exit code (0, or 130 after Ctrl-C). `export_to`: a
    DOCX/EPUB/HTML/ODT/PDF file made from `-o FILE.md` once the document is complete."""
    from longwrite.display.loading import load_local_engine
    from longwrite.engines import resolve_engine_name
    from longwrite.io.files import check_writable

    request = resolve_request(opts)
    if opts.dry_run:
        dry_run(opts, request)
        return 0
    backend = resolve_engine_name(opts.engine.engine, server=opts.engine.server)
    if opts.output is not None:
        check_writable(opts.output)
    if export_to is not None:  # pandoc and the PDF engine, before a model loads
        from longwrite.export import check_ready, format_of

        check_writable(export_to)
        check_ready(format_of(export_to))
    engine = load_local_engine(opts.engine, backend)
    try:
        request, budget = budget_request(opts, request, engine)
        sections = sections_wanted(opts, request, budget)
        if opts.plan_only:
            plan_only(opts, request, engine, budget, sections or 0)
            return 0
        return _generate(opts, request, engine, backend, (budget, sections), export_to)
    finally:
        engine.close()


def _generate(
    opts: WriteOptions,
    request: Request,
    engine: Engine,
    backend: str,
    split: tuple[Budget, int | None],
    export_to: Path | None = None,
) -> int:
    from longwrite.display.renderer import Renderer, RenderOptions
    from longwrite.generate.record import recording, start_recording
    from longwrite.io.files import PartialFile

    options = RenderOptions(
        thinking=opts.thinking,
        target_words=request.target_words,
        answer="none" if (opts.output is not None or opts.as_json) else "auto",
    )
    target = PartialFile(opts.output) if opts.output is not None else None
    recorder = start_recording(opts, request, engine, backend)
    with recording(recorder) as entry, target if target is not None else nullcontext() as sink:
        renderer = Renderer(options, sink=sink)
        engine = Halting(engine, lambda: renderer.output_error is not None)
        with rendering(renderer, recorder, opts.output):
            if split[1] is None:
                result, extra = _produce(opts, request, engine, renderer, recorder)
            else:
                made = write_sectioned(opts, request, engine, *split, renderer, recorder)
                result, extra = made.result, made.extra()
        entry.done(result)
        if target is not None and result.finish_reason != FINISH_CANCELLED:
            target.commit()
    if opts.as_json:
        print(json.dumps({**result.to_json(), **extra}, ensure_ascii=False))
    if result.sources is not None:  # --source: citations of passages that do not exist
        from longwrite.generate.grounded import note_removed

        note_removed(result)
    for g in result.guard:
        if g["kind"] == "loop_kept":
            say(
                f"longwrite: note: the text looped again after {opts.guard_retries} fresh "
                f"sample(s): kept the {g['at_words']:,} words before the loop"
            )
    if result.finish_reason == FINISH_CANCELLED:
        kept = f" in {target.partial}" if target is not None else ""
        say(f"interrupted: kept {result.words} words{kept}")
        if entry.run_id is not None:
            say(f"longwrite: note: `longwrite continue {entry.run_id}` carries it on")
        return EXIT_INTERRUPTED
    if export_to is not None and target is not None and target.committed:
        _export(target.path, export_to, sectioned=split[1] is not None)
    return 0


def _export(markdown: Path, out: Path, *, sectioned: bool) -> None:
    """`-o report.docx`: the complete report.md exported (a table of contents when it was
    written in sections); a failure says where the Markdown is."""
    from longwrite.errors import LongwriteError
    from longwrite.export import export_markdown
    from longwrite.io.files import read_user_text

    try:
        export_markdown(read_user_text(markdown), out, toc=sectioned)
    except LongwriteError as e:  # the same kind of error (its exit code), saying more
        raise type(e)(
            f"{e}; the document is in {markdown} (`longwrite export {markdown} -o {out}` "
            "tries again)"
        ) from None


def _produce(
    opts: WriteOptions,
    request: Request,
    engine: Engine,
    renderer: Renderer,
    recorder: Recorder,
) -> tuple[Result, dict[str, Any]]:
    """One document (streamed, with continuation) or the best of K (shown when chosen),
    and the extra `--json` fields of best-of."""
    from longwrite.display.progress import CandidateProgress
    from longwrite.generate.job import produce

    if opts.best_of == 1:
        return produce(
            opts, request, engine, renderer, on_raw=recorder.add, on_cut=recorder.add_cut
        ).result, {}
    with CandidateProgress(opts.best_of, request.sampling.max_tokens) as progress:
        made = produce(opts, request, engine, renderer, progress=progress, on_raw=recorder.add,
                       on_candidate=recorder.add_candidate)  # fmt: skip
        progress.summary(made.candidates, made.best)
    result, candidates = made.result, made.candidates
    summaries = [c.summary() for c in candidates]
    if result.finish_reason == FINISH_CANCELLED:
        # Interrupted: every candidate's text so far is kept, not only the one shown.
        summaries = [{**s, "thinking": c.thinking, "answer": c.answer}
                     for s, c in zip(summaries, candidates, strict=True)]  # fmt: skip
        _keep_candidates(opts, summaries)
    return result, {"best": made.best, "candidates": summaries}


def _keep_candidates(opts: WriteOptions, records: list[dict[str, Any]]) -> None:
    """After Ctrl-C in best-of: all candidates beside `-o FILE`, or a note where they are."""
    if opts.output is None:
        if not opts.as_json:
            say(
                f"longwrite: note: {len(records)} candidates were cut off; only the one shown "
                "is kept (use -o FILE or --json to keep every candidate)"
            )
        return
    from longwrite.io.files import atomic_write_text

    path = opts.output.with_name(opts.output.name + ".candidates.jsonl")
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    atomic_write_text(path, lines)
    say(f"longwrite: kept all {len(records)} candidates in {path}")
