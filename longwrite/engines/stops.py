"""Cutting generated text before its first stop string, whatever the pieces it arrives in.

`feed` returns what is safe to emit now and holds back an end that may still grow into a stop
string. The first stop to complete (the earliest end; on a tie, the longest) wins, so the result
does not depend on how the text was split.

`min_tokens` means the same on every engine (vLLM's rule): no stop string and no end of
sequence before that many tokens. A trimmer created unarmed lets complete stop strings pass
as text until `arm()`; a stop that completes afterwards still counts even if it began
earlier, as in vLLM, which checks stop strings after each token once the minimum is reached.
"""

from __future__ import annotations


def _partial_stop_len(text: str, stops: tuple[str, ...]) -> int:
    """Length of the longest end of `text` that could still grow into a stop string."""
    best = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:k]):
                best = k
                break
    return best


class StopTrimmer:
    """Cuts streamed text before the first stop string to complete.

    `feed` returns the text that is safe to emit now: it holds back an end that may be the start
    of a stop string. The first stop to complete (the earliest end; on a tie, the longest) wins,
    so the result does not depend on how the text was split into pieces.
    """

    def __init__(self, stops: tuple[str, ...], *, armed: bool = True) -> None:
        self.stops = tuple(s for s in stops if s)
        self.held = ""
        self.stopped = False
        self.armed = armed

    def arm(self) -> None:
        """From now on a completed stop string ends the text (the minimum has been reached)."""
        self.armed = True

    def feed(self, piece: str) -> str:
        if self.stopped:
            return ""
        self.held += piece
        if not self.armed:  # stops are text for now; hold back only what may still become one
            safe = len(self.held) - _partial_stop_len(self.held, self.stops)
            out, self.held = self.held[:safe], self.held[safe:]
            return out
        first: tuple[int, int] | None = None  # (end, start) of the first stop to complete
        for stop in self.stops:
            start = self.held.find(stop)
            if start >= 0 and (first is None or (start + len(stop), start) < first):
                first = (start + len(stop), start)
        if first is not None:
            self.stopped = True
            out, self.held = self.held[: first[1]], ""
            return out
        safe = len(self.held) - _partial_stop_len(self.held, self.stops)
        out, self.held = self.held[:safe], self.held[safe:]
        return out

    def flush(self) -> str:
        """The held-back text, once the stream has ended without a stop string."""
        out, self.held = self.held, ""
        return out
