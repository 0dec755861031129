"""`longwrite revise ID --section K [INSTRUCTION]`: one part written again, nothing lost.

The run's own text stays as it was; each new version of a section goes into the run log
beside it as it streams (`generate.revise`), and the document `logs show`, `export` and `-o
FILE` give is the run with each section's latest finished version. `--from K` rewrites every
section from K to the end (the plan kept), `--undo` sets the latest version of a section
aside, `logs show ID --versions K` lists them. The engine, model and server are the run's
unless given; Ctrl-C keeps the version written so far as an interrupted one (never current).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from longwrite.cli import options as opt
from longwrite.cli.completion import run_ids
from longwrite.errors import EXIT_INTERRUPTED, LongwriteError, say

if TYPE_CHECKING:
    from longwrite.generate.revise import Document
    from longwrite.runlog.store import RunRecord, Store


@opt.declared
def revise_command(
    run: Annotated[str, typer.Argument(help="Run id, a unique prefix, or `last`.", metavar="ID",
                                       autocompletion=run_ids)],
    instruction: Annotated[str | None, typer.Argument(help='What to change ("shorter", "more '
                           'concrete, with numbers"); none: a fresh sample.')] = None,
    section: Annotated[list[str] | None, typer.Option("--section", "-s", metavar="K", help="The "
                       "section: its number or the start of its heading. Repeatable.")] = None,
    from_: Annotated[str | None, typer.Option("--from", metavar="K", help="Rewrite from "
                     "section K to the end (the plan kept).")] = None,
    undo: Annotated[bool, typer.Option("--undo", help="Go back one version of each "
                    "--section.")] = False,
    words: Annotated[int | None, typer.Option("--words", "-w", help="The new version's "
                     "length in words (default: the old version's).")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the whole "
                      "revised document to FILE (atomically).")] = None,
    server: opt.RunServer = None,
    model: opt.RunModel = None,
    seed: Annotated[int | None, typer.Option(help="Sampling seed of the new version.",
                    rich_help_panel=opt.SAMPLING)] = None,
    thinking: Annotated[Literal["hide", "show", "keep"] | None, typer.Option(help="Show the "
                        "model's thinking (default: the run's).")] = None,
) -> None:  # fmt: skip
    """Write one section of a logged run again (or several, or from one to the end)."""
    from longwrite.config.servers import use_one

    server = use_one(server)  # a named server: its URL
    code = run_revise(run, instruction or "", section or [], from_, undo, words, output,
                      server, model, seed, thinking)  # fmt: skip
    if code:
        raise typer.Exit(code)


def run_revise(
    run: str,
    instruction: str,
    sections: list[str],
    start: str | None,
    undo: bool,
    words: int | None,
    output: Path | None,
    server: str | None,
    model: str | None,
    seed: int | None,
    thinking: str | None,
) -> int:
    from longwrite.cli.logs import need_log
    from longwrite.generate.revise import find_section
    from longwrite.io.files import check_writable
    from longwrite.prompt.request import check_settings

    check_settings(words=words)
    if not sections and start is None:
        raise LongwriteError("say which section: --section K (or --from K)")
    if sections and start is not None:
        raise LongwriteError("--section and --from cannot be combined")
    if undo and (start is not None or instruction or words):
        raise LongwriteError("--undo takes --section K only")
    if output is not None:
        check_writable(output)
    store = need_log()
    try:
        record = store.resolve(run)
        doc, plan = document_of(store, record)
        if not doc.sections:
            raise LongwriteError(
                f"run {record.id} has no sections (## headings) to revise: "
                f"`longwrite continue {record.id}` carries it on instead"
            )
        if start is not None:
            ks = list(range(find_section(doc, start), len(doc.sections)))
        else:
            ks = sorted({find_section(doc, ref) for ref in sections})
        if undo:
            return _undo(store, record, ks, doc, output)
        return _revise(store, record, doc, plan, ks, instruction, words, output,
                       server, model, seed, thinking)  # fmt: skip
    finally:
        store.close()


def document_of(store: Store, record: RunRecord) -> tuple[Document, str]:
    """A run's current document (its sections' latest finished versions in place) and its
    plan (the thinking every section read)."""
    from longwrite.generate.parser import split_think_answer
    from longwrite.generate.revise import Version, current_document

    raw = store.raw(record.id)
    thinking, answer = split_think_answer(raw)
    versions = [Version(*row) for row in store.versions(record.id)]
    return current_document(answer, versions), thinking


def _undo(
    store: Store, record: RunRecord, ks: list[int], doc: Document, output: Path | None
) -> int:
    for k in ks:
        undone = store.undo_version(record.id, k)
        heading = doc.sections[k][0]
        if undone is None:
            say(f"section {k + 1} ({heading}): no revision to undo")
        else:
            say(f"section {k + 1} ({heading}): back to the version before")
    if output is not None:
        from longwrite.io.files import atomic_write_text

        atomic_write_text(output, document_of(store, record)[0].text())
    return 0


def _revise(
    store: Store,
    record: RunRecord,
    doc: Document,
    plan: str,
    ks: list[int],
    instruction: str,
    words: int | None,
    output: Path | None,
    server: str | None,
    model: str | None,
    seed: int | None,
    thinking: str | None,
) -> int:
    from longwrite.cli.continue_ import ContinueOptions, logged_request, run_write_options
    from longwrite.display.loading import load_local_engine
    from longwrite.display.renderer import Renderer, RenderOptions
    from longwrite.engines import resolve_engine_name
    from longwrite.generate.parser import AnswerDelta
    from longwrite.generate.revise import revise_section
    from longwrite.io.counting import count_words
    from longwrite.io.files import atomic_write_text
    from longwrite.runlog.recorder import VersionRecorder

    c = ContinueOptions(run=record.id, server=server, model=model, thinking=thinking)
    wopts = run_write_options(record, c)
    request = logged_request(record, c)
    backend = resolve_engine_name(wopts.engine.engine, server=wopts.engine.server)
    engine = load_local_engine(wopts.engine, backend)
    try:
        for n, k in enumerate(ks):
            heading, old = doc.sections[k]
            version = store.start_version(record.id, k, instruction)
            recorder = VersionRecorder(store, record.id, version)
            shown = RenderOptions(thinking=wopts.thinking, target_words=words)
            status = "failed"
            try:
                with Renderer(shown) as renderer:
                    renderer.section = f"revising section {k + 1} ({n + 1} of {len(ks)})"
                    renderer.handle(AnswerDelta(f"## {heading}\n\n"))
                    result = revise_section(
                        engine, request, doc, k, renderer, plan=plan, instruction=instruction,
                        words=words, guards=wopts.guards, max_rounds=wopts.max_rounds,
                        on_raw=recorder.add, seed=_seed(seed, instruction, version),
                    )  # fmt: skip
                status = "interrupted" if result.finish_reason == "cancelled" else "done"
            finally:
                recorder.end(status)
            if status != "done":
                kept = f"`logs show {record.id} --versions {k + 1}`"
                say(f"interrupted: section {k + 1} keeps its previous version; the new one "
                    f"is kept as unfinished ({kept})")  # fmt: skip
                return EXIT_INTERRUPTED
            doc = doc.with_section(k, result.answer)
            say(f"section {k + 1} ({heading}): new version, {count_words(result.answer):,} "
                f"words (was {count_words(old):,})")  # fmt: skip
    finally:
        engine.close()
    if output is not None:
        atomic_write_text(output, doc.text())
    return 0


def _seed(seed: int | None, instruction: str, version: int) -> int | None:
    """Without an instruction the new version is a fresh sample: another seed each time."""
    if seed is not None or instruction:
        return seed
    return 1000 + version
