"""Best of K: sample K candidates in one batch, score them, keep the best.

The engine samples K candidates at once (`Sampling.n`); each is scored with the same rewards
the RL recipe trains with (length, format, repetition) and the best total wins, ties going to
the earliest candidate. A candidate cut off by Ctrl-C never wins against one that ended on
its own. Continuation rounds are for the single-stream path (`generate.rounds`).

Guards act per candidate once the batch has ended (the K candidates share one request, so
none can be stopped alone): each candidate's text is replayed through `write_document` with
the guards on, as if it streamed. Where a guard acts (a loop, thinking over its budget, an
answer never opened) the candidate is repaired as a single stream would be: cut back and
carried on from there by the real engine with the tokens it has left. A candidate no guard
touches costs no request. Its interventions are in its summary, and the winner's in the
result.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from longwrite.engines.base import FINISH_CANCELLED, Chunk, Engine, EngineInfo, Sampling
from longwrite.generate.guards import NO_GUARDS, Guards
from longwrite.generate.parser import Event, split_think_answer
from longwrite.generate.rounds import Result, write_document
from longwrite.io.counting import count_words
from longwrite.prompt.request import Request


@dataclass(frozen=True)
class Candidate:
    """One of K candidates, scored."""

    index: int
    thinking: str
    answer: str
    words: int
    tokens: int
    finish_reason: str
    scores: dict[str, float] = field(default_factory=dict)
    guard: list[dict[str, Any]] = field(default_factory=list)  # the guards' interventions

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        del data["thinking"], data["answer"]
        return data


Scorer = Callable[[str], dict[str, float]]  # raw completion -> {"total": ..., ...}


Progress = Callable[[int, int, str | None], None]  # (index, tokens so far, finish or None)


def best_of(
    engine: Engine,
    request: Request,
    k: int,
    score: Scorer,
    *,
    progress: Progress | None = None,
    on_raw: Callable[[str, int], None] | None = None,
    guards: Guards = NO_GUARDS,
    on_candidate: Callable[[int, str, int], None] | None = None,
) -> tuple[Result, list[Candidate], int]:
    """Sample `k` candidates in one batch: (the best as a Result, all of them, its index).

    `on_raw` receives the chosen candidate's raw text once it is chosen (the run log), and
    `on_candidate(index, text, tokens)` every piece of every candidate as it is sampled (the
    run log again, so a run killed before the choice keeps its candidates); `guards` check
    and repair each candidate before it is scored."""
    started = time.monotonic()
    texts = [""] * k
    tokens = [0] * k
    finish: list[str | None] = [None] * k
    stream = engine.stream(request.prompt, replace(request.sampling, n=k))
    try:
        for chunk in stream:
            i = chunk.index
            texts[i] += chunk.text
            tokens[i] += chunk.tokens
            if on_candidate is not None and (chunk.text or chunk.tokens):
                on_candidate(i, chunk.text, chunk.tokens)
            if chunk.finish_reason is not None:
                finish[i] = chunk.finish_reason
            if progress is not None:
                progress(i, tokens[i], finish[i])
    except KeyboardInterrupt:
        interrupted = True
        finish = [f or FINISH_CANCELLED for f in finish]
    else:
        interrupted = False
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    interventions: list[list[dict[str, Any]]] = [[] for _ in range(k)]
    if not interrupted and guards != NO_GUARDS:
        for i in range(k):
            texts[i], tokens[i], finish[i], interventions[i] = guard_candidate(
                engine, request, texts[i], tokens[i], finish[i] or FINISH_CANCELLED, guards,
                progress=None if progress is None else _indexed(progress, i),
            )  # fmt: skip
    candidates = []
    for i, raw in enumerate(texts):
        thinking, answer = split_think_answer(raw)
        candidates.append(
            Candidate(
                index=i,
                thinking=thinking,
                answer=answer,
                words=count_words(answer),
                tokens=tokens[i],
                finish_reason=finish[i] or FINISH_CANCELLED,
                scores=score(raw),
                guard=interventions[i],
            )
        )
    best = choose_best(candidates)
    if on_raw is not None:
        on_raw(texts[best.index], tokens[best.index])
    result = Result(
        prompt=request.user_prompt,
        thinking=best.thinking,
        answer=best.answer,
        words=best.words,
        tokens=sum(tokens),
        # an interrupted run is interrupted, whichever candidate is shown
        finish_reason=FINISH_CANCELLED if interrupted else best.finish_reason,
        seconds=round(time.monotonic() - started, 3),
        guard=best.guard,
    )
    return result, candidates, best.index


REPLAY_CHARS = 64  # characters per chunk when a candidate's text is replayed to the guards


def guard_candidate(
    engine: Engine,
    request: Request,
    raw: str,
    tokens: int,
    finish: str,
    guards: Guards,
    *,
    progress: Callable[[int, str | None], None] | None = None,
) -> tuple[str, int, str, list[dict[str, Any]]]:
    """One candidate through the guards: (raw text, tokens, finish reason, interventions),
    unchanged where no guard acts. `progress(tokens, finish)` follows a repair."""
    replay = _Replay(engine, raw, tokens, finish)
    kept: list[str] = []
    sink = _Tally(replay, tokens, progress)
    result = write_document(
        replay, request, sink, on_raw=lambda text, _n: kept.append(text), guards=guards
    )
    if not result.guard:
        return raw, tokens, finish, []
    spent = tokens + sum(r.tokens for r in result.rounds[1:])  # the batch's, then the repairs'
    if progress is not None:
        progress(spent, result.finish_reason)
    return "".join(kept), spent, result.finish_reason, result.guard


def _indexed(progress: Progress, index: int) -> Callable[[int, str | None], None]:
    return lambda tokens, finish: progress(index, tokens, finish)


class _Replay:
    """The engine a candidate's guard pass talks to: the first request replays the text the
    batch already produced (its tokens spread over the pieces); later ones, the repairs, go
    to the real engine."""

    def __init__(self, engine: Engine, raw: str, tokens: int, finish: str) -> None:
        self.engine = engine
        self.info: EngineInfo = engine.info
        self._first: tuple[str, int, str] | None = (raw, tokens, finish)
        self.repairing = False

    def stream(self, prompt: str, sampling: Sampling) -> Any:
        if self._first is None:
            self.repairing = True
            return self.engine.stream(prompt, sampling)
        first, self._first = self._first, None
        return _replayed(*first)

    def count_tokens(self, text: str) -> int | None:
        return self.engine.count_tokens(text)

    def close(self) -> None:  # the real engine belongs to the caller
        pass


def _replayed(raw: str, tokens: int, finish: str) -> Any:
    pieces = [raw[i : i + REPLAY_CHARS] for i in range(0, len(raw), REPLAY_CHARS)] or [""]
    given = 0
    for n, piece in enumerate(pieces, 1):
        share = tokens * n // len(pieces) - given
        given += share
        yield Chunk(piece, share, finish if n == len(pieces) else None)


class _Tally:
    """The sink of a guard pass: no display; a repair's tokens go to `progress`."""

    def __init__(
        self, replay: _Replay, tokens: int, progress: Callable[[int, str | None], None] | None
    ) -> None:
        self._replay = replay
        self._tokens = tokens  # what the batch spent on this candidate, then the repairs
        self._progress = progress

    def handle(self, event: Event) -> None:
        pass

    def add_tokens(self, n: int) -> None:
        if self._replay.repairing:
            self._tokens += n
            if self._progress is not None:
                self._progress(self._tokens, None)


def choose_best(candidates: list[Candidate]) -> Candidate:
    """The highest total score among the candidates that ended on their own (ties: the
    earliest). A candidate cut off by Ctrl-C never wins against one that ended; when all were
    cut off, the one with the most words is kept."""
    ended = [c for c in candidates if c.finish_reason != FINISH_CANCELLED]
    if ended:
        return max(ended, key=lambda c: (c.scores.get("total", 0.0), -c.index))
    return max(candidates, key=lambda c: (c.words, -c.index))
