"""The main job without a display: options -> request -> budget -> rounds or best-of.

Shared by the write command, `batch`, and the Python API, so a batch line, a library call
and `longwrite PROMPT` resolve and generate the same way:
- `resolve_request`: the target (`--words N`, else the length the prompt states, else with
  `--range-model` a range an LLM predicts), the steering sentence, validation; no model.
- `budget_request`: `max_tokens` from the target with the engine's tokenizer and context.
- `continuation_for` / `scorer_for`: the continuation rule and the best-of scorer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from longwrite.engines import EngineOptions
from longwrite.engines.base import Engine
from longwrite.errors import say
from longwrite.prompt.request import Request, build_request


@dataclass(frozen=True)
class WriteOptions:
    """The main command's options, as the user gave them."""

    prompt: str
    words: int | None = None
    max_tokens: int | None = None
    temperature: float = 0.6
    top_p: float = 0.95
    seed: int | None = None
    think: bool = True
    output: Path | None = None
    thinking: str = "hide"
    as_json: bool = False
    dry_run: bool = False
    best_of: int = 1
    max_rounds: int = 2
    range_model: str | None = None
    engine: EngineOptions = EngineOptions()


def resolve_request(opts: WriteOptions) -> Request:
    """The request with its target and steering, validated; loads no model."""
    from longwrite.length.steer import steer
    from longwrite.length.targets import extract_target, paper_range
    from longwrite.prompt.templates import clean_prompt

    opts = replace(opts, prompt=clean_prompt(opts.prompt))
    kwargs: dict[str, Any] = dict(
        max_tokens=opts.max_tokens,
        temperature=opts.temperature,
        top_p=opts.top_p,
        seed=opts.seed,
        think=opts.think,
    )
    request = build_request(opts.prompt, words=opts.words, **kwargs)  # validates everything
    stated = extract_target(opts.prompt)
    if opts.words is not None:
        rng = paper_range(opts.words, "about")
        question = None if stated else steer(opts.prompt, opts.words, request.language)
        words = opts.words
    elif stated is not None:
        rng, question, words = stated.range, None, stated.words
    elif opts.range_model:
        predicted = _predict_range(opts.prompt, opts.range_model)
        if predicted is None:
            say("longwrite: warning: the range model gave no usable word range: no length target")
            return request
        if predicted.hi == 0:  # the paper's rule for requests that need no long answer
            say(
                "longwrite: warning: the range model predicted [0, 0] words (a request it "
                "judges cannot or need not be answered at length): no length target"
            )
            return request
        rng, question, words = predicted, None, (predicted.lo + predicted.hi) // 2
    else:
        return request
    return build_request(
        opts.prompt,
        words=words,
        target_range=(rng.lo, rng.hi),
        question=question,
        **kwargs,
    )


def _predict_range(prompt: str, server: str) -> Any:
    from longwrite.engines.base import Sampling
    from longwrite.engines.openai import OpenAIEngine
    from longwrite.length.assess import predict_range

    engine = OpenAIEngine(server, api_key=os.environ.get("LONGWRITE_API_KEY"))
    sampling = Sampling(max_tokens=400, temperature=0.2, top_p=1.0, stop=())

    def complete(text: str) -> str:
        return "".join(c.text for c in engine.stream(text, sampling))

    try:
        return predict_range(prompt, complete)
    finally:
        engine.close()


def budget_request(opts: WriteOptions, request: Request, engine: Engine) -> tuple[Request, Any]:
    """`request` with `max_tokens` budgeted with the engine's tokenizer and context."""
    from longwrite.length.budget import with_budget

    hi = request.target_range[1] if request.target_range else None
    return with_budget(
        request,
        hi,
        context=engine.info.context,
        count_tokens=engine.count_tokens,
        keep_max_tokens=opts.max_tokens is not None,
    )


def continuation_for(opts: WriteOptions, request: Request, engine: Engine) -> Any:
    """The continuation rule for a request with a target range (None without one)."""
    from longwrite.generate.rounds import Continuation
    from longwrite.length.budget import tokens_per_word

    if not request.target_range or opts.max_rounds == 0:
        return None
    tpw, _ = tokens_per_word(request.language, engine.count_tokens)
    return Continuation(request.target_range[0], opts.max_rounds, tpw)


def scorer_for(request: Request) -> Any:
    """Best-of scoring: the RL rewards of a raw completion against the request's range."""
    from longwrite.length.targets import WordRange
    from longwrite.scoring.rewards import score_completion

    rng = WordRange(*request.target_range) if request.target_range else None

    def score(raw: str) -> dict[str, float]:
        scores = score_completion(raw, rng, think=request.think)
        return {k: v for k, v in vars(scores).items() if v is not None}

    return score
