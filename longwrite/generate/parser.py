"""Turn the model's text deltas into typed events: thinking, answer, done.

LongWriter-Zero writes `<think>plan</think> <answer>document</answer>`. The stream is cut at
arbitrary places, so a tag may arrive split over several deltas; the parser holds back any
text that could still change meaning and emits everything else at once. `</answer>` is a stop
string, so the closing tag is normally missing; `<think>` may be missing too, and a stream
with no tags at all is all answer.

The template itself names the tags, so a plan often quotes them ("then the essay goes inside
<answer> tags, after </think>"). A quoted tag must stay thinking: otherwise the rest of the
plan is printed as the document. So a tag inside the thinking ends it only where a real
boundary stands, judged by what surrounds the tag, never by where the deltas were cut.

Rules
-----
* Start: leading whitespace is skipped. The first `<think>` or `<answer>` that begins within
  the first `PREAMBLE` characters opens its segment; text before it ("Sure. <think>") is a
  preamble, kept as thinking (it is not the document). With no such tag the whole output is
  answer (untagged), decided once `PREAMBLE` characters have passed without one.
* Thinking ends at a *structural* `</think>`: one followed, after optional whitespace, by
  `<answer>` or `<think>`, or by a line break before any other text, or by the end of the
  output. A `</think>` with other text after it on its line is quoted: it stays thinking.
  Thinking also ends at an `<answer>` at the start of a line (only spaces or tabs before it
  on its line; a model may skip `</think>`); an `<answer>` inside a line is quoted.
* After a structural `</think>`, whitespace is skipped and an `<answer>` tag is consumed if it
  follows (the rest is answer either way); a second `<think>` opens more thinking (a malformed
  transcript, marked as such in `shape`).
* Answer (tagged or not) ends at `</answer>`; whatever follows is dropped (phase "after"), and
  `shape.trailing` says whether it held anything but whitespace. Inside the answer every other
  tag is content.
* Leading whitespace of the thinking and of the answer is dropped (`<answer>\\n# Title`); all
  other whitespace is kept, including trailing whitespace before `</think>`.
* Everything that is not one of these tags in one of these places is content: `a < b`,
  `<thinking>`, `<answers>`, a stray `</think` pass through intact.

Streaming
---------
`feed` holds back only what is still undecided: at the start, up to `PREAMBLE` + 8
characters; in the thinking, a `</think>` until the next non-blank character or line break
shows whether it is structural, and a suffix that could still become a tag (at most 8
characters); in the answer, a possible `</answer>` prefix. Everything else is emitted at once,
as events merged so that consecutive pieces of one kind form one event. `close` decides what
was held back as at the end of the output and then emits exactly one `Done`. Work per `feed`
is O(len(delta) + held), and `thinking`/`answer` are lists of parts joined lazily.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class ThinkDelta:
    text: str


@dataclass(frozen=True)
class AnswerDelta:
    text: str


@dataclass(frozen=True)
class Done:
    finish_reason: str | None


Event = ThinkDelta | AnswerDelta | Done

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"
ANSWER_OPEN = "<answer>"
ANSWER_CLOSE = "</answer>"
PREAMBLE = 200  # characters of text before the first tag that still count as a preamble


@dataclass(frozen=True)
class Shape:
    """How a transcript was laid out: what the format reward checks.

    `answer_opened` is "tag" (an `<answer>` right after a structural `</think>`, or at the
    start), "line" (an `<answer>` at the start of a line inside the thinking, `</think>`
    missing), "untagged", or None (no answer began).
    """

    preamble: bool = False
    think_blocks: int = 0
    think_closed: bool = False
    answer_opened: str | None = None
    answer_closed: bool = False
    trailing: bool = False

    @property
    def well_formed(self) -> bool:
        """Exactly `<think>...</think> <answer>...`, nothing before, nothing after."""
        return (
            not self.preamble
            and self.think_blocks == 1
            and self.think_closed
            and self.answer_opened == "tag"
            and not self.trailing
        )


# Internal states. `_AFTER_THINK` (between `</think>` and the answer) reports phase "answer".
_START = 0
_THINKING = 1
_AFTER_THINK = 2
_ANSWER = 3
_AFTER = 4

_PHASES = {
    _START: "start",
    _THINKING: "thinking",
    _AFTER_THINK: "answer",
    _ANSWER: "answer",
    _AFTER: "after",
}

_START_TAGS = (THINK_OPEN, ANSWER_OPEN)
_AFTER_THINK_TAGS = (ANSWER_OPEN, THINK_OPEN)
_THINKING_TAGS = (THINK_CLOSE, ANSWER_OPEN)
_MAX_HELD = max(len(t) for t in (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)) - 1
_BLANK = " \t"

# What a `</think>` turns out to be, given the text after it.
_QUOTED, _STRUCTURAL, _UNDECIDED = 0, 1, 2


def _partial_tag_len(buf: str, tags: tuple[str, ...]) -> int:
    """Length of the longest suffix of `buf` that is a proper prefix of one of `tags`.

    Every tag starts with `<`, so only suffixes starting at a `<` among the last `_MAX_HELD`
    characters are candidates. The caller has already ruled out whole tags in `buf`.
    """
    n = len(buf)
    i = buf.find("<", max(0, n - _MAX_HELD))
    while i != -1:
        tail = buf[i:]
        if any(tag.startswith(tail) for tag in tags):
            return n - i
        i = buf.find("<", i + 1)
    return 0


def _first_tag(buf: str, tags: tuple[str, ...]) -> tuple[int, str]:
    """Position and text of the earliest of `tags` in `buf`, or (-1, "")."""
    best, found = -1, ""
    for tag in tags:
        i = buf.find(tag)
        if i != -1 and (best == -1 or i < best):
            best, found = i, tag
    return best, found


def _after_close(rest: str, final: bool) -> int:
    """Is a `</think>` followed by `rest` structural, quoted, or not yet decidable?"""
    stripped = rest.lstrip()
    if "\n" in rest[: len(rest) - len(stripped)]:
        return _STRUCTURAL  # a line break before any other text
    if not stripped:
        return _STRUCTURAL if final else _UNDECIDED
    if any(stripped.startswith(tag) for tag in _AFTER_THINK_TAGS):
        return _STRUCTURAL
    if any(tag.startswith(stripped) for tag in _AFTER_THINK_TAGS):
        return _STRUCTURAL if final else _UNDECIDED  # "</think> <ans": wait for the rest
    return _QUOTED


class ThinkAnswerParser:
    """Incremental `<think>...</think> <answer>...</answer>` splitter; see the module docs.

    >>> p = ThinkAnswerParser()
    >>> p.feed("<think>plan: use <answer> tags</th") + p.feed("ink>\\n<answer>\\nDoc") + p.close("stop")
    [ThinkDelta(text='plan: use <answer> tags'), AnswerDelta(text='Doc'), Done(finish_reason='stop')]
    """  # noqa: E501

    def __init__(self) -> None:
        self._state = _START
        self._skip_ws = True  # drop whitespace until the current segment's first character
        self._held = ""  # undecided text, fed again with the next delta
        self._closed = False
        self._line_blank = True  # the thinking so far ends at the start of a line
        self._think_parts: list[str] = []
        self._answer_parts: list[str] = []
        self._think_cache: str | None = ""
        self._answer_cache: str | None = ""
        self._shape = Shape()

    # -- public API -------------------------------------------------------------------------

    @property
    def thinking(self) -> str:
        """All thinking text emitted so far."""
        if self._think_cache is None:
            self._think_cache = "".join(self._think_parts)
            self._think_parts = [self._think_cache] if self._think_cache else []
        return self._think_cache

    @property
    def answer(self) -> str:
        """All answer text emitted so far."""
        if self._answer_cache is None:
            self._answer_cache = "".join(self._answer_parts)
            self._answer_parts = [self._answer_cache] if self._answer_cache else []
        return self._answer_cache

    @property
    def phase(self) -> str:
        """One of "start", "thinking", "answer", "after" (`</answer>` seen, rest dropped)."""
        return _PHASES[self._state]

    @property
    def pending(self) -> str:
        """The raw text fed but not yet emitted (a possible tag, still undecided)."""
        return self._held

    @property
    def shape(self) -> Shape:
        """The layout seen so far (complete after `close`)."""
        return self._shape

    def feed(self, text: str) -> list[Event]:
        """Take one text delta; return the events that can be decided on now."""
        if self._closed:
            raise ValueError("feed() after close()")
        out: list[Event] = []
        if text:
            buf, self._held = self._held + text, ""
            self._run(buf, out, final=False)
        return out

    def close(self, finish_reason: str | None) -> list[Event]:
        """End of stream: decide the held-back text, then emit exactly one `Done`."""
        if self._closed:
            raise ValueError("close() called twice")
        self._closed = True
        out: list[Event] = []
        held, self._held = self._held, ""
        if held:
            self._run(held, out, final=True)
        out.append(Done(finish_reason))
        return out

    # -- internals --------------------------------------------------------------------------

    def _emit(self, out: list[Event], kind: type[ThinkDelta | AnswerDelta], text: str) -> None:
        """Record `text` and add it to `out`, merged into the last event if of the same kind."""
        if not text:
            return
        if kind is ThinkDelta:
            self._think_parts.append(text)
            self._think_cache = None
            nl = text.rfind("\n")
            self._line_blank = (nl != -1 or self._line_blank) and not text[nl + 1 :].strip(_BLANK)
        else:
            self._answer_parts.append(text)
            self._answer_cache = None
        last = out[-1] if out else None
        if isinstance(last, ThinkDelta | AnswerDelta) and type(last) is kind:
            out[-1] = kind(last.text + text)
        else:
            out.append(kind(text))

    def _enter(self, state: int) -> None:
        self._state = state
        self._skip_ws = True
        if state == _THINKING:
            self._note(think_blocks=self._shape.think_blocks + 1)
            self._line_blank = True

    def _note(self, **changes: object) -> None:
        self._shape = replace(self._shape, **changes)  # type: ignore[arg-type]

    def _open_answer(self, how: str) -> None:
        self._enter(_ANSWER)
        self._note(answer_opened=how)

    def _run(self, buf: str, out: list[Event], *, final: bool) -> None:
        """Consume `buf` (held-back text + new delta), emitting into `out`.

        Each pass either finishes (emitting content and holding back what is undecided) or
        consumes a tag and switches state; there are a handful of switches per stream.
        """
        while buf:
            state = self._state
            if state == _AFTER:
                if buf.strip():
                    self._note(trailing=True)
                return
            if self._skip_ws:
                buf = buf.lstrip()
                if not buf:
                    return
                self._skip_ws = False  # buf starts with content or a tag
            if state == _START:
                buf = self._start(buf, out, final)
            elif state == _AFTER_THINK:
                buf = self._after_think(buf, out, final)
            elif state == _THINKING:
                buf = self._thinking(buf, out, final)
            else:
                buf = self._answer(buf, out, final)

    def _start(self, buf: str, out: list[Event], final: bool) -> str:
        i, tag = _first_tag(buf[: PREAMBLE + len(ANSWER_OPEN)], _START_TAGS)
        if i != -1 and i <= PREAMBLE:
            if i:
                self._note(preamble=True)
                self._emit(out, ThinkDelta, buf[:i])
            if tag == THINK_OPEN:
                self._enter(_THINKING)
            else:
                self._open_answer("tag")
            return buf[i + len(tag) :]
        if final or len(buf) >= PREAMBLE + len(ANSWER_OPEN):
            self._open_answer("untagged")
            return buf
        self._held = buf  # a tag may still begin within the preamble
        return ""

    def _after_think(self, buf: str, out: list[Event], final: bool) -> str:
        for tag in _AFTER_THINK_TAGS:
            if buf.startswith(tag):
                if tag == ANSWER_OPEN:
                    self._open_answer("tag")
                else:  # a second thinking block: malformed, but it is still thinking
                    self._emit(out, ThinkDelta, "\n\n")
                    self._enter(_THINKING)
                return buf[len(tag) :]
        if not final and any(tag.startswith(buf) for tag in _AFTER_THINK_TAGS):
            self._held = buf  # too short to tell yet
            return ""
        self._open_answer("untagged")
        return buf

    def _line_start_answer(self, buf: str, start: int, end: int) -> int:
        """Index of the first `<answer>` in buf[start:end] that begins a line, or -1."""
        i = buf.find(ANSWER_OPEN, start, end)
        while i != -1:
            nl = buf.rfind("\n", 0, i)
            before = buf[nl + 1 : i]
            if not before.strip(_BLANK) and (nl != -1 or self._line_blank):
                return i
            i = buf.find(ANSWER_OPEN, i + 1, end)
        return -1

    def _thinking(self, buf: str, out: list[Event], final: bool) -> str:
        pos = 0
        while True:
            close = buf.find(THINK_CLOSE, pos)
            answer = self._line_start_answer(buf, pos, len(buf) if close == -1 else close)
            if answer != -1:
                self._emit(out, ThinkDelta, buf[:answer])
                self._open_answer("line")
                return buf[answer + len(ANSWER_OPEN) :]
            if close == -1:
                break
            verdict = _after_close(buf[close + len(THINK_CLOSE) :], final)
            if verdict == _QUOTED:
                pos = close + 1
                continue
            self._emit(out, ThinkDelta, buf[:close])
            if verdict == _UNDECIDED:
                self._held = buf[close:]
                return ""
            self._note(think_closed=True)
            self._enter(_AFTER_THINK)
            return buf[close + len(THINK_CLOSE) :]
        h = 0 if final else _partial_tag_len(buf, _THINKING_TAGS)
        self._emit(out, ThinkDelta, buf[: len(buf) - h])
        self._held = buf[len(buf) - h :]
        return ""

    def _answer(self, buf: str, out: list[Event], final: bool) -> str:
        i = buf.find(ANSWER_CLOSE)
        if i != -1:
            self._emit(out, AnswerDelta, buf[:i])
            self._state = _AFTER
            self._note(answer_closed=True)
            return buf[i + len(ANSWER_CLOSE) :]
        h = 0 if final else _partial_tag_len(buf, (ANSWER_CLOSE,))
        self._emit(out, AnswerDelta, buf[: len(buf) - h])
        self._held = buf[len(buf) - h :]
        return ""


def parse_transcript(text: str) -> ThinkAnswerParser:
    """A closed parser that has read the whole transcript `text`."""
    parser = ThinkAnswerParser()
    parser.feed(text)
    parser.close(None)
    return parser


def split_think_answer(text: str) -> tuple[str, str]:
    """Split a whole transcript into (thinking, answer), by the same rules as the parser."""
    parser = parse_transcript(text)
    return parser.thinking, parser.answer
