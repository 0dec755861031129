"""One LLM judge client, shared by `eval quality` and the RL writing reward.

Both ask an LLM behind an OpenAI-compatible server to grade answers, and both need the same
care, so it lives here once. What is asked and how a reply is read stay with the caller: an
`Ask` renders the judge's prompt around an answer, and `parse(reply)` returns the verdict or
raises ValueError. This module owns how it is asked:

- Bounded concurrency: at most `concurrency` requests in flight, on daemon threads that the
  caller joins in short waits, so Ctrl-C reaches it at once even while a request hangs. A
  failure that is not the judge's (a callback that cannot write, a bug) stops the others and
  is raised in the caller: no verdict is dropped unseen.
- Retries with backoff: any exception from a request (ours, or the client's: a reply that is
  not JSON, a protocol error) and any reply `parse` rejects is a failed attempt (why it
  failed is kept on one short line: a reply of 3 MB is never copied into a verdict); attempt k+1
  waits `backoff * 2**(k-1)` seconds. After the last one the answer is unscored
  (`Judged.value is None`, with the last error), never 0: the judge's failure must not read
  as a bad answer.
- The judge's context: a 14,000-token answer can exceed it (`context_tokens`: the server's
  max_model_len from /v1/models, else a configured default). The answer is cut to what fits
  beside the judge's prompt and reply, by a deliberately high estimate of its tokens (one per
  `BYTES_PER_TOKEN` bytes of UTF-8, no tokenizer needed), at a line or word break, with a note
  telling the judge the rest is not shown (so it does not score the cut as unfinished text);
  a refusal that still says the context is exceeded halves the part shown. `Judged.cut`
  records that the judge saw a cut answer.
- The endpoint: `CompletionsEndpoint` sends the prompt as raw text to `/v1/completions`
  through `OpenAIEngine`, as everything else here. `ChatEndpoint` (the WritingBench critic,
  the Arena-Write judge, any instruction model) sends it as the user's message to
  `/v1/chat/completions`, so the server applies the model's own chat template. Both have the
  same members (`__call__(text)`, `model`, `context`, `max_tokens`, `close()`); `endpoint()`
  picks one, and the client does not change.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from longwrite.defaults import JUDGE_CONTEXT
from longwrite.errors import LINE_CHARS, LongwriteError, one_line
from longwrite.io.counting import count_words

T = TypeVar("T")

DEFAULT_CONTEXT = JUDGE_CONTEXT  # the judge's context in tokens when its server does not say
BYTES_PER_TOKEN = 3  # a high estimate of tokens: real BPE text runs about 4 bytes a token
CONTEXT_MARGIN = 64  # tokens kept free in the judge's context beyond its reply
JOIN_WAIT_S = 0.2  # how often the caller wakes while judges work (Ctrl-C is seen then)
_CONTEXT_ERROR = re.compile(r"context length|context window|maximum context|too long", re.I)
CUT_NOTE = (
    "\n\n[The response continues: {words:,} more words are not shown here because of the "
    "judge's context size. Judge the part shown; do not treat the cut as an unfinished text.]"
)


def estimate_tokens(text: str) -> int:
    """A high estimate of the tokens of `text`, for any tokenizer of real prose.

    >>> estimate_tokens("abcdef"), estimate_tokens("中文")
    (2, 2)
    """
    return math.ceil(len(text.encode("utf-8")) / BYTES_PER_TOKEN)


def fit_answer(answer: str, budget: int) -> tuple[str, bool]:
    """`answer` cut to about `budget` estimated tokens (note included), and whether it was cut.

    The cut falls at the last line break, else space, in the part that fits, and the note says
    how many words are not shown.

    >>> fit_answer("short", 100)
    ('short', False)
    >>> text, cut = fit_answer("one two three four five six seven eight nine ten " * 20, 80)
    >>> cut, text.startswith("one two"), "more words are not shown" in text
    (True, True, True)
    """
    if estimate_tokens(answer) <= budget:
        return answer, False
    room = (budget - estimate_tokens(CUT_NOTE.format(words=count_words(answer)))) * BYTES_PER_TOKEN
    head = answer.encode("utf-8")[: max(room, 0)].decode("utf-8", errors="ignore")
    for sep in ("\n", " "):
        at = head.rfind(sep)
        if at > len(head) // 2:
            head = head[:at]
            break
    head = head.rstrip()
    return head + CUT_NOTE.format(words=count_words(answer) - count_words(head)), True


def failure(exc: Exception) -> str:
    """Why a judge request failed, on one line: our own errors say it already."""
    if isinstance(exc, LongwriteError):
        return one_line(exc, LINE_CHARS)
    return f"the judge request failed: {type(exc).__name__}: {one_line(str(exc))}"


@dataclass(frozen=True)
class Ask:
    """One answer to judge, and how to put it in the judge's prompt."""

    render: Callable[[str], str]  # the (possibly cut) answer -> the judge's prompt
    answer: str


@dataclass(frozen=True)
class Judged(Generic[T]):
    """What `parse` made of the judge's reply, or why there is nothing (`value is None`)."""

    value: T | None
    attempts: int
    error: str | None = None
    cut: bool = False  # the judge saw the answer cut to its context, with the note


class JudgeClient:
    """Asks `send(prompt) -> reply` about answers: concurrently, retried, cut to the context.

    `send` is any callable (`CompletionsEndpoint`, or a scripted one in tests); the settings
    are plain attributes, read at each request.
    """

    def __init__(
        self,
        send: Callable[[str], str],
        *,
        attempts: int = 3,
        backoff: float = 1.0,
        concurrency: int = 8,
        context_tokens: int | None = None,
        max_tokens: int = 1024,
    ) -> None:
        self.send = send
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.concurrency = max(1, concurrency)
        self.context_tokens = context_tokens  # None: unknown, nothing is cut beforehand
        self.max_tokens = max_tokens  # the judge's reply, which shares the context

    def budget(self, render: Callable[[str], str]) -> int | None:
        """Estimated tokens left for the answer in the judge's context (None: unknown)."""
        if self.context_tokens is None:
            return None
        fixed = estimate_tokens(render("")) + self.max_tokens + CONTEXT_MARGIN
        return max(self.context_tokens - fixed, 0)

    def ask(self, ask: Ask, parse: Callable[[str], T]) -> Judged[T]:
        """Up to `attempts` requests about one answer, until `parse` accepts a reply."""
        budget = self.budget(ask.render)
        shown, cut = (ask.answer, False) if budget is None else fit_answer(ask.answer, budget)
        error = "not asked"
        for attempt in range(1, self.attempts + 1):
            if attempt > 1 and self.backoff > 0:
                time.sleep(self.backoff * 2 ** (attempt - 2))
            prompt = ask.render(shown)
            try:
                reply = self.send(prompt)
            except Exception as e:  # noqa: BLE001 - any failure of the request: retried, then unscored
                error = failure(e)
                if _CONTEXT_ERROR.search(str(e)):
                    shown, cut = fit_answer(ask.answer, estimate_tokens(shown) // 2)[0], True
                continue
            try:
                return Judged(parse(reply if isinstance(reply, str) else ""), attempt, None, cut)
            except ValueError as e:  # its message may quote the reply: kept short
                error = f"malformed reply: {one_line(e)}"
        return Judged(None, self.attempts, error, cut)

    def ask_all(
        self,
        asks: Sequence[Ask],
        parse: Callable[[str], T],
        on_done: Callable[[int, Judged[T]], None] | None = None,
    ) -> list[Judged[T]]:
        """Every ask judged, in order; `on_done(index, judged)` runs in a worker as each ends
        (it must be thread-safe). The first exception a worker meets is raised here."""
        results: list[Judged[T] | None] = [None] * len(asks)
        todo = deque(range(len(asks)))
        lock = threading.Lock()
        failed: list[BaseException] = []

        def work() -> None:
            while True:
                with lock:
                    if failed or not todo:
                        return
                    index = todo.popleft()
                try:
                    results[index] = judged = self.ask(asks[index], parse)
                    if on_done is not None:
                        on_done(index, judged)
                except BaseException as e:  # noqa: BLE001 - handed to the caller below
                    with lock:
                        failed.append(e)
                    return

        count = min(self.concurrency, len(asks))
        workers = [threading.Thread(target=work, name="judge", daemon=True) for _ in range(count)]
        for w in workers:
            w.start()
        for w in workers:
            while w.is_alive():
                w.join(JOIN_WAIT_S)
        if failed:
            raise failed[0]
        return [r for r in results if r is not None]


class CompletionsEndpoint:
    """`endpoint(prompt) -> reply` over a server's raw completions endpoint (`OpenAIEngine`).

    The server is reached at once (a wrong URL or model fails before any work); `context` is
    its reported max_model_len, else `default_context`.
    """

    def __init__(
        self,
        url: str,
        model: str | None = None,
        *,
        timeout: float,
        max_tokens: int,
        temperature: float = 0.0,
        default_context: int = DEFAULT_CONTEXT,
    ) -> None:
        from longwrite.engines.base import Sampling
        from longwrite.engines.client import env_api_key
        from longwrite.engines.openai import OpenAIEngine

        self.engine = OpenAIEngine(url, model, api_key=env_api_key(), timeout=timeout)
        self.model: str = self.engine.model
        self.context: int = self.engine.info.context or default_context
        self.max_tokens, self.temperature, self.timeout = max_tokens, temperature, timeout
        self._sampling = Sampling(
            max_tokens=max_tokens, temperature=temperature, top_p=1.0, stop=()
        )

    def __call__(self, prompt: str) -> str:
        return "".join(chunk.text for chunk in self.engine.stream(prompt, self._sampling))

    def close(self) -> None:
        self.engine.close()


class ChatEndpoint(CompletionsEndpoint):
    """`endpoint(text) -> reply` over `/v1/chat/completions`: `text` is the user's message.

    The server is reached and its model resolved as for `CompletionsEndpoint` (the same
    engine, so the same one-line errors); the reply is the assistant message's content.
    """

    def __init__(self, url: str, model: str | None = None, **settings: Any) -> None:
        import openai

        from longwrite.engines.client import env_api_key, make_client

        super().__init__(url, model, **settings)
        timeout = openai.Timeout(self.timeout, connect=10.0)
        # The same client as the engine's (key, proxy); the judge client retries, with backoff.
        self._chat = make_client(self.engine.base_url, env_api_key(), timeout, retries=0)

    def __call__(self, prompt: str) -> str:
        reply = self._chat.chat.completions.create(
            model=self.model,
            messages=[{"role": "user", "content": prompt}],
            max_tokens=self.max_tokens,
            temperature=self.temperature,
        )
        if not reply.choices:
            raise ValueError("the reply holds no choice")
        return reply.choices[0].message.content or ""

    def close(self) -> None:
        self._chat.close()
        super().close()


def endpoint(
    url: str,
    model: str | None,
    *,
    chat: bool,
    timeout: float,
    max_tokens: int,
    temperature: float = 0.0,
    default_context: int = DEFAULT_CONTEXT,
) -> CompletionsEndpoint:
    """The judge at `url`, over the chat endpoint or the raw completions one."""
    kind = ChatEndpoint if chat else CompletionsEndpoint
    return kind(url, model, timeout=timeout, max_tokens=max_tokens, temperature=temperature,
                default_context=default_context)  # fmt: skip
