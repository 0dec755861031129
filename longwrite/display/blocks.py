"""Where a streaming Markdown answer can be cut into blocks that later text cannot change.

The renderer prints finished blocks once and keeps only the unfinished last one live (see
display/renderer.py). Boundaries come from markdown-it-py, the parser rich's `Markdown` uses,
with the same block rules and no inline parsing, on complete lines only: every top-level block
before the last one is finished. The last one is finished too once the next line begins, if
whatever that line becomes cannot continue it (`may_end`, `ends_at`): models write a paragraph
per line, so waiting for the next line to be complete would keep two paragraphs live.
"""

from __future__ import annotations

from markdown_it import MarkdownIt

# Same block rules as rich.markdown.Markdown; inline parsing is not needed for block boundaries.
BLOCK_PARSER = MarkdownIt().enable("strikethrough").enable("table").disable("inline")


def top_level_blocks(text: str) -> list[tuple[int, str]]:
    """(first line, token type) of each top-level block in the complete lines of `text`."""
    source = text[: text.rfind("\n") + 1]
    if "\r" in source:  # markdown-it also breaks lines at \r; count lines by \n only
        source = source.replace("\r", "")
    return [
        (tok.map[0], tok.type)
        for tok in BLOCK_PARSER.parse(source)
        if tok.level == 0 and tok.nesting >= 0 and tok.map is not None
    ]


def cut_blocks(
    pending: str, blocks: list[tuple[int, str]]
) -> tuple[str, str, list[tuple[int, str]]]:
    """(finished, still pending, the finished blocks) of `pending`, whose blocks are `blocks`
    (`top_level_blocks`); see split_finished_blocks."""
    if len(blocks) < 2:
        return "", pending, []
    cut = 0
    for _ in range(blocks[-1][0]):
        cut = pending.index("\n", cut) + 1
    return pending[:cut], pending[cut:], blocks[:-1]


# When the next line begins, which last blocks are over whatever that line turns out to be:
# nothing continues a heading or a rule; after a blank line, nothing continues a paragraph,
# quote or table (a lazy continuation line or a setext underline must follow directly); and
# after a blank line a list goes on only with an indented line or another item.
_OVER_AT_NEXT_LINE = frozenset({"heading_open", "hr"})
_OVER_AFTER_BLANK = frozenset({"paragraph_open", "blockquote_open", "table_open"})
_LISTS = frozenset({"bullet_list_open", "ordered_list_open"})
_GOES_ON_WITH_A_LIST = frozenset(" \t-+*0123456789")


def may_end(kind: str, lines: str) -> bool:
    """Whether the next line can end the last block of `lines` (complete lines), of type
    `kind`, as soon as its first character is known (see `ends_at`)."""
    if kind in _OVER_AT_NEXT_LINE:
        return True
    if kind not in _OVER_AFTER_BLANK and kind not in _LISTS:
        return False
    last = lines[:-1][lines[:-1].rfind("\n") + 1 :]
    return lines.count("\n") >= 2 and not last.strip()


def ends_at(kind: str, line: str) -> bool:
    """Whether a next line beginning `line` (not blank) ends a block for which `may_end`."""
    return kind not in _LISTS or line[0] not in _GOES_ON_WITH_A_LIST


def split_finished_blocks(pending: str) -> tuple[str, str]:
    """Split Markdown text into (finished blocks, still pending); the two add up to `pending`.

    Only complete lines are parsed. Every top-level block before the last one is finished;
    the last block, and any text after the last newline, may still change and stays pending.
    """
    finished, rest, _ = cut_blocks(pending, top_level_blocks(pending))
    return finished, rest


# rich's Markdown puts a blank line between blocks, except after a horizontal rule (which ends
# with one of its own), and it starts a list, quote or table with a blank line even when it is
# the first block. Printing blocks in pieces must add exactly the blank lines that are missing.
OWN_LEADING_BLANK = frozenset(
    {"bullet_list_open", "ordered_list_open", "blockquote_open", "table_open"}
)
