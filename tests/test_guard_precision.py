"""The loop guard never deletes what a user asked for, and still cuts every loop (issue 22).

Precision: a corpus of real, human-written structured documents, none of which may be cut:
- `tests/data/structured/`: documents written by hand for this suite, the kinds users ask for
  (syllabus and bus timetables, a 60-row school timetable, templated repair steps, similar
  pytest functions, contract clauses and a payment schedule of the same shape, a changelog,
  lists of links, recipes, a song with a chorus, a villanelle, minutes, itineraries, an API
  reference, price lists, a diary, league results, a glossary, a quiz), in English, Chinese
  (课程表, 晚自习, 行程, 合同, 菜谱, 纪要, 歌词), Russian, Japanese, Korean and Greek;
- the Markdown documentation of packages the locked test environment installs (their
  `METADATA`: changelogs, tables, code), and licence texts shipped in their dist-info folders
  (Apache-2.0, MPL-2.0, BSD-3-Clause): real documents no one wrote for this test.

Recall: loops as models fall into them, built from those documents: a paragraph again and
again, a cycle of paragraphs, paraphrases that swap one word in four for words already used,
one paragraph under many headings, table rows repeated, degenerate structure (a separator row
or an empty item repeated), code lines looping, in Latin, Cyrillic, Greek, CJK and kana script.
Each must be cut where the loop begins.
"""

from __future__ import annotations

import json
import random

import pytest
from guard_corpus import CORPUS, KANA, LOOPS, PARAS, stream
from sse_server import Script, ScriptedServer
from typer.testing import CliRunner

from longwrite.cli.app import app

runner = CliRunner()


def test_the_corpus_is_real_varied_and_large_enough():
    assert len(CORPUS) >= 30
    text = "".join(CORPUS.values())
    for script, sample in (("Cyrillic", "Расписание"), ("CJK", "课程表"), ("kana", "ホテル"),
                           ("Hangul", "체크리스트"), ("Greek", "Μουσακάς")):  # fmt: skip
        assert sample in text, script
    assert all(len(doc) > 250 for doc in CORPUS.values())  # none trivially short


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_no_document_of_the_corpus_is_cut(name):
    for seed in range(3):  # delta boundaries fall elsewhere each time
        assert stream(CORPUS[name], seed) is None


# -- loops --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(LOOPS))
def test_every_loop_is_cut_where_it_begins(name):
    before, loop = LOOPS[name]
    assert stream(before) is None  # the text before the loop is no loop itself
    assert stream(before + loop) == len(before)


def test_a_loop_is_cut_in_a_single_endless_line_too():
    # No line break at all: judged in chunks as the line fills; cut at the line's start.
    assert stream(KANA * 100) == 0
    assert stream("# T\n\n" + PARAS[0] + " " + (PARAS[1] + " ") * 30) == len("# T\n\n")


# -- through the command -------------------------------------------------------------------------

PLAN = "<think>Write what was asked.</think>\n<answer>\n"


def write(server: ScriptedServer, *args: str):
    return runner.invoke(app, ["write", "Write it", "--server", server.url, *args])


def script(text: str, then: tuple[str, ...] = ()) -> Script:
    from longwrite.prompt.templates import build_prompt

    return Script(text=text, prompt=build_prompt("Write it"), then=then, pieces=(40, 170, 90, 310))


@pytest.mark.slow
def test_every_corpus_document_streams_through_the_command_uncut():
    for name, doc in CORPUS.items():
        with ScriptedServer(script(PLAN + doc)) as server:
            result = write(server, "--json", "--max-rounds", "0")
        assert result.exit_code == 0, (name, result.output)
        data = json.loads(result.stdout)
        assert data["guard"] == [], name
        assert data["answer"].strip() == doc.strip(), name


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["Russian paragraph 300 times", "separator row 2,000 times", "table rows again"]
)
def test_a_loop_through_the_command_is_cut_said_and_kept_in_the_log(name):
    before, loop = LOOPS[name]
    fresh = "The rest of the document, written afresh."
    with ScriptedServer(script(PLAN + before + loop, then=(fresh,))) as server:
        result = write(server, "--json", "--max-rounds", "0", "--seed", "1")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [g["kind"] for g in data["guard"]] == ["loop"]
    assert data["answer"].startswith(before.strip()) and fresh in data["answer"]
    assert "began to repeat itself" in result.stderr
    # The cut is reversible: the run log keeps what was dropped, `logs show --cut` shows it.
    cuts = runner.invoke(app, ["logs", "show", "last", "--cut", "--json"])
    kept = json.loads(cuts.stdout)
    assert len(kept) == 1 and kept[0]["at_char"] == data["guard"][0]["at_char"]
    assert kept[0]["text"] and loop.startswith(kept[0]["text"])
    assert len(kept[0]["text"]) == data["guard"][0]["dropped_chars"]
    shown = runner.invoke(app, ["logs", "show", "last", "--cut"])
    assert shown.exit_code == 0 and kept[0]["text"] in shown.stdout


# -- what the guard holds is never lost -----------------------------------------------------------


def _sent(text: str, pieces: tuple[int, ...], n: int) -> str:
    """The first `n` pieces of `text` as the scripted server cuts it."""
    at = sum(pieces[i % len(pieces)] for i in range(n))
    return text[:at]


@pytest.mark.parametrize("fault", ["error_after", "junk_after"])
def test_a_stream_that_fails_keeps_the_paragraph_the_guard_held(fault, tmp_path):
    """A server error (or a reply that is not JSON) in the middle of a long paragraph: every
    answer word sent before it reaches the file and the run log, as with `--no-guard`."""
    rng = random.Random(9)
    words = " ".join(
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 8)))
        for _ in range(700)
    )  # one paragraph, no break: the guard holds all of it until the paragraph ends
    text = PLAN + "# Tides\n\n" + words
    pieces = (5, 17, 9, 31)
    stop_at = 200  # pieces before the fault: about 420 of the 700 words
    from longwrite.prompt.templates import build_prompt

    spec = Script(text=text, prompt=build_prompt("Write it"), pieces=pieces, **{fault: stop_at})
    target = tmp_path / "doc.md"
    with ScriptedServer(spec) as server:
        result = write(server, "-o", str(target), "--max-rounds", "0")
    assert result.exit_code == 1, result.output
    sent = _sent(text, pieces, stop_at)
    answer = sent.split("<answer>\n", 1)[1]
    assert len(answer.split()) > 300
    partial = tmp_path / "doc.md.partial"
    assert partial.read_text(encoding="utf-8") == answer  # every byte, none twice
    logged = json.loads(runner.invoke(app, ["logs", "show", "last", "--json"]).stdout)
    assert logged["raw"] == sent and logged["status"] == "failed"
