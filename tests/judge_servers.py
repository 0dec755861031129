"""A scripted judge on loopback, over the chat endpoint and the raw completions endpoint.

`reply(prompt) -> text | int | bytes | dict`: the judge's reply text to the prompt it was
sent (the user's message on /v1/chat/completions, the raw prompt on /v1/completions), an HTTP
status to fail with, bytes to send as the body of a 200 that is not JSON, or a dict sent as
the whole JSON body of a 200 (a reply of another shape: `{"choices": [5]}`). Replies on the chat
endpoint are one JSON body, as vLLM sends without `stream`; on the completions endpoint they
stream as server-sent events (`sse_server`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sse_server import Script, ScriptedServer, _Handler, _HTTPServer, error_body, plan

Reply = Callable[[str], "str | int | bytes | dict"]


class _JudgeHandler(_Handler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        self._record(body)
        owner: ChatJudge = self.owner  # type: ignore[assignment]
        path = self.path.rstrip("/")
        if path == "/v1/chat/completions":
            prompt = body["messages"][-1]["content"]
        elif path == "/v1/completions":
            prompt = body.get("prompt", "")
        else:
            self._send_json(404, error_body(404, f"no route {self.path}"))
            return
        owner.note(path, prompt)
        if owner.delay:
            time.sleep(owner.delay)
        text = owner.reply(prompt)
        if isinstance(text, int):
            self._send_json(text, error_body(text, "the judge failed"))
            return
        if isinstance(text, bytes):  # a proxy's page, sent as 200 where JSON was due
            self._send_page(200, text)
            return
        if isinstance(text, dict):  # JSON, but not a completion
            self._send_json(200, json.dumps(text).encode())
            return
        try:
            if path.endswith("/chat/completions"):
                message = {"role": "assistant", "content": text}
                choice = {"index": 0, "message": message, "finish_reason": "stop"}
                payload = {"id": "c", "object": "chat.completion", "created": 0,
                           "model": body.get("model"), "choices": [choice]}  # fmt: skip
                self._send_json(200, json.dumps(payload).encode())
            else:
                self._stream(body, [plan(text, 0, owner.script, 10_000, [])])
        except OSError:
            self.close_connection = True


@dataclass
class ChatJudge(ScriptedServer):
    """`with ChatJudge(Script(), reply=...) as judge:` serves at `judge.url`."""

    reply: Reply = field(default=lambda prompt: "")
    delay: float = 0.0
    asked: list[tuple[str, str]] = field(default_factory=list)  # (path, prompt)

    def note(self, path: str, prompt: str) -> None:
        with self._lock:
            self.asked.append((path, prompt))

    def __enter__(self) -> ChatJudge:
        self._httpd = _HTTPServer(("127.0.0.1", 0), _JudgeHandler)
        self._httpd.owner = self
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self


def judge(reply: Reply, script: Script | None = None, **kw: object) -> ChatJudge:
    return ChatJudge(script or Script(), reply=reply, **kw)  # type: ignore[arg-type]
