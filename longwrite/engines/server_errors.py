"""What can go wrong between `longwrite` and an OpenAI-compatible server, as typed errors.

The error's class says whose fault it was (`ServerUnreachable`, `ServerTimeout`,
`ServerRejected`, `StreamBroken`, `ServerError`), so that `batch` can tell a dead server from
a slow request, and the predicates below read what the `openai` client raised (it wraps
transport errors mid-stream as `APITimeoutError` / `APIConnectionError` from 3.14; older
clients let the HTTP library's own exceptions through). Kept apart from the engine so that
both request modes (a stream, a whole completion) classify failures the same way.
"""

from __future__ import annotations

import openai

from longwrite.engines.base import EngineError
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
