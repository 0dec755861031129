"""`min_tokens` means the same on every engine: no stop string and no end before it (vLLM's rule).

The transformers engine used to block only the end-of-sequence token, so a continuation round
stopped at once on a stop string. The tiny model decodes greedily and deterministically, so a
stop string taken from its own output shows the difference.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from scripted import join_candidates

from longwrite.engines.base import Sampling
from longwrite.engines.stops import StopTrimmer
from longwrite.engines.transformers import TransformersEngine
from longwrite.prompt.templates import build_prompt

PROMPT = build_prompt("Write a 2000-word story about a lighthouse.")


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path):
    eng = TransformersEngine(str(tiny_model_dir), device="cpu")
    yield eng
    eng.close()


def _early_stop(engine) -> tuple[str, str]:
    """The free greedy text and a stop string that completes within its first few tokens."""
    chunks = list(engine.stream(PROMPT, Sampling(max_tokens=60, temperature=0, stop=())))
    full = "".join(c.text for c in chunks)
    for start in range(2, len(full) - 3):
        window = full[start : start + 3]
        if "\ufffd" not in window and window.strip():
            return full, window
    raise AssertionError("no usable stop string")


def test_unarmed_trimmer_lets_stops_through_until_armed():
    t = StopTrimmer(("</answer>",), armed=False)
    assert t.feed("a</answer>b</ans") == "a</answer>b"  # the partial tail is held back
    t.arm()
    assert t.feed("wer>c") == "" and t.stopped  # completed after arming: it counts
    t = StopTrimmer(("</answer>",), armed=False)
    assert t.feed("x</answer>") == "x</answer>"


def test_single_stream_ignores_stop_strings_until_min_tokens(engine):
    full, stop = _early_stop(engine)
    stopped = list(engine.stream(PROMPT, Sampling(max_tokens=60, temperature=0, stop=(stop,))))
    assert sum(c.tokens for c in stopped) < 20  # without a minimum it ends at the stop
    sampling = Sampling(max_tokens=60, min_tokens=40, temperature=0, stop=(stop,))
    chunks = list(engine.stream(PROMPT, sampling))
    text = "".join(c.text for c in chunks)
    assert sum(c.tokens for c in chunks) >= 40
    assert stop in text and full.startswith(text)  # the early stop string is just text now


def test_batch_rows_ignore_stop_strings_until_min_tokens(engine):
    full, stop = _early_stop(engine)
    sampling = Sampling(max_tokens=60, min_tokens=40, temperature=0, stop=(stop,), n=2)
    rows = join_candidates(engine.stream(PROMPT, sampling))
    assert len(rows) == 2
    for text, tokens, _ in rows.values():
        assert tokens >= 40
        assert stop in text and full.startswith(text)
    # and stop strings still end the rows once the minimum is reached
    later = full[-6:-3]
    if "\ufffd" not in later and full.find(later) >= len(full) // 2:
        ended = join_candidates(engine.stream(PROMPT, replace(sampling, stop=(later,))))
        for text, _, finish in ended.values():
            assert later not in text[len(text) - len(later) :] and finish == "stop"
