"""Guards while writing: catch a loop as it happens, cap runaway thinking.

Why: the model pads toward a length by repeating paragraphs, can fall into a loop that runs to
`max_tokens`, and can think so long that the answer never starts. Best-of's repetition penalty
only notices afterwards, and vLLM's own guards need a recent server with a reasoning parser
and never repair the document. These guards work for every engine while the text streams, and
repair through the same raw-continuation mechanism as length control (`generate.rounds`).

The loop detector is `scoring.rewards.repetition_penalty` made incremental: the same tokens,
shingles, paragraph units (cut into chunks of `MAX_UNIT` tokens as they fill, rather than
near-equal chunks once the paragraph's length is known) and containment in everything seen
so far. A unit whose containment reaches `RAMP_HIGH` (the penalty's "wholly repeated") is a
repeat; a run of consecutive repeats of `LOOP_TOKENS` tokens or more is a loop. One repeated
quote, heading or templated paragraph is not: it takes about 190 words of repetition in
a row (at 100 tokens, templated API docs in the stdlib corpus raised false alarms). The
document is cut back to the start of the paragraph where the run began (the end of the last
paragraph before the loop), so the cut text ends with a paragraph break and the model carries
on afresh.

`GuardSink` sits between the parser and the display: it releases answer text only once it is
before the earliest point a cut could reach, so a pipe or a file never receives a loop; the
text held back (the current paragraph, plus any run of repeats) is dropped on a cut.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from typing import Any

from longwrite.defaults import GUARD_RETRIES, THINK_TOKENS
from longwrite.engines.base import FINISH_CANCELLED, FINISH_STOP, Sampling
from longwrite.generate.parser import AnswerDelta, Done, Event, ThinkAnswerParser
from longwrite.io.counting import count_words
from longwrite.scoring.rewards import (
    CJK_SHINGLE,
    MAX_UNIT,
    PARAGRAPH_BREAK_RE,
    RAMP_HIGH,
    TOKEN_RE,
    WORD_SHINGLE,
)

LOOP_TOKENS = 2 * MAX_UNIT  # tokens of consecutive wholly-repeated units that make a loop
RESAMPLE_PENALTY = 1.1  # the engine's repetition penalty for a round after a loop
FINISH_GUARD = "guard"  # a round a guard stopped (never a run's final finish reason)
CLOSE_THINKING = "</think> <answer>"  # as the template writes them
THINK_BUDGET = THINK_TOKENS  # one setting: the budget's thinking allowance is the cap
EXCERPT = 80  # characters of the repeated text an intervention quotes

_PARTIAL_WORD = re.compile(r"[A-Za-z]+\Z")  # a word the next delta may still continue


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


@dataclass(frozen=True)
class Loop:
    """A loop found: cut the answer back to `cut` (a paragraph start)."""

    cut: int


class LoopDetector:
    """`repetition_penalty`'s measure, fed the answer text piece by piece; O(1) per character.

    `feed` returns a `Loop` once a run of wholly repeated units reaches `LOOP_TOKENS` tokens.
    `safe` is the answer offset before which no later cut can reach.
    """

    def __init__(self, earlier: str = "") -> None:
        self._seen: set[tuple[str, ...]] = set()
        self._para = ""  # the current paragraph's text so far
        self._para_start = 0  # its offset in the answer
        self._tokenised = 0  # characters of `_para` already tokenised
        self._unit: list[str] = []  # tokens of the current unit, not judged yet
        self._streak = 0  # tokens of consecutive wholly repeated units
        self._streak_start = 0  # the paragraph start where that run began
        for paragraph in PARAGRAPH_BREAK_RE.split(earlier):  # text before this document
            tokens = TOKEN_RE.findall(paragraph.lower())
            for i in range(0, len(tokens), MAX_UNIT):
                self._seen |= _shingles(tokens[i : i + MAX_UNIT])

    @classmethod
    def primed(cls, text: str, earlier: str = "") -> LoopDetector:
        """A detector that has read `text` (an answer kept so far), reporting nothing;
        `earlier`: text before the answer that repeating counts against (earlier sections)."""
        detector = cls(earlier)
        detector.feed(text)
        detector._streak = 0
        return detector

    @property
    def safe(self) -> int:
        return self._streak_start if self._streak else self._para_start

    def feed(self, text: str) -> Loop | None:
        found: Loop | None = None
        scan = max(0, len(self._para) - 64)  # a break may have begun in the last delta
        self._para += text
        while True:
            m = PARAGRAPH_BREAK_RE.search(self._para, scan)
            if m is None:
                break
            found = self._tokenise(m.start(), final=True) or found
            found = self._judge_unit() or found
            self._para_start += m.end()
            self._para, self._tokenised, scan = self._para[m.end() :], 0, 0
        return self._tokenise(len(self._para), final=False) or found

    def _tokenise(self, end: int, *, final: bool) -> Loop | None:
        """Tokens of `_para[_tokenised:end]` into units (a word at the end may still grow)."""
        if not final:
            partial = _PARTIAL_WORD.search(self._para, self._tokenised, end)
            end = partial.start() if partial else end
        if end <= self._tokenised:
            return None
        self._unit += TOKEN_RE.findall(self._para[self._tokenised : end].lower())
        self._tokenised = end
        found = None
        while len(self._unit) >= MAX_UNIT:
            unit, self._unit = self._unit[:MAX_UNIT], self._unit[MAX_UNIT:]
            found = self._judge(unit) or found
        return found

    def _judge_unit(self) -> Loop | None:
        unit, self._unit = self._unit, []
        return self._judge(unit)

    def _judge(self, unit: list[str]) -> Loop | None:
        shingles = _shingles(unit)
        if not shingles:
            return None  # too short to judge (a heading): neither breaks nor extends a run
        count = len(unit) - len(next(iter(shingles))) + 1  # with repeats
        new = shingles - self._seen
        self._seen |= new
        if (count - len(new)) / count < RAMP_HIGH:
            self._streak = 0
            return None
        if not self._streak:
            self._streak_start = self._para_start
        self._streak += len(unit)
        return Loop(self._streak_start) if self._streak >= LOOP_TOKENS else None


def _shingles(unit: list[str]) -> set[tuple[str, ...]]:
    """The unit's shingles, as the repetition penalty takes them (empty: too short)."""
    cjk = sum(1 for t in unit if not t.isascii())
    shingle = CJK_SHINGLE if 2 * cjk > len(unit) else WORD_SHINGLE
    return set(zip(*(unit[i:] for i in range(shingle)), strict=False))


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

    def __init__(self, guards: Guards, sink: Any, on_raw: Any = None, earlier: str = "") -> None:
        self.guards = guards
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
        at, words = len(kept), count_words(kept)
        self.interventions.append(
            Intervention(kind, round_no, at, words, len(dropped), excerpt(dropped))
        )
        if kind == "loop":
            self._tell(
                f"longwrite: guard: the text began to repeat itself after {words:,} words; "
                f"dropped {len(dropped):,} characters and writing on with a fresh sample"
            )
        return kind
