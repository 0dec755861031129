"""What can go wrong between `longwrite` and an OpenAI-compatible server, as typed errors.

The error's class says whose fault it was (`ServerUnreachable`, `ServerTimeout`,
`ServerRejected`, `StreamBroken`, `ServerError`), so that `batch` can tell a dead server from
a slow request, and the predicates below read what the `openai` client raised (it wraps
transport errors mid-stream as `APITimeoutError` / `APIConnectionError` from 3.14; older
clients let the HTTP library's own exceptions through). Kept apart from the engine so that
both request modes (a stream, a whole completion) classify failures the same way, and so
that a failure becomes one line here (`request_error`, `read_error`), naming the server.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import openai

from longwrite.engines.base import ENV_API_KEY, EngineError
from longwrite.errors import LongwriteError, one_line


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


class Dropped(Exception):
    """The connection broke in the middle of a stream (resumable)."""


def server_message(exc: openai.APIError) -> str:
    """The server's own error message, on one line."""
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return one_line(body["message"])
    if isinstance(body, str) and body.strip():
        return one_line(body)
    return one_line(exc.message) or type(exc).__name__


def httpx_names(exc: BaseException) -> set[str]:
    """The names of the httpx (or httpx2) exception classes `exc` is an instance of."""
    return {cls.__name__ for cls in type(exc).__mro__ if cls.__module__.startswith("httpx")}


def is_timeout(exc: BaseException) -> bool:
    return isinstance(exc, openai.APITimeoutError) or "TimeoutException" in httpx_names(exc)


def is_drop(exc: BaseException) -> bool:
    """Whether `exc`, raised while reading a stream, means the connection broke.

    Recent clients wrap transport errors in `APIConnectionError`; older ones let the HTTP
    library's own `RemoteProtocolError` / `ReadError` (`TransportError`s) through.
    """
    if is_timeout(exc):
        return False
    if isinstance(exc, openai.APIConnectionError | ConnectionError):
        return True
    return "TransportError" in httpx_names(exc)


def caused_by_refusal(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, ConnectionRefusedError) or "refused" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def caused_by_connect_timeout(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if type(seen).__name__ == "ConnectTimeout":
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def caused_by_connect_failure(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) is a failure to connect, not a connection that broke."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        names = {cls.__name__ for cls in type(seen).__mro__}
        if isinstance(seen, ConnectionRefusedError) or names & {"ConnectError", "ConnectTimeout"}:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


START_HINT = "is it running? start one with `longwrite serve`"


def timed_out(url: str, timeout: float) -> ServerTimeout:
    return ServerTimeout(
        f"the server at {url} sent nothing for {timeout:g} s (the timeout); "
        "it may be overloaded or stuck"
    )


def request_error(
    exc: openai.APIError, url: str, timeout: float, connect_timeout: float,
    gone: Callable[[], str],
) -> LongwriteError:  # fmt: skip
    """The one-line error for a request to the server at `url` that failed with `exc`;
    `gone()` says what to say of a model the server answers 404 for."""
    if isinstance(exc, openai.APITimeoutError):
        if caused_by_connect_timeout(exc):
            return ServerUnreachable(
                f"cannot reach the server at {url} within {connect_timeout:g} s "
                f"(the connect timeout; {START_HINT})"
            )
        return timed_out(url, timeout)
    if isinstance(exc, openai.APIConnectionError):
        refused = caused_by_refusal(exc)
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
        return ServerRejected(f"{gone()} ({server_message(exc)})", status=exc.status_code)
    if isinstance(exc, openai.APIStatusError):
        message = f"the server at {url} answered HTTP {exc.status_code}: {server_message(exc)}"
        if exc.status_code >= 500:
            return ServerError(message)
        return ServerRejected(message, status=exc.status_code)
    return ServerError(f"the server at {url} failed: {server_message(exc)}")


def read_error(exc: Exception, url: str, timeout: float) -> LongwriteError:
    """The one-line error for what a stream raised that is not an `openai` error."""
    if is_timeout(exc):  # an older client's raw httpx ReadTimeout
        return timed_out(url, timeout)
    if isinstance(exc, json.JSONDecodeError):
        return ServerError(f"the server at {url} sent an event that is not JSON")
    return ServerError(f"the server at {url} failed: {type(exc).__name__}: {one_line(exc)}")
