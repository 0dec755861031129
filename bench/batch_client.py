"""Benchmark: generated tokens per second of `longwrite batch`'s own CPU, against a fast server.

Run from the repository root: `python bench/batch_client.py`. The scripted OpenAI-compatible
server (tests/sse_server.py) runs in a process of its own (bench/scripted_server.py) and
answers as fast as it can, so the client is the only limit and its CPU time
(`time.process_time` of this process) is its cost alone. 32 lines, each an 8,000-token
completion (4 characters a token), go through the whole command path (`run_batch_command`:
read the input, open the pool, run the lines 16 in flight, append each result to OUT), in
three request modes, taking turns so that all see the same machine load:

- whole: the default, one JSON reply per line (`OpenAIEngine(whole=True)`);
- stream16: `batch --stream` against a server that groups tokens as vLLM does when asked
  (`stream_interval`, 16 tokens an event, with the running usage count);
- streaming: `batch --stream` against a server that sends one event per token (servers
  other than vLLM, or what every batch did before): the figure the issue measured.

After one warm-up run (the command's lazy imports), each mode runs RUNS times and its least
CPU time counts (a shared, noisy machine). The rate
R = tokens / CPU seconds of the whole mode; goal R >= 100,000 (a client that several 8-GPU
nodes cannot outrun). The last line also gives the two streaming figures.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripted_server import serving  # noqa: E402

from longwrite.cli.batch import run_batch_command  # noqa: E402
from longwrite.engines import EngineOptions  # noqa: E402
from longwrite.generate.job import WriteOptions, resolve_request  # noqa: E402
from longwrite.io.jsonl import read_records  # noqa: E402

LINES = 32
TOKENS = 8_000
PIECE = 4  # characters per token
IN_FLIGHT = 16
RUNS = 2
GOAL = 100_000
MODEL = "lw-bench"
PROMPT = "Write a long essay about the river and the village."
# A writer's vocabulary, drawn at random: text that reads as new all the way (a cycle of a
# few words is a loop the guard would cut, and the bench would measure the repair instead).
VOCABULARY = (
    "the river carried lantern light past quiet station while rain settled over roofs and "
    "fields where old farmers walked slowly toward market bridges under grey morning clouds "
    "children laughed beside boats painted red green blue yellow as bells rang from distant "
    "towers across valley hills covered with pine oak birch trees wind moved through narrow "
    "streets carrying smoke bread coffee voices stories letters songs memories of summer "
    "harvest winter frost spring floods autumn leaves falling softly on stone walls gardens"
)
WORDS = VOCABULARY.split()


def make_text() -> str:
    """Exactly TOKENS * PIECE characters: a plan, then a long answer, no stop string."""
    head = "<think>Plan: an essay in five sections.</think>\n<answer>\n# The river\n\n"
    rng = random.Random(1)
    body, i, size = [], 0, len(head)
    while size < TOKENS * PIECE:
        word = rng.choice(WORDS) + (".\n\n" if i % 97 == 96 else " ")
        body.append(word)
        size += len(word)
        i += 1
    return (head + "".join(body))[: TOKENS * PIECE]


def run(url: str, folder: Path, base: WriteOptions, stream: bool) -> tuple[float, float, int]:
    """CPU seconds, wall seconds and generated tokens of one whole batch command."""
    out = folder / "out.jsonl"
    out.unlink(missing_ok=True)
    cpu, wall = time.process_time(), time.perf_counter()
    code = run_batch_command(folder / "in.jsonl", out, base, [url], IN_FLIGHT, stream=stream)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    records = read_records(out)
    if code or len(records) != LINES or any(r["tokens"] != TOKENS for r in records):
        sys.exit(f"the batch went wrong: exit {code}, {len(records)} lines")
    return cpu, wall, sum(r["tokens"] for r in records)


def main() -> None:
    engine = EngineOptions(engine="openai", model=MODEL)
    base = WriteOptions(prompt="", max_tokens=TOKENS, max_rounds=0, engine=engine)
    prompt = resolve_request(WriteOptions(prompt=PROMPT)).prompt  # what the server is sent
    script = {"text": make_text(), "prompt": prompt, "pieces": [PIECE], "models": [MODEL]}
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        lines = [json.dumps({"prompt": PROMPT}) for _ in range(LINES)]  # ids p..., p...-2, ...
        (folder / "in.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        with (
            serving(**script) as grouping,
            serving(**script, stream_interval=False) as per_token,
        ):
            modes = [("whole", grouping, False), ("stream16", grouping, True)]
            modes.append(("streaming", per_token, True))
            run(grouping, folder, base, False)  # warm-up: the lazy imports, the first connection
            for turn in range(RUNS):
                for name, url, stream in modes:
                    cpu, wall, tokens = run(url, folder, base, stream)
                    best[name] = max(best.get(name, 0.0), tokens / cpu)
                    print(
                        f"run {turn + 1} {name:>9}: {tokens:,} tokens, {cpu:.3f} CPU s, "
                        f"{wall:.2f} s wall -> {tokens / cpu:,.0f} tokens per CPU s",
                        flush=True,
                    )
    print(f"{LINES} lines x {TOKENS:,} tokens, {IN_FLIGHT} in flight; best of {RUNS} each")
    print(
        f"batch_client: rate={best['whole']:.0f} goal>={GOAL} "
        f"stream16={best['stream16']:.0f} streaming={best['streaming']:.0f}"
    )


if __name__ == "__main__":
    main()
