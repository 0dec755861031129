"""Benchmark: what the run log costs a 10,000-word run, in CPU seconds.

Run from the repository root: `python bench/runlog.py`. A 10,000-word answer (the same
document as bench/render.py) streams in deltas of 1-4 characters, one token each, through
the real generation loop (`write_document`: parser, rounds, the `on_raw` hook) into a sink
that discards events, once with the run log (a real SQLite file in a temporary
LONGWRITE_HOME) and once without.

The clock is simulated at the real pace, 100 tokens/s: the recorder's "every half second"
sees the time a real stream would take, so it writes as many batches as a real run would,
while the benchmark itself runs as fast as the CPU allows.

Printed figures: the batches written, then
ratio R = (CPU seconds with the log - CPU seconds without) / generation seconds at 100 tok/s,
each CPU time the best of 5 runs (CPU time of the whole process, the flushing thread
included). Goal R <= 0.01: logging costs at most 1% of generation.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from render import build_document  # noqa: E402
from scripted import random_cut  # noqa: E402

from longwrite.engines.base import Chunk, EngineInfo, Sampling  # noqa: E402
from longwrite.generate.rounds import write_document  # noqa: E402
from longwrite.prompt.request import build_request  # noqa: E402
from longwrite.runlog.recorder import Recorder  # noqa: E402
from longwrite.runlog.store import DONE, Store  # noqa: E402

TOKENS_PER_SECOND = 100
RUNS = 5


class Clock:
    """Simulated time: advanced by the engine, one token at a time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class PacedEngine:
    """Yields one delta per token and moves the simulated clock at 100 tokens/s."""

    def __init__(self, deltas: list[str], clock: Clock) -> None:
        self.deltas = deltas
        self.clock = clock
        self.info = EngineInfo(name="bench", model="bench")

    def stream(self, prompt: str, sampling: Sampling) -> Iterator[Chunk]:
        for text in self.deltas:
            self.clock.now += 1 / TOKENS_PER_SECOND
            yield Chunk(text=text, tokens=1)
        yield Chunk(text="", finish_reason="stop")

    def count_tokens(self, text: str) -> int | None:
        return None

    def close(self) -> None:
        pass


class Discard:
    def handle(self, event: object) -> None:
        pass

    def add_tokens(self, n: int) -> None:
        pass


def one_run(deltas: list[str], log: bool) -> tuple[float, int]:
    """CPU seconds of one run, and the batches the log received."""
    request = build_request("Write a 10,000-word report", max_tokens=len(deltas) + 10)
    clock = Clock()
    engine = PacedEngine(deltas, clock)
    started = time.process_time()
    recorder = None
    if log:
        store = Store.open()
        run_id = store.new_run(kind="write", user_prompt="bench", prompt=request.prompt,
                               options={})  # fmt: skip
        recorder = Recorder(store, run_id, clock=clock)
    result = write_document(
        engine, request, Discard(), on_raw=recorder.add if recorder is not None else None
    )
    batches = 0
    if recorder is not None:
        store, run_id = recorder.store, recorder.run_id
        batches = store.conn.execute(
            "SELECT count(*) FROM chunks WHERE run_id=?", (run_id,)
        ).fetchone()[0]
        recorder.finish(DONE, finish_reason=result.finish_reason, words=result.words)
    return time.process_time() - started, batches


def main() -> None:
    doc = "<think>Plan: sections, then lists.</think>\n<answer>\n" + build_document()
    deltas = random_cut(doc, seed=11)  # 1-4 characters each
    seconds = len(deltas) / TOKENS_PER_SECOND
    with tempfile.TemporaryDirectory() as home:
        os.environ["LONGWRITE_HOME"] = home
        without, with_log, batches = [], [], 0
        for _ in range(RUNS):
            without.append(one_run(deltas, log=False)[0])
            cpu, batches = one_run(deltas, log=True)
            with_log.append(cpu)
    extra = max(0.0, min(with_log) - min(without))
    print(f"{len(deltas):,} deltas = {seconds:,.0f} s of generation at {TOKENS_PER_SECOND} tok/s")
    print(f"without the log: {min(without):.3f} s CPU; with it: {min(with_log):.3f} s CPU")
    print(f"batches written per run: {batches} (about one per {seconds / batches:.2f} s)")
    print(f"runlog: ratio={extra / seconds:.4f} goal<=0.01")


if __name__ == "__main__":
    main()
