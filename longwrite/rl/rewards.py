"""The paper's three rewards as TRL reward functions: `(prompts, completions, **kwargs) -> list`.

The scoring itself lives in `longwrite.scoring.rewards` (length, format, repetition), shared with
best-of-N at inference; this module only adapts it to TRL's calling convention and adds the
writing reward, which needs a model. Each function is a small callable object whose
`__name__` ("length", "format", "writing") names TRL's metrics (`rewards/length/mean`, ...),
and each reports its parts through TRL's `log_metric` hook: `answer_words` (all three),
`length/in_range`, `format/structure`, `format/repetition`, `writing/unscored`,
`writing/truncated`, `completions/past_stop`.

* Completion boundaries: inference stops at the model card's stop strings (`<|user|>`,
  `<|endoftext|>`, `</answer>`: `engines.base.DEFAULT_STOP`), and `train` passes the same list
  to vLLM rollouts. TRL's transformers rollouts cannot stop at a string (`generate` would need
  the tokenizer, which TRL does not pass), so every reward here first cuts a completion at its
  first stop string (`cut_at_stop`): each reward scores exactly what inference would have
  produced, whichever engine sampled it. The share of completions that ran past a stop string
  is logged as `completions/past_stop` (0 with vLLM); with transformers those extra tokens
  still take part in the loss, with the advantage of the cut completion.

* Length: the answer's LongBench-Write word count against the prompt's own [lo, hi] (the `lo`
  and `hi` dataset columns reach the function as keyword arguments).
* Format: structure times (1 - repeated share), `longwrite.scoring.rewards.format_with_repetition`.
* Writing, from either
  - a sequence-classification reward model (`AutoModelForSequenceClassification`, one logit)
    that scores the answer alone (not the prompt, not the thinking), in batches, on a device
    of its own choosing; or
  - an LLM judge behind an OpenAI-compatible server, asked with `prompts/writing_judge_en.txt`
    through `longwrite.scoring.judge.JudgeClient` (shared with `eval quality`: several
    requests in flight, each retried with backoff, an answer longer than the judge's context
    cut to fit with a note saying the rest is not shown); the context is the server's
    `/v1/models` max_model_len, else `rewards.writing.judge_context`. The reply's last
    "Score: N" (1-10) maps to (N - 1) / 9. The share of answers cut is logged as
    `writing/truncated`.

An unscorable completion (the judge failed or never gave a readable score) gets None, not 0:
TRL turns None into NaN, and with `normalize_then_sum` the group mean and spread are taken
over the scored completions only (nanmean, nanstd) and the NaN term drops out of the sum
(nansum), so the completion is judged by its other rewards instead of being punished for the
judge's failure. A completion with no reward at all gets advantage 0.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from longwrite.engines.base import DEFAULT_STOP
from longwrite.errors import LongwriteError
from longwrite.generate.parser import split_think_answer
from longwrite.io.counting import count_words
from longwrite.prompt.templates import PLACEHOLDER, load_template
from longwrite.scoring.judge import Ask, CompletionsEndpoint, JudgeClient, endpoint
from longwrite.scoring.rewards import format_reward, format_with_repetition, length_reward
from longwrite.scoring.rewards import repetition_penalty as repeated_share

if TYPE_CHECKING:
    from longwrite.rl.config import RewardsConfig, WritingRewardConfig

JUDGE_TEMPLATE = "writing_judge_en"
ANSWER_PLACEHOLDER = "{answer}"
SCORE_MIN, SCORE_MAX = 1.0, 10.0
_SCORE = re.compile(r"score\W{0,4}?\s*[:=]\s*\**\s*(\d+(?:\.\d+)?)\s*(?:/\s*10\b)?", re.IGNORECASE)
_JSON_SCORE = re.compile(r"\"score\"\s*:\s*\"?(\d+(?:\.\d+)?)")
ROLLOUT_STOP: tuple[str, ...] = DEFAULT_STOP  # where inference stops: rollouts stop there too


def cut_at_stop(completion: str, stops: Sequence[str] = ROLLOUT_STOP) -> str:
    """The completion up to its first stop string, where inference would have stopped.

    >>> cut_at_stop("<think>p</think><answer>Done.</answer> <|user|>: more")
    '<think>p</think><answer>Done.'
    """
    ends = [i for i in (completion.find(s) for s in stops if s) if i >= 0]
    return completion[: min(ends)] if ends else completion


def answer_of(completion: str) -> str:
    """The answer part of a raw completion (`<think>...</think><answer>...`), up to the first
    stop string."""
    return split_think_answer(cut_at_stop(completion))[1]


def _log_past_stop(kwargs: dict[str, Any], completions: list[str]) -> None:
    _log(kwargs, "completions/past_stop", [float(cut_at_stop(c) != c) for c in completions])


def _log(kwargs: dict[str, Any], name: str, values: Sequence[float]) -> None:
    """Report the batch mean of `values` through TRL's `log_metric` hook, when there is one."""
    hook = kwargs.get("log_metric")
    if hook is not None and values:
        hook(name, sum(values) / len(values))


class LengthReward:
    """1 inside the prompt's [lo, hi], falling off outside it (`longwrite.scoring.rewards`).

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
        _log_past_stop(kwargs, completions)
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
        structure = [format_reward(cut_at_stop(c)) for c in completions]
        repeated = [repeated_share(a) for a in answers]
        _log_past_stop(kwargs, completions)
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


def _score(reply: str) -> float:
    """`parse_judge_score` for the judge client: an unreadable reply is a ValueError."""
    score = parse_judge_score(reply)
    if score is None:
        raise ValueError("no score from 1 to 10 in the reply")
    return score


class JudgeReward(JudgeClient):
    """Writing quality from an LLM judge; None where no score could be had.

    `JudgeReward(complete, concurrency=, attempts=, backoff=, context_tokens=, max_tokens=)`:
    `complete(prompt) -> reply` asks the judge (any callable: tests pass a scripted one), and
    `longwrite.scoring.judge.JudgeClient` does the asking: up to `concurrency` at once, the
    answer cut to what fits `context_tokens` less the judge's reply (`max_tokens`), any
    failure or unreadable reply retried up to `attempts` times with backoff, then None.
    """

    __name__ = "writing"

    def judge(self, question: str, answer: str) -> tuple[float | None, bool]:
        """(score or None, whether the answer had to be cut to fit)."""
        judged = self.ask(Ask(partial(judge_prompt, question), answer), _score)
        return judged.value, judged.cut

    def score(self, question: str, answer: str) -> float | None:
        return self.judge(question, answer)[0]

    def __call__(
        self,
        prompts: list[Any],
        completions: list[str],
        question: list[str] | None = None,
        **kwargs: Any,
    ) -> list[float | None]:
        questions = question if question is not None else [str(p) for p in prompts]
        answers = [answer_of(c) for c in completions]
        asks = [Ask(partial(judge_prompt, q), a) for q, a in zip(questions, answers, strict=True)]
        judged = self.ask_all(asks, _score)
        scores = [j.value for j in judged]
        _log(kwargs, "answer_words", [count_words(a) for a in answers])
        _log(kwargs, "writing/unscored", [float(s is None) for s in scores])
        _log(kwargs, "writing/truncated", [float(j.cut) for j in judged])
        return scores

    def close(self) -> None:
        """Close the judge's endpoint, when it has one (its threads end with each call)."""
        close = getattr(self.send, "close", None)
        if close is not None:
            close()


def openai_judge(w: WritingRewardConfig) -> CompletionsEndpoint:
    """The judge server of `rewards.writing.judge` (reached now: a wrong URL fails early);
    its context is the server's max_model_len, else `rewards.writing.judge_context`;
    `judge_chat` asks over the chat endpoint, so the server applies the judge's template."""
    assert w.judge is not None
    return endpoint(
        w.judge,
        w.judge_model,
        chat=w.judge_chat,
        timeout=w.timeout,
        max_tokens=w.judge_max_tokens,
        temperature=w.judge_temperature,
        default_context=w.judge_context,
    )


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
            judge = openai_judge(w)
            funcs.append(
                JudgeReward(
                    judge,
                    concurrency=w.concurrency,
                    attempts=w.attempts,
                    context_tokens=judge.context,
                    max_tokens=w.judge_max_tokens,
                )
            )
        weights.append(w.weight)
    return funcs, weights
