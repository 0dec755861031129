"""The Python API under the command line: `write()` for a whole document, `stream()` for events.

    from longwrite import write, stream
    doc = write("Write a 3,000-word essay on tides", words=3000, server="http://127.0.0.1:8000")
    print(doc.answer, doc.words, doc.finish_reason)

    for event in stream("Write a poem about the sea", server="http://127.0.0.1:8000"):
        if isinstance(event, AnswerDelta):
            print(event.text, end="", flush=True)

Both run exactly what `longwrite PROMPT` runs (`generate.job`: the same target, steering,
budget, continuation rounds and best-of), without a display. `engine` is a backend name
("auto", "openai", "vllm", "transformers") or an engine already loaded, which a notebook can
reuse across calls (it is then left open). Mistakes are `LongwriteError`s with the same
one-line messages as the command's. `stream()` runs the generation on a thread and hands its
events over a queue; leaving the loop early stops the generation.

The API does not write to the run log unless asked (`log=True`): a script or a notebook
calling `write()` a thousand times keeps its own results, and a library should not fill the
user's home behind its back. With `log=True` the run is recorded like a command's, and
`longwrite logs` and `longwrite continue` see it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from longwrite.engines import EngineOptions
from longwrite.engines.base import DEFAULT_TEMPERATURE, DEFAULT_TOP_P, Engine
from longwrite.generate.job import WriteOptions

if TYPE_CHECKING:
    from longwrite.generate.parser import Event
    from longwrite.generate.rounds import Result

EventCallback = Callable[["Event"], None]


@dataclass
class _Callback:
    """An event sink that hands each event to a function (tokens are in the result)."""

    on_event: EventCallback | None

    def handle(self, event: Event) -> None:
        if self.on_event is not None:
            self.on_event(event)

    def add_tokens(self, n: int) -> None:
        pass


def write(
    prompt: str,
    *,
    words: int | None = None,
    server: str | None = None,
    model: str | None = None,
    engine: str | Engine = "auto",
    max_tokens: int | None = None,
    temperature: float = DEFAULT_TEMPERATURE,
    top_p: float = DEFAULT_TOP_P,
    seed: int | None = None,
    think: bool = True,
    best_of: int = 1,
    max_rounds: int = 2,
    range_model: str | None = None,
    on_event: EventCallback | None = None,
    log: bool = False,
    guard: bool = True,
    sections: int | None = None,
    one_pass: bool = False,
    plan: str | Path | None = None,
    parallel: int = 1,
    source: str | Path | Sequence[str | Path] | None = None,
    embed_server: str | None = None,
) -> Result:
    """Write one document for `prompt`; returns its `Result` (answer, thinking, words, ...).

    `on_event` receives the parsed events as they stream (`ThinkDelta`, `AnswerDelta`, one
    `Done`); with `best_of` > 1, those of the chosen candidate once it is chosen. `log=True`
    records the run in the run log (off by default). The loop guard is on, as on the command
    line: answer text reaches `on_event` once the guard is past it (a paragraph at a time);
    `guard=False` hands it on as soon as it is parsed. The thinking budget applies either way.
    A target longer than one pass is planned and written in sections, as by the command
    (`sections=N` forces N, `one_pass=True` never splits, `plan=FILE` writes to your plan,
    `parallel=N` writes N sections at once). `source` (a folder, a file, an index name, or a
    list of them) writes from your documents as `--source` does: indexed when needed, the
    most relevant passages in the prompt, `[n]` citations checked and a References section
    appended; `result.sources` says what was given and cited. `embed_server` adds dense
    retrieval through an OpenAI-compatible `/v1/embeddings` server.
    """
    from longwrite.engines import load_engine
    from longwrite.generate.job import budget_request, produce, resolve_request
    from longwrite.generate.record import recording, start_recording
    from longwrite.generate.sectioned import produce_sectioned, sectioning, sections_for

    options = WriteOptions(
        guard=guard,
        sections=sections,
        one_pass=one_pass,
        plan_file=Path(plan) if plan is not None else None,
        parallel=parallel,
        sources=_sources(source),
        embed_server=embed_server,
        prompt=prompt,
        words=words,
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        think=think,
        best_of=best_of,
        max_rounds=max_rounds,
        range_model=range_model,
        log=log,
        engine=EngineOptions(
            engine=engine if isinstance(engine, str) else "auto", model=model, server=server
        ),
    )
    request = resolve_request(options)  # every mistake is reported before a model loads
    loaded = load_engine(options.engine) if isinstance(engine, str) else engine
    try:
        request, budget = budget_request(options, request, loaded)
        n = sections_for(options, request, budget)
        recorder = start_recording(options, request, loaded, loaded.info.name)
        sink = _Callback(on_event)
        with recording(recorder, interrupts=(_Stopped,)) as entry:
            if n is None:
                result = produce(
                    options, request, loaded, sink, on_raw=recorder.add,
                    on_candidate=recorder.add_candidate, on_cut=recorder.add_cut,
                ).result  # fmt: skip
            else:  # longer than one pass: exactly the command's sectioned path
                recorder.note({"sectioned": sectioning(options, n)})
                result = produce_sectioned(
                    options, request, loaded, budget, n, sink, plan_sink=sink,
                    on_raw=recorder.add, on_cut=recorder.add_cut,
                    on_outline=lambda o, _: recorder.note({"outline": o.to_json()}),
                ).result  # fmt: skip
            entry.done(result)
        return result
    finally:
        if isinstance(engine, str):
            loaded.close()


def _sources(source: str | Path | Sequence[str | Path] | None) -> tuple[str, ...]:
    if source is None:
        return ()
    if isinstance(source, str | Path):
        return (str(source),)
    return tuple(str(s) for s in source)


class _Stopped(Exception):
    """Raised in the generating thread when the consumer of `stream()` has left."""


_END = object()


def stream(prompt: str, **settings: object) -> Iterator[Event]:
    """The events of `write(prompt, **settings)` as they come; the last is `Done`.

    Errors raised while writing are raised here. Closing the iterator (leaving a `for` loop
    early) stops the generation within one chunk.
    """
    events: queue.Queue[object] = queue.Queue()
    left = threading.Event()

    def hand_over(event: Event) -> None:
        if left.is_set():
            raise _Stopped
        events.put(event)

    def run() -> None:
        try:
            write(prompt, on_event=hand_over, **settings)  # type: ignore[arg-type]
        except _Stopped:
            pass
        except BaseException as exc:  # handed to the consumer, which raises it
            events.put(exc)
        finally:
            events.put(_END)

    thread = threading.Thread(target=run, name="longwrite-stream", daemon=True)
    thread.start()
    try:
        while (item := events.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        left.set()
        thread.join()
