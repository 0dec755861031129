"""Benchmark: what `OpenAIEngine` costs on top of the bare `openai` client.

Run from the repository root: `python bench/engine_overhead.py`. The scripted test server
(tests/sse_server.py, on 127.0.0.1), in a process of its own (bench/scripted_server.py),
streams a 20,000-token `<think>...</think><answer>...` completion as fast as it can, in
pieces of 4 characters (one token each). Two consumers in this process read it, taking turns
so that both see the same machine load:

- (a) `OpenAIEngine.stream` with every chunk fed to `ThinkAnswerParser`: what `longwrite`
  itself does with a server, minus the display;
- (b) a bare `client.completions.create(..., stream=True)` loop that only touches each chunk.

What counts is the CPU time of this process (`time.process_time`) while a consumer reads:
the client's own cost. The server runs elsewhere so that its work is not charged to the
client, and wall-clock throughput is no measure here, since either consumer may be waiting on
the server. Each is timed RUNS times and the least CPU time counts (a noisy, shared machine).
The ratio R = (a) / (b) in tokens per CPU second; goal R >= 0.9: the engine (resume
bookkeeping, usage accounting, chunk objects, the parser) costs at most a tenth of what the
client itself costs. A real server generates far slower than this one, so in practice the
overhead is invisible.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import openai  # noqa: E402
from scripted_server import serving  # noqa: E402

from longwrite.engines.base import DEFAULT_STOP, Sampling  # noqa: E402
from longwrite.engines.openai import OpenAIEngine  # noqa: E402
from longwrite.generate.parser import ThinkAnswerParser  # noqa: E402

TOKENS = 20_000
PIECE = 4  # characters per token
RUNS = 5  # each consumer is timed this many times, alternating; the least CPU time counts
MODEL = "lw-test"  # the scripted server's model
GOAL = 0.9
PROMPT = "PROMPT:"
VOCAB = """the river carried lantern light past the quiet station while morning rain
settled over the village garden and an old letter waited in the archive"""
WORDS = VOCAB.split()


def make_text(tokens: int) -> str:
    """Exactly `tokens * PIECE` characters: a short plan, then a long answer, no stop string."""
    head = "<think>Plan: an essay in five sections.</think>\n<answer>\n# Title\n\n"
    body, i = [], 0
    size = len(head)
    while size < tokens * PIECE:
        word = WORDS[i % len(WORDS)] + (".\n\n" if i % 97 == 96 else " ")
        body.append(word)
        size += len(word)
        i += 1
    return (head + "".join(body))[: tokens * PIECE]


def run_engine(url: str, sampling: Sampling) -> tuple[float, float, int, int]:
    """CPU seconds, wall seconds, tokens and answer characters through OpenAIEngine +
    ThinkAnswerParser."""
    engine = OpenAIEngine(url)
    parser = ThinkAnswerParser()
    tokens = 0
    cpu, wall = time.process_time(), time.perf_counter()
    for chunk in engine.stream(PROMPT, sampling):
        tokens += chunk.tokens
        parser.feed(chunk.text)
    parser.close("stop")
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    engine.close()
    return cpu, wall, tokens, len(parser.answer)


def run_bare(url: str, sampling: Sampling) -> tuple[float, float, int]:
    """CPU seconds, wall seconds and streamed choices through a bare openai client loop."""
    client = openai.OpenAI(base_url=url + "/v1", api_key="EMPTY", max_retries=0)
    pieces = 0
    cpu, wall = time.process_time(), time.perf_counter()
    stream = client.completions.create(
        model=MODEL,
        prompt=PROMPT,
        stream=True,
        max_tokens=sampling.max_tokens,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        stop=list(sampling.stop),
        stream_options={"include_usage": True},
    )
    for completion in stream:
        for choice in completion.choices:
            if choice.text:
                pieces += 1
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    client.close()
    return cpu, wall, pieces


def main() -> None:
    text = make_text(TOKENS)
    sampling = Sampling(max_tokens=TOKENS, stop=DEFAULT_STOP)
    best_engine = best_bare = float("inf")
    with serving(text=text, prompt=PROMPT, pieces=[PIECE], models=[MODEL]) as url:
        for run in range(RUNS):
            e_cpu, e_wall, e_tokens, answer = run_engine(url, sampling)
            b_cpu, b_wall, b_pieces = run_bare(url, sampling)
            if e_tokens != TOKENS or b_pieces != TOKENS:
                sys.exit(f"wrong token count: engine {e_tokens}, bare {b_pieces}, want {TOKENS}")
            best_engine, best_bare = min(best_engine, e_cpu), min(best_bare, b_cpu)
            print(
                f"run {run + 1}: engine+parser {TOKENS / e_cpu:8.0f} tok per CPU s "
                f"({e_cpu:.3f} CPU s, {e_wall:.3f} s), bare client {TOKENS / b_cpu:8.0f} "
                f"({b_cpu:.3f} CPU s, {b_wall:.3f} s)"
            )
    a, b = TOKENS / best_engine, TOKENS / best_bare
    print(f"tokens per run: {TOKENS} ({PIECE} chars each); answer chars: {answer}")
    print(f"best: engine+parser {a:.0f} tok per CPU s, bare client {b:.0f} tok per CPU s")
    print(f"engine: ratio={a / b:.3f} goal>={GOAL}")


if __name__ == "__main__":
    main()
