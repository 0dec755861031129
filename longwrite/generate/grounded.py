"""A run written from the user's sources (`--source`): passages in, citations checked, out.

Where the passages go. The model's own template is not touched: its `{question}` receives
the user's request, then the numbered passages and our instruction to cite them as `[n]`
(`prompts/sources_{en,zh}.txt`, via `sources.cite.ask_with_sources`). The model reads them
as part of what the user asked, which is how it was trained to read material.

How much. Passages take at most `1 / SHARE` of the context (a third) in any one prompt,
measured with the engine's tokenizer where it has one (else estimated): the rest stays for
the plan and the text. A one-pass document gets the passages most relevant to the request.
A sectioned one: the plan is made from the request's passages, and each section's prompt
carries, in place of them, the passages retrieved for that section (its title, the plan's
notes for it, and the document's title as the query), so a long report draws on far more
material than one context holds. Numbers are the run's (`sources.cite.Numbering`): all are
given before the first section is written, so `[n]` means the same passage everywhere.

What comes out. `CitingSink` wraps the sink the text streams into: every `[n]` that names no
passage of the run is removed as it streams (and counted), and at the end a References
section lists each cited passage (file, page or heading, a short quote). The result says
what was given and cited (`Result.sources`, printed by `--json`, kept by the run log);
`words` counts the text above the References.

Lifecycle: `ground` (when the request is resolved: sources opened, indexed on the fly, and
passages chosen for an estimated context, so `--dry-run` shows them), `refit` (once the
engine is loaded: chosen again for its real context and tokenizer), `section_prompts`
(sectioned runs, once the outline is settled), `CitingSink` and `finish` around the writing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from longwrite.errors import LongwriteError, say
from longwrite.generate.parser import AnswerDelta, Done, Event
from longwrite.io.counting import count_words
from longwrite.sources.cite import (
    CitationFilter,
    Numbering,
    ask_with_sources,
    cited_numbers,
    references,
    render_passages,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from longwrite.engines.base import Engine
    from longwrite.generate.options import WriteOptions
    from longwrite.generate.plan import Outline
    from longwrite.generate.rounds import EventSink, Result
    from longwrite.prompt.request import Request
    from longwrite.sources.retrieve import Hit, Retriever
    from longwrite.sources.store import Passage

SHARE = 3  # passages take at most 1/SHARE of the context in any one prompt
_local = threading.local()  # per thread: open retrievers by (indexes, embed server)


@dataclass
class Grounding:
    """A grounded run's sources: what was retrieved, numbered and given (mutable: sections
    add theirs); carried in `Request.sources`."""

    retriever: Retriever
    question: str  # what the model's template took before the passages were added
    hits: list[Hit]  # the request's candidates, best first
    numbering: Numbering = field(default_factory=Numbering)
    given: list[int] = field(default_factory=list)  # in the request's prompt
    sections: list[tuple[str, list[int]]] = field(default_factory=list)  # (heading, given)

    def known(self, n: int) -> bool:
        return n in self.numbering.passages

    def to_json(self, document: str | None = None, removed: int = 0) -> dict[str, Any]:
        """What `--json` and the run log keep: each passage given (the text of those cited),
        what each section was given and cited, and how many numbers were removed."""
        body = document or ""
        cited = set(cited_numbers(body)) if document is not None else set()
        parts = _by_section(body, self.sections) if self.sections else [(None, body, self.given)]
        numbered = sorted(self.numbering.passages.items())
        return {
            "indexes": self.retriever.names,
            "share": f"1/{SHARE}",
            "passages": [_passage_json(n, p, n in cited) for n, p in numbered],
            "given": self.given,
            "sections": [
                {
                    "heading": heading,
                    "given": given,
                    "cited": (c := cited_numbers(text)),
                    "cited_not_given": [n for n in c if n not in given],
                }
                for heading, text, given in parts
            ],
            "cited": sorted(cited),
            "removed": removed,
        }


def _passage_json(n: int, p: Passage, cited: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"n": n, "index": p.index, "file": p.file, "locator": p.locator,
                           "cited": cited}  # fmt: skip
    if cited:
        out["text"] = p.text
    return out


def _by_section(document: str, sections: list[tuple[str, list[int]]]) -> list:
    """(heading, its text, given) per section, the document cut at the section headings."""
    out = []
    at = 0
    starts: list[int] = []
    for heading, _ in sections:
        i = document.find(f"## {heading}\n", at)
        starts.append(i if i >= 0 else -1)
        at = i + 1 if i >= 0 else at
    for k, (heading, given) in enumerate(sections):
        start = starts[k]
        later = [s for s in starts[k + 1 :] if s >= 0]
        text = "" if start < 0 else document[start : later[0] if later else len(document)]
        out.append((heading, text, given))
    return out


def retriever_for(names: list[str], embed_server: str | None) -> Retriever:
    """The open retriever of these indexes on this thread: made once per thread, and again
    when an index was rebuilt or replaced (`library.version`)."""
    from longwrite.sources.library import version
    from longwrite.sources.retrieve import Retriever

    cache: dict[tuple, Retriever] = _local.__dict__.setdefault("retrievers", {})
    key = (tuple(version(n) for n in names), embed_server)
    if key not in cache:
        for old in [k for k in cache if k[0] and [v[0] for v in k[0]] == [v[0] for v in key[0]]]:
            cache.pop(old).close()
        cache[key] = Retriever(names, embed_server)
    return cache[key]


def open_sources(specs: tuple[str, ...], tell: Callable[[str], None] = say) -> list[str]:
    """The index names of `--source`s, folders and files indexed (or refreshed) first."""
    from longwrite.display.index_progress import IndexBar
    from longwrite.sources.library import open_source

    names: list[str] = []
    for spec in specs:
        with IndexBar(spec) as bar:
            name, summary = open_source(spec, progress=bar, tell=tell)
        if summary is not None:
            if summary.read or summary.removed:  # an unchanged folder says nothing
                for line in summary.lines(name):
                    tell(f"longwrite: {line.strip()}")
            if summary.files == 0:
                raise LongwriteError(f"--source {spec}: nothing in it could be read")
        if name not in names:
            names.append(name)
    return names


def ground(opts: WriteOptions, request: Request) -> Request:
    """`request` with the passages most relevant to it, for an estimated context."""
    names = open_sources(opts.sources)
    retriever = retriever_for(names, opts.embed_server)
    question = request.question or request.user_prompt
    grounding = Grounding(retriever, question, retriever.search(question))
    return fit(request, grounding, context=None, count_tokens=None)


def refit(request: Request, engine: Engine) -> Request:
    """The passages chosen again for the engine's context and tokenizer."""
    g: Grounding = request.sources
    fresh = Grounding(g.retriever, g.question, g.hits)
    return fit(request, fresh, context=engine.info.context, count_tokens=engine.count_tokens)


def budget_tokens(context: int | None) -> int:
    from longwrite.length.budget import DEFAULT_CONTEXT

    return (context or DEFAULT_CONTEXT) // SHARE


def choose_within(
    hits: list[Hit], context: int | None, count_tokens: Callable[[str], int | None] | None
) -> list[Passage]:
    """The best passages whose block fits the share, by the tokenizer when there is one."""
    from longwrite.sources.retrieve import choose

    budget = budget_tokens(context)
    chosen = choose(hits, budget)
    while chosen and count_tokens is not None:
        counted = count_tokens(render_passages(list(enumerate(chosen, 1))))
        if counted is None or counted <= budget:
            break
        keep = len(chosen) * budget // counted  # the estimate ran low: drop the excess
        chosen = chosen[: min(keep, len(chosen) - 1)]
    return chosen


def fit(
    request: Request,
    grounding: Grounding,
    *,
    context: int | None,
    count_tokens: Callable[[str], int | None] | None,
) -> Request:
    from longwrite.prompt.templates import build_prompt

    chosen = choose_within(grounding.hits, context, count_tokens)
    numbered = grounding.numbering.number(chosen)
    grounding.given = [n for n, _ in numbered]
    prompt = build_prompt(asking(grounding.question, numbered, request.language),
                          language=request.language, think=request.think)  # fmt: skip
    return replace(request, prompt=prompt, sources=grounding)


def asking(question: str, numbered: list[tuple[int, Passage]], language: str) -> str:
    """The request with its passages, or as it is when none matched (no empty list of
    sources to cite)."""
    return ask_with_sources(question, numbered, language) if numbered else question


def section_prompts(request: Request, outline: Outline, engine: Engine) -> list[str]:
    """Each section's request in the model's template, with the passages retrieved for it
    (all numbered now, in the outline's order)."""
    from longwrite.prompt.templates import build_prompt

    g: Grounding = request.sources
    prompts: list[str] = []
    g.sections = []
    for part in outline.parts:
        query = "\n".join(x for x in (outline.title, part.heading, part.notes) if x)
        chosen = choose_within(g.retriever.search(query), engine.info.context,
                               engine.count_tokens)  # fmt: skip
        numbered = g.numbering.number(chosen)
        g.sections.append((part.heading, [n for n, _ in numbered]))
        ask = asking(g.question, numbered, request.language)
        prompts.append(build_prompt(ask, language=request.language, think=request.think))
    return prompts


class CitingSink:
    """The sink a grounded run writes into: unknown `[n]` removed as the text streams, the
    References section added before `Done`. Anything else is the wrapped sink's."""

    def __init__(self, sink: EventSink, grounding: Grounding, language: str) -> None:
        self.sink = sink
        self.grounding = grounding
        self.language = language
        self.filter = CitationFilter(grounding.known)
        self.shown: list[str] = []
        self.references = ""

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sink, name)

    def handle(self, event: Event) -> None:
        if isinstance(event, AnswerDelta):
            self._pass(self.filter.feed(event.text))
            return
        if isinstance(event, Done):
            self._pass(self.filter.close())
            text = self.body
            refs = references(self.filter.cited, self.grounding.numbering.passages, text,
                              self.language)  # fmt: skip
            if refs:
                breaks = len(text) - len(text.rstrip("\n"))
                self.references = "\n" * max(0, 2 - breaks) + refs if text else refs
                self.sink.handle(AnswerDelta(self.references))
        self.sink.handle(event)

    def _pass(self, text: str) -> None:
        if text:
            self.shown.append(text)
            self.sink.handle(AnswerDelta(text))

    def add_tokens(self, n: int) -> None:
        self.sink.add_tokens(n)

    @property
    def body(self) -> str:
        return "".join(self.shown)


def finish(result: Result, citing: CitingSink) -> Result:
    """The result as the user got it: the text with unknown numbers removed and the
    References, `words` counting the text alone, `sources` saying what was given and cited."""
    body = citing.body
    sources = citing.grounding.to_json(body, citing.filter.removed)
    return replace(result, answer=body + citing.references, words=count_words(body),
                   sources=sources)  # fmt: skip


def note_removed(result: Result, tell: Callable[[str], None] = say) -> None:
    """One line when numbers that named no passage were removed."""
    removed = (result.sources or {}).get("removed", 0)
    if removed:
        tell(f"longwrite: note: removed {removed} citation(s) of passages that do not exist")
