"""The OpenAI-compatible server backend: a raw prompt streamed from `/v1/completions`.

A 32B model usually runs in a server (`vllm serve`, SGLang) on a GPU box while `longwrite`
runs anywhere. The model's protocol is raw text, so this engine uses the completions
endpoint, not chat; the official `openai` client does the HTTP and the server-sent events.

What this module adds to the client:
- every failure a user can meet (server down, wrong key, unknown model, timeout) becomes one
  clear line; a failure on the server's side is a `ServerError` (exit code 1). The error's
  class says whose fault it was (`ServerUnreachable`, `ServerTimeout`, `ServerRejected`,
  `StreamBroken`, `ServerError`), so that `batch` can tell a dead server from a slow request;
- a 10,000-word answer streams for many minutes, so a dropped connection is resumed: the
  prompt plus the text so far is sent as a continuation and the consumer sees no seam;
- token counts: every streamed choice is one token (llama.cpp's server sends one chunk per
  token, with empty text where a character is still incomplete, and no usage report); when
  the server reports `usage`, its count wins. Resuming subtracts the tokens already
  generated from `max_tokens`, so the count must be right even without a report.

Errors raised while a stream is read: `openai` >= 3.14 wraps transport errors mid-stream as
`APITimeoutError` / `APIConnectionError` (older clients let httpx's own exceptions through);
both are handled, and so is an event that is not JSON.

Servers trim stop strings themselves (vLLM, SGLang and OpenAI never return them), so no
hold-back trimming is done here. The client's own retries are kept low so that a dead server
fails in seconds, and generation requests are not retried blindly: resuming covers drops.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any

import openai

from longwrite.engines.base import (
    ENV_API_KEY,
    ENV_SERVER,
    FINISH_LENGTH,
    Chunk,
    EngineError,
    EngineInfo,
    Sampling,
)
from longwrite.errors import LongwriteError, one_line

NO_KEY = "EMPTY"  # what is sent when no key is set; vLLM without --api-key accepts anything
CLIENT_RETRIES = 1  # retries of short requests (/v1/models); generations are not retried
START_HINT = "is it running? start one with `longwrite serve`"


class ServerError(LongwriteError):
    """The server failed (HTTP 5xx, an error event mid-stream): not the user's mistake."""

    exit_code = 1


class ServerUnreachable(EngineError):
    """No connection to the server (`refused`: nothing listens there)."""

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


class ServerTimeout(EngineError):
    """The server took longer than the timeout: one failed request, not a dead server."""


class ServerRejected(EngineError):
    """The server refused this request (HTTP 4xx): the request's fault, or a bad proxy's."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class StreamBroken(EngineError):
    """The stream broke (or ended unfinished) more often than it may be resumed."""


class _Dropped(Exception):
    """The connection broke in the middle of a stream (resumable)."""


def normalise_url(server: str) -> str:
    """`host:8000`, `http://host:8000/` or `http://host:8000/v1` -> `http://host:8000/v1`."""
    url = server.strip()
    if "://" not in url:
        url = "http://" + url
    scheme, rest = url.split("://", 1)
    rest = rest.rstrip("/")
    if scheme.lower() not in ("http", "https") or not rest:
        raise EngineError(f"bad server URL {server!r}: use http://HOST:PORT")
    url = f"{scheme}://{rest}"
    return url if url.endswith("/v1") else url + "/v1"


def from_env(server: str | None, model: str | None) -> OpenAIEngine:
    """The engine for `server` (else $LONGWRITE_SERVER), with the key from $LONGWRITE_API_KEY."""
    server = server or os.environ.get(ENV_SERVER, "").strip() or None
    if server is None:
        raise EngineError(
            f"no server given: pass its URL or set {ENV_SERVER} (start one with `longwrite serve`)"
        )
    api_key = os.environ.get(ENV_API_KEY, "").strip() or None
    return OpenAIEngine(server, model, api_key=api_key)


def _server_message(exc: openai.APIError) -> str:
    """The server's own error message, on one line."""
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return one_line(body["message"])
    if isinstance(body, str) and body.strip():
        return one_line(body)
    return one_line(exc.message) or type(exc).__name__


def _httpx_names(exc: BaseException) -> set[str]:
    """The names of the httpx (or httpx2) exception classes `exc` is an instance of."""
    return {cls.__name__ for cls in type(exc).__mro__ if cls.__module__.startswith("httpx")}


def _is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, openai.APITimeoutError) or "TimeoutException" in _httpx_names(exc)


def _is_drop(exc: BaseException) -> bool:
    """Whether `exc`, raised while reading a stream, means the connection broke.

    Recent clients wrap transport errors in `APIConnectionError`; older ones let the HTTP
    library's own `RemoteProtocolError` / `ReadError` (`TransportError`s) through.
    """
    if _is_timeout(exc):
        return False
    if isinstance(exc, openai.APIConnectionError | ConnectionError):
        return True
    return "TransportError" in _httpx_names(exc)


def _caused_by_refusal(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, ConnectionRefusedError) or "refused" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _caused_by_connect_timeout(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if type(seen).__name__ == "ConnectTimeout":
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _extra_body(sampling: Sampling, min_tokens: int) -> dict[str, Any]:
    """vLLM's sampling fields beyond the OpenAI API, only those that are switched on."""
    extra: dict[str, Any] = {}
    if min_tokens > 0:
        extra["min_tokens"] = min_tokens
    if sampling.top_k > 0:
        extra["top_k"] = sampling.top_k
    if sampling.repetition_penalty != 1.0:
        extra["repetition_penalty"] = sampling.repetition_penalty
    return extra


def _final_tokens(text: str, finish: str, counted: int, usage: int | None, asked: int) -> int:
    """The tokens of a response's final chunk, after `counted` were yielded for the others.

    The server's `usage` total wins; without one, a "length" finish means exactly the `asked`
    max_tokens were generated, and otherwise the final chunk is a token when it has text.
    """
    if usage is not None:
        return max(0, usage - counted)
    if finish == FINISH_LENGTH:
        return max(0, asked - counted)
    return 1 if text else 0


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
        max_resumes: int = 3,
    ) -> None:
        self.base_url = normalise_url(server)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_resumes = max_resumes
        self._client: openai.OpenAI | None = openai.OpenAI(
            base_url=self.base_url,
            api_key=api_key or NO_KEY,
            timeout=openai.Timeout(timeout, connect=connect_timeout),
            max_retries=CLIENT_RETRIES,
        )
        self._generate = self._client.with_options(max_retries=0)
        self.served: list[str] = []
        try:
            self.model, context = self._resolve_model(model)
        except BaseException:
            self._client.close()
            raise
        self.info = EngineInfo(
            name="openai", model=self.model, details={"server": self.base_url}, context=context
        )

    def _resolve_model(self, model: str | None) -> tuple[str, int | None]:
        """The model to ask for and its context length, from the server's `/v1/models`."""
        try:
            listed = self._client.models.list().data
        except openai.NotFoundError:
            raise EngineError(
                f"no OpenAI-compatible API at {self.base_url} (GET /models: 404)"
            ) from None
        except openai.APIError as exc:
            raise self._error(exc) from None
        self.served = [entry.id for entry in listed]
        if not self.served:
            raise EngineError(f"the server at {self.base_url} serves no model")
        name = model or self.served[0]
        if name not in self.served:
            raise EngineError(self._unknown_model(name))
        entry = listed[self.served.index(name)]
        context = getattr(entry, "max_model_len", None)
        return name, context if isinstance(context, int) and context > 0 else None

    def _unknown_model(self, name: str) -> str:
        served = ", ".join(self.served) or "nothing"
        return f"model {name!r} is not served at {self.base_url}; it serves: {served}"

    def _served_now(self) -> None:
        """Refresh `served` after a 404 (the server may have restarted with another model)."""
        with contextlib.suppress(openai.APIError):
            self.served = [entry.id for entry in self._client.models.list().data]

    def _timed_out(self) -> ServerTimeout:
        return ServerTimeout(
            f"the server at {self.base_url} sent nothing for {self.timeout:g} s (the timeout); "
            "it may be overloaded or stuck"
        )

    def _error(self, exc: openai.APIError) -> LongwriteError:
        """The one-line error for a failed request."""
        url = self.base_url
        if isinstance(exc, openai.APITimeoutError):
            if _caused_by_connect_timeout(exc):
                return ServerUnreachable(
                    f"cannot reach the server at {url} within {self.connect_timeout:g} s "
                    f"(the connect timeout; {START_HINT})"
                )
            return self._timed_out()
        if isinstance(exc, openai.APIConnectionError):
            refused = _caused_by_refusal(exc)
            reason = "connection refused" if refused else "no connection"
            cause = exc.__cause__
            if not refused and cause is not None and str(cause):
                reason = one_line(str(cause), 120)
            return ServerUnreachable(
                f"cannot reach the server at {url}: {reason} ({START_HINT})", refused=refused
            )
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            return ServerRejected(
                f"the server at {url} refused the API key (HTTP {exc.status_code}): "
                f"set {ENV_API_KEY} to its key",
                status=exc.status_code,
            )
        if isinstance(exc, openai.NotFoundError):
            self._served_now()
            message = f"{self._unknown_model(self.model)} ({_server_message(exc)})"
            return ServerRejected(message, status=exc.status_code)
        if isinstance(exc, openai.APIStatusError):
            message = f"the server at {url} answered HTTP {exc.status_code}: {_server_message(exc)}"
            if exc.status_code >= 500:
                return ServerError(message)
            return ServerRejected(message, status=exc.status_code)
        return ServerError(f"the server at {url} failed: {_server_message(exc)}")

    def _read_error(self, exc: Exception) -> LongwriteError:
        """The one-line error for what a stream raised that is not an `openai` error."""
        url = self.base_url
        if _is_timeout(exc):  # an older client's raw httpx ReadTimeout
            return self._timed_out()
        if isinstance(exc, json.JSONDecodeError):
            return ServerError(f"the server at {url} sent an event that is not JSON")
        return ServerError(f"the server at {url} failed: {type(exc).__name__}: {one_line(exc)}")

    def _open(self, prompt: str, sampling: Sampling, max_tokens: int, min_tokens: int) -> Any:
        """Start one streaming completion request."""
        try:
            return self._generate.completions.create(
                model=self.model,
                prompt=prompt,
                stream=True,
                max_tokens=max_tokens,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                stop=list(sampling.stop) or None,
                seed=sampling.seed,
                n=sampling.n,
                stream_options={"include_usage": True},
                extra_body=_extra_body(sampling, min_tokens) or None,
            )
        except openai.APIError as exc:
            raise self._error(exc) from None

    def _read(self, response: Any) -> Iterator[Any]:
        """The completion chunks of `response`; a broken connection raises `_Dropped`, any
        other failure one of this module's one-line errors."""
        try:
            yield from response
        except openai.APIError as exc:
            if _is_drop(exc):
                raise _Dropped from exc
            raise self._error(exc) from None
        except (ValueError, OSError) as exc:
            if _is_drop(exc):
                raise _Dropped from exc
            raise self._read_error(exc) from exc
        except Exception as exc:
            if _is_drop(exc):
                raise _Dropped from exc
            if not _httpx_names(exc):
                raise  # not the network's doing: a bug, to be seen as one
            raise self._read_error(exc) from exc

    def stream(self, prompt: str, sampling: Sampling) -> Iterator[Chunk]:
        if self._client is None:
            raise EngineError("the openai engine is closed")
        if sampling.n == 1:
            return self._stream_one(prompt, sampling)
        return self._stream_many(prompt, sampling)

    def _stream_one(self, prompt: str, sampling: Sampling) -> Iterator[Chunk]:
        """One candidate; a dropped stream is resumed from the text so far, without a seam.

        Every chunk but the last is yielded as it comes, one token each (empty text included:
        llama.cpp sends a token whose character is not complete yet that way); the last one
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
                for completion in self._read(response):
                    if completion.usage is not None:
                        usage = completion.usage.completion_tokens
                    for choice in completion.choices:
                        text = choice.text
                        if choice.finish_reason is not None:
                            last = (text or "", choice.finish_reason)
                        else:
                            if text:
                                parts.append(text)
                            counted += 1
                            yield Chunk(text or "", 1)
            except _Dropped as exc:
                dropped: _Dropped | None = exc
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
                        f"the server at {self.base_url} {how} {drops} times; "
                        f"giving up after {self.max_resumes} resumes"
                    ) from dropped
                continue
            text, finish = last
            yield Chunk(text, _final_tokens(text, finish, counted, usage, remaining), finish)
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
            for completion in self._read(response):
                for choice in completion.choices:
                    text, i, finish = choice.text or "", choice.index, choice.finish_reason
                    if finish is None:
                        tokens = 1
                    else:
                        unfinished.discard(i)
                        tokens = _final_tokens(text, finish, counted[i], None, sampling.max_tokens)
                    counted[i] += tokens
                    yield Chunk(text, tokens, finish, i)
        except _Dropped:
            raise StreamBroken(
                f"the server at {self.base_url} dropped the stream "
                f"(a stream of n={sampling.n} candidates cannot be resumed; resuming needs n=1)"
            ) from None
        finally:
            response.close()
        if unfinished:
            raise StreamBroken(
                f"the server at {self.base_url} ended the stream before "
                f"{len(unfinished)} of {sampling.n} candidates finished"
            )

    def count_tokens(self, text: str) -> int | None:
        return None  # no tokenizer at hand; the budget code estimates

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
