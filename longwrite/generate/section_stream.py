"""One section's stream, kept to its part of the outline and to its length.

`SectionEngine` wraps the engine for the requests of one section (its first pass, its
continuation rounds, a pass after a loop cut) and edits the raw text the model writes before
anything else sees it:
- the model restating the section's heading at its very start (`## Origins`, `**Origins**`,
  `### 2. Origins`) is dropped: the heading is already written;
- a heading for a later planned section (any level, bold, numbered, or the bare title on a
  line of its own) ends the section there, without that heading: the next section writes it;
- once the section holds its words, it ends at the next paragraph end;
- a pass cut off by its token budget is trimmed back to the end of its last complete
  paragraph (or, in a section of one unfinished paragraph, its last complete sentence), so no
  section ends mid-word with the next heading glued on.

Why at the raw text, in a wrapper: the parser, the guards, the display, the run log and the
next round's prompt then all see the same text, and nothing downstream needs to know about
sections. The text held back is the current paragraph at most (the loop guard holds as much);
on a fault or Ctrl-C it is passed on before the error, so nothing written is lost.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from longwrite.engines.base import FINISH_LENGTH, FINISH_STOP, Chunk, Engine, Sampling
from longwrite.generate.outline_lines import MAX_TITLE_WORDS, title_of, title_words
from longwrite.io.counting import count_words

_BREAK = re.compile(r"\n[^\S\n]*\n")
_SENTENCE_END = re.compile(r"(?:[.!?][\"'”’)]?\s|[。！？][”’」』]?)")


def heading_title(line: str) -> str | None:
    """The title a line gives if it reads as a heading (`#`, all bold, numbered and short),
    else None; a bare short line is returned as a candidate too (matched against titles)."""
    text = line.strip()
    if not text:
        return None
    if text.startswith("#"):
        text = text.lstrip("#").strip()
    elif re.fullmatch(r"(\*\*|__).+?\1[:：]?", text):
        text = text.strip("*_:： ")
    elif title_words(text) > MAX_TITLE_WORDS or text.endswith((".", "。", ",", "，")):
        return None
    title, _ = title_of(text)
    return title or None


def _key(title: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", title.casefold()).split())


class SectionEngine:
    """The engine, for one section's requests; `prompt` is the section's first prompt (ending
    with its heading), `later` the titles of the sections after it, `words` its target."""

    def __init__(
        self, engine: Engine, prompt: str, title: str, later: list[str], words: int
    ) -> None:
        self.engine = engine
        self.info = engine.info
        self.prompt = prompt
        self.title = _key(title)
        self.later = {_key(t) for t in later}
        self.words = words
        self.ended: str | None = None  # why the section ended early: "heading" or "length"

    def count_tokens(self, text: str) -> int | None:
        return self.engine.count_tokens(text)

    def close(self) -> None:  # the engine belongs to the caller
        pass

    def stream(self, prompt: str, sampling: Sampling) -> Iterator[Chunk]:
        so_far = prompt[len(self.prompt) :] if prompt.startswith(self.prompt) else prompt
        return self._edit(self.engine.stream(prompt, sampling), so_far)

    def _edit(self, inner: Any, so_far: str) -> Iterator[Chunk]:
        held = ""  # text not passed on yet: the current paragraph
        tokens = 0  # tokens of text not passed on yet
        checked = 0  # characters of `held` in whole lines already looked at
        done_words = count_words(so_far)
        fresh = not so_far.strip()  # nothing of the section written yet: a restatement may come
        finish: str | None = None  # how the request ended
        ended = False  # the section ended here (its next heading, or its words)
        try:
            for chunk in inner:
                tokens += chunk.tokens
                held += chunk.text or ""
                finish = chunk.finish_reason or finish
                while not ended:
                    nl = held.find("\n", checked)
                    if nl < 0 and (finish is None or checked >= len(held)):
                        break  # a line still being written (or nothing left to look at)
                    end = nl if nl >= 0 else len(held)
                    line = held[checked:end]
                    title = heading_title(line)
                    key = _key(title) if title else ""
                    if fresh and (not line.strip() or key == self.title):
                        # blank lines before the text, or the heading again: dropped
                        fresh = fresh and not line.strip() or key == self.title
                        held = held[:checked] + held[end + 1 :]
                        continue
                    fresh = False
                    if key in self.later:  # the next part's heading: the section ends here
                        held, self.ended, ended = held[:checked], "heading", True
                        break
                    if nl < 0:
                        break
                    checked = nl + 1
                breaks = [m.end() for m in _BREAK.finditer(held, 0, checked)]
                if breaks and held[: breaks[-1]].strip():  # whole paragraphs pass on
                    out, held = held[: breaks[-1]], held[breaks[-1] :]
                    checked -= len(out)
                    done_words += count_words(out)
                    yield Chunk(text=out, tokens=tokens)
                    tokens = 0
                    if not ended and finish is None and done_words >= self.words:
                        held, self.ended, ended = "", "length", True  # its words: end here
                if ended or finish is not None:
                    break
            if ended:
                finish = FINISH_STOP
            elif finish == FINISH_LENGTH:  # cut off mid-paragraph: back to where one ended
                held = _trim(held, whole_section=done_words == 0)
        except GeneratorExit:  # the caller stopped reading: nothing more to pass on
            raise
        except BaseException:
            if held or tokens:  # a fault or Ctrl-C: what was written is not lost
                yield Chunk(text=held, tokens=tokens)
            raise
        finally:
            close = getattr(inner, "close", None)
            if close is not None:
                close()
        yield Chunk(text=held, tokens=tokens, finish_reason=finish or FINISH_STOP)


def _trim(held: str, *, whole_section: bool) -> str:
    """An unfinished paragraph dropped; in a section that has nothing else, cut back to its
    last complete sentence instead (or kept whole if it has none)."""
    if not whole_section:
        return ""
    ends = list(_SENTENCE_END.finditer(held))
    return held[: ends[-1].end()].rstrip() + "\n\n" if ends else held
