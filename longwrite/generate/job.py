"""The main job without a display: options -> request -> budget -> rounds or best-of.

Shared by the write command, `batch`, and the Python API, so a batch line, a library call
and `longwrite PROMPT` resolve and generate the same way:
- `resolve_request`: every setting checked, then the target (`--words N`, else the length the
  prompt states, else with `--range-model` a range an LLM predicts) and the steering
  sentence; the `Request` is built once. No model is loaded. With `--source`, the sources
  are indexed on the fly and the request's passages put in (`generate.grounded`).
- `budget_request`: `max_tokens` from the target with the engine's tokenizer and context.
- `produce`: one document streamed into a sink (with continuation rounds when it ends
  short), or the best of K candidates, whose events the sink receives once it is chosen.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from longwrite.engines.base import ENV_API_KEY, Engine
from longwrite.errors import LongwriteError, say
from longwrite.generate.options import WriteOptions
from longwrite.prompt.request import Request, build_request, check_settings

if TYPE_CHECKING:
    from collections.abc import Callable

    from longwrite.generate.best_of import Candidate, Progress, Scorer
    from longwrite.generate.rounds import (
        Continuation,
        CutHook,
        EventSink,
        RawHook,
        Result,
        Resume,
    )
    from longwrite.length.budget import Budget
    from longwrite.length.targets import WordRange


def check_options(opts: WriteOptions, *, with_prompt: bool = True) -> None:
    """Every setting of `opts` checked, before anything is loaded or asked."""
    from longwrite.prompt.templates import clean_prompt

    check_settings(
        prompt=clean_prompt(opts.prompt) if with_prompt else None,
        words=opts.words,
        max_tokens=opts.max_tokens,
        temperature=opts.temperature,
        top_p=opts.top_p,
        best_of=opts.best_of,
        max_rounds=opts.max_rounds,
    )
    if opts.guard_retries < 0 or opts.think_budget < 0:
        raise LongwriteError("--guard-retries and --think-budget must be 0 or more")
    if opts.parallel < 1:
        raise LongwriteError("--parallel must be 1 or more")
    if opts.parallel > 1 and opts.best_of > 1:
        raise LongwriteError("--parallel and --best-of cannot be combined (yet): choose one")
    if opts.one_pass and (opts.sections or opts.plan_file or opts.plan_only):
        raise LongwriteError("--one-pass cannot be combined with --sections, --plan or --plan-only")


def resolve_request(opts: WriteOptions) -> Request:
    """The request with its target and steering, validated; loads no model."""
    from longwrite.generate.sectioned import check_sections
    from longwrite.length.steer import steer
    from longwrite.length.targets import extract_target, paper_range
    from longwrite.prompt.templates import clean_prompt, detect_language

    check_options(opts)
    prompt = clean_prompt(opts.prompt)
    language = detect_language(prompt)
    stated = extract_target(prompt)
    question: str | None = None
    words: int | None = None
    rng: WordRange | None = None
    if opts.words is not None:
        words, rng = opts.words, paper_range(opts.words, "about")
        question = None if stated else steer(prompt, opts.words, language)
    elif stated is not None:
        words, rng = stated.words, stated.range
    elif opts.range_model:
        rng = _predicted_range(prompt, opts.range_model)
        words = (rng.lo + rng.hi) // 2 if rng else None
    request = build_request(
        prompt,
        words=words,
        target_range=(rng.lo, rng.hi) if rng else None,
        question=question,
        language=language,
        max_tokens=opts.max_tokens,
        temperature=opts.temperature,
        top_p=opts.top_p,
        seed=opts.seed,
        think=opts.think,
    )
    check_sections(opts, request)  # before any model loads
    if opts.sources:  # indexed on the fly, passages chosen: before any model loads too
        from longwrite.generate.grounded import ground

        request = ground(opts, request)
    return request


def _predicted_range(prompt: str, server: str) -> WordRange | None:
    """The range model's [lo, hi], or None (said on stderr) when it gives no usable one."""
    from longwrite.engines.base import Sampling
    from longwrite.engines.openai import OpenAIEngine
    from longwrite.length.assess import predict_range

    engine = OpenAIEngine(server, api_key=os.environ.get(ENV_API_KEY))
    sampling = Sampling(max_tokens=400, temperature=0.2, top_p=1.0, stop=())

    def complete(text: str) -> str:
        return "".join(c.text for c in engine.stream(text, sampling))

    try:
        predicted = predict_range(prompt, complete)
    finally:
        engine.close()
    if predicted is None:
        say("longwrite: warning: the range model gave no usable word range: no length target")
        return None
    if predicted.hi == 0:  # the paper's rule for requests that need no long answer
        say(
            "longwrite: warning: the range model predicted [0, 0] words (a request it "
            "judges cannot or need not be answered at length): no length target"
        )
        return None
    return predicted


def budget_request(opts: WriteOptions, request: Request, engine: Engine) -> tuple[Request, Budget]:
    """`request` with `max_tokens` budgeted with the engine's tokenizer and context (and
    with --source, its passages chosen again for them)."""
    from longwrite.length.budget import with_budget

    if request.sources is not None:
        from longwrite.generate.grounded import refit

        request = refit(request, engine)

    hi = request.target_range[1] if request.target_range else None
    return with_budget(
        request,
        hi,
        context=engine.info.context,
        count_tokens=engine.count_tokens,
        keep_max_tokens=opts.max_tokens is not None,
        think_tokens=opts.think_budget,
    )


def continuation_for(
    opts: WriteOptions, request: Request, engine: Engine, *, resumed: bool = False
) -> Continuation | None:
    """The continuation rule for a request with a target range (None without one). A resumed
    run's first request is itself a continuation: it asks for the missing words even when
    no further rounds are allowed."""
    from longwrite.generate.rounds import Continuation
    from longwrite.length.budget import tokens_per_word

    if not request.target_range or (opts.max_rounds == 0 and not resumed):
        return None
    tpw, _ = tokens_per_word(request.language, engine.count_tokens)
    return Continuation(request.target_range[0], opts.max_rounds, tpw)


def scorer_for(request: Request) -> Scorer:
    """Best-of scoring: the RL rewards of a raw completion against the request's range."""
    from longwrite.length.targets import WordRange
    from longwrite.scoring.rewards import score_completion

    rng = WordRange(*request.target_range) if request.target_range else None

    def score(raw: str) -> dict[str, float]:
        scores = score_completion(raw, rng, think=request.think)
        return {k: v for k, v in vars(scores).items() if v is not None}

    return score


@dataclass(frozen=True)
class Produced:
    """What `produce` made: the document, and with best-of the candidates and the winner."""

    result: Result
    best: int | None = None
    candidates: list[Candidate] = field(default_factory=list)


def produce(
    opts: WriteOptions,
    request: Request,
    engine: Engine,
    sink: EventSink,
    *,
    progress: Progress | None = None,
    on_raw: RawHook | None = None,
    resume: Resume | None = None,
    on_candidate: Callable[[int, str, int], None] | None = None,
    on_cut: CutHook | None = None,
) -> Produced:
    """One document streamed into `sink`, or the best of `opts.best_of` candidates (their
    progress to `progress`; the chosen one's events to `sink` once it is chosen).

    `on_raw` receives the raw text for the run log (`on_candidate` best-of's candidates as
    they are sampled, `on_cut` the text a loop cut drops); `resume` carries a run on.
    A grounded request (`--source`) streams through `grounded.CitingSink`: citations of
    passages that do not exist removed, the References added."""
    if request.sources is None:
        return _produce(opts, request, engine, sink, progress=progress, on_raw=on_raw,
                        resume=resume, on_candidate=on_candidate, on_cut=on_cut)  # fmt: skip
    from longwrite.generate.grounded import CitingSink, finish

    citing = CitingSink(sink, request.sources, request.language)
    made = _produce(opts, request, engine, citing, progress=progress, on_raw=on_raw,
                    resume=resume, on_candidate=on_candidate, on_cut=on_cut)  # fmt: skip
    return replace(made, result=finish(made.result, citing))


def _produce(
    opts: WriteOptions,
    request: Request,
    engine: Engine,
    sink: EventSink,
    *,
    progress: Progress | None,
    on_raw: RawHook | None,
    resume: Resume | None,
    on_candidate: Callable[[int, str, int], None] | None,
    on_cut: CutHook | None,
) -> Produced:
    from longwrite.generate.best_of import best_of
    from longwrite.generate.parser import AnswerDelta, Done, ThinkDelta
    from longwrite.generate.rounds import write_document

    if opts.best_of == 1 or resume is not None:
        continuation = continuation_for(opts, request, engine, resumed=resume is not None)
        return Produced(
            write_document(
                engine,
                request,
                sink,
                continuation=continuation,
                on_raw=on_raw,
                resume=resume,
                guards=opts.guards,
                on_cut=on_cut,
            )
        )
    result, candidates, best = best_of(
        engine, request, opts.best_of, scorer_for(request), progress=progress, on_raw=on_raw,
        guards=opts.guards, on_candidate=on_candidate,
    )  # fmt: skip
    if result.thinking:
        sink.handle(ThinkDelta(result.thinking))
    sink.handle(AnswerDelta(result.answer))
    sink.handle(Done(result.finish_reason))
    return Produced(result, best, candidates)
