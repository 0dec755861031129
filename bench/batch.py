"""Benchmark: `longwrite batch` on the transformers engine, batched against one at a time.

Run from the repository root: `python bench/batch.py`. The tiny random model
(`longwrite.tiny`) is built into a temporary folder and loaded once. The same 32 prompts, with
the same `max_tokens` and sampling, go through the batch runner (`run_batch`) twice in one
run, taking turns so that both see the same machine load:

- (a) batched: the engine behind a `RowBatcher`, 32 lines in flight, so the lines share
  left-padded `generate` batches;
- (b) one at a time: the bare engine, one line in flight, each line its own `generate`.

Throughput is generated tokens per second over the whole run (writing OUT included). Each
mode runs RUNS times and its best counts (the machine is shared and noisy). The ratio
R = (a) / (b); goal R >= 3. The tiny model is small enough that a step costs about the same
for one row as for 32, which is the situation batching is for; on a GPU with a real model
the gain comes from the same place (a step reads the weights once for every row).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from longwrite.batch.input import BatchItem  # noqa: E402
from longwrite.batch.pool import EnginePool, RowBatcher  # noqa: E402
from longwrite.batch.runner import run_batch  # noqa: E402
from longwrite.generate.job import WriteOptions  # noqa: E402
from longwrite.io.jsonl import AppendLog  # noqa: E402

PROMPTS = 32
MAX_TOKENS = 48
RUNS = 2
GOAL = 3.0
TOPICS = (
    "a lighthouse keeper",
    "tides",
    "a city garden",
    "the history of paper",
    "winter in the mountains",
    "a night train",
    "bees",
    "an old library",
)


def items() -> list[BatchItem]:
    out = []
    for i in range(PROMPTS):
        prompt = f"Write a story about {TOPICS[i % len(TOPICS)]}, part {i + 1}."
        out.append(BatchItem(i + 1, f"b{i}", prompt, None, {}, {"prompt": prompt}))
    return out


def run(engine: object, concurrency: int, folder: Path, name: str) -> tuple[float, int]:
    """Seconds and generated tokens for all the prompts in one mode."""
    base = WriteOptions(prompt="", max_tokens=MAX_TOKENS, temperature=0.6, top_p=0.95, seed=0)
    log = AppendLog(folder / f"{name}.jsonl")
    pool = EnginePool([(name, engine)])
    started = time.perf_counter()
    outcome = run_batch(items(), pool, log, base, concurrency=concurrency)
    seconds = time.perf_counter() - started
    log.close()
    assert outcome.written == PROMPTS and not outcome.failed, outcome
    records = AppendLog(folder / f"{name}.jsonl").load()
    (folder / f"{name}.jsonl").unlink()
    return seconds, sum(r["tokens"] for r in records)


def main() -> None:
    from longwrite.engines.transformers import TransformersEngine
    from longwrite.tiny import build_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = build_tiny_model(folder / "tiny")
        engine = TransformersEngine(str(model), device="cpu", dtype="float32")
        batcher = RowBatcher(engine, expected=PROMPTS)
        run(batcher, PROMPTS, folder, "warmup")
        best = {"batched": 0.0, "sequential": 0.0}
        for _ in range(RUNS):
            for name, eng, concurrency in (
                ("batched", batcher, PROMPTS),
                ("sequential", engine, 1),
            ):
                seconds, tokens = run(eng, concurrency, folder, name)
                rate = tokens / seconds
                best[name] = max(best[name], rate)
                print(f"{name}: {tokens} tokens in {seconds:.2f} s = {rate:,.0f} tok/s")
        print(f"batch sizes (rows): {sorted(set(batcher.batches))}")
        batcher.close()
        engine.close()
    ratio = best["batched"] / best["sequential"]
    print(f"batch: ratio={ratio:.2f} goal>={GOAL:g}")


if __name__ == "__main__":
    main()
