"""A scripted engine for CLI tests: plays back fixed deltas, like nanochat's mock model."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator

from longwrite.engines.base import Chunk, EngineInfo, Sampling


class ScriptedEngine:
    """Yields `deltas` one chunk each (1 token per chunk), then the finish reason.

    With `interrupt_after=k` it raises KeyboardInterrupt after k chunks, as Ctrl-C would.
    """

    def __init__(
        self, deltas: list[str], finish: str = "stop", interrupt_after: int | None = None
    ) -> None:
        self.deltas = deltas
        self.finish = finish
        self.interrupt_after = interrupt_after
        self.info = EngineInfo(name="scripted", model="scripted")
        self.prompts: list[str] = []
        self.samplings: list[Sampling] = []
        self.closed_streams = 0
        self.closed = False

    def stream(self, prompt: str, sampling: Sampling) -> Iterator[Chunk]:
        self.prompts.append(prompt)
        self.samplings.append(sampling)
        try:
            for i, text in enumerate(self.deltas):
                if self.interrupt_after is not None and i == self.interrupt_after:
                    raise KeyboardInterrupt
                yield Chunk(text=text, tokens=1)
            yield Chunk(text="", tokens=0, finish_reason=self.finish)
        finally:
            self.closed_streams += 1

    def count_tokens(self, text: str) -> int | None:
        return None

    def close(self) -> None:
        self.closed = True


def cut(text: str, sizes: tuple[int, ...] = (1, 3, 2, 4)) -> list[str]:
    """Cut `text` into deltas of cycling sizes (tags end up split across deltas)."""
    out, i, k = [], 0, 0
    while i < len(text):
        n = sizes[k % len(sizes)]
        out.append(text[i : i + n])
        i, k = i + n, k + 1
    return out


class RoundsEngine(ScriptedEngine):
    """Plays `transcripts[i]` on the i-th call to `stream` (continuations are new calls)."""

    def __init__(self, transcripts: list[str], finishes: list[str]) -> None:
        super().__init__([])
        self.transcripts = transcripts
        self.finishes = finishes

    def stream(self, prompt: str, sampling: Sampling) -> Iterator[Chunk]:
        i = len(self.prompts)
        self.deltas, self.finish = cut(self.transcripts[i]), self.finishes[i]
        return super().stream(prompt, sampling)


class CandidatesEngine(ScriptedEngine):
    """Interleaves several transcripts as candidates 0..k-1, as an engine with n > 1 does."""

    def __init__(self, transcripts: list[str], finishes: list[str] | None = None) -> None:
        super().__init__([])
        self.transcripts = transcripts
        self.finishes = finishes or ["stop"] * len(transcripts)

    def stream(self, prompt: str, sampling: Sampling) -> Iterator[Chunk]:
        self.prompts.append(prompt)
        self.samplings.append(sampling)
        assert sampling.n == len(self.transcripts)
        pieces = [cut(t) for t in self.transcripts]
        for step in range(max(len(p) for p in pieces)):
            for i, p in enumerate(pieces):
                if step < len(p):
                    yield Chunk(text=p[step], tokens=1, index=i)
        for i, finish in enumerate(self.finishes):
            yield Chunk(text="", finish_reason=finish, index=i)


def random_cut(text: str, seed: int = 0) -> list[str]:
    """Cut `text` into deltas of 1-4 characters chosen by a seeded random generator."""
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(text):
        n = rng.randint(1, 4)
        out.append(text[i : i + n])
        i += n
    return out


def join_candidates(chunks: Iterable[Chunk]) -> dict[int, tuple[str, int, str | None]]:
    """index -> (text, tokens, finish_reason), checking one final chunk per candidate."""
    out: dict[int, tuple[str, int, str | None]] = {}
    for c in chunks:
        assert c.index not in out or out[c.index][2] is None, "chunk after a candidate's end"
        text, tokens, _ = out.get(c.index, ("", 0, None))
        out[c.index] = (text + c.text, tokens + c.tokens, c.finish_reason)
    return out
