"""Show a streaming think-then-answer document on a terminal, a pipe and a file at once.

Why it is built this way: the answer can be 10,000+ words, and it arrives a few characters at
a time. Re-rendering the whole accumulated Markdown on every update costs time proportional to
the document, so the total is quadratic (minutes for a long document), and a `rich.live.Live`
area taller than the terminal cannot be redrawn in place: rich then leaves a copy of the
overflow in the scrollback each refresh (rich issue 3263), duplicating text.

So the renderer splits the answer into Markdown blocks as it goes. Whenever new lines arrive,
markdown-it-py (the parser rich's `Markdown` uses) parses only the text after the last printed
block; every top-level block before the last one is finished (nothing later can change it;
see display/blocks.py), so it is printed once with `console.print(Markdown(...))` and scrolls
away like ordinary output.
Only the unfinished last block (an unclosed code fence stays unfinished) lives in the Live area,
cropped to its last lines so that the area always fits on the screen, together with the status
line. So the cost per delta is a few appends and comparisons plus, per finished block, one
parse of that block and one print: a constant amount of work for each piece of text, however
long the document gets.

Redraws of the live area are what a user pays for while a model writes (each one renders the
unfinished block and re-emits the whole area), and they are paid per second, not per token.
So they happen only when something visible changed, and no more often than a reader can
follow (times read off `clock`): the live block at most 4 times a second (a model writes ~75
words a second, faster than anyone reads), the status line on its own at most twice a second
(enough for its clock to tick every second). A block whose text did not change since the last
redraw is not rendered again (a status-only redraw, or a finished block printed above it;
see display/live.py). Finished blocks and complete plain lines wait for the next redraw and
go out in one print, since every print redraws the live area too.

Pipes and files get the raw text with no escape codes. Colour comes only from rich, which
honours `NO_COLOR`.

A document output that cannot be written (a full disk under `-o FILE` or a redirected
stdout) is not an exception in the middle of generation, where it would cut the event that
carried the text off from the run log: the renderer stops writing that output, keeps
`output_error`, and raises it (`OutputFailed`, exit 1) when its block ends. The command
stops the generation at the next chunk (`halting`), so what was generated stays in the log.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from rich.console import Console, NewLine
from rich.live import Live
from rich.markdown import Markdown
from rich.text import Text

from longwrite.display.blocks import (
    OWN_LEADING_BLANK,
    cut_blocks,
    ends_at,
    may_end,
    top_level_blocks,
)
from longwrite.display.live import LiveView, PlainLines, tail_source
from longwrite.display.status import format_status, status_line
from longwrite.generate.parser import AnswerDelta, Done, Event, ThinkDelta
from longwrite.io.counting import WordCounter
from longwrite.io.files import NO_ROOM, OutputFailed

LIVE_INTERVAL = 0.25  # seconds between redraws for new text in the live block
STATUS_INTERVAL = 0.5  # seconds between redraws for the status line alone
THINK_OPEN = "<think>\n"
THINK_CLOSE = "\n</think>\n\n"


@dataclass(frozen=True)
class RenderOptions:
    thinking: str = "hide"  # "hide" | "show" | "keep"
    target_words: int | None = None  # for the status line's "words / target" and ETA
    answer: str = "auto"  # "auto" | "raw" | "none"

    def __post_init__(self) -> None:
        if self.thinking not in ("hide", "show", "keep"):
            raise ValueError(f"thinking must be hide, show or keep, not {self.thinking!r}")
        if self.answer not in ("auto", "raw", "none"):
            raise ValueError(f"answer must be auto, raw or none, not {self.answer!r}")


def _console(stream: TextIO, width: int | None, height: int | None) -> Console:
    return Console(
        file=stream, force_terminal=True, width=width, height=height, highlight=False, emoji=False
    )


class Renderer:
    """Render events to stdout / stderr / a sink; use as a context manager (see module docs)."""

    def __init__(
        self,
        options: RenderOptions,
        *,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
        sink: TextIO | None = None,
        stdout_tty: bool | None = None,
        stderr_tty: bool | None = None,
        width: int | None = None,
        height: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = options
        self.section: str | None = None  # "section k/n" of a sectioned document, shown first
        self._stdout = stdout if stdout is not None else sys.stdout
        self._stderr = stderr if stderr is not None else sys.stderr
        self._sink = sink
        out_tty = self._stdout.isatty() if stdout_tty is None else stdout_tty
        err_tty = self._stderr.isatty() if stderr_tty is None else stderr_tty
        self._clock = clock
        answer, thinking = options.answer, options.thinking

        self._markdown = answer == "auto" and out_tty
        raw = answer == "raw" or (answer == "auto" and not out_tty)
        self._out_console = _console(self._stdout, width, height) if out_tty else None
        self._err_console = _console(self._stderr, width, height) if err_tty else None
        self._status_live = err_tty
        # One live area at a time: on the stdout terminal if there is one, else on stderr's.
        self._console: Console | None = None
        if self._markdown or err_tty:
            self._console = self._out_console or self._err_console
        # Raw document text: straight to stdout, unless stdout is the terminal holding the Live.
        raw_on_live = raw and self._console is not None and self._console is self._out_console
        self._raw_file = self._stdout if raw and not raw_on_live else None
        self._raw_lines = PlainLines(self._console, "", True) if raw_on_live else None
        # Thinking shown outside the document: dim above the live area, or raw to stderr.
        self._think_lines: PlainLines | None = None
        self._think_file: TextIO | None = None
        if thinking == "show":
            if err_tty:
                self._think_lines = PlainLines(self._console, "dim", False)
            else:
                self._think_file = self._stderr
        elif thinking == "keep" and self._markdown:
            self._think_lines = PlainLines(self._console, "dim", False)

        self._live: Live | None = None
        self._next_refresh = 0.0  # no redraw before this time
        self._next_status = 0.0  # the status text is kept until then (or a new phase)
        self._status_shown = ("", "")  # (phase, status text) as last drawn
        self._changed = False  # the live block changed since it was last drawn
        self._ready = ""  # finished Markdown blocks, printed at the next redraw
        self._ready_kinds = ("", "")  # token types of the first and the last of them
        self._phase = "waiting"
        self._in_think = False  # keep mode: "<think>\n" written, "</think>" not yet
        self._finished = False
        self._finish_reason: str | None = None
        self._counter = WordCounter()
        self._tokens: int | None = None
        self._t0 = clock()
        self._t_first: float | None = None
        self._t_answer: float | None = None
        self._t_end: float | None = None
        # Markdown state: complete lines not yet printed, the partial last line, line counts.
        self._md_lines = ""
        self._md_partial: list[str] = []
        self._md_nl = 0  # newlines in _md_lines
        self._md_nl_parsed = 0  # ... when it was last parsed without finding a finished block
        self._md_may_end: str | None = None  # the pending block's type, if `may_end`
        self._gap = ""  # what precedes the next printed Markdown: "", "hr" or "text"
        self.output_error: OutputFailed | None = None  # the document output that failed

    # -- public API -----------------------------------------------------------------------------

    def __enter__(self) -> Renderer:
        self._t0 = self._clock()
        if self._console is not None and not self._finished:
            self._live = Live(
                LiveView(self),
                console=self._console,
                auto_refresh=False,
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
                vertical_overflow="crop",
            )
            self._live.start(refresh=True)
            self._next_refresh = self._clock() + LIVE_INTERVAL
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self._finish(interrupted=exc_type is not None)
        if self.output_error is not None and exc_type is None:
            raise self.output_error

    @property
    def words(self) -> int:
        return self._counter.total

    def add_tokens(self, n: int) -> None:
        self._touch()
        self._tokens = (self._tokens or 0) + n
        self._tick()

    def message(self, text: str) -> None:
        """One line for the user (stderr), above the live area when there is one."""
        if self._err_console is not None:
            self._print_ready()  # what was written before the message goes above it
            console = self._console if self._live is not None else self._err_console
            console.print(Text(text))
        else:
            self._stderr.write(text + "\n")
            self._stderr.flush()

    def handle(self, event: Event) -> None:
        if self._finished:
            return
        self._touch()
        if isinstance(event, AnswerDelta):
            self._answer(event.text)
        elif isinstance(event, ThinkDelta):
            self._think(event.text)
        elif isinstance(event, Done):
            self._close_think()
            self._finish_reason = event.finish_reason
            self._finish(interrupted=False)
            return
        self._tick()

    # -- events ---------------------------------------------------------------------------------

    def _touch(self) -> None:
        if self._t_first is None:
            self._t_first = self._clock()

    def _document(self, text: str) -> None:
        if self._sink is not None:
            self._write(self._sink, text)
        if self._raw_file is not None:
            self._write(self._raw_file, text)
        elif self._raw_lines is not None:
            self._raw_lines.feed(text)

    def _write(self, stream: TextIO, text: str) -> None:
        """Write document text to `stream`; if it cannot take it, stop writing there."""
        try:
            stream.write(text)
            stream.flush()
        except BrokenPipeError:
            raise  # the reader went away (`| head`): the command stops quietly
        except OSError as e:
            self._lost(stream, e)

    def _lost(self, stream: TextIO, error: OSError) -> None:
        stdout = stream is self._raw_file
        if stdout:
            self._raw_file = None
            name = "stdout"
        else:
            self._sink = None
            name = str(getattr(stream, "name", "the output file"))
        if self.output_error is None:
            why = error.strerror or str(error)
            self.output_error = OutputFailed(
                f"cannot write {name}: {why}", stdout=stdout, full=error.errno in NO_ROOM
            )

    def _think(self, text: str) -> None:
        if self._phase == "waiting":
            self._phase = "thinking"
        if self.options.thinking == "keep":
            if not self._in_think:
                self._in_think = True
                self._document(THINK_OPEN)
            self._document(text)
        if self._think_lines is not None:
            self._think_lines.feed(text)
            self._changed = self._changed or bool(text)
        elif self._think_file is not None:
            self._think_file.write(text)
            self._think_file.flush()

    def _close_think(self) -> None:
        if self._in_think:
            self._in_think = False
            self._document(THINK_CLOSE)
        if self._think_lines is not None and self._phase == "thinking":
            self._think_lines.flush()
            if self._think_lines.printed:
                self._gap = "text"

    def _answer(self, text: str) -> None:
        if self._phase != "writing":
            self._close_think()
            self._phase = "writing"
            self._t_answer = self._clock()
        self._document(text)
        self._counter.feed(text)
        if text and (self._markdown or self._raw_lines is not None):
            self._changed = True
        if self._markdown:
            i = text.rfind("\n")
            if i < 0:
                self._md_partial.append(text)
                if self._md_may_end is not None and text.strip():  # the next line has begun
                    self._end_pending_block()
                return
            self._md_partial.append(text[: i + 1])
            done = "".join(self._md_partial)
            self._md_partial = [text[i + 1 :]]
            self._md_lines += done
            self._md_nl += done.count("\n")
            self._md_may_end = None
            # Parse on every new line while the pending text is short; for a huge block
            # (a long code fence) wait for it to grow by an eighth, keeping the work linear.
            if self._md_nl - self._md_nl_parsed >= max(1, self._md_nl_parsed >> 3):
                self._commit_blocks()

    def _commit_blocks(self) -> None:
        """Print the blocks that the pending complete lines have finished: every block but
        the last, and the last one too if the line begun after it ends it."""
        blocks = top_level_blocks(self._md_lines)
        self._md_nl_parsed = self._md_nl
        last = blocks[-1][1] if blocks else None
        self._md_may_end = last if last and may_end(last, self._md_lines) else None
        if (
            self._md_may_end is not None
            and "".join(self._md_partial).strip()
            and self._end_pending_block(blocks)
        ):
            return
        finished, rest, done = cut_blocks(self._md_lines, blocks)
        if finished:
            self._md_lines = rest
            self._md_nl = self._md_nl_parsed = rest.count("\n")
            self._print_markdown(finished, done)

    def _end_pending_block(self, blocks: list[tuple[int, str]] | None = None) -> bool:
        """The next line has begun after a block that `may_end`: print all the pending
        complete lines if it ends the block (decided once, on the line's first character).
        `blocks`: those of the pending lines; by default the last block alone (once
        `_commit_blocks` has printed the others, the pending lines hold nothing else)."""
        kind, self._md_may_end = self._md_may_end, None
        assert kind is not None
        if not ends_at(kind, "".join(self._md_partial)):
            return False
        text = self._md_lines
        self._md_lines, self._md_nl, self._md_nl_parsed = "", 0, 0
        self._print_markdown(text, blocks or [(0, kind)])
        return True

    def _print_markdown(self, text: str, blocks: list[tuple[int, str]]) -> None:
        """Queue finished blocks (the next piece of the document) for `_print_ready`."""
        if not blocks:
            return
        first = self._ready_kinds[0] if self._ready else blocks[0][1]
        self._ready += text
        self._ready_kinds = (first, blocks[-1][1])

    def _print_ready(self) -> None:
        """Print what waits for the next redraw: complete lines of thinking or raw text, and
        finished blocks, the latter separated from what came before as one document would
        be. One print call for all the blocks: each print also redraws the live area."""
        for lines in (self._think_lines, self._raw_lines):
            if lines is not None:
                lines.print_ready()
        if not self._ready:
            return
        text, self._ready = self._ready, ""
        first, last = self._ready_kinds
        if self._gap == "text" and first not in OWN_LEADING_BLANK:
            self._console.print(NewLine(), Markdown(text))
        else:
            self._console.print(Markdown(text))
        self._gap = "hr" if last == "hr" else "text"

    def _waiting(self) -> bool:
        """Whether something waits to be printed at the next redraw."""
        lines = (self._think_lines, self._raw_lines)
        return bool(self._ready) or any(x is not None and x.ready for x in lines)

    # -- live area ------------------------------------------------------------------------------

    def _tick(self) -> None:
        """Redraw the live area, printing the finished blocks above it, if a redraw is due
        and something on screen would change."""
        now = self._clock()
        if now < self._next_refresh:
            return
        status = (
            self._live is not None
            and self._status_live
            and now >= self._next_status
            and self.status_text() != self._status_shown[1]
        )
        waiting = self._waiting()
        if not (waiting or self._changed or status):
            return
        self._next_refresh = now + LIVE_INTERVAL
        if waiting:
            self._print_ready()  # a print redraws the live area too
        elif self._live is not None:
            self._live.refresh()

    def live_status(self) -> str | None:
        """The status text to draw, if any: kept for STATUS_INTERVAL, unless the phase
        changed (LiveContent)."""
        if not self._status_live:
            return None
        now = self._clock()
        if now >= self._next_status or self._status_shown[0] != self._phase:
            self._status_shown = (self._phase, self.status_text())
            self._next_status = now + STATUS_INTERVAL
        return self._status_shown[1]

    def live_drawn(self) -> None:
        self._changed = False

    def live_sources(self, room: int) -> tuple[tuple[str, str], ...]:
        """What the live area shows above the status line: (kind, text) pairs."""
        sources = []
        if self._markdown:
            pending = self._md_lines + "".join(self._md_partial)
            if pending.strip():
                sources.append(("markdown", tail_source(pending, room + 2)))
        for kind, lines in (("think", self._think_lines), ("raw", self._raw_lines)):
            text = lines.live_line() if lines is not None else ""
            if text:
                sources.append((kind, text))
        return tuple(sources)

    def status_text(self) -> str:
        """The status line as it would be shown now."""
        now = self._t_end if self._t_end is not None else self._clock()
        gen = now - self._t_first if self._t_first is not None else 0.0
        writing = now - self._t_answer if self._t_answer is not None else 0.0
        words = self.words
        label = f"{self.section} · " if self.section else ""
        return label + format_status(
            self._phase,
            elapsed=now - self._t0,
            words=words,
            target=self.options.target_words,
            tokens=self._tokens,
            tokens_per_s=self._tokens / gen if self._tokens and gen > 0 else 0.0,
            words_per_s=words / writing if writing > 0 else 0.0,
            finish_reason=self._finish_reason,
        )

    # -- the end --------------------------------------------------------------------------------

    def _finish(self, interrupted: bool) -> None:
        """Print everything still pending, remove the live area, print the final status."""
        if self._finished:
            return
        self._finished = True
        self._t_end = self._clock()
        self._phase = "interrupted" if interrupted else "done"
        try:
            for lines in (self._think_lines, self._raw_lines):
                if lines is not None:
                    lines.flush()
            if self._markdown:
                pending = self._md_lines + "".join(self._md_partial)
                self._md_lines, self._md_partial = "", []
                self._print_markdown(pending, top_level_blocks(pending + "\n"))
                self._print_ready()
            for stream in (self._sink, self._raw_file):
                if stream is not None:
                    self._write(stream, "")
            if self._think_file is not None:
                self._think_file.flush()
        finally:
            self._status_live = False
            if self._live is not None:
                live, self._live = self._live, None
                live.stop()
            if self._err_console is not None:
                self._err_console.print(status_line(self.status_text()))
