"""Sectioned documents: the outline, the bounded section prompt, and the CLI end to end.

The CLI tests run a real `longwrite` process against `section_server`, a scripted model that
plans in its thinking, writes distinct paragraphs per section and answers HTTP 400 past its
32,768-token context, so a prompt that grew with the document would fail there.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from longwrite.generate.plan import Outline, even, read_outline, scale, user_outline
from longwrite.generate.planning import choose_outline
from longwrite.generate.sections import MAX_HEADINGS, TAIL_CHARS, recent, section_prompt
from longwrite.io.counting import count_words
from longwrite.scoring.rewards import repetition_penalty
from tests.section_server import ANSWER, Model, SectionServer, paragraph

LONGWRITE = [sys.executable, "-m", "longwrite"]


def run(server: SectionServer, prompt: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "LONGWRITE_NO_LOG": "1"}
    return subprocess.run(
        [*LONGWRITE, prompt, "--server", server.url, *args],
        capture_output=True, text=True, timeout=120, env=env, **kwargs,
    )  # fmt: skip


# -- the outline ----------------------------------------------------------------------------


def test_numbered_parts_with_counts_and_quoted_tags():
    plan = (
        "The answer goes inside <answer> tags after </think>.\r\n"
        "1. Introduction (500 words)\r\n"
        "2. **History of the heat** - about 1,200 words\r\n"
        "Part 3: Outlook\r\n"
    )
    assert read_outline(plan) == [
        ("Introduction", 500),
        ("History of the heat", 1200),
        ("Outlook", None),
    ]


def test_headings_take_the_shallowest_level_with_two_or_more():
    plan = "# Title\n## Causes (300 words)\n### detail\n## Effects\n### more\n"
    assert read_outline(plan) == [("Causes", 300), ("Effects", None)]
    assert read_outline("Just some prose about what to write.\nNothing numbered.") == []


def test_chinese_plans_are_read_as_the_model_writes_them():
    """The model plans in Chinese for a Chinese prompt: 一、 / 第一章 / 1、 parts, counts in 字
    inside full-width brackets, after 约."""
    plan = "计划：\n一、潮汐的起源（约3000字）\n二、月球的作用（2000字）\n三、人类与潮汐\n"
    assert read_outline(plan) == [("潮汐的起源", 3000), ("月球的作用", 2000), ("人类与潮汐", None)]
    assert read_outline("第一章：起源，约1500字\n第二章：机制，约2,500字\n") == [
        ("起源", 1500), ("机制", 2500)]  # fmt: skip
    assert read_outline("1、引言（500字）\n2、正文（4000字）\n") == [("引言", 500), ("正文", 4000)]
    quoting = "我先规划，正文放在<answer>里。\r\n一、开头（800字）\r\n二、结尾（约1,200字）\r\n"
    assert read_outline(quoting) == [("开头", 800), ("结尾", 1200)]  # tags quoted, CRLF
    assert read_outline("## 第一章 起源（3000字）\n## 第二章 机制\n") == [
        ("起源", 3000),
        ("机制", None),
    ]  # fmt: skip (a heading is its title alone)


def test_a_user_outline_under_a_title_takes_the_title_for_what_it_is():
    parts = user_outline("# Tides\n## A (about 1,200 words)\n## B (~800 words)\n", 4000)
    assert [(p.heading, p.words) for p in parts] == [("A", 2400), ("B", 1600)]
    (only,) = user_outline("## Just one part (900 words)\n", None)
    assert only.words == 900


def test_counts_are_scaled_to_the_target_and_missing_ones_get_the_mean():
    parts = scale([("a", 500), ("b", 1500), ("c", None)], 6000)
    assert [p.words for p in parts] == [1000, 3000, 2000]
    assert sum(p.words for p in scale([("a", 1), ("b", 1), ("c", 1)], 1000)) == 1000
    assert [p.heading for p in even(900, 3)] == ["Part 1", "Part 2", "Part 3"]


def test_user_outline_keeps_its_counts_without_a_target():
    parts = user_outline("## One (300 words)\r\n## Two\r\ntext\n## Three (100 words)\n", None)
    assert [(p.heading, p.words) for p in parts] == [("One", 300), ("Two", 200), ("Three", 100)]
    assert user_outline("no headings here", 1000) == ()


def test_choose_outline_falls_back_in_order(capsys):
    plan = "1. A (100 words)\n2. B (100 words)\n3. C (100 words)\n"
    asked = Outline(scale([("X", None), ("Y", None)], 900), "outline")
    assert choose_outline(plan, lambda: asked, 300, 3, forced=True, cap=1000).source == "plan"
    assert "3 sections from the model's plan" in capsys.readouterr().err
    # forced to 2: the plan's 3 parts do not do, the asked outline does
    got = choose_outline(plan, lambda: asked, 900, 2, forced=True, cap=1000)
    assert (got.source, [p.heading for p in got.parts]) == ("outline", ["X", "Y"])
    assert "not the 2 asked for" in capsys.readouterr().err
    # automatic: a plan whose parts exceed what a section may hold is not used
    assert choose_outline(plan, lambda: None, 9000, 3, forced=False, cap=1000).source == "even"
    assert "3 equal sections" in capsys.readouterr().err


# -- the section prompt ---------------------------------------------------------------------


def test_section_prompt_is_bounded_whatever_the_document_length():
    prefix = "TEMPLATE <think>plan</think> <answer>\n"
    short = [(f"H{k}", paragraph(f"H{k}", 0)) for k in range(3)]
    long = [(f"H{k}", "\n\n".join(paragraph(f"H{k}", i) for i in range(80))) for k in range(200)]
    small, big = section_prompt(prefix, short, "Next"), section_prompt(prefix, long, "Next")
    assert small.startswith(prefix) and big.startswith(prefix)
    assert big.endswith("\n\n## Next\n\n")
    bound = len(prefix) + TAIL_CHARS + MAX_HEADINGS * 30 + 100
    assert len(big) <= bound
    assert len(section_prompt(prefix, long[:100], "Next")) <= bound
    # the latest text is there verbatim, cut at a paragraph start
    tail = recent(long)
    assert long[-1][1][-2000:] in tail and "## H199\n\n[…]\n\n" in tail
    assert "## H198\n\n[…]" in tail  # earlier sections: their heading only


# -- the CLI against the scripted model -----------------------------------------------------


def _sections_of(server: SectionServer) -> list[str]:
    return [p for p in server.model.prompts if ANSWER in p]


def test_a_50000_word_request_is_written_in_sections_within_ten_percent():
    with SectionServer() as server:
        proc = run(server, "Write a 50,000-word report on urban heat islands", "--json")
        assert proc.returncode == 0, proc.stderr
        least = int(re.search(r"writing it in sections \(at least (\d+);", proc.stderr)[1])
        data = json.loads(proc.stdout)
        assert len(data["sections"]) >= least
        assert 45_000 <= count_words(data["answer"]) <= 55_000
        assert data["plan"]["source"] == "plan" and len(data["sections"]) == 9
        assert all(s["words"] > 0 and s["rounds"] >= 1 for s in data["sections"])
        assert server.model.rejected == 0
        prompts = _sections_of(server)
        prefix = prompts[0].split(ANSWER)[0] + ANSWER
        assert all(p.startswith(prefix) for p in prompts)  # byte-identical shared prefix
        firsts = [
            p for p in prompts if p.endswith("\n\n") and p.rsplit("\n\n", 2)[-2].startswith("## ")
        ]
        assert len(firsts) == 9  # each section's first request (continuations add their text)
        assert max(map(len, firsts)) < len(prefix) + TAIL_CHARS + 2000
        # no section restates another: as low as the paragraphs' own repetition
        assert repetition_penalty(data["answer"]) < 0.05


def test_forced_sections_give_that_many_and_one_document_on_stdout(tmp_path):
    out = tmp_path / "doc.md"
    with SectionServer() as server:
        proc = run(server, "Write a 5,000-word essay on tides", "--sections", "3", "-o", str(out))
        assert proc.returncode == 0, proc.stderr
        doc = out.read_text(encoding="utf-8")
        assert len(re.findall(r"^## ", doc, re.M)) == 3
        assert 4_500 <= count_words(doc) <= 5_500
        assert not (tmp_path / "doc.md.partial").exists()


@pytest.mark.parametrize(
    ("plan", "outline", "source"),
    [("headings", "headings", "plan"), ("none", "headings", "outline"), ("none", "none", "even")],
)
def test_a_plan_without_an_outline_falls_back(plan, outline, source):
    with SectionServer(Model(plan=plan, outline=outline)) as server:
        proc = run(server, "Write a 6,000-word guide to bees", "--sections", "2", "--json")
        assert proc.returncode == 0, proc.stderr
        data = json.loads(proc.stdout)
        assert data["plan"]["source"] == source
        assert len(data["sections"]) == 2
        assert ("equal sections" in proc.stderr) == (source == "even")
        assert count_words(data["answer"]) > 1000


def test_plan_only_prints_the_outline_that_plan_file_reads_back(tmp_path):
    with SectionServer() as server:
        proc = run(server, "Write a 20,000-word history of glass", "--plan-only")
        assert proc.returncode == 0, proc.stderr
        assert re.fullmatch(r"# .+\n\n(## .+ \([\d,]+ words\)\n){4}", proc.stdout)
        as_json = json.loads(run(server, "Write a 20,000-word history of glass", "--plan-only",
                                 "--json").stdout)  # fmt: skip
        assert as_json["words"] == 20_000 and len(as_json["parts"]) == 4
        asked = len(server.model.prompts)
        plan = tmp_path / "plan.md"
        plan.write_bytes(b"## Sand (600 words)\r\n## Fire (400 words)\r\n")
        proc = run(server, "Write a history of glass", "--plan", str(plan), "--json")
        assert proc.returncode == 0, proc.stderr
        data = json.loads(proc.stdout)
        assert [s["heading"] for s in data["sections"]] == ["Sand", "Fire"]
        assert [s["target"] for s in data["sections"]] == [600, 400]
        assert data["plan"]["source"] == "file"
        new = server.model.prompts[asked:]
        # no planning request; the file names no title, so one line is asked for it
        assert [p for p in new if ANSWER not in p] == [new[0]] and new[0].endswith("Title:")
        assert data["answer"].startswith("# The Heat Beneath Our Feet\n\n## Sand\n\n")


def test_a_plan_file_is_the_plan_the_model_reads(tmp_path):
    """--plan FILE: its whole text is the thinking every section sees (notes, subsections,
    instructions), its # heading the document's title, its ## headings the sections, counts
    read as from a model's plan (约/左右 included)."""
    plan = tmp_path / "plan.md"
    plan.write_text(
        "# 玻璃的历史\n\n写给中学生看，语气轻松。\n\n## 引言（800字左右）\n\n从一扇窗户说起。\n\n"
        "### 小节：沙子\n\n## 古代的玻璃（约1200字）\n\n- 埃及和罗马\n- 吹制法\n",
        encoding="utf-8",
    )
    with SectionServer() as server:
        proc = run(server, "写一篇关于玻璃的文章", "--plan", str(plan), "--json")
        assert proc.returncode == 0, proc.stderr
        data = json.loads(proc.stdout)
        assert [s["heading"] for s in data["sections"]] == ["引言", "古代的玻璃"]
        assert [s["target"] for s in data["sections"]] == [800, 1200]
        assert data["answer"].startswith("# 玻璃的历史\n\n## 引言\n\n")
        sections = _sections_of(server)
        assert all("写给中学生看，语气轻松。" in p and "- 吹制法" in p for p in sections)
        assert not [p for p in server.model.prompts if ANSWER not in p]  # nothing asked


def test_one_pass_keeps_the_single_pass_and_its_warning():
    with SectionServer() as server:
        proc = run(server, "Write a 30,000-word novel", "--one-pass", "--max-rounds", "0",
                   "--json")  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert "does not fit in one pass" in proc.stderr and "sections" not in proc.stderr
        assert "sections" not in json.loads(proc.stdout)
        bad = run(server, "Write a 30,000-word novel", "--one-pass", "--sections", "2")
        assert bad.returncode == 2 and bad.stderr.count("\n") == 1


def test_the_server_enforces_its_context():
    with SectionServer() as server:
        proc = run(server, "Write a poem", "--max-tokens", "40000")
        assert proc.returncode == 2, proc.stderr
        assert server.model.rejected == 1 and "Traceback" not in proc.stderr


def test_thinking_show_shows_the_plan_once():
    with SectionServer() as server:
        proc = run(server, "Write a 4,000-word essay on rain", "--sections", "2",
                   "--thinking", "show")  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr.count("Let me plan this carefully") == 1
        assert "Let me plan" not in proc.stdout
        assert proc.stdout.count("## ") == 2


@pytest.mark.slow
def test_the_tiny_model_writes_two_sections(tiny_model_dir: Path):
    env = {**os.environ, "LONGWRITE_NO_LOG": "1"}
    proc = subprocess.run(
        [*LONGWRITE, "Write a 120-word story", "--model", str(tiny_model_dir), "--sections",
         "2", "--think-budget", "20", "--max-rounds", "0", "--seed", "1", "--json"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert len(data["sections"]) == 2 and data["plan"]["source"] in ("plan", "outline", "even")
    assert all(s["tokens"] > 0 for s in data["sections"])


def test_kill_9_in_section_3_then_continue_gives_the_same_document(tmp_path):
    prompt = "Write a 12,000-word report on rivers"
    args = ("--sections", "4", "--seed", "1")
    whole, cut, carried = tmp_path / "whole.md", tmp_path / "cut.md", tmp_path / "carried.md"
    with SectionServer(Model(delay=0.004)) as server:
        assert run(server, prompt, *args, "-o", str(whole), "--no-log").returncode == 0
        heads = re.findall(r"^## (.+)$", whole.read_text(encoding="utf-8"), re.M)
        assert len(heads) == 4
        env = {k: v for k, v in os.environ.items() if k != "LONGWRITE_NO_LOG"}
        proc = subprocess.Popen(
            [*LONGWRITE, prompt, "--server", server.url, *args, "-o", str(cut)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
        )  # fmt: skip
        partial = tmp_path / "cut.md.partial"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            text = partial.read_text(encoding="utf-8") if partial.exists() else ""
            if f"## {heads[2]}\n\n" in text and count_words(text.split(heads[2])[1]) > 300:
                break
            time.sleep(0.01)
        time.sleep(0.6)  # the run log writes at least every half second
        proc.kill()
        proc.wait()
        assert proc.returncode == -9 and not cut.exists()
        done = subprocess.run(
            [*LONGWRITE, "continue", "-o", str(carried)],
            capture_output=True, text=True, timeout=120, env={**env, "PATH": os.environ["PATH"]},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        got = carried.read_text(encoding="utf-8")
        assert got == whole.read_text(encoding="utf-8")
        # the continued run started no finished section again
        section_prompts = [p for p in server.model.prompts if ANSWER in p]
        firsts = [p for p in section_prompts if p.endswith(f"## {heads[0]}\n\n")]
        assert len(firsts) == 2  # the uninterrupted run's and the killed run's, not a third


def test_best_of_per_section_avoids_a_candidate_that_restates_earlier_text():
    with SectionServer(Model(repeat=(0,))) as server:
        proc = run(server, "Write a 6,000-word essay on salt", "--sections", "3",
                   "--best-of", "2", "--json")  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        data = json.loads(proc.stdout)
        sections = data["sections"]
        assert [s["choice"]["best"] for s in sections[1:]] == [1, 1]
        restating = sections[1]["choice"]["candidates"][0]["scores"]["repetition"]
        assert restating > 0.5  # the candidate that restated was measured as such
        assert all(s["repetition"] < 0.05 for s in sections)
        assert repetition_penalty(data["answer"]) < 0.05


def test_a_section_that_repeats_whatever_is_chosen_is_sampled_again():
    with SectionServer(Model(repeat=(0, 1))) as server:
        proc = run(server, "Write a 4,000-word essay on iron", "--sections", "2",
                   "--best-of", "2", "--seed", "5", "--json")  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        second = json.loads(proc.stdout)["sections"][1]
        assert second["choice"]["resampled"] == 1  # bounded: one more try, then kept
        assert len(second["choice"]["tries"]) == 1
        assert second["repetition"] > 0.5  # kept, and recorded as repeating


@pytest.mark.parametrize("guard", [True, False])
def test_a_streamed_section_that_restates_earlier_ones_is_cut_and_written_afresh(guard):
    """Without best-of a section streams as it is written: the loop guard, which has read the
    sections before it, cuts a restatement and the section is sampled again (with the
    repetition penalty, which this scripted model heeds); `--no-guard` lets it stand."""
    with SectionServer(Model(repeat=(0,), heeds_penalty=True)) as server:
        flags = [] if guard else ["--no-guard"]
        proc = run(server, "Write a 6,000-word essay on salt", "--sections", "3", "--json",
                   *flags)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    later = data["sections"][1:]
    if guard:
        assert all([g["kind"] for g in s["guard"]] == ["loop"] for s in later)
        assert all(s["repetition"] < 0.05 for s in data["sections"])
        assert repetition_penalty(data["answer"]) < 0.05
        assert "began to repeat itself" in proc.stderr
    else:
        assert all(s["guard"] == [] and s["repetition"] > 0.5 for s in later)


def test_batch_lines_longer_than_one_pass_are_written_in_sections(tmp_path):
    lines = tmp_path / "in.jsonl"
    lines.write_text(
        json.dumps({"id": "long", "prompt": "Write a 30,000-word report on ice"}) + "\n"
        + json.dumps({"id": "short", "prompt": "Write a 600-word note on ice"}) + "\n",
        encoding="utf-8",
    )  # fmt: skip
    out = tmp_path / "out.jsonl"
    with SectionServer() as server:
        proc = subprocess.run(
            [*LONGWRITE, "batch", str(lines), "-o", str(out), "--server", server.url],
            capture_output=True, text=True, timeout=120,
            env={**os.environ, "LONGWRITE_NO_LOG": "1"},
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    records = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert len(records["long"]["sections"]) >= 4 and "sections" not in records["short"]
    assert 27_000 <= count_words(records["long"]["answer"]) <= 33_000
    assert records["long"]["plan"]["source"] == "plan"
