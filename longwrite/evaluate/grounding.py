"""`longwrite eval grounding`: how well documents written from sources cite them.

A results line is what `batch` or `--json` wrote: `answer`, and `sources` as `Result.sources`
holds it (the passages given, with the text of each one cited). Per document:

- Paragraphs: the prose paragraphs of the text above the References (markdown-it's
  paragraphs of at least `MIN_WORDS` words: a heading, a caption or a short list item needs
  no source), and the share of them that cite at least one passage.
- Citations: every `[n]` in them, and the ones that point at nothing: a number no passage of
  the run has. longwrite removes those as it writes (`removed`, from the record), so in its
  own output the count is 0; a document from elsewhere, without `sources`, has only its
  References section to name passages, else every citation points at nothing.
- With a judge (`--judge URL`): each sentence and a passage it cites, at most `claims` pairs
  per document spread evenly through it, asked whether the passage supports the sentence:
  yes (1), partly (0.5), no (0). Asked through the one judge client (`scoring.judge`:
  concurrency, retries, the judge's context); a pair the judge never answered usably is
  unscored, never 0. Only passages whose text the record holds can be judged.

The summary: the mean share of cited paragraphs over documents, the totals, and the mean
support over every judged pair.
"""

from __future__ import annotations

import re
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from longwrite.defaults import GROUNDING_CLAIMS
from longwrite.errors import LongwriteError
from longwrite.evaluate.judged import answer_of, fill, key_of, load_template, read_objects
from longwrite.io.counting import count_words
from longwrite.sources.cite import MARKER, body_of, numbers_in

MIN_WORDS = 20
DEFAULT_CLAIMS = GROUNDING_CLAIMS
TEMPLATE = "grounding_judge_en"
JUDGE_MAX_TOKENS = 200
SUPPORT = {"yes": 1.0, "partly": 0.5, "partial": 0.5, "no": 0.0}
# A sentence ends at . ! ? before a space (or 。！？), with the citations right after it.
_SENTENCE_END = re.compile(
    r"[.!?](?:\s*\[[\d\s,;，、\-–]+\])*(?=\s|$)|[。！？](?:\s*\[[\d\s,;，、\-–]+\])*"
)
_REFERENCE = re.compile(r"^\[(\d+)\] ", re.M)


@dataclass(frozen=True)
class Claim:
    """A sentence and one passage it cites, for the judge."""

    doc: str
    sentence: str
    n: int
    passage: str


@dataclass
class Document:
    """One document's figures."""

    id: str
    paragraphs: int
    cited_paragraphs: int
    citations: int
    dangling: int
    removed: int
    claims: list[Claim] = field(default_factory=list)
    support: list[float] = field(default_factory=list)  # judged pairs' scores
    unscored: int = 0

    @property
    def share(self) -> float | None:
        return self.cited_paragraphs / self.paragraphs if self.paragraphs else None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "paragraphs": self.paragraphs, "cited_paragraphs": self.cited_paragraphs,
            "share": self.share, "citations": self.citations, "dangling": self.dangling,
            "removed": self.removed, "judged": len(self.support), "unscored": self.unscored,
            "support": sum(self.support) / len(self.support) if self.support else None,
        }  # fmt: skip


def paragraphs(text: str) -> list[str]:
    """The prose paragraphs of Markdown `text` (list items' included), of `MIN_WORDS` or more.

    >>> paragraphs("# Title\\n\\n" + "word " * 25 + "\\n\\n- short item\\n")
    ['word word word word word word word word word word word word word word word word word word word word word word word word word']
    """  # noqa: E501
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(text)
    out = []
    for i, tok in enumerate(tokens):
        if tok.type == "paragraph_open" and i + 1 < len(tokens):
            content = tokens[i + 1].content.strip()
            if count_words(content) >= MIN_WORDS:
                out.append(content)
    return out


def sentences(paragraph: str) -> list[str]:
    """A paragraph's sentences, a citation after a full stop kept with the sentence before.

    >>> sentences("Trees cool streets.[2] Roofs matter [3]. 热岛很强[4]。风也有用。")
    ['Trees cool streets.[2]', 'Roofs matter [3].', '热岛很强[4]。', '风也有用。']
    """
    out: list[str] = []
    at = 0
    for m in _SENTENCE_END.finditer(paragraph):
        if paragraph[at : m.end()].strip():
            out.append(paragraph[at : m.end()].strip())
        at = m.end()
    if paragraph[at:].strip():
        out.append(paragraph[at:].strip())
    return out


def cited(text: str) -> list[int]:
    """Every number `text` cites, each time it is cited."""
    return [n for m in MARKER.finditer(text) for n in numbers_in(m.group(2))]


def document_of(obj: dict[str, Any], key: str, claims: int) -> Document:
    """One results line's figures, and the claims to judge (at most `claims`)."""
    answer = answer_of(obj) or ""
    sources = obj.get("sources") if isinstance(obj.get("sources"), dict) else None
    texts: dict[int, str] = {}
    known: set[int] = set()
    if sources is not None:
        for p in sources.get("passages") or []:
            if isinstance(p, dict) and isinstance(p.get("n"), int):
                known.add(p["n"])
                if isinstance(p.get("text"), str):
                    texts[p["n"]] = p["text"]
    body = body_of(answer)
    if sources is None:  # another tool's document: its own References name its passages
        known = {int(n) for n in _REFERENCE.findall(answer[len(body) :])}
    paras = paragraphs(body)
    numbers = [n for p in paras for n in cited(p)]
    pairs = [
        Claim(key, sentence, n, texts[n])
        for p in paras
        for sentence in sentences(p)
        for n in dict.fromkeys(cited(sentence))
        if n in texts
    ]
    if len(pairs) > claims:  # spread through the document, not its first pages only
        pairs = [pairs[i * len(pairs) // claims] for i in range(claims)]
    removed = sources.get("removed", 0) if sources is not None else 0
    return Document(
        key, len(paras), sum(1 for p in paras if cited(p)), len(numbers),
        sum(1 for n in numbers if n not in known), removed if isinstance(removed, int) else 0,
        pairs,
    )  # fmt: skip


def load_documents(path: str | Path, claims: int = DEFAULT_CLAIMS) -> list[Document]:
    """Every results line with an answer, as a `Document` (named by its id, else its line)."""
    docs = []
    for line, obj in read_objects(path):
        if answer_of(obj) is None:
            continue
        key = key_of(obj, ("id", "index", "idx")) or f"line:{line}"
        docs.append(document_of(obj, key, claims))
    if not docs:
        raise LongwriteError(f"{path}: no line has an `answer` (or `response`)")
    return docs


def parse_verdict(reply: str) -> float:
    """The judge's reply as a support score; ValueError when it holds none."""
    from longwrite.evaluate.judged import reply_object

    found = reply_object(reply, ("supported",))
    value = found["supported"]
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, str) and value.strip().lower() in SUPPORT:
        return SUPPORT[value.strip().lower()]
    raise ValueError(f"`supported` is {value!r}, not yes, partly or no")


def judge(
    docs: list[Document],
    send: Any,
    *,
    concurrency: int,
    retries: int,
    context_tokens: int | None,
    progress: Any = None,
) -> None:
    """Every document's claims judged; scores into `Document.support` (`unscored` counts the
    pairs without a usable reply)."""
    from longwrite.scoring.judge import Ask, JudgeClient, Judged

    template = load_template(TEMPLATE, ("passage", "sentence"))
    claims = [c for d in docs for c in d.claims]
    by_doc = {d.id: d for d in docs}

    def ask(claim: Claim) -> Ask:
        return Ask(lambda shown: fill(template, {"passage": shown, "sentence": claim.sentence}),
                   claim.passage)  # fmt: skip

    client = JudgeClient(send, attempts=retries + 1, concurrency=concurrency,
                         context_tokens=context_tokens, max_tokens=JUDGE_MAX_TOKENS)  # fmt: skip
    shown = progress(len(claims)) if progress is not None and claims else nullcontext()
    with shown as display:

        def done(_index: int, judged: Judged[float]) -> None:
            if display is not None:
                display.finished(judged.value is not None)

        judged = client.ask_all([ask(c) for c in claims], parse_verdict, done)
    for claim, verdict in zip(claims, judged, strict=True):
        doc = by_doc[claim.doc]
        if verdict.value is None:
            doc.unscored += 1
        else:
            doc.support.append(verdict.value)


def summarize(docs: list[Document]) -> dict[str, Any]:
    shares = [d.share for d in docs if d.share is not None]
    scores = [s for d in docs for s in d.support]
    return {
        "documents": [d.to_json() for d in docs],
        "share": sum(shares) / len(shares) if shares else None,
        "paragraphs": sum(d.paragraphs for d in docs),
        "citations": sum(d.citations for d in docs),
        "dangling": sum(d.dangling for d in docs),
        "removed": sum(d.removed for d in docs),
        "judged": len(scores),
        "unscored": sum(d.unscored for d in docs),
        "support": sum(scores) / len(scores) if scores else None,
    }


def print_summary(summary: dict[str, Any]) -> None:
    """A table per document, then the totals."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Grounding", title_justify="left")
    for col in ("id", "paras", "cited", "share", "cites", "dangling", "removed",
                "support"):  # fmt: skip
        table.add_column(col, justify="left" if col == "id" else "right")
    pct = lambda v: "-" if v is None else f"{100 * v:.0f}%"  # noqa: E731
    for d in summary["documents"]:
        judged = f"{pct(d['support'])} of {d['judged']}" if d["judged"] else "-"
        counts = (d["paragraphs"], d["cited_paragraphs"])
        table.add_row(d["id"], *map(str, counts), pct(d["share"]), str(d["citations"]),
                      str(d["dangling"]), str(d["removed"]), judged)  # fmt: skip
    console = Console()
    console.print(table)
    judged = (f"; support {pct(summary['support'])} over {summary['judged']} judged pair(s)"
              if summary["judged"] else "")  # fmt: skip
    console.print(
        f"paragraphs citing a passage: {pct(summary['share'])} (mean over documents); "
        f"{summary['citations']} citation(s), {summary['dangling']} pointing at nothing, "
        f"{summary['removed']} removed while writing{judged}",
        markup=False,
    )
