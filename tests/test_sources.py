"""Indexing the user's documents and finding passages in them (`longwrite.sources`).

The folder is made by the tests (`tests/source_files.py`): a PDF, a DOCX, Markdown, HTML,
JSON Lines and Chinese text, each with a planted fact, plus files that must be skipped.
"""

from __future__ import annotations

import doctest
import importlib
import os
import sqlite3
from pathlib import Path

import pytest

from longwrite.errors import LongwriteError
from longwrite.sources import library
from longwrite.sources.chunk import MAX_TOKENS, estimate_tokens, passages
from longwrite.sources.extract import Block, extract, markdown_blocks
from longwrite.sources.retrieve import Retriever, choose
from tests.source_files import (
    DOCX_FACT,
    HTML_FACT,
    JSONL_FACT,
    MD_FACT,
    PDF_FACT,
    ZH_FACT,
    make_corpus,
)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return make_corpus(tmp_path / "papers")


def top(name: str, query: str) -> tuple[str, str, str]:
    retriever = Retriever([name])
    try:
        hits = retriever.search(query)
        assert hits, f"nothing found for {query!r}"
        p = hits[0].passage
        return p.file, p.locator, p.text
    finally:
        retriever.close()


@pytest.mark.parametrize(
    "module", ["terms", "chunk", "html_text", "build", "library", "cite"]
)  # fmt: skip
def test_doctests(module: str) -> None:
    result = doctest.testmod(importlib.import_module(f"longwrite.sources.{module}"))
    assert result.attempted > 0 and result.failed == 0


# -- extraction and passages ----------------------------------------------------------------


def test_each_type_is_read_with_where_its_text_is(corpus: Path):
    pdf = extract(corpus / "glacier.pdf")
    assert [b.locator for b in pdf] == ["p. 1", "p. 2"]
    assert PDF_FACT in pdf[1].text and PDF_FACT not in pdf[0].text
    docx = extract(corpus / "seabirds.docx")
    assert [b.locator for b in docx] == ["Seabird survey 2023", "Counts by colony"]
    assert DOCX_FACT in docx[1].text  # the table, its cells joined
    md = extract(corpus / "streets.md")
    assert [b.locator for b in md] == ["Hot streets", "Pavements", "Trees"]  # not the code's #
    assert "title: Streets" not in "".join(b.text for b in md)  # front matter dropped
    html = extract(corpus / "lisbon.html")
    assert html == [Block("Winds", HTML_FACT)]  # no <style>, no <nav>
    (jsonl,) = extract(corpus / "notes.jsonl")  # the line that is not JSON is passed over
    assert jsonl == Block("Roofs (line 1)", JSONL_FACT)
    zh = extract(corpus / "中文" / "苏州.txt")
    assert zh[0].locator == "line 1" and ZH_FACT in zh[0].text


def test_unreadable_files_say_why(tmp_path: Path):
    from longwrite.sources.extract import Unreadable

    cases = {
        "scan.pdf": (b"%PDF-1.4 garbage", "a PDF pypdf cannot read"),
        "latin1.txt": ("café crème".encode("latin-1"), "not UTF-8 text"),
        "empty.md": (b"\n\n   \n", "no text in it"),
        "data.csv": (b"a,b\n", "not a supported type (.csv)"),
    }
    for name, (data, why) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(Unreadable, match=why.replace("(", r"\(").replace(")", r"\)")):
            extract(tmp_path / name)
    (tmp_path / "utf16.txt").write_bytes("\ufeffHeat 热岛".encode("utf-16-le"))
    assert extract(tmp_path / "utf16.txt")[0].text == "Heat 热岛"


def test_passages_close_at_paragraph_ends_within_the_limit():
    para = "word " * 100  # 100 words: 140 estimated tokens
    assert estimate_tokens(para) == 140
    pieces = passages([Block("h", "\n\n".join([para.strip()] * 7))])
    # three paragraphs reach 420 (the limit, not past it), and 420 >= 300 closes the passage;
    # the seventh (140: not a scrap, which is under 60) stands alone
    assert [p.tokens for p in pieces] == [420, 420, 140]
    assert all(p.text.count("\n\n") == 2 for p in pieces[:2])  # cut between paragraphs only
    assert not any(p.text.startswith(" ") or p.text.endswith(" ") for p in pieces)


def test_a_paragraph_without_breaks_is_cut_at_sentence_ends():
    sentence = "The glacier lost mass in every year of the record. "
    text = sentence * 60  # about 600 words in one paragraph
    pieces = passages([Block("p. 1", text)])
    assert len(pieces) > 1
    assert all(p.tokens <= MAX_TOKENS for p in pieces)
    assert all(p.text.endswith("record.") for p in pieces)  # never half a sentence
    chinese = "城市热岛强度在夜间最大" * 100  # 1,100 characters, no punctuation at all
    assert all(p.tokens <= MAX_TOKENS for p in passages([Block("line 1", chinese)]))


def test_a_scrap_at_a_block_end_joins_the_passage_before_it():
    text = "\n\n".join(["long " * 150, "long " * 60, "tiny."])
    pieces = passages([Block("h", text)])
    assert pieces[-1].text.endswith("tiny.") and "long" in pieces[-1].text


def test_markdown_headings_come_from_the_parser_not_from_hashes():
    text = "Intro line.\n\n# Real\n\nBody.\n\n    # indented code\n\n```\n# fenced\n```\n"
    blocks = markdown_blocks(text)
    assert [b.locator for b in blocks] == ["line 1", "Real"]
    assert "# fenced" in blocks[1].text


# -- the index ------------------------------------------------------------------------------


def test_index_a_folder_and_find_each_planted_fact(corpus: Path):
    name, summary = library.open_source(str(corpus))
    assert name == "papers" and summary is not None
    assert (summary.read, summary.unchanged, summary.removed) == (6, 0, 0)
    assert sorted(summary.skipped) == [
        ("papers/broken.pdf", "a PDF pypdf cannot read (PdfStreamError)"),
        ("papers/photo.png", "not a supported type (.png)"),
    ]  # the hidden file is not even listed
    assert summary.files == 6 and summary.passages == summary.added > 6
    file, locator, text = top(name, "albedo of fresh snow on the glacier")
    assert (file, locator) == ("papers/glacier.pdf", "p. 2") and PDF_FACT in text
    birds = ("papers/seabirds.docx", "Counts by colony")
    assert top(name, "Kestrel Bay nesting pairs")[:2] == birds
    assert top(name, "cool pavements Ferro Street")[:2] == ("papers/streets.md", "Pavements")
    assert top(name, "sea breeze in Lisbon")[:2] == ("papers/lisbon.html", "Winds")
    assert top(name, "green roofs Chicago")[:2] == ("papers/notes.jsonl", "Roofs (line 1)")


def test_chinese_queries_find_chinese_passages_by_bigrams(corpus: Path):
    name, _ = library.open_source(str(corpus))
    file, locator, text = top(name, "苏州古城的热岛强度是多少")
    assert (file, locator) == ("papers/中文/苏州.txt", "line 1") and ZH_FACT in text
    assert top(name, "热岛")[0] == "papers/中文/苏州.txt"  # a two-character word
    assert top(name, "苏")[0] == "papers/中文/苏州.txt"  # one character: a prefix query


def test_reindex_reads_only_what_changed(corpus: Path):
    name, _ = library.open_source(str(corpus))
    md = corpus / "streets.md"
    md.write_text(md.read_text().replace("Ferro Street", "Quay Street"), encoding="utf-8")
    os.utime(corpus / "lisbon.html")  # touched, content the same: not re-extracted
    (corpus / "notes.jsonl").unlink()
    (corpus / "new.txt").write_text("Fog harvesting nets in Lima collect water.\n")
    library._refreshed.clear()  # a new process
    _, summary = library.open_source(str(corpus))
    assert summary is not None
    assert (summary.read, summary.unchanged, summary.removed) == (2, 4, 1)
    assert "Quay Street" in top(name, "cool pavements")[2]
    retriever = Retriever([name])
    assert not [h for h in retriever.search("Ferro") if "Ferro" in h.passage.text]
    assert not retriever.search("Chicago rooftops")  # the deleted file's passages are gone
    retriever.close()
    assert top(name, "fog nets Lima")[0] == "papers/new.txt"


def test_the_same_path_is_refreshed_once_per_process(corpus: Path):
    name, first = library.open_source(str(corpus))
    again = library.open_source(str(corpus))
    assert first is not None and again == (name, None)


def test_names_list_and_remove(corpus: Path, tmp_path: Path):
    name, _ = library.open_source(str(corpus))
    other = tmp_path / "elsewhere" / "papers"
    other.mkdir(parents=True)
    (other / "a.md").write_text("# A\n\nAnother folder of the same name.\n")
    second, _ = library.open_source(str(other))
    assert second == "papers-2"  # the name was taken by other roots
    assert library.open_source("papers") == ("papers", None)  # a name, used as it is
    listed = {i.name: i for i in library.list_indexes()}
    assert set(listed) == {"papers", "papers-2"}
    assert listed["papers"].roots == [str(corpus.resolve())] and listed["papers"].files == 6
    with pytest.raises(LongwriteError, match="holds"):
        library.build([other.resolve()], "papers")  # never mixed into another's index
    library.remove_index("papers-2")
    assert [i.name for i in library.list_indexes()] == ["papers"]
    with pytest.raises(LongwriteError, match="no index named 'papers-2'"):
        library.remove_index("papers-2")
    with pytest.raises(LongwriteError, match="no such file, folder or index"):
        library.open_source("papers-2")
    with pytest.raises(LongwriteError, match="index name"):
        library.check_name("../etc")


def test_the_index_is_private_and_a_damaged_one_is_one_line(corpus: Path):
    name, _ = library.open_source(str(corpus))
    path = library.index_path(name)
    assert (path.parent.stat().st_mode & 0o777) == 0o700
    library._refreshed.clear()
    path.write_bytes(b"not a database at all" * 100)
    for extra in ("-wal", "-shm"):
        Path(str(path) + extra).unlink(missing_ok=True)
    with pytest.raises(LongwriteError, match="cannot be read"):
        library.open_index(name)
    with pytest.raises(sqlite3.Error):
        sqlite3.connect(path).execute("SELECT * FROM files").fetchall()


def test_choose_keeps_to_the_budget_and_passes_duplicates_over(corpus: Path):
    (corpus / "copy.md").write_text((corpus / "streets.md").read_text(), encoding="utf-8")
    name, _ = library.open_source(str(corpus))
    retriever = Retriever([name])
    hits = retriever.search("cool pavements Ferro Street")
    retriever.close()
    assert sum(MD_FACT in h.passage.text for h in hits) == 2  # in both files
    chosen = choose(hits, budget=10_000)
    assert sum(MD_FACT in p.text for p in chosen) == 1
    small = choose(hits, budget=hits[0].passage.tokens + 16)
    assert small == [hits[0].passage]
    assert choose(hits, budget=5) == []
