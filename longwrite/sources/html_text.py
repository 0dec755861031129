"""The readable text of an HTML page, split at its headings, with the standard library.

Why not BeautifulSoup: what a passage needs is the text a reader sees, in paragraphs, and
which heading it sits under. `html.parser` gives exactly the events for that (it is lenient
with broken markup and never fetches anything), and saves a dependency. Script, style,
template, navigation and form content is dropped; block elements (p, li, tr, div, br, ...)
end a paragraph; h1-h6 start a new block named by the heading's text; table cells are
joined with " | ". Character references are decoded by the parser.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_SKIP = {"script", "style", "template", "noscript", "nav", "svg", "head", "form", "button"}
_BREAK = {
    "p", "div", "li", "tr", "br", "hr", "section", "article", "blockquote", "pre", "ul",
    "ol", "table", "dl", "dt", "dd", "figure", "figcaption", "header", "footer", "main",
    "aside", "address",
}  # fmt: skip
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_SPACES = re.compile(r"[ \t\f\v\r\n]+")


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[str, str]] = []
        self.heading = ""
        self.title = ""
        self.paragraphs: list[str] = []
        self.line: list[str] = []
        self.skipping = 0  # depth inside elements whose text is not shown
        self.in_heading = False
        self.in_title = False
        self.heading_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP and tag != "head":
            self.skipping += 1
        elif tag == "title":
            self.in_title = True
        elif tag in _HEADINGS:
            self._end_paragraph()
            self._end_block()
            self.in_heading, self.heading_text = True, []
        elif tag in ("td", "th") and self.line:
            self.line.append(" | ")
        elif tag in _BREAK:
            self._end_paragraph()

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("br", "hr"):
            self._end_paragraph()

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP and tag != "head":
            self.skipping = max(0, self.skipping - 1)
        elif tag == "title":
            self.in_title = False
        elif tag in _HEADINGS and self.in_heading:
            self.in_heading = False
            self.heading = _SPACES.sub(" ", "".join(self.heading_text)).strip()
        elif tag in _BREAK:
            self._end_paragraph()

    def handle_data(self, data: str) -> None:
        if self.skipping:
            return
        if self.in_title:
            self.title += data
        elif self.in_heading:
            self.heading_text.append(data)
        else:
            self.line.append(data)

    def _end_paragraph(self) -> None:
        text = _SPACES.sub(" ", "".join(self.line)).strip().strip("| ").strip()
        if text:
            self.paragraphs.append(text)
        self.line = []

    def _end_block(self) -> None:
        if self.paragraphs:
            where = self.heading or _SPACES.sub(" ", self.title).strip() or "start"
            self.blocks.append((where, "\n\n".join(self.paragraphs)))
        self.paragraphs = []

    def finish(self) -> list[tuple[str, str]]:
        self.close()
        self._end_paragraph()
        self._end_block()
        return self.blocks


def html_blocks(text: str) -> list[tuple[str, str]]:
    """The visible text of an HTML document: (locator, text) per heading's section.

    >>> html_blocks(
    ...     "<title>T</title><p>Intro &amp; more</p><script>x()</script><h2>Methods</h2>"
    ...     "<p>We <b>measured</b>.</p><table><tr><td>a</td><td>1</td></tr></table>")
    [('T', 'Intro & more'), ('Methods', 'We measured.\\n\\na | 1')]
    """
    reader = _Reader()
    reader.feed(text)
    return reader.finish()
