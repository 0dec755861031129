"""`longwrite batch` without servers: input lines, ids, the crash-safe results file, the load
spreading rules, the row batcher, and whole runs on scripted engines and the tiny model."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from scripted import CandidatesEngine, RoundsEngine, ScriptedEngine, cut, join_candidates

from longwrite.batch.input import BatchItem, parse_item, prompt_id, read_items
from longwrite.batch.pool import EnginePool, RowBatcher, is_connection_failure
from longwrite.batch.runner import done_ids, run_batch, run_item
from longwrite.cli.batch import _report, run_batch_command
from longwrite.display.batch_progress import BatchProgress
from longwrite.display.status import format_duration
from longwrite.engines.base import Chunk, EngineError, EngineInfo, Sampling
from longwrite.errors import LongwriteError
from longwrite.generate.job import WriteOptions
from longwrite.io.jsonl import AppendLog

BASE = WriteOptions(prompt="", max_tokens=40, temperature=0.6, top_p=0.95)


def write_lines(path: Path, lines: list[object]) -> Path:
    path.write_text(
        "".join(
            (x if isinstance(x, str) else json.dumps(x, ensure_ascii=False)) + "\n" for x in lines
        ),
        encoding="utf-8",
    )
    return path


def item(prompt: str = "Write a story.", **fields: object) -> BatchItem:
    obj = {"prompt": prompt, **fields}
    _, given, words, overrides = parse_item(json.dumps(obj))
    return BatchItem(1, given or prompt_id(prompt), prompt, words, overrides, obj)


# ---------------------------------------------------------------- input lines and ids


def test_prompt_id_is_sha256_of_the_prompt() -> None:
    # sha256(b"hello") = 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824
    assert prompt_id("hello") == "p2cf24dba5fb0"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"id": "a"}', "no `prompt`"),
        ('{"prompt": "   "}', "no `prompt`"),
        ('{"prompt": "x", "id": [1]}', "`id` must be"),
        ('{"prompt": "x", "id": true}', "`id` must be"),
        ('{"prompt": "x", "words": 0}', "`words` must be positive"),
        ('{"prompt": "x", "length": 2.5}', "`length` must be a whole number"),
        ('{"prompt": "x", "temperature": "hot"}', "`temperature` must be a number"),
        ('{"prompt": "x", "best_of": false}', "`best_of` must be a number"),
    ],
)
def test_malformed_lines_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_item(text)


def test_parse_item_reads_target_and_overrides() -> None:
    obj, given, words, overrides = parse_item(
        '{"prompt": "x", "id": 7, "length": 2000.0, "words": 300, "seed": 3.0, "top_p": 1, '
        '"type": "essay"}'
    )
    assert given == "7" and words == 300  # `words` wins over `length`
    assert overrides == {"seed": 3, "top_p": 1.0}
    assert isinstance(overrides["seed"], int) and isinstance(overrides["top_p"], float)
    assert obj["type"] == "essay"


def test_read_items_reports_bad_lines_and_gives_stable_ids(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "in.jsonl",
        [
            {"prompt": "Write a poem"},
            "",
            "{broken",
            {"prompt": "Write a poem"},
            {"id": "x", "prompt": "A"},
            {"id": "x", "prompt": "B"},
            {"prompt": "C", "top_p": 2},
            {"prompt": "D", "words": 500},
        ],
    )
    items, problems = read_items(path, BASE)
    first = prompt_id("Write a poem")
    assert [(i.line, i.id) for i in items] == [
        (1, first),
        (4, first + "-2"),
        (5, "x"),
        (8, prompt_id("D")),
    ]
    assert [p.line for p in problems] == [3, 6, 7]
    assert "first on line 5" in problems[1].message
    assert "top-p" in problems[2].message  # resolved as the main job resolves it
    assert items[3].words == 500


def test_read_items_missing_file_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(LongwriteError, match="no such file"):
        read_items(tmp_path / "nope.jsonl", BASE)


# ---------------------------------------------------------------- the results file


def test_append_log_round_trip(tmp_path: Path) -> None:
    log = AppendLog(tmp_path / "out.jsonl")
    assert log.load() == []
    log.append({"id": "a", "answer": "één 世界"})
    log.append({"id": 2})
    log.close()
    raw = (tmp_path / "out.jsonl").read_bytes()
    assert raw.count(b"\n") == 2 and raw.endswith(b"\n")
    assert AppendLog(tmp_path / "out.jsonl").load() == [
        {"id": "a", "answer": "één 世界"},
        {"id": 2},
    ]
    assert done_ids(AppendLog(tmp_path / "out.jsonl").load()) == {"a", "2"}


def test_torn_last_line_is_cut_off(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(b'{"id": "a"}\n{"id": "b", "answ')
    log = AppendLog(path)
    assert log.load() == [{"id": "a"}]
    assert log.dropped_torn
    assert path.read_bytes() == b'{"id": "a"}\n'
    log.append({"id": "c"})
    log.close()
    assert path.read_bytes() == b'{"id": "a"}\n{"id": "c"}\n'


def test_whole_last_line_without_newline_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(b'{"id": "a"}\n{"id": "b"}')
    log = AppendLog(path)
    assert log.load() == [{"id": "a"}, {"id": "b"}]
    assert not log.dropped_torn
    log.append({"id": "c"})
    log.close()
    assert path.read_bytes() == b'{"id": "a"}\n{"id": "b"}\n{"id": "c"}\n'


def test_a_foreign_file_is_not_appended_to(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_text('{"id": "a"}\nhello\n{"id": "b"}\n', encoding="utf-8")
    with pytest.raises(LongwriteError, match=r"out.jsonl:2: not valid JSON .*; refusing to append"):
        AppendLog(path).load()


# ---------------------------------------------------------------- spreading and failures


class _Named:
    def __init__(self, name: str) -> None:
        self.info = EngineInfo(name=name, model="m")
        self.closed = False

    def close(self) -> None:
        self.closed = True


def test_pool_picks_the_least_loaded_live_engine() -> None:
    warnings: list[str] = []
    pool = EnginePool([(n, _Named(n)) for n in "abc"], servers=True, warn=warnings.append)
    got = [pool.acquire().name for _ in range(4)]
    assert got == ["a", "b", "c", "a"]  # ties go to the first listed
    b = pool.slots[1]
    pool.release(b)  # b now has nothing in flight
    assert pool.acquire().name == "b"
    pool.release(pool.slots[2])
    pool.release(pool.slots[1])  # a: 2 in flight, b: 0 (assigned 2), c: 0 (assigned 1)
    assert pool.acquire().name == "c"  # fewest in flight, then fewest assigned
    pool.retire(pool.slots[2], "connection refused")
    pool.retire(pool.slots[2], "again")  # retiring twice warns once
    assert len(warnings) == 1 and "connection refused" in warnings[0]
    assert pool.acquire().name == "b"
    pool.retire(pool.slots[0], "x")
    pool.retire(pool.slots[1], "y")
    assert pool.acquire() is None


def test_connection_failures_are_recognised_through_the_cause_chain() -> None:
    import openai

    def wrapped(inner: BaseException) -> EngineError:
        try:
            try:
                raise inner
            except BaseException:
                raise EngineError("cannot reach the server") from None
        except EngineError as e:
            return e

    # The client's own error for a closed port, raised by its public API (how the exception
    # is constructed is the client's business and changes between releases).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{closed}/v1", api_key="x", max_retries=0)
    try:
        client.completions.create(model="m", prompt="p", max_tokens=1)
    except openai.APIConnectionError as e:
        refused: BaseException = e
    else:
        raise AssertionError("a closed port answered")
    assert is_connection_failure(wrapped(refused))
    assert is_connection_failure(wrapped(ConnectionRefusedError()))
    assert not is_connection_failure(EngineError("the prompt is too long"))
    assert not is_connection_failure(wrapped(ValueError("bad")))


# ---------------------------------------------------------------- one line, scripted engines

ANSWER = "<think>plan</think><answer>one two three four five"


def test_run_item_record_keeps_the_input_and_adds_the_result() -> None:
    engine = ScriptedEngine(cut(ANSWER))
    it = item("Write a story.", id=5, type="story", words=300, temperature=0.2, extra={"k": 1})
    record = run_item(engine, it, replace(BASE, max_rounds=0))
    assert record["id"] == 5 and list(record)[0] == "id"
    assert record["type"] == "story" and record["extra"] == {"k": 1}
    assert record["length"] == 300  # the target, kept where eval length reads it
    assert record["words"] == 5  # the count of the answer
    assert record["answer"] == "one two three four five" and record["thinking"] == "plan"
    assert record["tokens"] == len(cut(ANSWER))
    assert record["finish_reason"] == "stop"
    assert record["target_words"] == 300 and record["target_range"] == [270, 330]
    assert engine.samplings[0].temperature == 0.2  # the line's override
    assert engine.samplings[0].max_tokens == 40  # --max-tokens, kept
    assert "Write a story." in engine.prompts[0]


def test_run_item_continues_a_short_answer_like_the_main_job() -> None:
    engine = RoundsEngine(["<think>p</think><answer>alpha beta", " gamma delta"], ["stop", "stop"])
    it = item("Write four words.", words=4, max_tokens=None)
    record = run_item(engine, it, replace(BASE, max_tokens=None, max_rounds=2))
    assert len(engine.prompts) == 2  # one continuation round: 2 words < the range's 3
    assert engine.prompts[1].startswith(engine.prompts[0])
    assert record["answer"] == "alpha beta\n\n gamma delta"
    assert [r["finish_reason"] for r in record["rounds"]] == ["stop", "stop"]


def test_run_item_best_of_records_the_candidates() -> None:
    short = "<think>p</think><answer>one two three"
    good = "<think>p</think><answer>one two three four five six seven eight nine ten"
    engine = CandidatesEngine([short, good])
    record = run_item(engine, item("Write ten words.", words=10, best_of=2), BASE)
    assert engine.samplings[0].n == 2
    assert record["best"] == 1 and record["words"] == 10
    assert [c["index"] for c in record["candidates"]] == [0, 1]
    assert "answer" not in record["candidates"][0]


def test_a_cancelled_line_is_not_a_record() -> None:
    engine = ScriptedEngine(cut(ANSWER), interrupt_after=3)
    assert run_item(engine, item(), BASE) is None


class _FailOn(ScriptedEngine):
    """Fails every prompt that contains `bad`."""

    def __init__(self, bad: str) -> None:
        super().__init__(cut(ANSWER))
        self.bad = bad
        self._lock = threading.Lock()

    def stream(self, prompt, sampling):
        if self.bad in prompt:
            raise EngineError("HTTP 400: the prompt is too long")
        with self._lock:
            return list(super().stream(prompt, sampling))


def test_run_batch_writes_every_line_and_reports_failures(tmp_path: Path) -> None:
    items = [item(f"Prompt {i}", id=f"i{i}") for i in range(7)] + [item("bad one", id="bad")]
    log = AppendLog(tmp_path / "out.jsonl")
    warnings: list[str] = []
    progress = BatchProgress(8, stream=io.StringIO(), tty=False)
    with progress:
        outcome = run_batch(
            items,
            EnginePool([("e", _FailOn("bad one"))]),
            log,
            BASE,
            concurrency=3,
            progress=progress,
            warn=warnings.append,
        )
    log.close()
    records = AppendLog(tmp_path / "out.jsonl").load()
    assert sorted(r["id"] for r in records) == [f"i{i}" for i in range(7)]
    assert outcome.written == 7 and [it.id for it, _ in outcome.failed] == ["bad"]
    assert warnings == ["longwrite: error: line 1 (id bad): HTTP 400: the prompt is too long"]
    assert progress.done == 7 and progress.failed == 1
    assert progress.tokens == 7 * len(cut(ANSWER))


def test_progress_plain_lines_are_sparse() -> None:
    out = io.StringIO()
    with BatchProgress(10, 2, stream=out, tty=False, every=3600) as progress:
        for _ in range(5):
            progress.finished(True)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2  # the first finished line, then the closing one
    assert lines[0].startswith("batch: 3/10 done") and "ETA" in lines[0]
    assert lines[-1].startswith("batch: 7/10 done")


def test_progress_bar_on_a_terminal() -> None:
    out = io.StringIO()
    with BatchProgress(5, 1, stream=out, tty=True) as progress:
        progress.add_tokens(100)
        progress.finished(True)
    assert "2/5" in out.getvalue() and "tok/s" in out.getvalue()


class _Slow(ScriptedEngine):
    def stream(self, prompt, sampling):
        for chunk in super().stream(prompt, sampling):
            time.sleep(0.01)
            yield chunk


def test_ctrl_c_keeps_whole_lines_only(tmp_path: Path) -> None:
    """Ctrl-C stops the workers; no cancelled line is written, so a re-run redoes them."""
    import _thread

    items = [item(f"Prompt {i}", id=f"i{i}") for i in range(12)]
    engine = _Slow(cut(ANSWER) + cut(" more words" * 4))  # about 0.3 s a line, 2 s in all
    log = AppendLog(tmp_path / "out.jsonl")
    timer = threading.Timer(1.0, _thread.interrupt_main)
    timer.start()
    try:
        outcome = run_batch(items, EnginePool([("e", engine)]), log, BASE, concurrency=2)
    finally:
        timer.cancel()
    log.close()
    records = AppendLog(tmp_path / "out.jsonl").load()
    assert outcome.interrupted and 0 < outcome.written < 12
    assert len(records) == outcome.written
    assert all(r["finish_reason"] == "stop" for r in records)
    assert sorted(it.id for it in outcome.left) == sorted(
        {it.id for it in items} - {r["id"] for r in records}
    )
    assert _report(outcome, [], 0, tmp_path / "out.jsonl") == 130


def test_batch_progress_shares_the_status_lines_duration_format() -> None:
    # one duration format everywhere (display.status.format_duration)
    assert format_duration(75) == "1:15"
    assert format_duration(3725) == "1:02:05"


# ---------------------------------------------------------------- the row batcher


class _RowsEngine:
    """Records each batch; row i's text is its prompt reversed."""

    def __init__(self, fail: bool = False) -> None:
        self.info = EngineInfo(name="rows", model="m")
        self.calls: list[list[tuple[str, Sampling]]] = []
        self.fail = fail

    def stream_prompts(self, prompts, samplings):
        self.calls.append(list(zip(prompts, samplings, strict=True)))
        if self.fail:
            raise EngineError("out of memory")
        for i in range(len(prompts)):
            yield Chunk("", 1, None, i)
        for i, p in enumerate(prompts):
            yield Chunk(p[::-1], 0, "stop", i)

    def count_tokens(self, text):
        return None

    def cancel(self):
        pass


def _gather(batcher: RowBatcher, requests: list[tuple[str, Sampling]]) -> list[dict]:
    results: list[dict] = [{} for _ in requests]
    barrier = threading.Barrier(len(requests))

    def ask(k: int) -> None:
        barrier.wait()
        try:
            for chunk in batcher.stream(*requests[k]):
                text, tokens, _ = results[k].get(chunk.index, ("", 0, None))
                results[k][chunk.index] = (
                    text + chunk.text,
                    tokens + chunk.tokens,
                    chunk.finish_reason,
                )
        except EngineError as e:
            results[k]["error"] = str(e)

    threads = [threading.Thread(target=ask, args=(k,)) for k in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return results


def test_row_batcher_gathers_concurrent_requests_into_one_batch() -> None:
    engine = _RowsEngine()
    batcher = RowBatcher(engine, expected=4, gap=5.0)  # a long gap: only `expected` starts it
    s = Sampling(max_tokens=8)
    results = _gather(batcher, [("ab", s), ("cd", s), ("ef", replace(s, n=2)), ("gh", s)])
    batcher.close()
    assert batcher.batches == [5]  # 4 requests, one of them with 2 candidates
    assert len(engine.calls) == 1
    assert all(sampling.n == 1 for _, sampling in engine.calls[0])
    assert results[0] == {0: ("ba", 1, "stop")}
    assert results[2] == {0: ("fe", 1, "stop"), 1: ("fe", 1, "stop")}


def test_row_batcher_keeps_unbatchable_samplings_apart() -> None:
    engine = _RowsEngine()
    batcher = RowBatcher(engine, expected=3, gap=0.3)
    hot, cold = Sampling(max_tokens=8, temperature=1.0), Sampling(max_tokens=8, temperature=0.2)
    results = _gather(batcher, [("ab", hot), ("cd", cold), ("ef", replace(hot, max_tokens=3))])
    batcher.close()
    assert sorted(batcher.batches) == [1, 2]
    for call in engine.calls:
        assert len({s.temperature for _, s in call}) == 1
    assert [r[0][0] for r in results] == ["ba", "dc", "fe"]


def test_row_batcher_failure_reaches_every_request_of_the_batch() -> None:
    batcher = RowBatcher(_RowsEngine(fail=True), expected=2, gap=5.0)
    s = Sampling(max_tokens=8)
    results = _gather(batcher, [("ab", s), ("cd", s)])
    batcher.close()
    assert results == [{"error": "out of memory"}, {"error": "out of memory"}]


# ---------------------------------------------------------------- the tiny model


@pytest.fixture(scope="module")
def tiny_engine(tiny_model_dir: Path):
    from longwrite.engines.transformers import TransformersEngine

    engine = TransformersEngine(str(tiny_model_dir), device="cpu")
    yield engine
    engine.close()


def test_stream_prompts_equals_one_greedy_stream_per_prompt(tiny_engine) -> None:
    from longwrite.prompt.templates import build_prompt

    prompts = [
        build_prompt("Write a story."),
        build_prompt("写一篇关于灯塔的故事。"),
        build_prompt("A much longer request, about lighthouses, tides and the sea at night."),
    ]
    samplings = [Sampling(max_tokens=m, temperature=0) for m in (12, 5, 20)]
    singles = []
    for p, s in zip(prompts, samplings, strict=True):
        chunks = list(tiny_engine.stream(p, s))
        singles.append(("".join(c.text for c in chunks), sum(c.tokens for c in chunks)))
    rows = join_candidates(tiny_engine.stream_prompts(prompts, samplings))
    assert sorted(rows) == [0, 1, 2]
    for i, (text, tokens) in enumerate(singles):
        assert rows[i] == (text, tokens, "length")  # left padding changes nothing
    assert [rows[i][1] for i in range(3)] == [12, 5, 20]  # each row its own max_tokens


def test_stream_prompts_min_tokens_is_per_row(tiny_engine) -> None:
    """With the end-of-sequence token forced to win every step, a row without min_tokens
    ends at once and a row with min_tokens=12 ends right after 12 tokens, exactly as a
    single stream with min_tokens does."""
    eos = min(tiny_engine._eos_ids)

    def favour_eos(module, inputs, logits):
        logits = logits.clone()
        logits[..., eos] += 1000.0
        return logits

    hook = tiny_engine._model.lm_head.register_forward_hook(favour_eos)
    try:
        greedy = Sampling(max_tokens=30, temperature=0)
        rows = join_candidates(
            tiny_engine.stream_prompts(
                ["Write a story.", "Write a longer story."],
                [greedy, replace(greedy, min_tokens=12)],
            )
        )
        single = list(tiny_engine.stream("Write a longer story.", replace(greedy, min_tokens=12)))
    finally:
        hook.remove()
    assert rows[0][1:] == (1, "stop")
    assert rows[1][1:] == (13, "stop")  # 12 tokens, then the end-of-sequence token
    assert rows[1][0] == "".join(c.text for c in single)


def test_stream_prompts_refuses_rows_it_cannot_batch(tiny_engine) -> None:
    with pytest.raises(ValueError, match="must share"):
        list(tiny_engine.stream_prompts(["a", "b"], [Sampling(temperature=0.1), Sampling()]))
    with pytest.raises(ValueError, match="n == 1"):
        list(tiny_engine.stream_prompts(["a"], [Sampling(n=2)]))


@pytest.mark.slow
def test_batch_on_the_tiny_model_runs_real_batches_and_resumes(tiny_engine, tmp_path) -> None:
    lines = [{"prompt": f"Write a story about topic {i}.", "words": 300 + i} for i in range(6)]
    lines.append({"prompt": "Write two candidates.", "best_of": 2, "id": "b2"})
    items, problems = read_items(write_lines(tmp_path / "in.jsonl", lines), BASE)
    assert not problems
    log = AppendLog(tmp_path / "out.jsonl")
    base = replace(BASE, max_tokens=16, seed=1)
    # a long gap: each batch starts only once every worker's request is waiting
    batcher = RowBatcher(tiny_engine, expected=4, gap=5.0)
    first = run_batch(items[:4], EnginePool([("tiny", batcher)]), log, base, concurrency=4)
    batcher.close()
    assert first.written == 4 and batcher.batches == [4]  # four prompts, one generate
    done = done_ids(AppendLog(tmp_path / "out.jsonl").load())
    rest = [it for it in items if it.id not in done]
    batcher = RowBatcher(tiny_engine, expected=3, gap=5.0)
    second = run_batch(rest, EnginePool([("tiny", batcher)]), log, base, concurrency=4)
    batcher.close()
    log.close()
    assert second.written == 3 and not second.failed
    assert batcher.batches == [4]  # two prompts and the best-of line's two candidates
    records = AppendLog(tmp_path / "out.jsonl").load()
    assert sorted(r["id"] for r in records) == sorted(it.id for it in items)
    for r in records:
        assert 0 < r["tokens"] <= (32 if r["id"] == "b2" else 16)
        assert r["finish_reason"] in ("stop", "length")
    b2 = next(r for r in records if r["id"] == "b2")
    assert len(b2["candidates"]) == 2


@pytest.mark.slow
def test_batch_command_on_the_tiny_model(tiny_model_dir, tmp_path, capsys) -> None:
    """The command end to end: malformed lines skipped with their numbers, exit 1; re-run
    after fixing nothing finds everything done and still says a line was malformed."""
    src = write_lines(
        tmp_path / "in.jsonl",
        [{"prompt": "Write a poem.", "id": 1}, "nope", {"prompt": "Write a story.", "length": 200}],
    )
    out = tmp_path / "out.jsonl"
    options = replace(
        BASE,
        max_tokens=12,
        engine=replace(BASE.engine, engine="transformers", model=str(tiny_model_dir), device="cpu"),
    )
    assert run_batch_command(src, out, options, [], 4) == 1
    err = capsys.readouterr().err
    assert f"{src}:2: not valid JSON" in err and "line skipped" in err
    assert "batch: 2 written" in err and "1 malformed line(s) skipped" in err
    assert sorted(str(r["id"]) for r in AppendLog(out).load()) == sorted(
        ["1", prompt_id("Write a story.")]
    )
    assert run_batch_command(src, out, options, [], 4) == 1
    assert "all 2 lines are in" in capsys.readouterr().err
    write_lines(src, [{"prompt": "Write a poem.", "id": 1}])
    assert run_batch_command(src, out, options, [], 4) == 0


def test_mixed_prompt_lengths_are_batched_by_length() -> None:
    from longwrite.batch.pool import length_buckets

    # sorted 100, 105, 110 | 950, 1000: 3 x 110 = 330 <= 1.5 x 315, but 4 x 950 > 1.5 x 1265
    assert length_buckets([100, 1000, 110, 950, 105], slack=1.5) == [[0, 4, 2], [3, 1]]
    assert length_buckets([7] * 5) == [[0, 1, 2, 3, 4]]
    assert length_buckets([]) == []
    buckets = length_buckets([5, 900, 17, 40, 300, 1200, 8, 60])
    assert sorted(k for b in buckets for k in b) == list(range(8))  # every row exactly once
