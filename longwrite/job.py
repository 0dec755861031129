"""The main job, from the user's options to a document: target, engine, budget, display, file.

`cli.py` only parses options; this module decides what happens, in this order, so that every
mistake is reported before a model loads:
1. the target: `--words N`, else the length the prompt states, else (with `--range-model`)
   a range predicted by an LLM; a prompt with no length of its own gets our steering
   sentence when `--words` is given;
2. `--dry-run`: print the resolved request (budget estimated without a tokenizer) and stop;
3. check the output path, load the engine, budget `max_tokens` with its tokenizer and
   context, and warn when the target cannot fit in one pass;
4. stream one document (with continuation rounds when it ends short), or sample `--best-of`
   candidates and print the best; write `-o FILE` atomically; `--json` at the end.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from longwrite.engines import EngineOptions
from longwrite.engines.base import FINISH_CANCELLED, Engine
from longwrite.errors import LongwriteError
from longwrite.prompting import Request, build_request

EXIT_INTERRUPTED = 130


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
    from longwrite.control import steer
    from longwrite.prompting import clean_prompt
    from longwrite.targets import extract_target, paper_range

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
            _err("longwrite: warning: the range model gave no usable word range: no length target")
            return request
        if predicted.hi == 0:  # the paper's rule for requests that need no long answer
            _err(
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
    from longwrite.targets import predict_range

    engine = OpenAIEngine(server, api_key=os.environ.get("LONGWRITE_API_KEY"))
    sampling = Sampling(max_tokens=400, temperature=0.2, top_p=1.0, stop=())

    def complete(text: str) -> str:
        return "".join(c.text for c in engine.stream(text, sampling))

    try:
        return predict_range(prompt, complete)
    finally:
        engine.close()


def dry_run(opts: WriteOptions, request: Request) -> None:
    from longwrite.control import with_budget

    hi = request.target_range[1] if request.target_range else None
    request, budget = with_budget(request, hi, keep_max_tokens=opts.max_tokens is not None)
    info = {
        **request.to_json(),
        "engine": opts.engine.engine,
        "model": opts.engine.model,
        "budget": budget.to_json(),
    }
    if opts.as_json:
        print(json.dumps(info, ensure_ascii=False, indent=2))
        return
    print(request.prompt)
    shown = ("language", "target_words", "target_range", "max_tokens", "temperature", "top_p")
    _err("dry run, nothing generated: " + ", ".join(f"{k}={info[k]}" for k in shown))


def run_write(opts: WriteOptions) -> int:
    """Run the main job; returns the exit code (0, or 130 after Ctrl-C)."""
    from longwrite.engines import load_engine, resolve_engine_name
    from longwrite.files import check_writable

    if opts.best_of < 1:
        raise LongwriteError(f"--best-of must be at least 1, not {opts.best_of}")
    if opts.max_rounds < 0:
        raise LongwriteError(f"--max-rounds must be >= 0, not {opts.max_rounds}")
    request = resolve_request(opts)
    if opts.dry_run:
        dry_run(opts, request)
        return 0
    backend = resolve_engine_name(opts.engine.engine, server=opts.engine.server)
    if opts.output is not None:
        check_writable(opts.output)
    if backend == "transformers":
        _warn_if_too_large(opts.engine)
    # Our spinner says a model is loading; a library's progress bar on a piped stderr is noise.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    with _Loading(opts.engine.model or backend):
        engine = load_engine(opts.engine)
    try:
        request = _budgeted(opts, request, engine)
        return _generate(opts, request, engine)
    finally:
        engine.close()


def budget_request(opts: WriteOptions, request: Request, engine: Engine) -> tuple[Request, Any]:
    """`request` with `max_tokens` budgeted with the engine's tokenizer and context."""
    from longwrite.control import with_budget

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
    from longwrite.budget import tokens_per_word
    from longwrite.write import Continuation

    if not request.target_range or opts.max_rounds == 0:
        return None
    tpw, _ = tokens_per_word(request.language, engine.count_tokens)
    return Continuation(request.target_range[0], opts.max_rounds, tpw)


def scorer_for(request: Request) -> Any:
    """Best-of scoring: the RL rewards of a raw completion against the request's range."""
    from longwrite.rewards import score_completion
    from longwrite.targets import WordRange

    rng = WordRange(*request.target_range) if request.target_range else None

    def score(raw: str) -> dict[str, float]:
        scores = score_completion(raw, rng, think=request.think)
        return {k: v for k, v in vars(scores).items() if v is not None}

    return score


def _budgeted(opts: WriteOptions, request: Request, engine: Engine) -> Request:
    request, budget = budget_request(opts, request, engine)
    hi = request.target_range[1] if request.target_range else None
    if not budget.fits and hi is not None:
        _err(
            f"longwrite: warning: a {hi:,}-word answer does not fit in one pass: the context "
            f"({budget.context:,} tokens) leaves room for about {budget.max_words:,} words"
        )
    return request


def _generate(opts: WriteOptions, request: Request, engine: Engine) -> int:
    from longwrite.files import PartialFile
    from longwrite.render import Renderer, RenderOptions

    options = RenderOptions(
        thinking=opts.thinking,
        target_words=request.target_words,
        answer="none" if (opts.output is not None or opts.as_json) else "auto",
    )
    target = PartialFile(opts.output) if opts.output is not None else None
    with target if target is not None else _nothing() as sink:
        with Renderer(options, sink=sink) as renderer:
            result, extra = _produce(opts, request, engine, renderer)
        if target is not None and result.finish_reason != FINISH_CANCELLED:
            target.commit()
    if opts.as_json:
        print(json.dumps({**result.to_json(), **extra}, ensure_ascii=False))
    if result.finish_reason == FINISH_CANCELLED:
        kept = f" in {target.partial}" if target is not None else ""
        _err(f"interrupted: kept {result.words} words{kept}")
        return EXIT_INTERRUPTED
    return 0


def _produce(opts: WriteOptions, request: Request, engine: Engine, renderer: Any) -> tuple:
    """One document (streamed, with continuation) or the best of K (shown when chosen)."""
    from longwrite.write import write_document

    if opts.best_of == 1:
        continuation = continuation_for(opts, request, engine)
        return write_document(engine, request, renderer, continuation=continuation), {}
    return _best_of(opts, request, engine, renderer)


def _best_of(opts: WriteOptions, request: Request, engine: Engine, renderer: Any) -> tuple:
    from longwrite.control import best_of
    from longwrite.progress import CandidateProgress
    from longwrite.stream import AnswerDelta, Done, ThinkDelta

    score = scorer_for(request)
    with CandidateProgress(opts.best_of, request.sampling.max_tokens) as progress:
        result, candidates, best = best_of(engine, request, opts.best_of, score, progress=progress)
        progress.summary(candidates, best)
    if result.thinking:
        renderer.handle(ThinkDelta(result.thinking))
    renderer.handle(AnswerDelta(result.answer))
    renderer.handle(Done(result.finish_reason))
    summaries = [c.summary() for c in candidates]
    if result.finish_reason == FINISH_CANCELLED:
        # Interrupted: every candidate's text so far is kept, not only the one shown.
        summaries = [{**s, "thinking": c.thinking, "answer": c.answer}
                     for s, c in zip(summaries, candidates, strict=True)]  # fmt: skip
        _keep_candidates(opts, summaries)
    return result, {"best": best, "candidates": summaries}


def _keep_candidates(opts: WriteOptions, records: list[dict[str, Any]]) -> None:
    """After Ctrl-C in best-of: all candidates beside `-o FILE`, or a note where they are."""
    if opts.output is None:
        if not opts.as_json:
            _err(
                f"longwrite: note: {len(records)} candidates were cut off; only the one shown "
                "is kept (use -o FILE or --json to keep every candidate)"
            )
        return
    from longwrite.files import atomic_write_text

    path = opts.output.with_name(opts.output.name + ".candidates.jsonl")
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    atomic_write_text(path, lines)
    _err(f"longwrite: kept all {len(records)} candidates in {path}")


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _warn_if_too_large(engine: EngineOptions) -> None:
    """Warn before loading when the model cannot fit this machine's memory."""
    from longwrite.engines import size_warning
    from longwrite.engines.base import DEFAULT_MODEL

    model = engine.model or DEFAULT_MODEL
    try:
        import torch

        if torch.cuda.is_available():
            memory = sum(
                torch.cuda.get_device_properties(i).total_memory
                for i in range(torch.cuda.device_count())
            )
            bytes_per_param = 2
        else:
            memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
            bytes_per_param = 2 if engine.dtype in ("bfloat16", "float16") else 4
    except (ImportError, ValueError, OSError):
        return
    warning = size_warning(model, memory, bytes_per_param)
    if warning:
        _err(f"longwrite: warning: {warning}")


class _Loading:
    """A spinner on stderr while a model loads (loading 32B weights takes minutes)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._status: Any = None

    def __enter__(self) -> None:
        if sys.stderr.isatty():
            from rich.console import Console

            self._status = Console(stderr=True).status(f"loading {self.what}…")
            self._status.__enter__()

    def __exit__(self, *exc: object) -> None:
        if self._status is not None:
            self._status.__exit__(None, None, None)


def _err(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
