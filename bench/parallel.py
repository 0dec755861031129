"""Benchmark: a 50,000-word document with --parallel 8 against --parallel 1, wall time.

Run from the repository root: `python bench/parallel.py` (about half a minute).

The server is the scripted section model of the tests (`tests/section_server.Model`) in a
process of its own, paced: each stream sends its 16-word events at RATE tokens a second,
against the clock, for every stream at once (a server's batch decodes eight streams at nearly
one stream's speed). RATE is SCALE = 80 times a 32B model's 25 tokens a second, so the bench
takes seconds instead of an hour. The clock is simulated, not the model streamed faster: the
time with a completion in flight is the model's and counts SCALE times over, the rest (the
client starting, planning's bookkeeping between requests, writing the file) is the client's
and counts once, as at the model's pace. The server keeps when each completion began and
ended. Each run goes the CLI's way, planning included, as a subprocess.
R = time(--parallel 8) / time(--parallel 1) at the model's pace, goal <= 0.25; the ratio of
the compressed wall times is printed above it. E = |words - 50,000| / 50,000 of the parallel
document, goal <= 0.10.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from longwrite.io.counting import count_words  # noqa: E402

MODEL_RATE = 25.0  # tokens a second per stream of a 32B model on a two-GPU server
SCALE = 80  # how much faster than the model the scripted server streams
RATE = MODEL_RATE * SCALE  # tokens a second per stream
WORDS = 50_000
SERVER = f"""
import json, sys, time
sys.path.insert(0, {str(ROOT)!r})
from tests.section_server import Model, SectionServer
with SectionServer(Model(delay={16 / RATE!r})) as server:
    print(server.url, flush=True)
    for line in sys.stdin:  # each line asks for the completions' spans since the last
        with server.model.lock:
            spans, server.model.spans[:] = list(server.model.spans), []
        print(json.dumps(spans), flush=True)
"""


def busy(spans: list[tuple[float, float]], start: float, end: float) -> float:
    """Seconds of [start, end] with at least one span in flight (their union)."""
    total, reach = 0.0, start
    for a, b in sorted(spans):
        a, b = max(a, reach), min(b, end)
        if b > a:
            total += b - a
            reach = b
    return total


class Run(NamedTuple):
    wall: float  # seconds here, at the compressed pace
    busy: float  # of which a completion was in flight
    words: int
    cpu: float  # the client's CPU seconds

    @property
    def at_pace(self) -> float:
        """Seconds at the model's pace: in-flight time SCALE times over, the client's once."""
        return self.wall - self.busy + SCALE * self.busy


def timed(server: subprocess.Popen, url: str, parallel: int) -> Run:
    """One run of the command against the server."""
    env = {**os.environ, "LONGWRITE_NO_LOG": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "longwrite", f"Write a {WORDS:,}-word report on urban heat islands",
         "--server", url, "--parallel", str(parallel), "--json"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    end = time.monotonic()
    if proc.returncode:
        raise SystemExit(f"--parallel {parallel} failed: {proc.stderr.strip()[-500:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    server.stdin.write("spans\n")  # type: ignore[union-attr]
    server.stdin.flush()  # type: ignore[union-attr]
    spans = json.loads(server.stdout.readline())  # type: ignore[union-attr]
    words = count_words(json.loads(proc.stdout)["answer"])
    return Run(end - start, busy(spans, start, end), words, cpu)


def main() -> None:
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        url = server.stdout.readline().strip()  # type: ignore[union-attr]
        one = timed(server, url, 1)
        eight = timed(server, url, 8)
    finally:
        server.communicate("")
    for n, run in ((1, one), (8, eight)):
        print(f"--parallel {n}: {run.wall:.1f} s wall here ({run.busy:.1f} s in flight), "
              f"{run.words:,} words, client CPU {run.cpu:.1f} s; "
              f"{run.at_pace / 60:.1f} min at the model's pace")  # fmt: skip
    print(f"compressed: ratio={eight.wall / one.wall:.3f} (the wall times here, where the "
          f"client's own time weighs {SCALE}x more than at the model's pace)")  # fmt: skip
    error = abs(eight.words - WORDS) / WORDS
    ratio = eight.at_pace / one.at_pace
    print(f"parallel: ratio={ratio:.3f} goal<=0.25 length_error={error:.3f} goal<=0.10")


if __name__ == "__main__":
    main()
