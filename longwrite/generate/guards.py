"""Guards while writing: catch a loop as it happens, cap runaway thinking.

Why: the model pads toward a length by repeating paragraphs, can fall into a loop that runs to
`max_tokens`, and can think so long that the answer never starts. Best-of's repetition penalty
only notices afterwards, and vLLM's own guards need a recent server with a reasoning parser
and never repair the document. These guards work for every engine while the text streams, and
repair through the same raw-continuation mechanism as length control (`generate.rounds`).

The loop detector (`generate.loops`) judges each table row, list item, code line and prose
paragraph as it completes, telling the same content again from the same template with new
content; a run of repeats worth `LOOP_TOKENS` tokens is a loop. The document is cut back to
where the run began (the start of a paragraph, row or item), so the kept text ends at a line
break and the model carries on afresh; the text cut is kept (`Intervention.text`, the run
log's cuts) so that a wrong cut never loses a user's text.

`GuardSink` sits between the parser and the display: it releases answer text only once it is
before the earliest point a cut could reach, so a pipe or a file never receives a loop; the
text held back (the current paragraph or line, plus any run of repeats) is dropped on a cut,
and released on every other end of the stream (a server error, a dropped connection, Ctrl-C).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from longwrite.defaults import GUARD_RETRIES, THINK_TOKENS
from longwrite.engines.base import FINISH_CANCELLED, FINISH_STOP, Sampling
from longwrite.generate.loops import Loop, LoopDetector
from longwrite.generate.parser import AnswerDelta, Done, Event, ThinkAnswerParser
from longwrite.io.counting import count_words

RESAMPLE_PENALTY = 1.1  # the engine's repetition penalty for a round after a loop
FINISH_GUARD = "guard"  # a round a guard stopped (never a run's final finish reason)
CLOSE_THINKING = "</think> <answer>"  # as the template writes them
THINK_BUDGET = THINK_TOKENS  # one setting: the budget's thinking allowance is the cap
EXCERPT = 80  # characters of the repeated text an intervention quotes


@dataclass(frozen=True)
class Guards:
    """Which guards run: the loop guard (with its retries) and the thinking cap (0: none)."""

    loop: bool = True
    retries: int = GUARD_RETRIES
    think_budget: int = THINK_BUDGET


NO_GUARDS = Guards(loop=False, think_budget=0)


@dataclass(frozen=True)
class Intervention:
    """What a guard did, as `--json` records it.

    `kind`: "loop" (cut and resampled), "loop_kept" (looped again with no retries left: the
    text before the loop is kept), "think_budget" or "answer_not_opened" (thinking closed and
    the answer opened). `at_char`/`at_words`: where, in the answer (in the thinking for the
    thinking guards); `dropped_chars`: characters of the document dropped; `what`: the start
    of the repeated text.
    """

    kind: str
    round: int
    at_char: int
    at_words: int
    dropped_chars: int = 0
    what: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class GuardSink:
    """Wraps the display's sink: answer text goes on only once no cut can reach it.

    Thinking and `Done` pass straight through (`Done` releases everything held). After a
    loop is found, further answer text is held until `cut` is called.
    """

    def __init__(self, sink: Any, detector: LoopDetector | None, earlier: str = "") -> None:
        self.sink = sink
        self.detector = detector
        self.earlier = earlier  # text before this document that a repeat may restate
        self.loop: Loop | None = None
        self._held = ""
        self._released = 0  # answer characters passed on

    def __getattr__(self, name: str) -> Any:  # the display's other methods (message, words)
        return getattr(self.sink, name)

    @property
    def held_chars(self) -> int:
        return len(self._held)

    @property
    def answer_chars(self) -> int:
        return self._released + len(self._held)

    def add_tokens(self, n: int) -> None:
        self.sink.add_tokens(n)

    def handle(self, event: Event) -> None:
        if isinstance(event, AnswerDelta) and self.detector is not None:
            self._held += event.text
            if self.loop is None:
                self.loop = self.detector.feed(event.text)
                if self.loop is None:
                    self._release(self.detector.safe)
            return
        if isinstance(event, Done):
            self._release(self.answer_chars)
        self.sink.handle(event)

    def _release(self, upto: int) -> None:
        n = upto - self._released
        if n > 0:
            self.sink.handle(AnswerDelta(self._held[:n]))
            self._held, self._released = self._held[n:], upto

    def release_held(self) -> str:
        """The stream ended without a `Done` (a fault): pass on everything held but a loop
        found and not cut yet, which is dropped and returned."""
        loop, self.loop = self.loop, None
        upto = self.answer_chars if loop is None else max(loop.cut, self._released)
        self._release(upto)
        dropped, self._held = self._held, ""
        return dropped

    def skip(self, answer: str) -> None:
        """The answer so far is already shown (a resumed run): judge what follows it."""
        self._released = len(answer)
        if self.detector is not None:
            self.detector = LoopDetector.primed(answer, self.earlier)

    def cut(self, kept: str) -> str:
        """Drop the held answer text after `kept` (the answer as it stays); returns it."""
        at = len(kept) - self._released
        dropped, self._held = self._held[at:], self._held[:at]
        self.loop = None
        self.detector = LoopDetector.primed(kept, self.earlier)
        return dropped


def excerpt(text: str) -> str:
    """The start of `text` on one line, for an intervention's `what`."""
    return " ".join(text.split())[:EXCERPT]


class Watch:
    """Per chunk of one document: count the thinking's tokens, pass raw text to the run log
    once the loop guard is past it (the log holds what the document holds), say when to stop.
    """

    def __init__(self, guards: Guards, sink: GuardSink, on_raw: Any = None) -> None:
        self.guards = guards
        self.sink = sink
        self.on_raw = on_raw
        self.think_tokens = 0
        self._pending = ""  # raw text not logged yet
        self._tokens = 0

    def chunk(self, parser: ThinkAnswerParser, text: str, tokens: int) -> bool:
        """Take one chunk (already fed to `parser`); True: stop this request."""
        if parser.phase in ("start", "thinking"):
            self.think_tokens += tokens
        self.raw(text, tokens, parser)
        if self.sink.loop is not None:
            return True
        return self.over_budget(parser)

    def over_budget(self, parser: ThinkAnswerParser) -> bool:
        budget = self.guards.think_budget
        return bool(budget) and parser.phase == "thinking" and self.think_tokens >= budget

    def raw(self, text: str, tokens: int, parser: ThinkAnswerParser | None = None) -> None:
        if self.on_raw is None or not (text or tokens):
            return
        self._pending += text
        self._tokens += tokens
        held = 0
        if parser is not None and parser.phase == "answer":
            held = len(parser.pending) + self.sink.held_chars
        if len(self._pending) > held:
            cut = len(self._pending) - held
            self.on_raw(self._pending[:cut], self._tokens)
            self._pending, self._tokens = self._pending[cut:], 0

    def drop(self, chars: int) -> None:
        """The last `chars` raw characters were cut from the document: never log them."""
        if chars:
            self._pending = self._pending[:-chars]

    def flush(self) -> None:
        if self.on_raw is not None and (self._pending or self._tokens):
            self.on_raw(self._pending, self._tokens)
        self._pending, self._tokens = "", 0


class Document:
    """One document being written: the raw completion so far (as the model sees it when
    continuing), its parser, the guard sink and watch, and what the guards did."""

    def __init__(
        self, guards: Guards, sink: Any, on_raw: Any = None, earlier: str = "", on_cut: Any = None
    ) -> None:
        self.guards = guards
        self.on_cut = on_cut  # (answer offset, text cut): the run log keeps what a cut drops
        self.parser = ThinkAnswerParser()
        self.generated = ""
        detector = LoopDetector(earlier) if guards.loop else None
        self.sink = GuardSink(sink, detector, earlier)
        self.watch = Watch(guards, self.sink, on_raw)
        self.interventions: list[Intervention] = []
        self._loops = 0
        self._reopened = False  # "answer never opened" is repaired once

    def resume(self, raw: str, replay: bool) -> None:
        """Start from a logged run's raw text (its events shown again only with `replay`)."""
        self.generated = raw
        for event in self.parser.feed(raw):
            if replay:
                self.sink.handle(event)
        if not replay:
            self.sink.skip(self.parser.answer)

    def add(self, separator: str) -> None:
        """Raw text longwrite itself writes between rounds (a paragraph break, the tags)."""
        if not separator:
            return
        self.generated += separator
        for event in self.parser.feed(separator):
            self.sink.handle(event)
        self.watch.raw(separator, 0, self.parser)

    def repair(self, finish: str, round_no: int, think: bool) -> str | None:
        """After a round: the guard that acted ("loop", "loop_kept", "think_budget",
        "answer_not_opened"), with the document repaired for the next round; None if none."""
        if self.sink.loop is not None:
            return self._cut_loop(round_no, finish == FINISH_CANCELLED)
        if finish == FINISH_GUARD:
            return self._close_thinking("think_budget", round_no)
        thinking = self.parser.phase == "thinking"
        if finish == FINISH_STOP and think and thinking and not self._reopened:
            self._reopened = True
            return self._close_thinking("answer_not_opened", round_no)
        return None

    def salvage(self, round_no: int) -> None:
        """The stream failed (a server error, a dropped connection): what the parser and the
        guard hold goes to the document and the log, unless it is a loop being cut."""
        for event in self.parser.close(FINISH_STOP):
            if not isinstance(event, Done):
                self.sink.handle(event)
        dropped = self.sink.release_held()
        if dropped:
            self.watch.drop(len(dropped))
            self._record_cut("loop_kept", round_no, self.sink.answer_chars, dropped)
        self.watch.flush()

    def resample(self, sampling: Sampling) -> Sampling:
        """A round after a loop: another seed, and the engine's repetition penalty."""
        seed = None if sampling.seed is None else sampling.seed + self._loops
        return replace(sampling, seed=seed, repetition_penalty=RESAMPLE_PENALTY)

    def _close_thinking(self, kind: str, round_no: int) -> str:
        thinking = self.parser.thinking
        self.interventions.append(
            Intervention(kind, round_no, len(thinking), count_words(thinking))
        )
        if kind == "think_budget":
            self._tell(
                f"longwrite: guard: the thinking reached {self.guards.think_budget:,} tokens "
                "(--think-budget): closed it; the answer follows"
            )
        return kind

    def _record_cut(self, kind: str, round_no: int, at: int, dropped: str) -> int:
        """Record a cut at answer offset `at` (and keep its text in the run log); returns the
        words kept before it."""
        words = count_words(self.parser.answer[:at])
        self.interventions.append(
            Intervention(kind, round_no, at, words, len(dropped), excerpt(dropped))
        )
        if self.on_cut is not None:
            self.on_cut(at, dropped)
        return words

    def _tell(self, text: str) -> None:
        """A line for the reader where the display takes one (the terminal, stderr)."""
        message = getattr(self.sink, "message", None)  # the display's, through GuardSink
        if callable(message):
            message(text)

    def _cut_loop(self, round_no: int, cancelled: bool) -> str:
        loop, old = self.sink.loop, self.parser
        assert loop is not None
        raw_cut = len(self.generated) - len(old.pending) - (len(old.answer) - loop.cut)
        dropped_raw = len(self.generated) - raw_cut
        self.generated = self.generated[:raw_cut]
        self.parser = ThinkAnswerParser()
        self.parser.feed(self.generated)
        kept = self.parser.answer
        dropped = self.sink.cut(kept)
        self.watch.drop(dropped_raw)
        self._loops += 1
        last = cancelled or self._loops > self.guards.retries
        kind = "loop_kept" if last else "loop"
        words = self._record_cut(kind, round_no, len(kept), dropped)
        if kind == "loop":
            self._tell(
                f"longwrite: guard: the text began to repeat itself after {words:,} words; "
                f"dropped {len(dropped):,} characters and writing on with a fresh sample"
            )
        return kind
