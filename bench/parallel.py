"""Benchmark: a 50,000-word document with --parallel 8 against --parallel 1, wall time.

Run from the repository root: `python bench/parallel.py` (about half a minute).

The server is the scripted section model of the tests (`tests/section_server.Model`) in a
process of its own, paced: each stream sends its 16-word events at RATE tokens a second, and
keeps that pace for every stream at once (a server's batch decodes eight streams at nearly
one stream's speed). The pace is scaled, RATE = 80 x a 32B model's 25 tokens/s, so the bench
takes seconds instead of an hour; the ratio holds while the client keeps up, which the CPU
figure printed shows. Each run goes the CLI's way, planning included, as a subprocess.
R = wall(--parallel 8) / wall(--parallel 1), goal <= 0.25; E = |words - 50,000| / 50,000 of
the parallel document, goal <= 0.10.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from longwrite.io.counting import count_words  # noqa: E402

RATE = 2000.0  # tokens a second per stream
WORDS = 50_000
SERVER = f"""
import sys, time
sys.path.insert(0, {str(ROOT)!r})
from tests.section_server import Model, SectionServer
with SectionServer(Model(delay={16 / RATE!r})) as server:
    print(server.url, flush=True)
    sys.stdin.read()
"""


def timed(url: str, parallel: int) -> tuple[float, int, float]:
    """(wall seconds, words, client CPU seconds) of one run."""
    env = {**os.environ, "LONGWRITE_NO_LOG": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "longwrite", f"Write a {WORDS:,}-word report on urban heat islands",
         "--server", url, "--parallel", str(parallel), "--json"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    wall = time.monotonic() - start
    if proc.returncode:
        raise SystemExit(f"--parallel {parallel} failed: {proc.stderr.strip()[-500:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return wall, count_words(json.loads(proc.stdout)["answer"]), cpu


def main() -> None:
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        url = server.stdout.readline().strip()  # type: ignore[union-attr]
        one, words_one, cpu_one = timed(url, 1)
        eight, words, cpu = timed(url, 8)
    finally:
        server.communicate("")
    print(f"--parallel 1: {one:.1f} s wall, {words_one:,} words, client CPU {cpu_one:.1f} s")
    print(f"--parallel 8: {eight:.1f} s wall, {words:,} words, client CPU {cpu:.1f} s")
    error = abs(words - WORDS) / WORDS
    print(f"parallel: ratio={eight / one:.3f} goal<=0.25 length_error={error:.3f} goal<=0.10")


if __name__ == "__main__":
    main()
