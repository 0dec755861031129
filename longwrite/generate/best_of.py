"""Best of K: sample K candidates in one batch, score them, keep the best.

The engine samples K candidates at once (`Sampling.n`); each is scored with the same rewards
the RL recipe trains with (length, format, repetition) and the best total wins, ties going to
the earliest candidate. A candidate cut off by Ctrl-C never wins against one that ended on
its own. Continuation rounds are for the single-stream path (`generate.rounds`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from longwrite.engines.base import FINISH_CANCELLED, Engine
from longwrite.generate.parser import split_think_answer
from longwrite.generate.rounds import Result
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
) -> tuple[Result, list[Candidate], int]:
    """Sample `k` candidates in one batch: (the best as a Result, all of them, its index).

    `on_raw` receives the chosen candidate's raw text once it is chosen (the run log)."""
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
    )
    return result, candidates, best.index


def choose_best(candidates: list[Candidate]) -> Candidate:
    """The highest total score among the candidates that ended on their own (ties: the
    earliest). A candidate cut off by Ctrl-C never wins against one that ended; when all were
    cut off, the one with the most words is kept."""
    ended = [c for c in candidates if c.finish_reason != FINISH_CANCELLED]
    if ended:
        return max(ended, key=lambda c: (c.scores.get("total", 0.0), -c.index))
    return max(candidates, key=lambda c: (c.words, -c.index))
