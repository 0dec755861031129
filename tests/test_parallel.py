"""Sections written at once (`--parallel N`, issue 24).

Against the scripted section model (tests/section_server.py), whose sections depend only on
their heading, so a document is the same whatever order its sections finish in: the output in
order under random completion order (and the pipe, `-o FILE` and `--json` the same document);
kill -9 with several sections in flight, then `continue`, equal to an uninterrupted run; two
servers sharing the sections with one of them failing every request; a section that restates
another sampled again; a section that opens with the end of the one before trimmed there.
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

from longwrite.generate.parallel import parallel_prompt, trim_seam
from longwrite.io.counting import count_words
from tests.section_server import Model, SectionServer, paragraph

pytestmark = pytest.mark.slow
LONGWRITE = [sys.executable, "-m", "longwrite"]
PROMPT = "Write a 30,000-word report on tides"


def env(home: Path | None) -> dict[str, str]:
    if home is None:
        return {**os.environ, "LONGWRITE_NO_LOG": "1"}
    return {**os.environ, "LONGWRITE_NO_LOG": "", "LONGWRITE_HOME": str(home)}


def run(*args: str, home: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*LONGWRITE, *args], capture_output=True, text=True, timeout=180,
                          env=env(home))  # fmt: skip


def test_the_prompt_names_the_part_after_the_elided_earlier_ones():
    prefix = "TEMPLATE <think>plan</think> <answer>\n"
    got = parallel_prompt(prefix, "# T\n\n", ["A", "B", "C"], 2)
    assert got == f"{prefix}# T\n\n## A\n\n[…]\n\n## B\n\n[…]\n\n## C\n\n"
    assert parallel_prompt(prefix, "", ["A", "B"], 0) == f"{prefix}## A\n\n"


def test_a_seam_that_restates_the_end_before_it_is_trimmed():
    before = "\n\n".join(paragraph("A", i) for i in range(3))
    again = paragraph("A", 2)
    text, trimmed = trim_seam(before, f"{again}\n\n{paragraph('B', 0)}")
    assert text == paragraph("B", 0) and trimmed == len(again) + 2
    fresh = f"{paragraph('B', 0)}\n\n{paragraph('B', 1)}"
    assert trim_seam(before, fresh) == (fresh, 0)


def test_the_document_comes_out_in_order_whatever_order_sections_finish(tmp_path):
    """Three runs, the sections finishing in a different order each time (random waits
    before each reply): piped, into -o FILE and as --json, the same document."""
    out = tmp_path / "doc.md"
    runs = []
    for jitter, extra in ((0.0, ()), (0.6, ("-o", str(out))), (0.3, ("--json",))):
        with SectionServer(Model(jitter=jitter)) as server:
            runs.append(run(PROMPT, "--server", server.url, "--parallel", "4", *extra))
        assert runs[-1].returncode == 0, runs[-1].stderr
    piped, _, js = runs
    data = json.loads(js.stdout)
    assert piped.stdout == out.read_text(encoding="utf-8") == data["answer"]
    heads = re.findall(r"^## (.+)$", data["answer"], re.M)
    assert heads == [s["heading"] for s in data["sections"]] and len(heads) >= 4
    assert 27_000 <= count_words(data["answer"]) <= 33_000


def test_kill_9_with_sections_in_flight_then_continue_equals_an_uninterrupted_run(tmp_path):
    with SectionServer(Model(delay=0.004)) as server:
        whole = run(PROMPT, "--server", server.url, "--parallel", "4", "--no-log")
        assert whole.returncode == 0, whole.stderr
        home = tmp_path / "home"
        seen = len(server.model.prompts)  # the uninterrupted run's requests
        proc = subprocess.Popen([*LONGWRITE, PROMPT, "--server", server.url, "--parallel", "4"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env=env(home))  # fmt: skip
        deadline = time.monotonic() + 60
        while sum("\n\n## " in p and p.endswith("\n\n") for p in server.model.prompts[seen:]) < 3:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.02)
        time.sleep(0.5)  # the sections stream, several at once
        proc.kill()
        proc.wait(timeout=30)
        shown = run("logs", "show", "last", "--json", home=home)
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["status"] in ("interrupted", "running")
        again = run("continue", "last", "-o", str(tmp_path / "doc.md"), home=home)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "doc.md").read_text(encoding="utf-8") == whole.stdout


def test_two_servers_share_the_sections_and_a_failing_one_costs_nothing():
    with SectionServer() as good, SectionServer(Model(fail=True)) as bad:
        proc = run(PROMPT, "--server", good.url, "--server", bad.url, "--parallel", "4",
                   "--json")  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert bad.model.prompts  # it was tried ...
    data = json.loads(proc.stdout)
    assert 27_000 <= count_words(data["answer"]) <= 33_000  # ... and every section written
    assert len(re.findall(r"^## ", data["answer"], re.M)) == len(data["sections"])


def test_a_section_that_restates_another_is_sampled_again_and_a_seam_trimmed():
    model = Model(echo={"Mechanisms 2": "Origins 1"}, heeds_penalty=True, seam=True)
    with SectionServer(model) as server:
        proc = run(PROMPT, "--server", server.url, "--parallel", "4", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    second = data["sections"][1]
    assert second["resampled"] and second["repetition"] < 0.2
    assert all(s["seam"] > 0 for s in data["sections"][2:])
    first_paras = data["answer"].split("\n\n")
    assert len(first_paras) == len(set(first_paras))  # no paragraph twice in the document


def test_the_transformers_engine_writes_one_section_at_a_time(tiny_model_dir):
    proc = run("Write a 400-word note on tides", "--model", str(tiny_model_dir), "--engine",
               "transformers", "--sections", "2", "--parallel", "2", "--max-tokens", "60",
               "--max-rounds", "0")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "writes one section at a time" in proc.stderr


def test_a_batch_line_writes_its_sections_at_once(tmp_path):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(json.dumps({"id": "a", "prompt": PROMPT, "parallel": 4}) + "\n")
    with SectionServer(Model(jitter=0.3)) as server:
        proc = run("batch", str(src), "-o", str(out), "--server", server.url)
        streams = sum("\n\n## " in p and p.endswith("\n\n") for p in server.model.prompts)
    assert proc.returncode == 0, proc.stderr
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert 27_000 <= count_words(record["answer"]) <= 33_000
    assert streams == len(record["sections"]) >= 4
    assert [s["heading"] for s in record["sections"]] == re.findall(
        r"^## (.+)$", record["answer"], re.M
    )
