"""TransformersEngine end to end with the tiny random model (longwrite.tiny)."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scripted import join_candidates

from longwrite.engines.base import (
    FINISH_CANCELLED,
    FINISH_LENGTH,
    FINISH_STOP,
    Engine,
    EngineError,
    Sampling,
)
from longwrite.engines.transformers import StopTrimmer, TransformersEngine, load_tokenizer

PROMPTS = Path(__file__).resolve().parent.parent / "prompts"


def _prompt(lang: str = "en") -> str:
    template = (PROMPTS / f"think_{lang}.txt").read_bytes().decode("utf-8")
    question = (
        "Write a 2000-word story about a lighthouse." if lang == "en" else "写一篇关于灯塔的故事。"
    )
    return template.replace("{question}", question)


def _greedy(max_tokens: int, stop: tuple[str, ...] = ()) -> Sampling:
    return Sampling(max_tokens=max_tokens, temperature=0, stop=stop)


def _check_shape(chunks: list) -> None:
    """Exactly one final chunk, at the end."""
    assert chunks, "no chunks"
    assert chunks[-1].finish_reason is not None
    assert all(c.finish_reason is None for c in chunks[:-1])


def _join(chunks: list) -> str:
    return "".join(c.text for c in chunks)


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path):
    eng = TransformersEngine(str(tiny_model_dir), device="cpu")
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def reference(tiny_model_dir: Path):
    """The tiny model and tokenizer, loaded independently of the engine."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    return tok, model


def _direct_greedy(reference, prompt: str, max_new_tokens: int) -> list[int]:
    import torch

    tok, model = reference
    enc = tok(prompt, add_special_tokens=False, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)
    return out[0, enc["input_ids"].shape[1] :].tolist()


def test_engine_info_and_protocol(engine: TransformersEngine, tiny_model_dir: Path) -> None:
    assert isinstance(engine, Engine)
    assert engine.info.name == "transformers"
    assert engine.info.model == str(tiny_model_dir)
    assert engine.info.details == {"device": "cpu", "dtype": "float32"}


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_stream_equals_direct_greedy_generate(engine, reference, lang: str) -> None:
    tok, _ = reference
    prompt = _prompt(lang)
    ids = _direct_greedy(reference, prompt, 120)
    expected = tok.decode(ids, skip_special_tokens=True)

    chunks = list(engine.stream(prompt, _greedy(120)))
    _check_shape(chunks)
    assert len(chunks) > 3, "the text should arrive in several pieces"
    assert _join(chunks) == expected
    assert sum(c.tokens for c in chunks) == len(ids)
    hit_eos = ids[-1] == tok.eos_token_id
    assert chunks[-1].finish_reason == (FINISH_STOP if hit_eos else FINISH_LENGTH)


def test_same_seed_same_text_other_seed_other_text(engine) -> None:
    def run(seed: int) -> str:
        sampling = Sampling(max_tokens=64, temperature=0.8, top_p=0.95, stop=(), seed=seed)
        chunks = list(engine.stream(_prompt(), sampling))
        _check_shape(chunks)
        return _join(chunks)

    first, again, other = run(7), run(7), run(8)
    assert first
    assert first == again
    assert first != other


def test_max_tokens_gives_length_and_exact_token_count(engine, reference) -> None:
    tok, _ = reference
    ids = _direct_greedy(reference, _prompt(), 20)
    assert len(ids) == 20 and tok.eos_token_id not in ids, "precondition: no EOS in 20 tokens"

    chunks = list(engine.stream(_prompt(), _greedy(20)))
    _check_shape(chunks)
    assert chunks[-1].finish_reason == FINISH_LENGTH
    assert sum(c.tokens for c in chunks) == 20
    assert engine.count_tokens(_join(chunks)) > 0


def _stop_case(engine, pick) -> None:
    """Greedy run without stops, pick a stop string from it, rerun greedily with that stop."""
    prompt = _prompt()
    free = list(engine.stream(prompt, _greedy(100)))
    full = _join(free)
    stop = pick(free, full)
    assert stop and stop in full
    expected = full[: full.index(stop)]

    chunks = list(engine.stream(prompt, _greedy(100, stop=(stop, "never-appears-xyz"))))
    _check_shape(chunks)
    assert _join(chunks) == expected
    assert all(stop not in c.text for c in chunks)
    assert chunks[-1].finish_reason == FINISH_STOP
    assert 0 < sum(c.tokens for c in chunks) < sum(c.tokens for c in free)


def test_stop_string_from_the_middle(engine) -> None:
    def pick(free, full):
        # a 4-character window near the middle without replacement characters
        for start in range(len(full) // 2, len(full) - 4):
            window = full[start : start + 4]
            if "\ufffd" not in window and window.strip():
                return window
        raise AssertionError("no usable window")

    _stop_case(engine, pick)


def test_stop_string_split_over_pieces(engine) -> None:
    def pick(free, full):
        # a stop string spanning the boundary between two streamed pieces near the middle
        ends, pos = [], 0
        for c in free[:-1]:
            pos += len(c.text)
            ends.append(pos)
        inner = [e for e in ends if 3 <= e <= len(full) - 3]
        assert inner, "need several pieces"
        boundary = inner[len(inner) // 2]
        return full[boundary - 3 : boundary + 3]

    _stop_case(engine, pick)


def test_closing_the_stream_stops_generation(engine) -> None:
    stream = engine.stream(_prompt(), _greedy(30000))  # minutes of work if not stopped
    first = next(stream)
    assert first.finish_reason is None
    assert engine.busy
    started = time.monotonic()
    stream.close()
    assert time.monotonic() - started < 5
    assert not engine.busy


def test_keyboard_interrupt_in_consumer_stops_generation(engine) -> None:
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        for _chunk in engine.stream(_prompt(), _greedy(30000)):
            raise KeyboardInterrupt
    assert time.monotonic() - started < 5
    assert not engine.busy


def test_cancel_ends_the_stream_as_cancelled(engine) -> None:
    stream = engine.stream(_prompt(), _greedy(30000))
    chunks = [next(stream)]
    engine.cancel()
    chunks += list(stream)
    _check_shape(chunks)
    assert chunks[-1].finish_reason == FINISH_CANCELLED
    assert sum(c.tokens for c in chunks) < 1000
    assert not engine.busy


def test_error_in_generate_thread_reaches_consumer(engine, monkeypatch) -> None:
    def broken(**kwargs):
        raise RuntimeError("boom in generate")

    monkeypatch.setattr(engine._model, "generate", broken)
    with pytest.raises(RuntimeError, match="boom in generate"):
        list(engine.stream(_prompt(), _greedy(10)))
    assert not engine.busy


def test_prompt_longer_than_context_is_an_engine_error(engine) -> None:
    with pytest.raises(EngineError, match="context"):
        list(engine.stream("a " * 40000, _greedy(10)))


def test_count_tokens_matches_tokenizer(engine, reference, tiny_model_dir: Path) -> None:
    tok, _ = reference
    other = load_tokenizer(str(tiny_model_dir))
    for text in ("", "Hello, world!", _prompt("en"), _prompt("zh"), "<think>x</think>"):
        expected = len(tok.encode(text, add_special_tokens=False))
        assert engine.count_tokens(text) == expected
        assert len(other.encode(text, add_special_tokens=False)) == expected


def _one_line_error(func, *args, **kwargs) -> str:
    with pytest.raises(EngineError) as info:
        func(*args, **kwargs)
    message = str(info.value)
    assert message and "\n" not in message
    return message


def test_missing_local_model_is_a_one_line_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    assert str(missing) in _one_line_error(TransformersEngine, str(missing))
    assert "./no-such-model-here" in _one_line_error(TransformersEngine, "./no-such-model-here")
    a_file = tmp_path / "weights.bin"
    a_file.write_bytes(b"")
    assert str(a_file) in _one_line_error(TransformersEngine, str(a_file))
    assert str(missing) in _one_line_error(load_tokenizer, str(missing))


def test_unloadable_hub_id_is_a_one_line_error(monkeypatch) -> None:
    import transformers

    def offline(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co'.\nCheck your connection.")

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", offline)
    message = _one_line_error(TransformersEngine, "some-org/some-model", device="cpu")
    assert "some-org/some-model" in message and "hub" in message


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"dtype": "int8"}, "dtype"),
        ({"dtype": "float64"}, "dtype"),
        ({"device": "tpu"}, "device"),
        ({"device": "not a device"}, "device"),
    ],
)
def test_bad_device_or_dtype_is_a_one_line_error(tiny_model_dir: Path, kwargs, needle) -> None:
    assert needle in _one_line_error(TransformersEngine, str(tiny_model_dir), **kwargs)


def test_explicit_cuda_without_cuda_is_an_engine_error(tiny_model_dir: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    assert "CUDA" in _one_line_error(TransformersEngine, str(tiny_model_dir), device="cuda")


def test_closed_engine_refuses_to_stream(tiny_model_dir: Path) -> None:
    eng = TransformersEngine(str(tiny_model_dir), device="cpu", dtype="bfloat16")
    assert eng.info.details["dtype"] == "bfloat16"
    assert list(eng.stream("Hello", _greedy(3)))[-1].finish_reason is not None
    eng.close()
    with pytest.raises(EngineError):
        list(eng.stream("Hello", _greedy(3)))


# The stop-string trimmer alone: any text, any stops, any split into pieces.


def _reference_cut(text: str, stops: list[str]) -> str:
    """The text before the first stop string to complete (earliest end, then longest)."""
    for end in range(1, len(text) + 1):
        for stop in sorted(stops, key=len, reverse=True):
            if stop and text[:end].endswith(stop):
                return text[: end - len(stop)]
    return text


@given(
    text=st.text(alphabet="ab<>/", max_size=40),
    stops=st.lists(st.text(alphabet="ab<>/", max_size=5), max_size=3),
    cuts=st.lists(st.integers(min_value=0, max_value=40), max_size=10),
)
def test_stop_trimmer_is_independent_of_piece_boundaries(text, stops, cuts) -> None:
    bounds = sorted({0, len(text), *(min(c, len(text)) for c in cuts)})
    pieces = [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    trimmer = StopTrimmer(tuple(stops))
    out = "".join(trimmer.feed(p) for p in pieces)
    if not trimmer.stopped:
        out += trimmer.flush()
    expected = _reference_cut(text, stops)
    assert out == expected
    assert trimmer.stopped == any(s and s in text for s in stops)


def test_batch_of_greedy_candidates_equals_the_single_stream(engine) -> None:
    single = list(engine.stream(_prompt(), _greedy(24)))
    batch = join_candidates(list(engine.stream(_prompt(), replace(_greedy(24), n=3))))
    assert sorted(batch) == [0, 1, 2]
    for text, tokens, finish in batch.values():
        assert text == _join(single)
        assert tokens == sum(c.tokens for c in single) == 24
        assert finish == "length"


def test_batch_candidates_trim_their_stop_strings(engine) -> None:
    full = _join(engine.stream(_prompt(), _greedy(40)))
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    batch = join_candidates(list(engine.stream(_prompt(), replace(_greedy(40), n=2, stop=(stop,)))))
    for text, _, finish in batch.values():
        assert text == full[: full.index(stop)]
        assert finish == "stop"


def test_sampled_batch_gives_different_candidates(engine) -> None:
    sampling = Sampling(max_tokens=48, temperature=1.0, top_p=1.0, seed=5, n=3)
    texts = [t for t, _, _ in join_candidates(list(engine.stream(_prompt(), sampling))).values()]
    assert len(set(texts)) == 3
