"""Redo one part of a finished document: a section written again, every version kept.

Why: after a first draft, people ask to regenerate chapter 7, to redo everything after
chapter 5, to make one part shorter or more concrete, without losing the rest. A document's
sections are its `##` parts (a sectioned run's outline, or a one-pass run split at its `##`
headings); the run's own text is never changed: each new version of a section is kept in the
run log beside it, and the current document is the run's text with each section's latest
finished version in its place (`current_document`). A version still being written (killed
mid-way) is listed, never mixed into the document.

What the model sees (its own think template, so it writes as it was trained to):

    template(request) <think>THE PLAN (when the run had one)
    Revision of part K, "Heading" (about N words). INSTRUCTION. The part after it begins:
    "first words of the next part..."</think> <answer>
    # Title  ## earlier headings [...]  last TAIL_CHARS of the part before  ## Heading

The instruction ("shorter", "more concrete, with numbers", "in the first person") is a line
of the model's own plan, which is where it keeps such notes; the start of the next part is
quoted there too, since the model writes left to right and cannot read what follows. Without
an instruction the part is a fresh sample (another seed). The new version streams like any
section: through `section_stream.SectionEngine` (its heading not restated, the next heading
ending it, its length), the loop guard reading the document before it, continuation when
short.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from longwrite.generate.guards import Guards
from longwrite.generate.rounds import Continuation, EventSink, RawHook, Result, write_document
from longwrite.generate.section_stream import SectionEngine
from longwrite.generate.sections import ELIDED, SECTION_LEVEL, TAIL_CHARS, section_request
from longwrite.io.counting import count_words
from longwrite.length.budget import tokens_per_word
from longwrite.prompt.request import Request

NEXT_CHARS = 300  # of the part after: enough for its opening idea
_HEADING = re.compile(r"^## (.+?)\s*$", re.M)


@dataclass(frozen=True)
class Document:
    """A document as sections: the text before the first `##` (the title), then each part."""

    head: str
    sections: tuple[tuple[str, str], ...]  # (heading, body)

    def text(self) -> str:
        parts = [self.head.rstrip("\n") + "\n\n"] if self.head.strip() else []
        parts += [f"{SECTION_LEVEL}{h}\n\n{b.strip()}\n\n" for h, b in self.sections]
        return "".join(parts).rstrip("\n")

    def with_section(self, k: int, body: str) -> Document:
        sections = list(self.sections)
        sections[k] = (sections[k][0], body)
        return replace(self, sections=tuple(sections))


def split_sections(answer: str) -> Document:
    """`answer` split at its `##` headings (outside code blocks)."""
    cuts = [m for m in _HEADING.finditer(answer) if not _in_code(answer, m.start())]
    if not cuts:
        return Document(answer, ())
    sections = []
    for i, m in enumerate(cuts):
        end = cuts[i + 1].start() if i + 1 < len(cuts) else len(answer)
        sections.append((m.group(1), answer[m.end() : end].strip("\n")))
    return Document(answer[: cuts[0].start()], tuple(sections))


def _in_code(text: str, at: int) -> bool:
    return text.count("```", 0, at) % 2 == 1


@dataclass(frozen=True)
class Version:
    """One version of one section, as the run log keeps it."""

    id: int
    k: int
    text: str
    instruction: str
    status: str  # "writing", "done", "undone"


def current_document(answer: str, versions: list[Version]) -> Document:
    """The run's answer with each section's latest finished version in its place."""
    doc = split_sections(answer)
    for v in versions:  # oldest first: the last finished one wins
        if v.status == "done" and v.k < len(doc.sections):
            doc = doc.with_section(v.k, v.text)
    return doc


def find_section(doc: Document, ref: str) -> int:
    """The index of the section `ref` names: its number (1-based) or a heading prefix."""
    from longwrite.errors import LongwriteError

    headings = [h for h, _ in doc.sections]
    if ref.strip().isdigit():
        k = int(ref) - 1
        if 0 <= k < len(headings):
            return k
        raise LongwriteError(f"--section {ref}: the document has {len(headings)} sections")
    hits = [i for i, h in enumerate(headings) if h.casefold().startswith(ref.strip().casefold())]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        shown = "; ".join(f"{i + 1}. {h}" for i, h in enumerate(headings[:12]))
        raise LongwriteError(f"--section {ref!r}: no section begins so ({shown})")
    names = ", ".join(headings[i] for i in hits[:4])
    raise LongwriteError(f"--section {ref!r} names more than one section ({names})")


def revision_prompt(
    request: Request, plan: str, doc: Document, k: int, words: int, instruction: str
) -> str:
    """The prompt that writes section `k` again (see the module docstring)."""
    heading = doc.sections[k][0]
    note = f'Revision of part {k + 1}, "{heading}" (about {words:,} words).'
    if instruction:
        note += f" {instruction.strip().rstrip('.')}."
    if k + 1 < len(doc.sections):
        nxt = " ".join(doc.sections[k + 1][1].split())[:NEXT_CHARS]
        note += f' The part after it begins: "{nxt}..."'
    thinking = f"{plan.strip()}\n\n{note}" if plan.strip() else note
    elided = doc.sections[: max(k - 1, 0)]
    earlier = "".join(f"{SECTION_LEVEL}{h}\n\n{ELIDED}\n\n" for h, _ in elided)
    before = ""
    if k:
        h, body = doc.sections[k - 1]
        tail = body.strip()[-TAIL_CHARS:]
        cut = tail.find("\n\n")
        tail = (
            tail[cut + 2 :]
            if len(body.strip()) > TAIL_CHARS and 0 <= cut < len(tail) // 2
            else tail
        )
        before = f"{SECTION_LEVEL}{h}\n\n{tail}\n\n"
    head = doc.head.rstrip("\n") + "\n\n" if doc.head.strip() else ""
    return (
        f"{request.prompt} <think>{thinking}</think> <answer>\n"
        f"{head}{earlier}{before}{SECTION_LEVEL}{heading}\n\n"
    )


def revise_section(
    engine: Any,
    request: Request,
    doc: Document,
    k: int,
    sink: EventSink,
    *,
    plan: str = "",
    instruction: str = "",
    words: int | None = None,
    guards: Guards | None = None,
    max_rounds: int = 2,
    on_raw: RawHook | None = None,
    seed: int | None = None,
) -> Result:
    """Section `k` of `doc` written again into `sink` (its words: `words`, else the old
    version's); `on_raw` receives the new version's text as it streams."""
    from longwrite.generate.guards import NO_GUARDS

    heading, old = doc.sections[k]
    words = words or max(count_words(old), 50)
    prompt = revision_prompt(request, plan, doc, k, words, instruction)
    later = [h for h, _ in doc.sections[k + 1 :]]
    stop = f"\n{SECTION_LEVEL}{later[0]}" if later else None
    sec = section_request(request, prompt, words, words, stop, engine.info.context,
                          engine.count_tokens)  # fmt: skip
    if seed is not None:
        sec = replace(sec, sampling=replace(sec.sampling, seed=seed))
    kept = SectionEngine(engine, prompt, heading, later, words)
    tpw, _ = tokens_per_word(request.language, engine.count_tokens)
    rule = Continuation(sec.target_range[0], max_rounds, tpw) if max_rounds else None
    earlier = Document(doc.head, doc.sections[:k]).text() if k else doc.head
    return write_document(
        kept, sec, sink, continuation=rule, on_raw=on_raw, guards=guards or NO_GUARDS,
        earlier=earlier,
    )  # fmt: skip
