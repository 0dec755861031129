"""The paper's three rewards as TRL reward functions: `(prompts, completions, **kwargs) -> list`.

The scoring itself lives in `longwrite.rewards` (length, format, repetition), shared with
best-of-N at inference; this module only adapts it to TRL's calling convention and adds the
writing reward, which needs a model. Each function is a small callable object whose
`__name__` ("length", "format", "writing") names TRL's metrics (`rewards/length/mean`, ...),
and each reports its parts through TRL's `log_metric` hook: `answer_words` (all three),
`length/in_range`, `format/structure`, `format/repetition`, `writing/unscored`.

* Length: the answer's LongBench-Write word count against the prompt's own [lo, hi] (the `lo`
  and `hi` dataset columns reach the function as keyword arguments).
* Format: structure times (1 - repeated share), `longwrite.rewards.format_with_repetition`.
* Writing, from either
  - a sequence-classification reward model (`AutoModelForSequenceClassification`, one logit)
    that scores the answer alone (not the prompt, not the thinking), in batches, on a device
    of its own choosing; or
  - an LLM judge behind an OpenAI-compatible server, asked with `prompts/writing_judge_en.txt`
    (the raw completions endpoint, as for the range model), several requests in flight, each
    retried; the reply's last "Score: N" (1-10) maps to (N - 1) / 9.

An unscorable completion (the judge failed or never gave a readable score) gets None, not 0:
TRL turns None into NaN, and with `normalize_then_sum` the group mean and spread are taken
over the scored completions only (nanmean, nanstd) and the NaN term drops out of the sum
(nansum), so the completion is judged by its other rewards instead of being punished for the
judge's failure. A completion with no reward at all gets advantage 0.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from longwrite.counting import count_words
from longwrite.errors import LongwriteError
from longwrite.prompting import PLACEHOLDER, load_template
from longwrite.rewards import format_reward, format_with_repetition, length_reward
from longwrite.rewards import repetition_penalty as repeated_share
from longwrite.stream import split_think_answer

if TYPE_CHECKING:
    from longwrite.rl.config import RewardsConfig, WritingRewardConfig

JUDGE_TEMPLATE = "writing_judge_en"
ANSWER_PLACEHOLDER = "{answer}"
SCORE_MIN, SCORE_MAX = 1.0, 10.0
_SCORE = re.compile(r"score\W{0,4}?\s*[:=]\s*\**\s*(\d+(?:\.\d+)?)\s*(?:/\s*10\b)?", re.IGNORECASE)
_JSON_SCORE = re.compile(r"\"score\"\s*:\s*\"?(\d+(?:\.\d+)?)")


def answer_of(completion: str) -> str:
    """The answer part of a raw completion (`<think>...</think><answer>...`)."""
    return split_think_answer(completion)[1]


def _log(kwargs: dict[str, Any], name: str, values: Sequence[float]) -> None:
    """Report the batch mean of `values` through TRL's `log_metric` hook, when there is one."""
    hook = kwargs.get("log_metric")
    if hook is not None and values:
        hook(name, sum(values) / len(values))


class LengthReward:
    """1 inside the prompt's [lo, hi], falling off outside it (`longwrite.rewards`).

    >>> LengthReward()(["p"], ["<think>plan</think><answer>one two three"], lo=[6], hi=[8])
    [0.5]
    """

    __name__ = "length"

    def __init__(self, max_words: int | None = None) -> None:
        self.max_words = max_words

    def __call__(
        self,
        prompts: list[Any],
        completions: list[str],
        lo: list[int],
        hi: list[int],
        **kwargs: Any,
    ) -> list[float]:
        words = [count_words(answer_of(c)) for c in completions]
        scores = [
            length_reward(n, low, high, max_words=self.max_words)
            for n, low, high in zip(words, lo, hi, strict=True)
        ]
        _log(kwargs, "answer_words", words)
        _log(kwargs, "length/in_range", [float(s == 1.0) for s in scores])
        return scores


class FormatReward:
    """One `<think>` then one `<answer>`, less the share of the answer that repeats itself.

    >>> FormatReward()(["p"], ["<think>plan</think><answer>a b c d e\\n\\na b c d e"])
    [0.5]
    """

    __name__ = "format"

    def __call__(self, prompts: list[Any], completions: list[str], **kwargs: Any) -> list[float]:
        answers = [answer_of(c) for c in completions]
        structure = [format_reward(c) for c in completions]
        repeated = [repeated_share(a) for a in answers]
        _log(kwargs, "answer_words", [count_words(a) for a in answers])
        _log(kwargs, "format/structure", structure)
        _log(kwargs, "format/repetition", repeated)
        return [format_with_repetition(s, r) for s, r in zip(structure, repeated, strict=True)]


# ---- the writing reward: an LLM judge -----------------------------------------------------


def judge_prompt(question: str, answer: str) -> str:
    """The judge's prompt (plain substitution: braces in either text are safe)."""
    template = load_template(JUDGE_TEMPLATE)
    before, rest = template.split(PLACEHOLDER)
    middle, sep, after = rest.partition(ANSWER_PLACEHOLDER)
    if not sep or ANSWER_PLACEHOLDER in after:
        raise LongwriteError(f"template {JUDGE_TEMPLATE} must hold {ANSWER_PLACEHOLDER} once")
    return before + question + middle + answer + after


def parse_judge_score(reply: str) -> float | None:
    """The judge's last score in [1, 10] mapped to [0, 1]; None when there is none.

    >>> parse_judge_score("Clear and well built.\\nScore: 8")
    0.7777777777777778
    >>> parse_judge_score("**Score:** 10/10"), parse_judge_score('{"score": 1}')
    (1.0, 0.0)
    >>> parse_judge_score("Score: 11") is None, parse_judge_score("no idea") is None
    (True, True)
    """
    found = _SCORE.findall(reply) or _JSON_SCORE.findall(reply)
    if not found:
        return None
    value = float(found[-1])
    if not SCORE_MIN <= value <= SCORE_MAX or math.isnan(value):
        return None
    return (value - SCORE_MIN) / (SCORE_MAX - SCORE_MIN)


class JudgeReward:
    """Writing quality from an LLM judge; None where no score could be had.

    `complete(prompt) -> reply` asks the judge (any callable: tests pass a scripted one).
    Failures (a `LongwriteError` from the engine) and unreadable replies are retried up to
    `attempts` times per completion, waiting `backoff * 2**k` seconds between tries.
    """

    __name__ = "writing"

    def __init__(
        self,
        complete: Callable[[str], str],
        *,
        concurrency: int = 8,
        attempts: int = 3,
        backoff: float = 1.0,
    ) -> None:
        self.complete = complete
        self.attempts = attempts
        self.backoff = backoff
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="judge")

    def score(self, question: str, answer: str) -> float | None:
        text = judge_prompt(question, answer)
        for attempt in range(self.attempts):
            if attempt and self.backoff > 0:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                reply = self.complete(text)
            except LongwriteError:
                continue
            if (score := parse_judge_score(reply)) is not None:
                return score
        return None

    def __call__(
        self,
        prompts: list[Any],
        completions: list[str],
        question: list[str] | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        questions = question if question is not None else [str(p) for p in prompts]
        answers = [answer_of(c) for c in completions]
        scores = list(self._pool.map(self.score, questions, answers))
        _log(kwargs, "answer_words", [count_words(a) for a in answers])
        _log(kwargs, "writing/unscored", [float(s is None) for s in scores])
        return scores

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def openai_judge(w: WritingRewardConfig) -> Callable[[str], str]:
    """`complete(prompt) -> reply` over the judge's OpenAI-compatible completions endpoint."""
    import os

    from longwrite.engines.base import Sampling
    from longwrite.engines.openai import ENV_API_KEY, OpenAIEngine

    assert w.judge is not None
    engine = OpenAIEngine(
        w.judge, w.judge_model, api_key=os.environ.get(ENV_API_KEY), timeout=w.timeout
    )
    sampling = Sampling(
        max_tokens=w.judge_max_tokens, temperature=w.judge_temperature, top_p=1.0, stop=()
    )

    def complete(text: str) -> str:
        return "".join(chunk.text for chunk in engine.stream(text, sampling))

    return complete


# ---- the writing reward: a sequence-classification reward model ---------------------------


def resolve_device(name: str) -> str:
    """`auto`: this process's GPU (LOCAL_RANK) when there is one, else the CPU."""
    import os

    import torch

    if name != "auto":
        return name
    if torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return "cpu"


class ClassifierReward:
    """Writing quality as the first logit of a sequence-classification model, answer only."""

    __name__ = "writing"

    def __init__(
        self, path: str, *, device: str = "auto", batch_size: int = 8, max_length: int = 16_384
    ) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.max_length = max_length
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "right"
        self.model = AutoModelForSequenceClassification.from_pretrained(path, dtype=dtype)
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model.to(self.device).eval()

    def score_texts(self, texts: list[str]) -> list[float]:
        import torch

        # An empty answer is scored as the end-of-text token alone (a model needs one token).
        texts = [t if t.strip() else (self.tokenizer.eos_token or " ") for t in texts]
        # Batches of similar lengths waste the least padding; results go back in input order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        scores = [0.0] * len(texts)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            batch = self.tokenizer(
                [texts[i] for i in chunk],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=self.max_length,
                add_special_tokens=False,
            ).to(self.device)
            with torch.inference_mode():
                logits = self.model(**batch).logits[:, 0].float().tolist()
            for i, value in zip(chunk, logits, strict=True):
                scores[i] = value
        return scores

    def __call__(self, prompts: list[Any], completions: list[str], **kwargs: Any) -> list[float]:
        answers = [answer_of(c) for c in completions]
        _log(kwargs, "answer_words", [count_words(a) for a in answers])
        return self.score_texts(answers)


def build_rewards(cfg: RewardsConfig) -> tuple[list[Callable[..., list]], list[float]]:
    """The reward functions that are on, in a fixed order, and their weights."""
    funcs: list[Callable[..., list]] = []
    weights: list[float] = []
    if cfg.length is not None:
        funcs.append(LengthReward(cfg.length.max_words))
        weights.append(cfg.length.weight)
    if cfg.format is not None:
        funcs.append(FormatReward())
        weights.append(cfg.format.weight)
    w = cfg.writing
    if w is not None:
        if w.model is not None:
            funcs.append(
                ClassifierReward(
                    w.model, device=w.device, batch_size=w.batch_size, max_length=w.max_length
                )
            )
        else:
            funcs.append(
                JudgeReward(openai_judge(w), concurrency=w.concurrency, attempts=w.attempts)
            )
        weights.append(w.weight)
    return funcs, weights
