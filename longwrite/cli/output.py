"""The document's output while a model writes: a full disk stops the generation, says where
the text is.

Why apart: the main command, `continue` and the sectioned path all stream into a renderer
and `-o FILE`, and all must stop the same way when the disk refuses the document (`Halting`
turns that into the Ctrl-C ending, so what was generated is kept in the run log) and say the
same thing about where the text is (`rendering`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from longwrite.engines.base import Chunk, Engine, Sampling
from longwrite.io.files import OutputFailed

if TYPE_CHECKING:
    from longwrite.display.renderer import Renderer
    from longwrite.runlog.recorder import Recorder


class Halting:
    """An engine whose streams stop, as Ctrl-C stops them, once `stop()` says so: the
    document's output failed (a full disk), so more text would only go to the run log."""

    def __init__(self, engine: Engine, stop: Callable[[], bool]) -> None:
        self.engine = engine
        self._stop = stop

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    def stream(self, prompt: str, sampling: Sampling) -> Iterator[Chunk]:
        inner = self.engine.stream(prompt, sampling)
        try:
            for chunk in inner:
                if self._stop():
                    raise KeyboardInterrupt  # generation ends "cancelled", the text logged
                yield chunk
        finally:
            close = getattr(inner, "close", None)
            if close is not None:
                close()


def kept_in_log(
    error: OutputFailed, recorder: Recorder, words: int, output: Path | None
) -> OutputFailed:
    """`error` with where the generated text is and how to get it."""
    run_id = recorder.run_id if recorder.active else None
    if run_id is None:
        where = "the run log is off (or could not write either): what fitted is all there is"
    elif output is not None:
        where = (
            f"the {words:,} words generated are in the run log: `longwrite continue {run_id} "
            f"-o {output}` finishes the document once there is room"
        )
    else:
        where = (
            f"the {words:,} words generated are in the run log: `longwrite logs show "
            f"{run_id} > FILE` writes them once there is room"
        )
    return OutputFailed(f"{error}; {where}", stdout=error.stdout, full=error.full)


@contextmanager
def rendering(renderer: Renderer, recorder: Recorder, output: Path | None) -> Iterator[None]:
    """`with renderer:`, where an output the disk refused is said with where the text is."""
    try:
        with renderer:
            yield
    except OutputFailed as e:
        raise kept_in_log(e, recorder, renderer.words, output) from None
