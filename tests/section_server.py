"""A scripted model server on 127.0.0.1 that plans, then writes sections, like LongWriter-Zero.

Speaks the OpenAI completions protocol (`GET /v1/models`, streaming `POST /v1/completions`)
and behaves like the model would on the three kinds of prompt `generate.sections` sends:
- the think template alone (the plan): `<think>` with a plan whose outline style is chosen by
  `plan` ("numbered": "1. Title (N words)" lines, "headings": `## Title`, "none": prose only),
  then `</think> <answer>` and a document; like vLLM it trims at stop strings (`<answer>`);
- our outline prompt (English or Chinese): Markdown headings with counts, or prose when
  `outline="none"`; our title prompt: one line;
- a section (the prompt ends in a planned heading, maybe with text after it: a continuation):
  distinct paragraphs (words drawn from the heading and paragraph number), about `share` of
  the section's planned words, then the next planned heading (the client's stop string).
It enforces a context: prompt tokens (one per 4 characters) + max_tokens above
`context` is answered HTTP 400, as vLLM does. One token is one word of output. With `delay`
it paces each stream against the clock (an event every `delay` seconds, however busy the
server is), and it keeps when each completion began and ended (`Model.spans`, for benches).
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
TOPICS = ["Origins", "Mechanisms", "Evidence", "Cities", "Policy", "Costs", "People",
          "Futures", "Methods", "Limits", "Cases", "Outlook"]  # fmt: skip


ANSWER = "</think> <answer>\n"  # where a section prompt's plan ends and its document starts


def plan_of(prompt: str) -> str:
    if ANSWER not in prompt:  # --no-think: the direct template, no plan
        return ""
    return prompt.split(ANSWER, 1)[0].rsplit("<think>", 1)[1]


def body_of(prompt: str) -> str:
    """The document in a section prompt (after the plan, or the direct template's <answer>)."""
    if ANSWER in prompt:
        return prompt.split(ANSWER, 1)[1]
    return prompt.split("<answer>\n", 1)[1]


def _last_section(body: str) -> tuple[str, str]:
    """The heading being written and the text under it so far."""
    heads = list(re.finditer(r"^## (.+)\n\n", body, re.M))
    return heads[-1].group(1), body[heads[-1].end() :]


def word(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))


def paragraph(heading: str, index: int, words: int = 60) -> str:
    rng = random.Random(f"{heading}/{index}")
    return " ".join(word(rng) for _ in range(words)) + "."


def target_of(prompt: str) -> int:
    m = re.search(r"(\d{1,3}(?:,\d{3})+|\d+)-word", prompt)
    return int(m.group(1).replace(",", "")) if m else 3000


def outline(target: int, style: str) -> list[tuple[str, int]]:
    n = max(2, -(-target // 6000))
    return [(f"{TOPICS[k % len(TOPICS)]} {k + 1}", target // n) for k in range(n)]


@dataclass
class Model:
    plan: str = "numbered"  # numbered | headings | none, or a whole plan (thinking) to use
    outline: str = "headings"  # headings | none
    share: float = 0.97  # of a section's planned words, written before the next heading
    delay: float = 0.0  # seconds between events (time to kill a client mid-section)
    repeat: tuple[int, ...] = ()  # candidates (of n) that restate the text before them
    heeds_penalty: bool = False  # a request with a repetition penalty is written afresh
    context: int = 32768
    restate: str = ""  # "" | "##" | "###" | "**": how a section restates its own heading
    later: str = "##"  # "##" | "###" | "**": the form of the next heading a section writes
    title: str = "The Heat Beneath Our Feet"  # the reply to the title prompt
    plan_gate: threading.Event | None = None  # the plan's reply waits for it (a kill meanwhile)
    echo: dict[str, str] = field(default_factory=dict)  # heading -> heading it writes again
    seam: bool = False  # a section opens with the last paragraph of the one before it
    fail: bool = False  # every completion is HTTP 500 (a broken server among several)
    jitter: float = 0.0  # up to this many seconds before a section's reply (random order)
    prompts: list[str] = field(default_factory=list)
    spans: list[tuple[float, float]] = field(default_factory=list)  # each completion's times
    rejected: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def plan_text(self, prompt: str) -> str:
        if self.plan not in ("numbered", "headings", "none"):  # a plan as a model wrote it
            return f"<think>{self.plan}</think> <answer>\n# Draft\n\n{paragraph('x', 0)}"
        target = target_of(prompt)
        parts = outline(target, self.plan)
        lines = ["Let me plan this carefully. The reader wants depth and structure."]
        for k, (title, words) in enumerate(parts, 1):
            if self.plan == "numbered":
                lines.append(f"{k}. {title} ({words:,} words)")
            elif self.plan == "headings":
                lines.append(f"## {title}")
        lines.append("I will keep each part distinct and avoid repeating myself.")
        body = "\n".join(lines)
        return f"<think>{body}</think> <answer>\n## {parts[0][0]}\n\n{paragraph('x', 0)}"

    def outline_text(self, prompt: str) -> str:
        m = re.search(r"exactly (\d+) sections|正好 (\d+) 个部分", prompt)
        n = int(m.group(1) or m.group(2)) if m else 3
        if self.outline == "none":
            return "I am not sure how to structure this."
        target = target_of(re.split("Request:|写作要求：", prompt, maxsplit=1)[1])
        return "".join(f"## Topic {k} ({target // n} words)\n" for k in range(1, n + 1))

    def section_text(
        self,
        prompt: str,
        min_tokens: int,
        index: int = 0,
        penalised: bool = False,
        seed: int | None = None,
    ) -> str:
        body = body_of(prompt)
        heading, written = _last_section(body)
        nxt = self._next_heading(prompt, heading)
        head = {"##": f"## {nxt}", "###": f"### 2. {nxt}", "**": f"**{nxt}**"}[self.later]
        tail = f"\n\n{head}\n\nMore text." if nxt else "</answer>"
        again = ""
        if self.restate and not written.strip():
            again = (
                f"**{heading}**\n\n" if self.restate == "**" else f"{self.restate} {heading}\n\n"
            )
        earlier = [p for p in re.split(r"\n\n", body) if len(p.split()) > 20]
        restate = index in self.repeat and not (self.heeds_penalty and penalised)
        if restate and earlier:  # restate the recent text, as a padding model does
            want = int(self._planned(prompt, heading) * self.share)
            paras = [earlier[i % len(earlier)] for i in range(max(want // 60, 1))]
            return again + "\n\n".join(paras) + tail
        if index:
            heading = f"{heading}#{index}"
        if self.jitter and not written.strip():
            time.sleep(random.Random(heading).uniform(0, self.jitter))
        source = heading
        if heading in self.echo and not (self.heeds_penalty and penalised):
            source = self.echo[heading]  # the same paragraphs as another section
        revision = re.search(r"Revision of part \d+.*", plan_of(prompt))
        if revision:  # `revise`: other paragraphs for each instruction and seed
            source = f"{source}/{revision.group(0)}/{seed}"
        fresh = self._paragraphs(source, int(self._planned(prompt, heading) * self.share), 0)
        previous = self._previous_heading(prompt, heading)
        if self.seam and previous:  # the previous ending, again
            ending = self._paragraphs(
                previous, int(self._planned(prompt, previous) * self.share), 0
            )
            fresh = ending.rsplit("\n\n", 1)[-1] + "\n\n" + fresh
        if fresh.startswith(written) and len(written) < len(fresh):  # cut off: carry on
            return again + fresh[len(written) :] + tail
        want = max(int(self._planned(prompt, heading) * self.share) - len(written.split()),
                   min_tokens, 0)  # fmt: skip
        start = len(re.findall(r"\.\s*(?:\n\n|$)", written))
        return again + self._paragraphs(heading, want, start) + tail

    @staticmethod
    def _paragraphs(heading: str, words: int, start: int) -> str:
        paras: list[str] = []
        while sum(len(p.split()) for p in paras) < words:
            paras.append(paragraph(heading, start + len(paras)))
        return "\n\n".join(paras)

    def _planned(self, prompt: str, heading: str) -> int:
        plan = plan_of(prompt)
        m = re.search(re.escape(heading) + r" \((\d[\d,]*) words\)", plan)
        if m:
            return int(m.group(1).replace(",", ""))
        return 1000  # an outline we did not write: the client's budget decides

    def _previous_heading(self, prompt: str, heading: str) -> str | None:
        outline = plan_of(prompt).rsplit("Outline:", 1)[-1]
        titles = re.findall(r"^## (.+?) \([\d,]+ words\)$", outline, re.M)
        i = titles.index(heading) if heading in titles else 0
        return titles[i - 1] if i > 0 else None

    def _next_heading(self, prompt: str, heading: str) -> str | None:
        """The heading after `heading` in the outline the thinking ends with."""
        outline = plan_of(prompt).rsplit("Outline:", 1)[-1]
        titles = re.findall(r"^## (.+?) \([\d,]+ words\)$", outline, re.M)
        i = titles.index(heading) if heading in titles else len(titles)
        return titles[i + 1] if i + 1 < len(titles) else None

    def reply(self, prompt: str, body: dict[str, Any], index: int = 0) -> str:
        if prompt.rstrip().endswith(("Outline:", "大纲：")):
            return self.outline_text(prompt)
        if prompt.rstrip().endswith(("Further sections:", "接下来的部分：")):
            m = re.search(r"exactly (\d+) further|正好 (\d+) 个部分", prompt)
            k = int(m.group(1) or m.group(2)) if m else 1
            return "".join(f"## Further topic {i} (1,000 words)\n" for i in range(1, k + 1))
        if prompt.rstrip().endswith(("Title:", "标题：")):
            return f" {self.title}\n"
        if prompt.rstrip().endswith(("<|assistant|>:", "<|助手|>:")):
            if self.plan_gate is not None:
                self.plan_gate.wait(60)
            return self.plan_text(prompt)
        penalised = float(body.get("repetition_penalty") or 1.0) > 1.0
        min_tokens = int(body.get("min_tokens") or 0)
        return self.section_text(prompt, min_tokens, index, penalised, body.get("seed"))


def _cut(text: str, stops: list[str]) -> tuple[str, bool]:
    at = [text.find(s) for s in stops if s and s in text]
    return (text[: min(at)], True) if at else (text, False)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, *args: Any) -> None:
        pass

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        model = self.server.model
        entry = {"id": "lw-test", "object": "model", "max_model_len": model.context}
        self._json(200, {"object": "list", "data": [entry]})

    def do_POST(self) -> None:
        start = time.monotonic()
        try:
            self._complete()
        finally:
            with self.server.model.lock:
                self.server.model.spans.append((start, time.monotonic()))

    def _complete(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        model: Model = self.server.model
        prompt, max_tokens = body["prompt"], int(body.get("max_tokens") or 16)
        with model.lock:
            model.prompts.append(prompt)
        if model.fail:
            error = {"message": "the engine is overloaded", "type": "InternalError", "code": 500}
            self._json(500, {"error": error})
            return
        if -(-len(prompt) // 4) + max_tokens > model.context:
            model.rejected += 1
            message = f"This model's maximum context length is {model.context} tokens."
            error = {"message": message, "type": "BadRequestError", "code": 400}
            self._json(400, {"error": error})
            return
        replies = []
        for index in range(int(body.get("n") or 1)):
            text, stopped = _cut(model.reply(prompt, body, index), list(body.get("stop") or []))
            words = re.findall(r"\S+\s*|\s+", text)
            finish = "stop" if stopped or len(words) <= max_tokens else "length"
            replies.append((words[:max_tokens], finish))
        if not body.get("stream"):  # a whole completion, as `batch` asks by default
            choices = [{"index": i, "text": "".join(w), "finish_reason": f, "logprobs": None}
                       for i, (w, f) in enumerate(replies)]  # fmt: skip
            used = sum(len(w) for w, _ in replies)
            usage = {"prompt_tokens": len(prompt) // 4, "completion_tokens": used,
                     "total_tokens": len(prompt) // 4 + used}  # fmt: skip
            reply = {"id": "c", "object": "text_completion", "created": 0, "model": body["model"]}
            self._json(200, {**reply, "choices": choices, "usage": usage})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        due = time.monotonic()
        for index, (words, finish) in enumerate(replies):
            for i in range(0, len(words), 16):
                if model.delay:  # paced against the clock: the server's own work is not added
                    due += model.delay
                    time.sleep(max(due - time.monotonic(), 0.0))
                last = i + 16 >= len(words)
                self._event(body, "".join(words[i : i + 16]), finish if last else None, index)
            if not words:
                self._event(body, "", finish, index)
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")

    def _event(self, body: dict[str, Any], text: str, finish: str | None, index: int) -> None:
        choice = {"index": index, "text": text, "finish_reason": finish, "logprobs": None}
        event = {"id": "c", "object": "text_completion", "model": body["model"],
                 "created": 0, "choices": [choice]}  # fmt: skip
        self._chunk(f"data: {json.dumps(event)}\n\n".encode())

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


class _Quiet(ThreadingHTTPServer):
    """A client that stops reading (a section ended early, a killed run) is not an error."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class SectionServer:
    """`with SectionServer(Model(...)) as s:` then point `--server s.url` at it."""

    def __init__(self, model: Model | None = None) -> None:
        self.model = model or Model()
        self._http = _Quiet(("127.0.0.1", 0), _Handler)
        self._http.daemon_threads = True
        self._http.model = self.model  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}/v1"

    def __enter__(self) -> SectionServer:
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()
