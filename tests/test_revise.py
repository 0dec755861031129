"""`longwrite revise` (issue 25): one section written again, every version kept, undo.

Against the scripted section model (tests/section_server.py), which writes other paragraphs
for a revision (keyed by its instruction and seed), a sectioned run is logged, then revised:
the other sections stay byte for byte, the revised one is replaced, versions are listed, undo
restores; kill -9 during a revision leaves the previous version in the document and the
partial new one listed as unfinished, never a mix. A one-pass run is split at its `##`
headings. `-o FILE` gets the revised document, `export` too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from longwrite.generate.revise import Document, find_section, split_sections
from tests.section_server import Model, SectionServer

pytestmark = pytest.mark.slow
LONGWRITE = [sys.executable, "-m", "longwrite"]
PROMPT = "Write a 12,000-word guide to bees"


def run(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LONGWRITE_HOME": str(home), "LONGWRITE_NO_LOG": ""}
    return subprocess.run([*LONGWRITE, *args], capture_output=True, text=True, timeout=180,
                          env=env)  # fmt: skip


def shown(home: Path) -> str:
    proc = run(home, "logs", "show", "last")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_sections_are_split_at_their_headings_and_named_by_number_or_prefix():
    doc = split_sections("# T\n\nIntro.\n\n## Origins\n\nA.\n\n```\n## not a heading\n```\n\n"
                         "## Outlook\n\nB.")  # fmt: skip
    assert doc.head == "# T\n\nIntro.\n\n" and [h for h, _ in doc.sections] == [
        "Origins",
        "Outlook",
    ]
    assert "## not a heading" in doc.sections[0][1]
    assert find_section(doc, "2") == 1 and find_section(doc, "out") == 1
    assert doc.with_section(0, "C.").text() == (
        "# T\n\nIntro.\n\n## Origins\n\nC.\n\n## Outlook\n\nB."
    )
    assert split_sections("No headings at all.") == Document("No headings at all.", ())


def test_revise_replaces_one_section_keeps_the_rest_lists_versions_and_undoes(tmp_path):
    home = tmp_path / "home"
    with SectionServer() as server:
        first = run(home, PROMPT, "--sections", "3", "--server", server.url)
        assert first.returncode == 0, first.stderr
        original = split_sections(shown(home))
        out = tmp_path / "revised.md"
        again = run(home, "revise", "last", "--section", "2", "more concrete, with numbers",
                    "-o", str(out))  # fmt: skip
        assert again.returncode == 0, again.stderr
        assert "section 2" in again.stderr and "new version" in again.stderr
        revised = split_sections(shown(home))
        assert revised.head == original.head
        assert revised.sections[0] == original.sections[0]
        assert revised.sections[2] == original.sections[2]
        assert revised.sections[1][0] == original.sections[1][0]  # the same heading
        assert revised.sections[1][1] != original.sections[1][1]  # a new text under it
        assert out.read_text(encoding="utf-8") == shown(home)
        exported = tmp_path / "exported.md"
        assert run(home, "export", "last", "-o", str(exported)).returncode == 0
        assert split_sections(exported.read_text(encoding="utf-8")).sections == revised.sections
        prompts = [p for p in server.model.prompts if "Revision of part 2" in p]
        assert prompts and "more concrete, with numbers." in prompts[0]
        listed = json.loads(run(home, "logs", "show", "last", "--versions", "2", "--json").stdout)
        assert [v["status"] for v in listed["versions"]] == ["original", "done"]
        assert listed["versions"][1]["instruction"] == "more concrete, with numbers"
        undone = run(home, "revise", "last", "--section", "2", "--undo")
        assert undone.returncode == 0 and "back to the version before" in undone.stderr
        assert split_sections(shown(home)) == original


def test_revise_from_a_section_rewrites_it_and_all_after_it(tmp_path):
    home = tmp_path / "home"
    with SectionServer() as server:
        assert run(home, PROMPT, "--sections", "3", "--server", server.url).returncode == 0
        original = split_sections(shown(home))
        again = run(home, "revise", "last", "--from", "2")  # fresh samples, no instruction
        assert again.returncode == 0, again.stderr
    revised = split_sections(shown(home))
    assert revised.sections[0] == original.sections[0]
    assert all(revised.sections[k][1] != original.sections[k][1] for k in (1, 2))


def test_kill_9_during_a_revision_keeps_the_previous_version_and_the_partial_one(tmp_path):
    home = tmp_path / "home"
    model = Model()
    with SectionServer(model) as server:
        assert run(home, PROMPT, "--sections", "3", "--server", server.url).returncode == 0
        before = shown(home)
        model.delay = 0.05  # the revision streams slowly
        env = {**os.environ, "LONGWRITE_HOME": str(home), "LONGWRITE_NO_LOG": ""}
        argv = [*LONGWRITE, "revise", "last", "--section", "2", "shorter"]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 60
        while not any("Revision of part 2" in p for p in model.prompts):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        time.sleep(1.5)  # some of the new version streams and is logged
        proc.kill()
        proc.wait(timeout=30)
    after = run(home, "logs", "show", "last")
    assert after.stdout == before  # the previous version, never a mix
    assert "unfinished revision of section 2" in after.stderr
    listed = json.loads(run(home, "logs", "show", "last", "--versions", "2", "--json").stdout)
    partial = listed["versions"][1]
    assert partial["status"] == "writing" and partial["text"]  # what streamed is kept
    assert partial["text"] not in before


def test_a_one_pass_run_is_split_at_its_headings(tmp_path):
    from sse_server import Script, ScriptedServer

    from longwrite.prompt.templates import build_prompt

    home = tmp_path / "home"
    text = ("<think>Two parts.</think>\n<answer>\n# Tides\n\n## Origins\n\nThe moon pulls the "
            "sea.\n\n## Outlook\n\nThe water comes back.")  # fmt: skip
    warm = "The warm water comes back at dusk."
    script = Script(text=text, prompt=build_prompt("Write about tides"), then=(warm,))
    with ScriptedServer(script) as server:
        first = run(home, "Write about tides", "--server", server.url, "--max-rounds", "0")
        assert first.returncode == 0, first.stderr
        again = run(home, "revise", "last", "--section", "Out", "warmer")
    assert again.returncode == 0, again.stderr
    doc = split_sections(shown(home))
    assert [h for h, _ in doc.sections] == ["Origins", "Outlook"]
    assert doc.sections[0][1] == "The moon pulls the sea."
    assert doc.sections[1][1] == warm
    revision = server.completions[1].body["prompt"]
    assert 'Revision of part 2, "Outlook"' in revision and "warmer." in revision
    assert revision.endswith("## Origins\n\nThe moon pulls the sea.\n\n## Outlook\n\n")


def test_mistakes_are_one_line(tmp_path):
    home = tmp_path / "home"
    from sse_server import Script, ScriptedServer

    from longwrite.prompt.templates import build_prompt

    text = "<think>Plan.</think>\n<answer>\nOne paragraph, no headings."
    with ScriptedServer(Script(text=text, prompt=build_prompt("Write a note"))) as server:
        assert run(home, "Write a note", "--server", server.url).returncode == 0
    for args, says in [
        (["revise", "last"], "say which section"),
        (["revise", "last", "--section", "1", "--from", "2"], "cannot be combined"),
        (["revise", "last", "--section", "1"], "has no sections"),
        (["revise", "nope", "--section", "1"], "nope"),
    ]:
        proc = run(home, *args)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert says in proc.stderr, proc.stderr
