"""The client side of every request to an OpenAI-compatible server, made in one place.

Both the completions engine (`engines.openai`) and the judges' chat endpoint
(`scoring.judge`) talk to such servers; what must hold for both lives here:

- the URL is checked before a client is built (`http://[::1` is one line, not the HTTP
  library's traceback), and only `public_url` of it is ever shown (`redact`);
- the key: a key of only spaces is no key (`env_api_key` reads `LONGWRITE_API_KEY` so);
- no proxy for a server on this machine: `http_proxy` set for the outside world must not
  see the Bearer key sent to 127.0.0.1 (as `serve`'s own probe never does);
- the model list (`GET /v1/models`) is asked with a short timeout of its own (a server that
  hangs there is found in seconds, not after the generation timeout twice), and whatever it
  answers is read by the package's JSON reader and checked: HTML, garbage, nesting 100,000
  deep or a list of numbers is the server's fault, in one line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import openai

from longwrite.engines.base import EngineError, env_api_key, is_loopback
from longwrite.engines.server_errors import ServerError, ServerTimeout
from longwrite.redact import public_url

__all__ = ["NO_KEY", "env_api_key", "is_loopback", "list_models", "make_client", "normalise_url"]

NO_KEY = "EMPTY"  # what is sent when no key is set; vLLM without --api-key accepts anything
MODELS_TIMEOUT_S = 10.0  # GET /v1/models: a server that answers nothing by then is stuck


def normalise_url(server: str) -> str:
    """`host:8000`, `http://host:8000/` or `http://host:8000/v1` -> `http://host:8000/v1`;
    a URL that names no host or port the way HTTP does is refused in one line."""
    url = server.strip()
    if "://" not in url:
        url = "http://" + url
    scheme, rest = url.split("://", 1)
    rest = rest.rstrip("/")
    bad = EngineError(f"bad server URL {public_url(server)!r}: use http://HOST:PORT")
    if scheme.lower() not in ("http", "https") or not rest or any(c.isspace() for c in rest):
        raise bad
    url = f"{scheme}://{rest}"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        raise bad from None
    if not parts.hostname:
        raise bad
    return url if url.endswith("/v1") else url + "/v1"


def make_client(base_url: str, api_key: str | None, timeout: Any, retries: int) -> openai.OpenAI:
    """An `openai` client for `base_url` (already normalised) with `api_key` (blank: none),
    the environment's proxy skipped for a loopback server."""
    options: dict[str, Any] = {}
    if is_loopback(urlsplit(base_url).hostname or ""):
        options["http_client"] = openai.DefaultHttpxClient(trust_env=False, timeout=timeout)
    try:
        return openai.OpenAI(
            base_url=base_url,
            api_key=(api_key or "").strip() or NO_KEY,
            timeout=timeout,
            max_retries=retries,
            **options,
        )
    except Exception as exc:  # noqa: BLE001 - the HTTP library's URL errors have no common base
        if "URL" not in type(exc).__name__:
            raise
        raise EngineError(f"bad server URL {public_url(base_url)!r}: {exc}") from None


@dataclass(frozen=True)
class Served:
    """One model a server lists: its name and, when the server says, its context."""

    id: str
    context: int | None


def list_models(client: openai.OpenAI, shown: str, timeout: float, connect: float) -> list[Served]:
    """The models the server at `shown` lists. A reply that is not a model list is a
    `ServerError`; `openai.APIError` (refused, 404, a bad key) is the caller's to word."""
    from longwrite.io.records import LineError, decode_object

    asked = client.with_options(timeout=openai.Timeout(timeout, connect=connect))
    try:
        raw = asked.models.with_raw_response.list()
    except openai.APITimeoutError as exc:
        if type(exc.__cause__).__name__ == "ConnectTimeout":
            raise
        raise ServerTimeout(
            f"the server at {shown} did not answer GET /models within {timeout:g} s; "
            "it may be starting or stuck"
        ) from None
    what = f"the server at {shown} answered GET /models with"
    try:
        body = decode_object(raw.content)
    except LineError as e:
        raise ServerError(f"{what} something that is not a model list ({e})") from None
    data = body.get("data")
    entries = data if isinstance(data, list) else None
    if entries is None or not all(isinstance(e, dict) and isinstance(e.get("id"), str)
                                  for e in entries):  # fmt: skip
        raise ServerError(f"{what} JSON that is not a model list (no `data` of named models)")
    out = []
    for entry in entries:
        context = entry.get("max_model_len")
        ok = isinstance(context, int) and not isinstance(context, bool) and context > 0
        out.append(Served(entry["id"], context if ok else None))
    return out
