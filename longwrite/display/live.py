"""The pieces of the live area at the bottom of the terminal (see display/renderer.py).

- `PlainLines`: plain text (the thinking, or a raw answer) shown line by line above the live
  area, its partial last line live. Complete lines wait for the next redraw, so that many
  short lines cost one print (each print redraws the live area) instead of one each.
- `LiveView`: the end of the pending block or partial line, then the status line. Rendering
  Markdown is what a redraw costs, so the rendered lines of the block are kept until its
  text changes, and those of the status line until its text does.
"""

from __future__ import annotations

from typing import Protocol

from rich.console import Console, ConsoleOptions, RenderResult
from rich.markdown import Markdown
from rich.segment import Segment
from rich.text import Text

from longwrite.display.status import status_line


class LiveContent(Protocol):
    """What a `LiveView` shows (the renderer)."""

    def live_sources(self, room: int) -> tuple[tuple[str, str], ...]:
        """(kind, text) pairs to show in `room` lines: "markdown", "think" or "raw"."""
        ...

    def live_status(self) -> str | None:
        """The status text, or None when there is no status line."""
        ...

    def live_drawn(self) -> None:
        """Called at each redraw: what is on screen is now current."""
        ...


def tail_source(text: str, max_lines: int) -> str:
    """A cheap stand-in for a huge pending block in the live view: its first two lines (a
    fence opener, a table header) and its last `max_lines` lines. Only the end is shown."""
    if text.count("\n") <= max_lines + 2:
        return text
    lines = text.split("\n")
    return "\n".join(lines[:2] + lines[-max_lines:])


class PlainLines:
    """Plain text shown line by line above the live area; the partial last line stays live.
    Complete lines wait in `ready` for the next redraw (`print_ready`): one print for all."""

    def __init__(self, console: Console, style: str, soft_wrap: bool) -> None:
        self.console, self.style, self.soft_wrap = console, style, soft_wrap
        self.partial: list[str] = []
        self.ready: list[str] = []  # complete lines, each with its newline
        self.printed = False

    def feed(self, text: str) -> None:
        i = text.rfind("\n")
        if i < 0:
            self.partial.append(text)
            return
        self.partial.append(text[: i + 1])
        self.ready.append("".join(self.partial))
        self.partial = [text[i + 1 :]] if i + 1 < len(text) else []

    def flush(self) -> None:
        """Print every line, the partial one too."""
        line = "".join(self.partial)
        self.partial = []
        if line:
            self.ready.append(line + "\n")
        self.print_ready()

    def print_ready(self) -> None:
        if self.ready:
            text = "".join(self.ready)[:-1]  # the print ends the last line
            self.ready = []
            self.console.print(Text(text, style=self.style), soft_wrap=self.soft_wrap)
            self.printed = True

    def live_line(self) -> str:
        return "".join(self.partial)


class LiveView:
    """The live area: the end of the pending block / partial line, then the status line.

    The rendered lines of the block are kept until its text, the width or the room changes,
    and those of the status line until its text changes.
    """

    def __init__(self, content: LiveContent) -> None:
        self.content = content
        self._key: tuple | None = None
        self._body: list[list[Segment]] = []
        self._status_key: tuple | None = None
        self._status: list[list[Segment]] = []

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        self.content.live_drawn()
        room = max(options.size.height - 1, 1)
        text = self.content.live_status()
        status = self._status_lines(text, console, options) if text is not None else []
        room -= len(status)
        body = self._block(console, options, room) if room > 0 else []
        line = Segment.line()
        for i, segments in enumerate(body + status):
            if i:
                yield line
            yield from segments

    def _block(self, console: Console, options: ConsoleOptions, room: int) -> list[list[Segment]]:
        sources = self.content.live_sources(room)
        key = (sources, options.max_width, room)
        if key != self._key:
            free = options.update(height=None)
            body: list[list[Segment]] = []
            for item in live_items(sources):
                body += console.render_lines(item, free, pad=False)
            self._key, self._body = key, body[-room:]
        return self._body

    def _status_lines(
        self, text: str, console: Console, options: ConsoleOptions
    ) -> list[list[Segment]]:
        key = (text, options.max_width)
        if key != self._status_key:
            line = status_line(key[0])
            self._status = console.render_lines(line, options.update(height=1), pad=False)[:1]
            self._status_key = key
        return self._status


_LIVE_STYLES = {"think": "dim", "raw": ""}


def live_items(sources: tuple[tuple[str, str], ...]) -> list:
    """The renderables for `LiveContent.live_sources`: Markdown, or plain styled lines."""
    return [
        Markdown(text) if kind == "markdown" else Text(text, style=_LIVE_STYLES[kind])
        for kind, text in sources
    ]
