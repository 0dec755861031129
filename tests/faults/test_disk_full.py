"""A full disk under `batch`'s OUT, under `-o FILE` and under a redirected stdout.

`batch` stops with every line counted (written + not run = all), exit 1, one line that says
the disk is full and how to finish; OUT has no torn line, and the same command finishes once
there is room. The main command stops with its text in the run log (said in the one error
line, exit 1); `continue` then writes the same document an uninterrupted run writes.

The disk is a 64 KB tmpfs, filled up to a page or two: mounting one needs root (and a
container that lets root mount); elsewhere those tests are skipped with the reason. stdout
on `/dev/full` needs nothing.
"""

from __future__ import annotations

import json
import os
import random
import string
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sse_server import Script, ScriptedServer
from test_batch_servers import BASE, EchoServer, batch_argv, check_output, write_input

from faults.common import PIECES, PROMPT, QUESTION, answer_of, cli, env, errors, logged, script
from longwrite.cli.batch import run_batch_command

pytestmark = pytest.mark.slow
PAGE = 4096


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KB tmpfs at tmp_path/disk, unmounted afterwards; skipped where it cannot be."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path, pages_left: int) -> Path:
    """Fill `disk` but `pages_left` pages; the filler file (delete it to make room)."""
    filler = disk / "filler"
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    filler.write_bytes(b"\0" * (free - pages_left * PAGE))
    assert os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize == pages_left * PAGE
    return filler


def test_batch_on_a_full_disk_counts_every_line_and_finishes_later(small_disk, tmp_path):
    ids = write_input(tmp_path / "in.jsonl", 12)
    out = small_disk / "out.jsonl"
    filler = fill(small_disk, 2)  # OUT.lock takes a page; OUT gets one, about five lines
    with EchoServer(Script(pieces=(8,))) as srv:
        argv = batch_argv() + [str(tmp_path / "in.jsonl"), "-o", str(out), "--server", srv.url]
        argv += ["--concurrency", "1", "--max-tokens", "200", "--max-rounds", "0"]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env())
    assert proc.returncode == 1, proc.stderr
    (line,) = errors(proc.stderr)
    assert line.startswith(f"longwrite: error: cannot write {out}: No space left on device; ")
    assert line.endswith("free some space, then run the same command again to finish")
    kept = out.read_bytes()
    assert kept.endswith(b"\n") and 0 < kept.count(b"\n") < 12  # whole lines, no torn one
    written = [json.loads(x) for x in kept.decode().splitlines()]
    check_output(out, [r["id"] for r in written])
    summary = [x for x in proc.stderr.splitlines() if x.startswith("batch: ")][-1]
    assert summary == f"batch: {len(written)} written to {out}, {12 - len(written)} not run"
    filler.unlink()
    with EchoServer(Script(pieces=(8,))) as srv:
        assert run_batch_command(tmp_path / "in.jsonl", out, BASE, [srv.url], 2) == 0
        assert len(srv.completions) == 12 - len(written)
    check_output(out, ids)


def long_text(paragraphs: int = 60) -> str:
    """A document of distinct made-up sentences (nothing for the loop guard), ~9 KB."""
    rng = random.Random(11)

    def sentence() -> str:
        words = ["".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(2, 8)))
                 for _ in range(rng.randint(8, 14))]  # fmt: skip
        return " ".join(words).capitalize() + "."

    body = "\n\n".join(" ".join(sentence() for _ in range(2)) for _ in range(paragraphs))
    return "<think>Plan: many short parts.</think>\n<answer>\n# Tides\n\n" + body


def test_write_to_a_full_disk_keeps_the_text_in_the_log(small_disk, tmp_path):
    text = long_text()
    doc = small_disk / "tides.md"
    whole = tmp_path / "whole.md"
    with ScriptedServer(Script(text=text, prompt=PROMPT, pieces=PIECES)) as srv:
        done = cli(QUESTION, "--server", srv.url, "--max-rounds", "0", "-o", str(whole))
        assert done.returncode == 0, done.stderr
        filler = fill(small_disk, 1)
        proc = cli(QUESTION, "--server", srv.url, "--max-rounds", "0", "-o", str(doc))
        assert proc.returncode == 1, proc.stderr
        (line,) = errors(proc.stderr)
        run = logged()
        assert line.startswith(
            f"longwrite: error: cannot write {doc}.partial: No space left on device; the "
        )
        assert line.endswith(f"`longwrite continue {run['id']} -o {doc}` finishes the "
                             "document once there is room")  # fmt: skip
        assert run["status"] == "failed" and text.startswith(run["raw"])
        partial = Path(f"{doc}.partial").read_text(encoding="utf-8")
        assert answer_of(run["raw"]).startswith(partial)  # the log has all the file has
        assert len(partial) >= PAGE - 4 and not doc.exists()
        filler.unlink()
        carried = cli("continue", run["id"], "--server", srv.url, "-o", str(doc))
    assert carried.returncode == 0, carried.stderr
    assert doc.read_bytes() == whole.read_bytes()  # nothing lost: the same document


def test_stdout_on_a_full_disk_keeps_the_text_in_the_log(tmp_path) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    with ScriptedServer(script()) as srv, open("/dev/full", "w") as full:
        proc = cli(QUESTION, "--server", srv.url, "--max-rounds", "0", stdout=full)
    assert proc.returncode == 1, proc.stderr
    (line,) = errors(proc.stderr)
    run = logged()
    assert line.startswith("longwrite: error: cannot write stdout: No space left on device; ")
    assert f"`longwrite logs show {run['id']} > FILE` writes them" in line
    assert run["status"] == "failed" and run["raw"]
    shown = cli("logs", "show", run["id"])
    assert shown.returncode == 0 and shown.stdout == answer_of(run["raw"])
