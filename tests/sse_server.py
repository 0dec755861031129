"""A scripted OpenAI-compatible completions server on 127.0.0.1, for tests and the bench.

The `OpenAIEngine` must be tested against real HTTP and real server-sent events, not a mocked
client: drops, resets, timeouts and closed connections only exist on a socket. This server
speaks just enough of the protocol vLLM speaks (`GET /v1/models`, streaming
`POST /v1/completions`, OpenAI-style error bodies) and is scripted per test by a `Script`.

Determinism is by construction: the completion of the base prompt is `Script.text`, and a
prompt equal to base + `text[:k]` is continued with `text[k:]`, so a client that resumes a
dropped stream can be checked byte for byte. Text is cut into pieces of cycling sizes at
fixed positions of the whole text (a continuation keeps the same cuts), one piece per token.
Like vLLM, the server trims stop strings itself and never sends one.

Both request modes are served: `"stream": true` (server-sent events, one per token, or one per
`stream_interval` tokens as vLLM groups them when a request asks for it) and a whole
completion as one JSON reply (what `batch` asks for by default). Faults apply to both: a
dropped connection in the whole mode breaks the reply after its headers and part of its body.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Script:
    """What the server answers, and which faults it injects.

    - `text`: the completion of `prompt` (candidate 0); `others[i-1]` is candidate i's text
      when `n > 1` (default: `text` again).
    - `pieces`: cycling piece sizes in characters; each piece is one token.
    - `drop_after`: break the connection after this many pieces of a response, for the first
      `drops` responses; `drop_style` is "reset" (TCP RST), "close" (FIN in the middle of the
      chunked body) or "done" (a clean `[DONE]` without any finish_reason).
    - `status`: answer every completion request with this HTTP error status;
      `error_after`: send an error event (as vLLM does mid-stream) after this many pieces.
    - `delay`: seconds between pieces; `hang`: seconds before the first byte of a completion.
    - `faults`: `status` and `hang` hit only the first `faults` completion requests (None:
      every one); `status_body` replaces the JSON error body (a proxy's HTML page, say).
    - `junk_after`: send an event whose data is `junk` after this many pieces (default: a
      proxy's HTML page, not JSON; `tests/faults` gives JSON nested 100,000 deep, an event
      without `choices`, `choices: [5]`...).
    - `healthy`: the first `healthy` completion requests are answered well, the faults apply
      to the later ones (a server that turns bad in the middle of a run).
    - `/v1/models`: `models_body` is sent as its 200 reply instead of the list (HTML,
      garbage, a shape that is not a list); `models_hang` seconds pass before it answers.
    - `then`: a sampler that gives other text when asked again (a client resampling after a
      cut): the k-th completion request (k >= 2) is answered with `then[k-2]` (the last one
      repeats), whatever prefix its prompt carries after the base prompt.
    - llama.cpp's server: `usage=False` never sends a usage report, and `blank_every=k` puts
      a token that carries no text (a character still incomplete) before every k-th piece.
    - `stream_interval`: False ignores the request field of that name, as servers other than
      vLLM do; True groups tokens into one event each `stream_interval` as vLLM does (the
      first and the last event at once).
    - whole replies: `drop_after` pieces' worth of `delay` pass, then the connection breaks
      part way into the reply; `junk_after` sends `junk` as the body (JSON unless it starts
      with "<"); `error_after` answers HTTP 500 (the engine failed while generating).
    """

    text: str = ""
    prompt: str = "PROMPT:"
    others: tuple[str, ...] = ()
    pieces: tuple[int, ...] = (1, 3, 2, 4)
    models: tuple[str, ...] = ("lw-test",)
    max_model_len: int | None = 32768
    api_key: str | None = None
    drop_after: int | None = None
    drops: int = 1
    drop_style: str = "reset"
    status: int | None = None
    error_after: int | None = None
    delay: float = 0.0
    hang: float = 0.0
    finish_separate: bool = False
    faults: int | None = None
    status_body: str | None = None
    junk_after: int | None = None
    junk: str = "<html><body>502 Bad Gateway</body></html>"
    healthy: int = 0
    models_body: bytes | None = None
    models_hang: float = 0.0
    usage: bool = True
    blank_every: int = 0
    stream_interval: bool = True
    then: tuple[str, ...] = ()

    def without_faults(self) -> Script:
        """The same server answering well (what `healthy` requests get)."""
        return replace(self, drop_after=None, status=None, error_after=None, junk_after=None)

    def candidate(self, index: int) -> str:
        if index == 0 or index > len(self.others):
            return self.text
        return self.others[index - 1]


@dataclass(frozen=True)
class Recorded:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None


@dataclass
class Planned:
    """One candidate's response: its pieces, finish reason and generated tokens."""

    pieces: list[str]
    finish: str
    tokens: int


def cut_points(text: str, sizes: tuple[int, ...]) -> list[tuple[int, int]]:
    """(start, end) of each piece of `text`, cut with cycling `sizes`."""
    out, i, k = [], 0, 0
    while i < len(text):
        end = min(len(text), i + sizes[k % len(sizes)])
        out.append((i, end))
        i, k = end, k + 1
    return out


def tokens_of(text: str, start: int, script: Script) -> list[str]:
    """The tokens that continue `text[:start]`, one piece of text each ("" for a blank one)."""
    out = []
    for number, (a, b) in enumerate(cut_points(text, script.pieces), start=1):
        if b <= start:
            continue
        if script.blank_every and number % script.blank_every == 0:
            out.append("")  # the first half of a character, which arrives with the next token
        out.append(text[max(a, start) : b])
    return out


def plan(text: str, start: int, script: Script, max_tokens: int, stops: list[str]) -> Planned:
    """The pieces that continue `text[:start]`: at most `max_tokens`, cut before a stop string.

    The stop string that completes first wins (on a tie, the longest), as when generating.
    """
    pieces = tokens_of(text, start, script)
    rest = text[start:]
    found = [(rest.find(s) + len(s), rest.find(s)) for s in stops if s and s in rest]
    if found:
        end, keep = min(found)
        used = count = 0
        while used < end:  # the stop completes inside piece number `count`
            used += len(pieces[count])
            count += 1
        if count <= max_tokens:
            trimmed, used = [], 0
            for piece in pieces[:count]:
                part = piece[: max(0, keep - used)]
                used += len(piece)
                if part or not piece:  # a blank token is sent as it is
                    trimmed.append(part)
            return Planned(trimmed, "stop", count)
    if len(pieces) > max_tokens:
        return Planned(pieces[:max_tokens], "length", max_tokens)
    return Planned(pieces, "stop", len(pieces))


def error_body(status: int, message: str) -> bytes:
    kind = {401: "AuthenticationError", 404: "NotFoundError", 400: "BadRequestError"}
    error = {"message": message, "type": kind.get(status, "InternalServerError")}
    return json.dumps({"error": {**error, "param": None, "code": status}}).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass

    def setup(self) -> None:
        super().setup()
        self.server.owner.connections.add(self.connection)

    def finish(self) -> None:
        self.server.owner.connections.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    @property
    def owner(self) -> ScriptedServer:
        return self.server.owner

    def _record(self, body: dict[str, Any] | None) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        self.owner.requests.append(Recorded(self.command, self.path, headers, body))

    def _authorised(self) -> bool:
        key = self.owner.script.api_key
        if key is None or self.headers.get("Authorization") == f"Bearer {key}":
            return True
        self._send_json(401, error_body(401, "Unauthorized"))
        return False

    def _send_json(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _send_page(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self._record(None)
        if not self._authorised():
            return
        if self.path.rstrip("/") != "/v1/models":
            self._send_json(404, error_body(404, f"no route {self.path}"))
            return
        script = self.owner.script
        if script.models_hang and self.owner.stopping.wait(script.models_hang):
            return
        if script.models_body is not None:
            page = script.models_body.lstrip().startswith(b"<")
            (self._send_page if page else self._send_json)(200, script.models_body)
            return
        data = []
        for name in script.models:
            entry: dict[str, Any] = {"id": name, "object": "model", "created": 0}
            entry["owned_by"] = "longwrite-tests"
            if script.max_model_len is not None:
                entry["max_model_len"] = script.max_model_len
            data.append(entry)
        self._send_json(200, json.dumps({"object": "list", "data": data}).encode())

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        self._record(body)
        script = self.owner.script
        if not self._authorised():
            return
        if self.path.rstrip("/") != "/v1/completions":
            self._send_json(404, error_body(404, f"no route {self.path}"))
            return
        if body.get("model") not in script.models:
            message = f"The model `{body.get('model')}` does not exist."
            self._send_json(404, error_body(404, message))
            return
        if len(self.owner.completions) <= script.healthy:  # still well (this one is recorded)
            self._answer(body, self._plan(body))
            return
        faulty = self.owner.take_fault()
        if script.status is not None and faulty:
            if script.status_body is None:
                self._send_json(script.status, error_body(script.status, "scripted failure"))
            else:
                self._send_page(script.status, script.status_body.encode())
            return
        planned = self._plan(body)
        hang = script.hang if faulty else 0.0
        self._answer(body, planned, hang=hang, faults=True)

    def _answer(
        self,
        body: dict[str, Any],
        planned: list[Planned] | None,
        *,
        hang: float = 0.0,
        faults: bool = False,
    ) -> None:
        """Answer a completion request with `planned`, with the script's faults or without."""
        if planned is None:
            self._send_json(400, error_body(400, "prompt is not the base prompt + a prefix"))
            return
        with self.owner.streaming():
            if hang and self.owner.stopping.wait(hang):
                return
            try:
                if body.get("stream"):
                    self._stream(body, planned, faults)
                else:
                    self._whole(body, planned, faults)
            except OSError:  # the client went away
                self.owner.client_gone.set()
                self.close_connection = True

    def _plan(self, body: dict[str, Any]) -> list[Planned] | None:
        script = self.owner.script
        prompt, n = body.get("prompt"), int(body.get("n") or 1)
        if not isinstance(prompt, str) or not prompt.startswith(script.prompt):
            return None
        done = prompt[len(script.prompt) :]
        stop = body.get("stop") or []
        stops = [stop] if isinstance(stop, str) else list(stop)
        max_tokens = int(body.get("max_tokens") or 16)
        asked = len(self.owner.completions)  # this request is recorded already
        if script.then and asked >= 2:
            text = script.then[min(asked - 2, len(script.then) - 1)]
            return [plan(text, 0, script, max_tokens, stops)]
        if not script.text.startswith(done) or (done and n > 1):
            return None
        return [plan(script.candidate(i), len(done), script, max_tokens, stops) for i in range(n)]

    def _chunk(self, payload: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(payload), payload))

    def _event(self, data: dict[str, Any] | str) -> None:
        text = data if isinstance(data, str) else json.dumps(data)
        self._chunk(f"data: {text}\n\n".encode())

    def _usage(self, body: dict[str, Any], tokens: int) -> dict[str, int]:
        prompt_tokens = len(body["prompt"]) // 4
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": tokens,
            "total_tokens": prompt_tokens + tokens,
        }

    def _whole(self, body: dict[str, Any], planned: list[Planned], faults: bool = True) -> None:
        """The whole completion as one JSON reply, after the time its pieces take."""
        owner = self.owner
        script = owner.script if faults else owner.script.without_faults()
        pieces = max(len(p.pieces) for p in planned)
        drop = script.drop_after if faults and owner.take_drop() else None
        waited = pieces if drop is None else min(drop, pieces)
        if script.delay and owner.stopping.wait(script.delay * waited):
            return
        if script.error_after is not None:
            self._send_json(500, error_body(500, "scripted engine crash"))
            return
        if script.junk_after is not None:
            page = script.junk.lstrip().startswith("<")
            (self._send_page if page else self._send_json)(200, script.junk.encode())
            return
        choices = [
            {"index": i, "text": "".join(p.pieces), "logprobs": None, "finish_reason": p.finish}
            for i, p in enumerate(planned)
        ]
        reply = {"id": "cmpl-test", "object": "text_completion", "created": 0}
        reply.update(model=body["model"], choices=choices, usage=None)
        if script.usage:
            tokens = sum(p.tokens for p in planned)
            reply["usage"] = self._usage(body, tokens)
            owner.usage_sent.append(tokens)
        payload = json.dumps(reply).encode()
        if drop is not None:  # headers and part of the body, then the connection breaks
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self._drop("close" if script.drop_style == "done" else script.drop_style)
            return
        owner.pieces_sent += pieces
        self._send_json(200, payload)

    def _stream(self, body: dict[str, Any], planned: list[Planned], faults: bool = True) -> None:
        owner = self.owner
        script = owner.script if faults else owner.script.without_faults()
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        head = {"id": "cmpl-test", "object": "text_completion", "created": 0}
        head["model"] = body["model"]
        drop = script.drop_after if faults and owner.take_drop() else None
        if drop == 0:
            self._drop(script.drop_style)
            return
        events = interleave(planned, script.finish_separate)
        interval = int(body.get("stream_interval") or 1) if script.stream_interval else 1
        options = body.get("stream_options") or {}
        continuous = script.usage and options.get("continuous_usage_stats") and len(planned) == 1
        if interval > 1 and len(planned) == 1:
            events = group(events, interval)
        generated = 0
        for sent, (index, piece, finish, tokens) in enumerate(events, start=1):
            if script.delay and owner.stopping.wait(script.delay * tokens):
                return
            generated += tokens
            choice = {"index": index, "text": piece, "logprobs": None, "finish_reason": finish}
            usage = self._usage(body, generated) if continuous else None
            self._event({**head, "choices": [choice], "usage": usage})
            owner.pieces_sent += tokens
            if sent == script.junk_after:
                self._chunk(f"data: {script.junk}\n\n".encode())
                self._event("[DONE]")
                self._chunk(b"")
                return
            if sent == script.error_after:
                self._event({"error": {"message": "scripted engine crash", "code": 500}})
                self._event("[DONE]")
                self._chunk(b"")
                return
            if sent == drop:
                self._drop(script.drop_style)
                return
        if script.usage and options.get("include_usage"):
            tokens = sum(p.tokens for p in planned)
            owner.usage_sent.append(tokens)
            self._event({**head, "choices": [], "usage": self._usage(body, tokens)})
        self._event("[DONE]")
        self._chunk(b"")

    def _drop(self, style: str) -> None:
        self.close_connection = True
        if style == "done":
            self._event("[DONE]")
            self._chunk(b"")
            return
        if style == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        else:
            self.connection.shutdown(socket.SHUT_RDWR)


Event = tuple[int, str, "str | None", int]  # index, text, finish reason, tokens


def interleave(planned: list[Planned], separate: bool) -> list[Event]:
    """(index, text, finish, tokens) per event, the candidates taking turns piece by piece."""
    queues = []
    for index, p in enumerate(planned):
        events: list[Event] = [(index, piece, None, 1) for piece in p.pieces]
        if separate or not events:
            events.append((index, "", p.finish, 0))
        else:
            events[-1] = (index, events[-1][1], p.finish, 1)
        queues.append(events)
    out = []
    for step in range(max(len(q) for q in queues)):
        out.extend(q[step] for q in queues if step < len(q))
    return out


def group(events: list[Event], interval: int) -> list[Event]:
    """One candidate's events as vLLM sends them with a stream interval: the first token at
    once, then `interval` tokens per event, the last event (with the finish) at once."""
    out: list[Event] = list(events[:1])
    for index, text, finish, tokens in events[1:]:
        last = out[-1]
        if last[2] is None and len(out) > 1 and last[3] < interval:
            out[-1] = (index, last[1] + text, finish, last[3] + tokens)
        else:
            out.append((index, text, finish, tokens))
    return out


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: ScriptedServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # a client going away is not news
            super().handle_error(request, client_address)


@dataclass
class ScriptedServer:
    """`with ScriptedServer(Script(text=...)) as srv:` serves at `srv.url` until the block ends."""

    script: Script
    requests: list[Recorded] = field(default_factory=list)
    pieces_sent: int = 0
    usage_sent: list[int] = field(default_factory=list)  # completion_tokens of each response
    client_gone: threading.Event = field(default_factory=threading.Event)
    stopping: threading.Event = field(default_factory=threading.Event)
    connections: set[socket.socket] = field(default_factory=set)
    in_flight: int = 0  # completion streams being answered now
    most_in_flight: int = 0  # the most at any one time

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._drops_left = self.script.drops
        self._faults_left = self.script.faults
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None, "the server is not running"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def completions(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.rstrip("/") == "/v1/completions"]

    def take_drop(self) -> bool:
        """Whether this response should drop (uses up one of `script.drops`)."""
        if self.script.drop_after is None:
            return False
        with self._lock:
            if self._drops_left <= 0:
                return False
            self._drops_left -= 1
            return True

    def take_fault(self) -> bool:
        """Whether this request gets the scripted `status` or `hang` (uses up one of `faults`)."""
        with self._lock:
            if self._faults_left is None:
                return True
            if self._faults_left <= 0:
                return False
            self._faults_left -= 1
            return True

    @contextlib.contextmanager
    def streaming(self) -> Iterator[None]:
        """Counts the completion streams in flight while the block runs."""
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            yield
        finally:
            with self._lock:
                self.in_flight -= 1

    def __enter__(self) -> ScriptedServer:
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        assert self._httpd is not None and self._thread is not None
        self._httpd.shutdown()
        for conn in list(self.connections):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()
        self._thread.join(5)
