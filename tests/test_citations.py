"""Writing from sources: passages in the prompt, `[n]` checked as it streams, References.

A scripted model stands in for LongWriter-Zero: it cites what its prompt lists, and also a
number that names nothing, as a model that was never trained to cite will.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from scripted import ScriptedEngine, cut

from longwrite import AnswerDelta, write
from longwrite.engines.base import Chunk, EngineInfo, Sampling
from longwrite.generate.grounded import SHARE
from longwrite.prompt.templates import build_prompt, load_template
from longwrite.sources.cite import CitationFilter, body_of, cited_numbers, clean, numbers_in
from tests.source_files import DOCX_FACT, MD_FACT, make_corpus

KNOWN = {1, 2, 3}.__contains__
WORDS = ("shade", "wind", "water", "cost", "street", "roof", "park", "tree", "stone", "canal")


# -- the filter -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected", "removed"),
    [
        ("Trees cool streets [2].", "Trees cool streets [2].", 0),
        ("Roofs [9] matter.", "Roofs matter.", 1),
        ("Roofs matter [9].", "Roofs matter.", 1),
        ("Both [2, 9] and [3][9].", "Both [2] and [3].", 2),
        ("[9] opens the line.", "opens the line.", 1),
        ("A range [2-4].", "A range [2, 3].", 1),  # 2 and 3 are known, 4 is not
        ("`x[9]` and\n```\ny = a[9]\n```\nafter [9].", "`x[9]` and\n```\ny = a[9]\n```\nafter.", 1),
        ("A [link](http://x) and [^9] stay.", "A [link](http://x) and [^9] stay.", 0),
        ("中文的句子[9]。还有[1]。", "中文的句子。还有[1]。", 1),
    ],
)  # fmt: skip
def test_unknown_numbers_are_removed_and_counted(text: str, expected: str, removed: int):
    out, f = clean(text, KNOWN)
    assert out == expected and f.removed == removed


def test_streamed_in_any_pieces_it_is_the_text_at_rest():
    text = (
        "# Heat\n\nStreets store heat [1]. Parks [7] cool [2, 8] the air.\n\n"
        "- [9] a list item\n- shade [3]\n\n```\nx[9]\n```\nEnd [12]."
    )
    at_rest, whole = clean(text, KNOWN)
    rng = random.Random(7)
    for _ in range(50):
        f = CitationFilter(KNOWN)
        pieces, i = [], 0
        while i < len(text):
            n = rng.randint(1, 6)
            pieces.append(f.feed(text[i : i + n]))
            i += n
        assert "".join(pieces) + f.close() == at_rest
        assert f.removed == whole.removed == 4 and list(f.cited) == [1, 2, 3]  # 7, 8, 9, 12
    assert "- a list item" in at_rest and "x[9]" in at_rest


def test_cited_numbers_and_the_body():
    assert numbers_in("1, 3–5") == [1, 3, 4, 5]
    doc = 'Text [2] and [1][2].\n\n## References\n\n[1] a.md, A: "q"\n\n[2] b.md\n'
    assert cited_numbers(body_of(doc)) == [2, 1]
    assert body_of("No references here [4].") == "No references here [4]."


# -- one pass -------------------------------------------------------------------------------


class CitingEngine(ScriptedEngine):
    """Answers each request citing the first passage its prompt lists, the second one, and
    [99], which names nothing; records the prompts. A section request (its prompt ends at a
    heading) gets a paragraph of about 40 words."""

    def __init__(self, context: int | None = None, count_tokens=None) -> None:  # noqa: ANN001
        super().__init__([])
        self.info = EngineInfo(name="scripted", model="scripted", context=context)
        self._count = count_tokens

    def count_tokens(self, text: str) -> int | None:
        return self._count(text) if self._count else None

    def stream(self, prompt: str, sampling: Sampling):  # noqa: ANN201
        self.prompts.append(prompt)
        listed = [int(n) for n in re.findall(r"^\[(\d+)\] ", prompt, re.M)]
        first, second = (listed + [0, 0])[:2]
        rng = random.Random(prompt[-40:])  # each section its own words (no restatement)
        filler = " ".join(rng.choice(WORDS) for _ in range(30))
        body = (
            f"Cool pavements lowered the surface temperature [{first}]. The colony counts "
            f"grew as well [{second}][99]. {filler.capitalize()}."
        )
        if prompt.endswith("\n\n"):  # a section: the answer is already open
            text = body + "\n\n"
        else:
            text = f"<think>plan</think> <answer>{body}</answer>"
        for piece in cut(text):
            yield Chunk(text=piece, tokens=1)
        yield Chunk(text="", tokens=0, finish_reason="stop")


def test_one_pass_cites_2_and_9_where_9_does_not_exist(tmp_path: Path):
    corpus = make_corpus(tmp_path / "papers")
    engine = ScriptedEngine(
        cut("<think>plan</think> <answer>Pavements cool streets [2]. Roofs [9] matter.</answer>")
    )
    seen: list = []
    doc = write("Write about cool pavements and seabird colonies", engine=engine,
                source=str(corpus), on_event=seen.append, max_rounds=0)  # fmt: skip
    prompt = engine.prompts[0]
    listed = dict(re.findall(r"^\[(\d+)\] (.+)$", prompt, re.M))
    assert len(listed) >= 2 and listed["1"] and listed["2"]
    body, _, refs = doc.answer.partition("\n\n## References\n\n")
    assert body == "Pavements cool streets [2]. Roofs matter."  # [9] and its space gone
    (entry,) = refs.strip().split("\n\n")  # [2] alone: [1] was given, not cited
    assert entry.startswith(f'[2] {listed["2"]}: "') and entry.endswith('"')
    assert doc.sources["removed"] == 1 and doc.sources["cited"] == [2]
    (section,) = doc.sources["sections"]
    assert section["given"] == [int(n) for n in listed] and section["cited"] == [2]
    cited = [p for p in doc.sources["passages"] if p["cited"]]
    assert [p["n"] for p in cited] == [2] and cited[0]["text"]
    assert doc.words == 5  # the text above the References
    streamed = "".join(e.text for e in seen if isinstance(e, AnswerDelta))
    assert streamed == doc.answer  # what streamed is what the result holds


def test_passages_go_into_the_users_request_of_the_unchanged_template(tmp_path: Path):
    corpus = make_corpus(tmp_path / "papers")
    engine = CitingEngine()
    write("Write about cool pavements", engine=engine, source=str(corpus), max_rounds=0)
    before, after = load_template("think_en").split("{question}")
    prompt = engine.prompts[0]
    assert prompt.startswith(before + "Write about cool pavements\n\nSources (numbered")
    assert prompt.endswith("one is added after your text." + after)
    assert MD_FACT in prompt


def test_passages_take_at_most_a_third_of_the_context(tmp_path: Path):
    corpus = make_corpus(tmp_path / "papers")
    for n in range(40):  # far more relevant text than a third of a small context holds
        (corpus / f"street{n}.md").write_text(
            f"# Street {n}\n\n" + f"Cool pavements and shade on street {n}. " * 40, encoding="utf-8"
        )
    count = lambda text: len(text) // 4  # noqa: E731 - the engine's "tokenizer"
    engine = CitingEngine(context=6000, count_tokens=count)
    doc = write("Write about cool pavements on streets", engine=engine, source=str(corpus),
                max_rounds=0, max_tokens=500)  # fmt: skip
    block = engine.prompts[0].split("Sources (numbered passages from my documents):\n\n")[1]
    block = block.split("\n\nUse these sources")[0]
    assert 6000 // SHARE - 400 < count(block) <= 6000 // SHARE  # filled, not overfilled
    assert len(doc.sources["given"]) > 3


def test_no_passages_without_a_match_still_writes(tmp_path: Path):
    corpus = make_corpus(tmp_path / "papers")
    engine = CitingEngine()
    doc = write("Compose a sonnet about quasars", engine=engine, source=str(corpus), max_rounds=0)
    assert doc.sources["given"] == [] and "## References" not in doc.answer
    assert engine.prompts[0] == build_prompt("Compose a sonnet about quasars")  # no empty list
    assert doc.sources["removed"] == 3  # [0], [0] and [99]: no passage exists at all
    assert "[99]" not in doc.answer


# -- sections -------------------------------------------------------------------------------


PLAN = (
    "# Cooler cities and their birds\n\n"
    "## Pavements (40 words)\nCool pavements on streets and surface temperature.\n\n"
    "## Colonies (40 words)\nSeabird colonies, Kestrel Bay and nesting pairs.\n"
)


@pytest.mark.parametrize("parallel", [1, 2])
def test_each_section_is_given_its_own_passages(tmp_path: Path, parallel: int):
    corpus = make_corpus(tmp_path / "papers")
    plan = tmp_path / "plan.md"
    plan.write_text(PLAN, encoding="utf-8")
    engine = CitingEngine()
    doc = write("Write a report on cooler cities", engine=engine, source=str(corpus), plan=plan,
                max_rounds=0, parallel=parallel, guard=False)  # fmt: skip
    prompts = {p.rsplit("## ", 1)[-1].strip(): p for p in engine.prompts}
    assert set(prompts) == {"Pavements", "Colonies"}
    sources = lambda p: p.split("<|assistant|>")[0]  # noqa: E731 - the user's request part
    pavements = sources(prompts["Pavements"])
    assert MD_FACT in pavements and DOCX_FACT not in pavements
    assert DOCX_FACT in sources(prompts["Colonies"])
    pave, colonies = doc.sources["sections"]
    assert (pave["heading"], colonies["heading"]) == ("Pavements", "Colonies")
    numbers = [int(n) for n in re.findall(r"^\[(\d+)\] ", sources(prompts["Colonies"]), re.M)]
    assert colonies["given"] == numbers  # the same numbers the prompt showed
    assert pave["cited"] == pave["given"][:2] and colonies["cited"] == colonies["given"][:2]
    assert "[99]" not in doc.answer
    # [99] in each section, and [0] where a section was given fewer than two passages
    missing = sum(max(0, 2 - len(s["given"])) for s in (pave, colonies))
    assert doc.sources["removed"] == 2 + missing
    refs = doc.answer.split("\n\n## References\n\n")[1]
    listed = [int(n) for n in re.findall(r"^\[(\d+)\] ", refs, re.M)]
    assert listed == sorted(set(pave["cited"]) | set(colonies["cited"]))
    assert doc.answer.index("## Pavements") < doc.answer.index("## Colonies")


def test_the_run_log_keeps_the_passages(tmp_path: Path):
    from longwrite.runlog.store import Store

    corpus = make_corpus(tmp_path / "papers")
    write("Write about cool pavements and seabird colonies", engine=CitingEngine(),
          source=str(corpus), max_rounds=0, log=True)  # fmt: skip
    store = Store.open()
    try:
        (record,) = store.runs()
        kept = record.options["sources"]
    finally:
        store.close()
    assert kept["cited"] and kept["removed"] == 1
    assert all(p["text"] for p in kept["passages"] if p["cited"])
