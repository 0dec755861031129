"""Sections against a scripted model that behaves like a real one (issue 21).

The model plans as reasoning models do (the plans of tests/data/plans: self-talk, a revised
outline, descriptions, style notes, Chinese), restates a section's heading before writing it,
writes the next planned heading in its own form (`### 2. Title`, `**Title**`), which no stop
string catches, and writes sections a quarter longer than asked. The document must still come
out clean: the title first, every planned heading once, no heading restated, no word cut at a
section's end, and within 10% of the target. Also: a run stopped while planning is planned
again by `continue`; a finished run extended with `--words`; options refused before a model
loads; `--dry-run` shows the plan request; the Python API sections as the command does.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from longwrite.generate.plan import read_outline
from longwrite.io.counting import count_words
from tests.section_server import Model, SectionServer

pytestmark = pytest.mark.slow
PLANS = Path(__file__).parent / "data" / "plans"
LONGWRITE = [sys.executable, "-m", "longwrite"]


def run(server: SectionServer | None, *args: str, home: Path | None = None):
    env = {**os.environ, "LONGWRITE_NO_LOG": "1" if home is None else ""}
    if home is not None:
        env["LONGWRITE_HOME"] = str(home)
    url = ["--server", server.url] if server is not None and args[0] != "continue" else []
    return subprocess.run(
        [*LONGWRITE, *args, *url], capture_output=True, text=True, timeout=180, env=env
    )


def assert_clean(doc: str, headings: list[str], title: str, target: int) -> None:
    assert doc.startswith(f"# {title}\n\n## {headings[0]}\n\n"), doc[:200]
    found = re.findall(r"^#{1,6} (.+)$|^\*\*(.+)\*\*$", doc, re.M)
    shown = [a or b for a, b in found]
    assert shown == [title, *headings]  # each planned heading once, nothing restated
    for block in re.split(r"\n\n#{2} ", doc)[1:-1]:  # every section but the last
        assert re.search(r"[.!?。！？]\s*$", block), block[-80:]  # ends at a sentence end
    words = count_words(doc)
    assert abs(words - target) <= 0.10 * target, (words, target)


@pytest.mark.parametrize(
    ("plan", "request_", "restate", "later"),
    [
        ("01-heat-islands-deliberate.txt", "Write a 20,000-word report on urban heat islands",
         "###", "###"),
        ("05-mara-novel-chapters.txt", "Write a 50,000-word novel about a lighthouse keeper",
         "**", "**"),
        ("20-zh-smog-report.txt", "写一篇40000字的关于雾霾治理的研究报告", "##", "###"),
    ],
)  # fmt: skip
def test_a_real_plan_gives_a_clean_document_of_the_asked_length(plan, request_, restate, later):
    thinking = (PLANS / plan).read_text(encoding="utf-8")
    model = Model(plan=thinking, restate=restate, later=later, share=1.25)
    with SectionServer(model) as server:
        proc = run(server, request_, "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    headings = [t for t, _ in read_outline(thinking)]
    assert [s["heading"] for s in data["sections"]] == headings
    assert data["plan"]["source"] == "plan"
    assert "sections from the model's plan" in proc.stderr
    target = int(re.sub(r"\D", "", re.search(r"\d[\d,]*", request_)[0]))
    assert_clean(data["answer"], headings, model.title, target)
    assert {s["ended"] for s in data["sections"][:-1]} <= {"heading", "length"}


def test_parts_longer_than_a_pass_are_written_as_the_chapters_planned_under_them():
    thinking = (PLANS / "17-silk-road-nested-parts.txt").read_text(encoding="utf-8")
    with SectionServer(Model(plan=thinking)) as server:
        proc = run(server, "Write a 100,000-word history of the Silk Road", "--plan-only",
                   "--json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    titles = [p["heading"] for p in json.loads(proc.stdout)["parts"]]
    assert titles[0] == "Prologue" and titles[-1] == "Epilogue"
    assert titles[1:3] == ["Zhang Qian's Mission", "The Heavenly Horses of Ferghana"]
    assert len(titles) == 17  # the 15 chapters between prologue and epilogue


def test_the_sections_length_stays_within_ten_percent_when_sections_run_long_or_short():
    for share in (0.8, 1.3):
        with SectionServer(Model(share=share)) as server:
            proc = run(server, "Write a 30,000-word report on tides", "--json")
        assert proc.returncode == 0, proc.stderr
        words = count_words(json.loads(proc.stdout)["answer"])
        assert 27_000 <= words <= 33_000, (share, words)


def test_options_are_refused_before_any_model_loads(tmp_path):
    # No server at all: each must fail on its own merits, in one line, exit 2.
    missing = tmp_path / "missing.md"
    three = tmp_path / "three.md"
    three.write_text("## A\n## B\n## C\n", encoding="utf-8")
    for args, says in [
        (["Write about tides", "--sections", "3"], "--sections needs a length target"),
        (["Write about tides", "--plan-only"], "--plan-only needs a length target"),
        (["Write 5,000 words", "--plan", str(missing)], "missing.md"),
        (["Write 5,000 words", "--plan", str(three), "--sections", "5"], "has 3 sections"),
        (["Write 5,000 words", "--sections", "1"], "--sections must be 2 or more"),
    ]:
        proc = run(None, *args, "--server", "http://127.0.0.1:9/v1")
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.count("\n") == 1 and says in proc.stderr, proc.stderr


def test_dry_run_shows_the_plan_request():
    proc = run(None, "Write a 60,000-word novel about a lighthouse", "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["sectioned"]["sections"] >= 2
    assert data["sectioned"]["plan_request"]["max_tokens"] == data["sectioned"]["think_budget"]
    assert data["prompt"].endswith("<|assistant|>:")


def test_plan_only_writes_the_outline_to_a_file_and_shows_the_plan(tmp_path):
    out = tmp_path / "outline.md"
    with SectionServer() as server:
        proc = run(server, "Write a 20,000-word history of glass", "--plan-only", "-o", str(out),
                   "--thinking", "show")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and "Let me plan this carefully" in proc.stderr
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# ") and len(read_outline(text)) == 4


def test_no_think_sections_use_the_direct_template():
    with SectionServer() as server:
        proc = run(server, "Write a 12,000-word guide to bees", "--no-think", "--sections", "2",
                   "--json")  # fmt: skip
        prompts = [p for p in server.model.prompts if "</think> <answer>" in p]
    assert proc.returncode == 0, proc.stderr
    assert not prompts  # no plan glued onto the direct template
    heads = ("## Topic 1", "## Topic 2")
    sections = [p for p in server.model.prompts if p.rstrip().endswith(heads)]
    assert sections and all("<answer> <think>" not in p for p in sections)


def test_the_python_api_sections_as_the_command_does():
    from longwrite import write

    with SectionServer() as server:
        doc = write("Write a 30,000-word report on tides", server=server.url)
    assert doc.answer.startswith("# The Heat Beneath Our Feet\n\n## ")
    assert len(re.findall(r"^## ", doc.answer, re.M)) >= 2
    assert 27_000 <= doc.words <= 33_000


def test_a_run_killed_while_planning_is_planned_again_by_continue(tmp_path):
    home = tmp_path / "home"
    gate = threading.Event()
    with SectionServer(Model(plan_gate=gate)) as server:
        env = {**os.environ, "LONGWRITE_HOME": str(home), "LONGWRITE_NO_LOG": ""}
        proc = subprocess.Popen(
            [*LONGWRITE, "Write a 30,000-word report on tides", "--server", server.url],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not any(p.rstrip().endswith("<|assistant|>:") for p in server.model.prompts):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        proc.kill()  # kill -9 while the plan is being asked for
        proc.wait(timeout=30)
        gate.set()
        logged = json.loads(run(None, "logs", "show", "last", "--json", home=home).stdout)
        assert logged["options"]["sectioned"]["sections"] >= 2 and not logged["raw"]
        again = run(server, "continue", "last", home=home)
    assert again.returncode == 0, again.stderr
    assert "stopped while planning: planning it again" in again.stderr
    shown = json.loads(run(None, "logs", "show", "last", "--json", home=home).stdout)
    assert shown["status"] == "done" and "outline" in shown["options"]
    assert 27_000 <= count_words(shown["answer"]) <= 33_000


def test_continue_words_extends_a_finished_sectioned_run_by_more_sections(tmp_path):
    home = tmp_path / "home"
    with SectionServer() as server:
        first = run(server, "Write a 12,000-word guide to bees", "--sections", "2", home=home)
        assert first.returncode == 0, first.stderr
        more = run(server, "continue", "last", "--words", "20000", home=home)
    assert more.returncode == 0, more.stderr
    assert "extending run" in more.stderr
    shown = json.loads(run(None, "logs", "show", "last", "--json", home=home).stdout)
    heads = re.findall(r"^## (.+)$", shown["answer"], re.M)
    assert len(heads) > 2 and len(set(heads)) == len(heads)  # the first two, then more
    assert all(h.startswith("Further topic") for h in heads[2:])
    assert 18_000 <= count_words(shown["answer"]) <= 22_000
