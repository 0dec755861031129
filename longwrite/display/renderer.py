"""Show a streaming think-then-answer document on a terminal, a pipe and a file at once.

Why it is built this way: the answer can be 10,000+ words, and it arrives a few characters at
a time. Re-rendering the whole accumulated Markdown on every update costs time proportional to
the document, so the total is quadratic (minutes for a long document), and a `rich.live.Live`
area taller than the terminal cannot be redrawn in place: rich then leaves a copy of the
overflow in the scrollback each refresh (rich issue 3263), duplicating text.

So the renderer splits the answer into Markdown blocks as it goes. Whenever new lines arrive,
markdown-it-py (the parser rich's `Markdown` uses) parses only the text after the last printed
block; every top-level block before the last one is finished (nothing later can change it), so
it is printed once with `console.print(Markdown(...))` and scrolls away like ordinary output.
Only the unfinished last block (an unclosed code fence stays unfinished) lives in the Live area,
cropped to its last lines so that the area always fits on the screen, together with the status
line. Live refreshes are throttled to ~10 per second (read off `clock`), so the cost per delta
is a few appends and comparisons plus, per finished block, one parse of that block and one
print: a constant amount of work for each piece of text, however long the document gets.

Pipes and files get the raw text with no escape codes. Colour comes only from rich, which
honours `NO_COLOR`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from markdown_it import MarkdownIt
from rich.console import Console, ConsoleOptions, NewLine, RenderResult
from rich.live import Live
from rich.markdown import Markdown
from rich.segment import Segment
from rich.text import Text

from longwrite.display.progress import format_duration
from longwrite.generate.parser import AnswerDelta, Done, Event, ThinkDelta
from longwrite.io.counting import WordCounter

REFRESH_INTERVAL = 0.1  # seconds between Live refreshes
THINK_OPEN = "<think>\n"
THINK_CLOSE = "\n</think>\n\n"

# Same block rules as rich.markdown.Markdown; inline parsing is not needed for block boundaries.
_BLOCKS = MarkdownIt().enable("strikethrough").enable("table").disable("inline")


def _blocks(text: str) -> list[tuple[int, str]]:
    """(first line, token type) of each top-level block in the complete lines of `text`."""
    source = text[: text.rfind("\n") + 1]
    if "\r" in source:  # markdown-it also breaks lines at \r; count lines by \n only
        source = source.replace("\r", "")
    return [
        (tok.map[0], tok.type)
        for tok in _BLOCKS.parse(source)
        if tok.level == 0 and tok.nesting >= 0 and tok.map is not None
    ]


def _split(pending: str) -> tuple[str, str, list[tuple[int, str]]]:
    """(finished, still_pending, the finished blocks); see split_finished_blocks."""
    blocks = _blocks(pending)
    if len(blocks) < 2:
        return "", pending, []
    cut = 0
    for _ in range(blocks[-1][0]):
        cut = pending.index("\n", cut) + 1
    return pending[:cut], pending[cut:], blocks[:-1]


def split_finished_blocks(pending: str) -> tuple[str, str]:
    """Split Markdown text into (finished blocks, still pending); the two add up to `pending`.

    Only complete lines are parsed. Every top-level block before the last one is finished;
    the last block, and any text after the last newline, may still change and stays pending.
    """
    finished, rest, _ = _split(pending)
    return finished, rest


# rich's Markdown puts a blank line between blocks, except after a horizontal rule (which ends
# with one of its own), and it starts a list, quote or table with a blank line even when it is
# the first block. Printing blocks in pieces must add exactly the blank lines that are missing.
_OWN_LEADING_BLANK = frozenset(
    {"bullet_list_open", "ordered_list_open", "blockquote_open", "table_open"}
)


def format_status(
    phase: str,
    *,
    elapsed: float,
    words: int = 0,
    target: int | None = None,
    tokens: int | None = None,
    tokens_per_s: float = 0.0,
    words_per_s: float = 0.0,
    finish_reason: str | None = None,
) -> str:
    """The one-line status: phase, progress, speed, elapsed time and, while writing, the ETA.

    `phase` is "waiting", "thinking", "writing", or a final one ("done", "interrupted").
    Token figures appear only when `tokens` is known. The ETA needs a target and a writing
    speed: (target - words) / words_per_s.
    """
    parts = [phase]
    rate = f"{tokens_per_s:.1f} tok/s"
    if phase == "thinking":
        if tokens is not None:
            parts += [f"{tokens:,} tok", rate]
    elif phase == "writing":
        parts.append(f"{words:,} / {target:,} words" if target else f"{words:,} words")
        if tokens is not None:
            parts.append(rate)
    elif phase != "waiting":  # final
        parts.append(f"{words:,} words")
        if tokens is not None:
            parts += [f"{tokens:,} tok", rate]
    parts.append(format_duration(elapsed))
    if phase == "writing" and target and 0 < words < target and words_per_s > 0:
        parts.append(f"ETA {format_duration((target - words) / words_per_s)}")
    if finish_reason not in (None, "stop") and phase not in ("thinking", "writing", "waiting"):
        parts.append(f"stopped: {finish_reason}")
    return " · ".join(parts)


def _tail_source(text: str, max_lines: int) -> str:
    """A cheap stand-in for a huge pending block in the live view: its first two lines (a
    fence opener, a table header) and its last `max_lines` lines. Only the end is shown."""
    if text.count("\n") <= max_lines + 2:
        return text
    lines = text.split("\n")
    return "\n".join(lines[:2] + lines[-max_lines:])


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


class _Lines:
    """Plain text shown line by line above the live area; the partial last line stays live."""

    def __init__(self, console: Console, style: str, soft_wrap: bool) -> None:
        self.console, self.style, self.soft_wrap = console, style, soft_wrap
        self.partial: list[str] = []
        self.printed = False

    def feed(self, text: str) -> None:
        i = text.rfind("\n")
        if i < 0:
            self.partial.append(text)
            return
        self.partial.append(text[:i])
        self._print("".join(self.partial))
        self.partial = [text[i + 1 :]] if i + 1 < len(text) else []

    def flush(self) -> None:
        if self.partial:
            line = "".join(self.partial)
            self.partial = []
            if line:
                self._print(line)

    def _print(self, text: str) -> None:
        self.console.print(Text(text, style=self.style), soft_wrap=self.soft_wrap)
        self.printed = True

    def live_text(self) -> Text | None:
        line = "".join(self.partial)
        return Text(line, style=self.style) if line else None


class _LiveView:
    """The live area: the end of the pending block / partial line, then the status line."""

    def __init__(self, renderer: Renderer) -> None:
        self.r = renderer

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        r = self.r
        room = max(options.size.height - 1, 1)
        status = r._status_line() if r._status_live else None
        if status is not None:
            room -= 1
        body: list[list[Segment]] = []
        if room > 0:
            free = options.update(height=None)
            for item in r._live_items(room):
                body += console.render_lines(item, free, pad=False)
            body = body[-room:]
        if status is not None:
            body += console.render_lines(status, options.update(height=1), pad=False)[:1]
        line = Segment.line()
        for i, segments in enumerate(body):
            if i:
                yield line
            yield from segments


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
        self._raw_lines = _Lines(self._console, "", True) if raw_on_live else None
        # Thinking shown outside the document: dim above the live area, or raw to stderr.
        self._think_lines: _Lines | None = None
        self._think_file: TextIO | None = None
        if thinking == "show":
            if err_tty:
                self._think_lines = _Lines(self._console, "dim", False)
            else:
                self._think_file = self._stderr
        elif thinking == "keep" and self._markdown:
            self._think_lines = _Lines(self._console, "dim", False)

        self._live: Live | None = None
        self._next_refresh = 0.0
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
        self._gap = ""  # what precedes the next printed Markdown: "", "hr" or "text"

    # -- public API -----------------------------------------------------------------------------

    def __enter__(self) -> Renderer:
        self._t0 = self._clock()
        if self._console is not None and not self._finished:
            self._live = Live(
                _LiveView(self),
                console=self._console,
                auto_refresh=False,
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
                vertical_overflow="crop",
            )
            self._live.start(refresh=True)
            self._next_refresh = self._clock() + REFRESH_INTERVAL
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self._finish(interrupted=exc_type is not None)

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
            self._sink.write(text)
            self._sink.flush()
        if self._raw_file is not None:
            self._raw_file.write(text)
            self._raw_file.flush()
        elif self._raw_lines is not None:
            self._raw_lines.feed(text)

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
        if self._markdown:
            i = text.rfind("\n")
            if i < 0:
                self._md_partial.append(text)
                return
            self._md_partial.append(text[: i + 1])
            done = "".join(self._md_partial)
            self._md_partial = [text[i + 1 :]]
            self._md_lines += done
            self._md_nl += done.count("\n")
            # Parse on every new line while the pending text is short; for a huge block
            # (a long code fence) wait for it to grow by an eighth, keeping the work linear.
            if self._md_nl - self._md_nl_parsed >= max(1, self._md_nl_parsed >> 3):
                self._commit_blocks()

    def _commit_blocks(self) -> None:
        finished, rest, blocks = _split(self._md_lines)
        if finished:
            self._md_lines = rest
            self._md_nl = rest.count("\n")
            self._print_markdown(finished, blocks)
        self._md_nl_parsed = self._md_nl

    def _print_markdown(self, text: str, blocks: list[tuple[int, str]]) -> None:
        """Print finished blocks, separated from what came before as one document would be."""
        if not blocks:
            return
        # One print call: each print also redraws the live area below it.
        if self._gap == "text" and blocks[0][1] not in _OWN_LEADING_BLANK:
            self._console.print(NewLine(), Markdown(text))
        else:
            self._console.print(Markdown(text))
        self._gap = "hr" if blocks[-1][1] == "hr" else "text"

    # -- live area ------------------------------------------------------------------------------

    def _tick(self) -> None:
        if self._live is not None:
            now = self._clock()
            if now >= self._next_refresh:
                self._next_refresh = now + REFRESH_INTERVAL
                self._live.refresh()

    def _live_items(self, room: int) -> list:
        items: list = []
        if self._markdown:
            pending = self._md_lines + "".join(self._md_partial)
            if pending.strip():
                items.append(Markdown(_tail_source(pending, room + 2)))
        for lines in (self._think_lines, self._raw_lines):
            text = lines.live_text() if lines is not None else None
            if text is not None:
                items.append(text)
        return items

    def _status_line(self) -> Text:
        phase, _, rest = self.status_text().partition(" ")
        colour = {"thinking": "cyan", "writing": "green", "done": "green"}.get(phase, "yellow")
        text = Text.assemble((phase, f"bold {colour}"), (" " + rest, "dim"))
        text.no_wrap, text.overflow = True, "ellipsis"
        return text

    def status_text(self) -> str:
        """The status line as it would be shown now."""
        now = self._t_end if self._t_end is not None else self._clock()
        gen = now - self._t_first if self._t_first is not None else 0.0
        writing = now - self._t_answer if self._t_answer is not None else 0.0
        words = self.words
        return format_status(
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
                self._print_markdown(pending, _blocks(pending + "\n"))
            for stream in (self._sink, self._raw_file, self._think_file):
                if stream is not None:
                    stream.flush()
        finally:
            self._status_live = False
            if self._live is not None:
                live, self._live = self._live, None
                live.stop()
            if self._err_console is not None:
                self._err_console.print(self._status_line())
