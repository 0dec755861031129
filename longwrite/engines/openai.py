"""The OpenAI-compatible server backend: a raw prompt streamed from `/v1/completions`.

A 32B model usually runs in a server (`vllm serve`, SGLang) on a GPU box while `longwrite`
runs anywhere. The model's protocol is raw text, so this engine uses the completions
endpoint, not chat; the official `openai` client does the HTTP and the server-sent events.

What this module adds to the client:
- every failure a user can meet (server down, wrong key, unknown model, timeout) becomes one
  clear line; a failure on the server's side is a `ServerError` (exit code 1). The error's
  class says whose fault it was (`ServerUnreachable`, `ServerTimeout`, `ServerRejected`,
  `StreamBroken`, `ServerError`), so that `batch` can tell a dead server from a slow request;
  whatever a server sends is checked before it is read (an event without `choices`, with
  `choices: [5]`, nested 100,000 deep), so its oddities are its fault, never a traceback;
- the client itself (the URL, the key, no proxy for a loopback server, the model list with
  its own short timeout) is built in `engines.client`, shared with the judges;
- a 10,000-word answer streams for many minutes, so a dropped connection is resumed: the
  prompt plus the text so far is sent as a continuation and the consumer sees no seam;
- token counts: every streamed choice is one token (llama.cpp's server sends one chunk per
  token, with empty text where a character is still incomplete, and no usage report); when
  the server reports `usage`, its count wins. Resuming subtracts the tokens already
  generated from `max_tokens`, so the count must be right even without a report.

Two request modes. Streaming (the default: a reader watches the document grow) costs one
server-sent event per token, which is what bounds a batch client's throughput; `whole=True`
asks for the whole completion in one JSON reply (what `batch` uses: it needs the finished
text, not each token), with a timeout sized to the tokens asked for. A whole request whose
connection breaks is sent again from the start: what the server had generated is lost.
`stream_interval=K` asks vLLM for one event per K tokens, each with the running usage count.

Errors raised while a stream is read: `openai` >= 3.14 wraps transport errors mid-stream as
`APITimeoutError` / `APIConnectionError` (older clients let httpx's own exceptions through);
both are handled (`server_errors`), and so is an event that is not JSON. Token arithmetic
(usage reports, several candidates) is in `completions`.

Servers trim stop strings themselves (vLLM, SGLang and OpenAI never return them), so no
hold-back trimming is done here. The client's own retries are kept low so that a dead server
fails in seconds, and generation requests are not retried blindly: resuming covers drops.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import openai

from longwrite.engines.base import (
    ENV_SERVER,
    FINISH_LENGTH,
    FINISH_STOP,
    Chunk,
    EngineError,
    EngineInfo,
    Sampling,
)
from longwrite.engines.client import (
    MODELS_TIMEOUT_S,
    NO_KEY,
    env_api_key,
    list_models,
    make_client,
    normalise_url,
)
from longwrite.engines.completions import extra_body, final_tokens, pieces_of, whole_tokens
from longwrite.engines.server_errors import (
    Dropped,
    ServerError,
    ServerRejected,
    ServerTimeout,
    ServerUnreachable,
    StreamBroken,
    caused_by_connect_failure,
    caused_by_connect_timeout,
    httpx_names,
    is_drop,
    is_timeout,
    read_error,
    request_error,
)
from longwrite.errors import LongwriteError
from longwrite.redact import public_url

__all__ = [  # the errors are part of this engine's interface (batch tells them apart)
    "OpenAIEngine",
    "ServerError",
    "ServerRejected",
    "ServerTimeout",
    "ServerUnreachable",
    "StreamBroken",
    "from_env",
    "normalise_url",
    "NO_KEY",
]
CLIENT_RETRIES = 1  # retries of short requests (/v1/models); generations are not retried
WHOLE_SLOWEST_TOK_S = 5.0  # a whole completion slower than this per sequence is timed out


def from_env(server: str | None, model: str | None, **options: Any) -> OpenAIEngine:
    """The engine for `server` (else $LONGWRITE_SERVER), with the key from $LONGWRITE_API_KEY
    (`options`: the request mode, `whole` or `stream_interval`)."""
    server = server or os.environ.get(ENV_SERVER, "").strip() or None
    if server is None:
        raise EngineError(
            f"no server given: pass its URL or set {ENV_SERVER} (start one with `longwrite serve`)"
        )
    return OpenAIEngine(server, model, api_key=env_api_key(), **options)


class OpenAIEngine:
    """A model served by an OpenAI-compatible server (vLLM, SGLang), streamed as raw text."""

    def __init__(
        self,
        server: str,
        model: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 600.0,
        connect_timeout: float = 10.0,
        models_timeout: float = MODELS_TIMEOUT_S,
        max_resumes: int = 3,
        whole: bool = False,
        stream_interval: int = 1,
    ) -> None:
        self.base_url = normalise_url(server)  # for the client only: it may hold a password
        self.shown = public_url(self.base_url) or self.base_url  # what messages say
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.models_timeout = models_timeout
        self.max_resumes = max_resumes
        self.whole = whole  # a whole completion per request instead of a stream (batch)
        self.stream_interval = stream_interval  # tokens per event asked of vLLM (1: each)
        self._client: openai.OpenAI | None = make_client(
            self.base_url, api_key, openai.Timeout(timeout, connect=connect_timeout), CLIENT_RETRIES
        )
        self._generate = self._client.with_options(max_retries=0)
        self.served: list[str] = []
        try:
            self.model, context = self._resolve_model(model)
        except BaseException:
            self._client.close()
            raise
        self.info = EngineInfo(
            name="openai", model=self.model, details={"server": self.shown}, context=context
        )

    def _models(self) -> list[Any]:
        return list_models(self._client, self.shown, self.models_timeout, self.connect_timeout)

    def _resolve_model(self, model: str | None) -> tuple[str, int | None]:
        """The model to ask for and its context length, from the server's `/v1/models`."""
        try:
            listed = self._models()
        except openai.NotFoundError:
            raise EngineError(
                f"no OpenAI-compatible API at {self.shown} (GET /models: 404)"
            ) from None
        except openai.APIError as exc:
            raise self._error(exc) from None
        self.served = [entry.id for entry in listed]
        if not self.served:
            raise EngineError(f"the server at {self.shown} serves no model")
        name = model or self.served[0]
        if name not in self.served:
            raise EngineError(self._unknown_model(name))
        return name, listed[self.served.index(name)].context

    def _unknown_model(self, name: str) -> str:
        served = ", ".join(self.served) or "nothing"
        return f"model {name!r} is not served at {self.shown}; it serves: {served}"

    def _served_now(self) -> None:
        """Refresh `served` after a 404 (the server may have restarted with another model)."""
        with contextlib.suppress(openai.APIError, LongwriteError):
            self.served = [entry.id for entry in self._models()]

    def _error(self, exc: openai.APIError) -> LongwriteError:
        """The one-line error for a failed request (`server_errors.request_error`)."""
        return request_error(exc, self.shown, self.timeout, self.connect_timeout, self._gone)

    def _gone(self) -> str:
        """What to say when the server answers 404: the model it serves now."""
        self._served_now()
        return self._unknown_model(self.model)

    def _read_error(self, exc: Exception) -> LongwriteError:
        return read_error(exc, self.shown, self.timeout)

    def _params(self, prompt: str, sampling: Sampling, max_tokens: int, min_tokens: int) -> dict:
        """The arguments of one completion request, in either mode."""
        return {
            "model": self.model,
            "prompt": prompt,
            "max_tokens": max_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "stop": list(sampling.stop) or None,
            "seed": sampling.seed,
            "n": sampling.n,
            "extra_body": extra_body(sampling, min_tokens) or None,
        }

    def _open(self, prompt: str, sampling: Sampling, max_tokens: int, min_tokens: int) -> Any:
        """Start one streaming completion request.

        With `stream_interval` > 1 (and one candidate), vLLM is asked to send an event every
        that many tokens, each with the running usage count (`continuous_usage_stats`) so
        that every event's tokens are known; a server that ignores the field streams every
        token, which the count handles too.
        """
        params = self._params(prompt, sampling, max_tokens, min_tokens)
        options: dict[str, bool] = {"include_usage": True}
        if self.stream_interval > 1 and sampling.n == 1:
            options["continuous_usage_stats"] = True
            params["extra_body"] = {
                **(params["extra_body"] or {}),
                "stream_interval": self.stream_interval,
            }
        try:
            return self._generate.completions.create(stream=True, stream_options=options, **params)
        except openai.APIError as exc:
            raise self._error(exc) from None

    def _whole_timeout(self, max_tokens: int) -> float:
        """How long a whole completion of `max_tokens` may take: the timeout, plus the
        tokens at the slowest pace a loaded server is allowed (`WHOLE_SLOWEST_TOK_S`)."""
        return self.timeout + max_tokens / WHOLE_SLOWEST_TOK_S

    def _complete(self, prompt: str, sampling: Sampling) -> Iterator[Chunk]:
        """The whole completion in one JSON reply: one object per request, not one event
        per token, which is what a batch needs (no reader watches each token).

        A connection that breaks after it was made loses what the server had generated
        (nothing has arrived): the request is sent again, at most `max_resumes` times.
        """
        params = self._params(prompt, sampling, sampling.max_tokens, sampling.min_tokens)
        seconds = self._whole_timeout(sampling.max_tokens)
        timeout = openai.Timeout(seconds, connect=self.connect_timeout)
        drops = 0
        while True:
            try:
                reply = self._generate.completions.create(timeout=timeout, **params)
                break
            except RecursionError:
                raise self._not_json("a reply") from None
            except openai.APIError as exc:
                broke = is_drop(exc) and not caused_by_connect_failure(exc)
                if broke and drops < self.max_resumes:
                    drops += 1
                    continue
                if broke:
                    raise StreamBroken(
                        f"the server at {self.shown} dropped the connection {drops + 1} "
                        f"times; giving up after {self.max_resumes} retries"
                    ) from None
                if is_timeout(exc) and not caused_by_connect_timeout(exc):
                    raise ServerTimeout(
                        f"the server at {self.shown} did not finish {sampling.max_tokens} "
                        f"tokens within {seconds:g} s (the timeout)"
                    ) from None
                raise self._error(exc) from None
        read = pieces_of(reply) if isinstance(reply, openai.types.Completion) else None
        choices = sorted(read[0], key=lambda c: c.index) if read is not None else []
        if read is None or [c.index for c in choices] != list(range(sampling.n)):
            raise ServerError(f"the server at {self.shown} sent a reply that is not a completion")
        usage = read[1]
        for choice, tokens in zip(
            choices, whole_tokens(choices, usage, sampling.max_tokens), strict=True
        ):
            finish = choice.finish_reason or FINISH_STOP
            yield Chunk(choice.text, tokens, finish, choice.index)

    def _not_json(self, what: str) -> ServerError:
        return ServerError(f"the server at {self.shown} sent {what} nested too deeply to read")

    def _read(self, response: Any) -> Iterator[tuple[list[Any], int | None]]:
        """The pieces of each completion chunk of `response` (with the usage count it
        reports); a broken connection raises `Dropped`, any other failure (a chunk that is
        not shaped as one included) one of this module's one-line errors."""
        try:
            for completion in response:
                read = pieces_of(completion)
                if read is None:
                    raise ServerError(
                        f"the server at {self.shown} sent an event that is not a completion"
                    )
                yield read
        except RecursionError:
            raise self._not_json("an event") from None
        except openai.APIError as exc:
            if is_drop(exc):
                raise Dropped from exc
            raise self._error(exc) from None
        except (ValueError, OSError) as exc:
            if is_drop(exc):
                raise Dropped from exc
            raise self._read_error(exc) from exc
        except Exception as exc:
            if is_drop(exc):
                raise Dropped from exc
            if not httpx_names(exc):
                raise  # not the network's doing: a bug, to be seen as one
            raise self._read_error(exc) from exc

    def stream(self, prompt: str, sampling: Sampling) -> Iterator[Chunk]:
        if self._client is None:
            raise EngineError("the openai engine is closed")
        if self.whole:
            return self._complete(prompt, sampling)
        if sampling.n == 1:
            return self._stream_one(prompt, sampling)
        return self._stream_many(prompt, sampling)

    def _stream_one(self, prompt: str, sampling: Sampling) -> Iterator[Chunk]:
        """One candidate; a dropped stream is resumed from the text so far, without a seam.

        Every chunk but the last is yielded as it comes, one token each (empty text included:
        llama.cpp sends a token whose character is not complete yet that way) unless the
        event carries the running usage count, which then says its tokens; the last one
        (with the finish reason) waits for the usage report that follows it, so that the
        stream's token total can be made equal to what the server counted.
        """
        parts: list[str] = []  # the text so far
        tokens = 0  # tokens generated by the responses that broke off (one per choice)
        drops = 0
        while True:
            remaining = sampling.max_tokens - tokens
            if remaining <= 0:
                yield Chunk("", 0, FINISH_LENGTH)
                return
            min_tokens = max(0, sampling.min_tokens - tokens)
            response = self._open(prompt + "".join(parts), sampling, remaining, min_tokens)
            counted = 0  # tokens yielded from this response
            last: tuple[str, str] | None = None  # (text, finish_reason) of the final piece
            usage: int | None = None
            try:
                for choices, reported in self._read(response):
                    if reported is not None:
                        usage = reported
                    for choice in choices:
                        text = choice.text
                        if choice.finish_reason is not None:
                            last = (text, choice.finish_reason)
                        else:
                            if text:
                                parts.append(text)
                            # an event with the running usage (stream_interval) says its tokens
                            step = 1 if reported is None else max(0, reported - counted)
                            counted += step
                            yield Chunk(text, step)
            except Dropped as exc:
                dropped: Dropped | None = exc
            else:
                dropped = None
            finally:
                response.close()
            if last is None:  # broken, or ended without a finish reason: resume
                drops += 1
                tokens += counted
                if drops > self.max_resumes:
                    how = "dropped the stream" if dropped else "ended the stream unfinished"
                    raise StreamBroken(
                        f"the server at {self.shown} {how} {drops} times; "
                        f"giving up after {self.max_resumes} resumes"
                    ) from dropped
                continue
            text, finish = last
            yield Chunk(text, final_tokens(text, finish, counted, usage, remaining), finish)
            return

    def _stream_many(self, prompt: str, sampling: Sampling) -> Iterator[Chunk]:
        """Several candidates, interleaved as the server sends them (not resumable).

        Tokens are counted per choice as in `_stream_one` (a final choice with no text is
        only the finish reason); the server's usage report is one total over the
        candidates, so it cannot correct each one's count and is not used.
        """
        response = self._open(prompt, sampling, sampling.max_tokens, sampling.min_tokens)
        unfinished = set(range(sampling.n))
        counted = [0] * sampling.n  # tokens yielded per candidate
        try:
            for choices, _ in self._read(response):
                for choice in choices:
                    text, i, finish = choice.text, choice.index, choice.finish_reason
                    if i >= sampling.n:
                        raise ServerError(
                            f"the server at {self.shown} sent candidate {i} of {sampling.n}"
                        )
                    if finish is None:
                        tokens = 1
                    else:
                        unfinished.discard(i)
                        tokens = final_tokens(text, finish, counted[i], None, sampling.max_tokens)
                    counted[i] += tokens
                    yield Chunk(text, tokens, finish, i)
        except Dropped:
            raise StreamBroken(
                f"the server at {self.shown} dropped the stream "
                f"(a stream of n={sampling.n} candidates cannot be resumed; resuming needs n=1)"
            ) from None
        finally:
            response.close()
        if unfinished:
            raise StreamBroken(
                f"the server at {self.shown} ended the stream before "
                f"{len(unfinished)} of {sampling.n} candidates finished"
            )

    def count_tokens(self, text: str) -> int | None:
        return None  # no tokenizer at hand; the budget code estimates

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
