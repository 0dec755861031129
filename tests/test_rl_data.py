"""`longwrite rl prepare` and the rows `rl train` reads: template, ranges, drops, resume."""

import json

import pytest
import sse_server
from sse_server import Script, ScriptedServer, plan
from typer.testing import CliRunner

from longwrite.cli.rl import rl_app
from longwrite.errors import LongwriteError
from longwrite.prompt.templates import build_prompt
from longwrite.rl.data import load_training_rows, prepare

PROMPTS = [
    "Write a 2,000-word essay on tides.",  # about 2000 -> [1800, 2200]
    "Write a short thank-you note to a teacher.",  # no length
    "写一篇不少于800字的散文。",  # at least 800 -> [800, 880]
    "In no more than 30 words, explain why the sky is blue.",  # at most 30 -> [27, 30]
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_prepare_applies_the_template_and_stated_ranges(tmp_path):
    src = write_jsonl(tmp_path / "p.jsonl", [{"prompt": p} for p in PROMPTS])
    out = tmp_path / "data.jsonl"
    report = prepare(src, out)
    assert (report.total, report.written, report.stated, report.dropped) == (4, 3, 3, 1)
    rows = read_jsonl(out)
    assert [(r["index"], r["lo"], r["hi"]) for r in rows] == [
        (0, 1800, 2200),
        (2, 800, 880),
        (3, 27, 30),
    ]
    assert rows[0]["prompt"] == build_prompt(PROMPTS[0]) and rows[0]["question"] == PROMPTS[0]
    assert rows[1]["prompt"] == build_prompt(PROMPTS[2], language="zh")
    assert {r["range_source"] for r in rows} == {"request"}
    assert report.line(out).startswith(f"prepared 3 prompts into {out} (3 stated, 0 predicted)")


def test_prepare_resumes_and_repairs_a_torn_line(tmp_path):
    src = write_jsonl(tmp_path / "p.jsonl", [{"prompt": p} for p in PROMPTS[:2]])
    out = tmp_path / "data.jsonl"
    assert prepare(src, out).written == 1
    first = out.read_text()
    # More prompts arrive, and a killed run left half a line behind.
    write_jsonl(src, [{"prompt": p} for p in PROMPTS])
    out.write_text(first + '{"index": 3, "question": "In no more')
    report = prepare(src, out)
    assert (report.already, report.written, report.dropped) == (1, 2, 1)
    assert out.read_text().startswith(first)
    assert [r["index"] for r in read_jsonl(out)] == [0, 2, 3]
    again = prepare(src, out)  # nothing left but the prompt without a length
    assert (again.already, again.written, again.dropped) == (3, 0, 1)
    assert [r["index"] for r in read_jsonl(out)] == [0, 2, 3]


def test_given_ranges_are_kept_and_bad_lines_named(tmp_path):
    src = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "Anything at all.", "lo": 100, "hi": 300}])
    out = tmp_path / "data.jsonl"
    prepare(src, out)
    assert read_jsonl(out)[0] | {"prompt": None} == {
        "index": 0,
        "question": "Anything at all.",
        "prompt": None,
        "lo": 100,
        "hi": 300,
        "range_source": "given",
    }
    (tmp_path / "bad.jsonl").write_text('{"prompt": "ok"}\n{"text": "no prompt"}\n')
    with pytest.raises(LongwriteError, match=r"bad.jsonl:2: no `prompt` text"):
        prepare(tmp_path / "bad.jsonl", tmp_path / "o.jsonl")


@pytest.fixture
def range_server(monkeypatch):
    """A scripted server that answers the length assessor by a marker in the prompt."""
    replies = {}

    def routed(self, body):
        prompt = body.get("prompt", "")
        text = next((t for m, t in replies.items() if m in prompt), "no idea")
        return [plan(text, 0, self.owner.script, int(body.get("max_tokens") or 16), [])]

    monkeypatch.setattr(sse_server._Handler, "_plan", routed)
    with ScriptedServer(Script()) as server:
        yield server, replies


def test_prepare_asks_the_range_model_for_the_rest(tmp_path, range_server):
    server, replies = range_server
    replies["thank-you"] = 'A note is short.\n{"lo": 120, "hi": 260}'  # rounded to [100, 300]
    src = write_jsonl(tmp_path / "p.jsonl", [{"prompt": p} for p in PROMPTS[:2]])
    src2 = write_jsonl(tmp_path / "q.jsonl", [{"prompt": "Describe nothing whatsoever."}])
    out = tmp_path / "data.jsonl"
    result = CliRunner().invoke(
        rl_app, ["prepare", str(src), "-o", str(out), "--range-model", server.url]
    )
    assert result.exit_code == 0, result.output
    rows = read_jsonl(out)
    assert [(r["lo"], r["hi"], r["range_source"]) for r in rows] == [
        (1800, 2200, "request"),
        (100, 300, "predicted"),
    ]
    assert len(server.completions) == 1  # the stated length needed no LLM
    # An assessor that never gives a range: asked three times, then the prompt is dropped.
    result = CliRunner().invoke(
        rl_app,
        ["prepare", str(src2), "-o", str(tmp_path / "d2.jsonl"), "--range-model", server.url],
    )
    assert result.exit_code == 0
    assert "0 predicted); 1 dropped" in result.output
    assert len(server.completions) == 1 + 3


def test_prepare_reads_a_dataset_saved_to_disk(tmp_path):
    from datasets import Dataset, DatasetDict

    folder = tmp_path / "ds"
    train = Dataset.from_list([{"prompt": p, "id": i} for i, p in enumerate(PROMPTS)])
    DatasetDict({"train": train}).save_to_disk(str(folder))
    report = prepare(folder, tmp_path / "data.jsonl")
    assert (report.total, report.written, report.dropped) == (4, 3, 1)


def test_prepare_cli_refuses_to_overwrite_its_input(tmp_path):
    src = write_jsonl(tmp_path / "p.jsonl", [{"prompt": PROMPTS[0]}])
    result = CliRunner().invoke(rl_app, ["prepare", str(src), "-o", str(src)])
    assert isinstance(result.exception, LongwriteError)
    assert "is also what this command reads" in str(result.exception)


def test_training_rows_from_prepared_or_raw_data(tmp_path):
    src = write_jsonl(tmp_path / "p.jsonl", [{"prompt": p} for p in PROMPTS])
    prepared = tmp_path / "data.jsonl"
    prepare(src, prepared)
    rows, dropped = load_training_rows(prepared)
    assert dropped == 0 and [(r.lo, r.hi) for r in rows] == [(1800, 2200), (800, 880), (27, 30)]
    assert rows[0].prompt == build_prompt(PROMPTS[0]) and rows[0].question == PROMPTS[0]
    raw_rows, raw_dropped = load_training_rows(src)  # raw prompts: prepared in memory
    assert raw_dropped == 1 and raw_rows == [
        r.__class__(i, r.question, r.prompt, r.lo, r.hi, "request")
        for i, r in zip((0, 2, 3), rows, strict=True)
    ]
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "x", "lo": 5, "hi": 2}])
    with pytest.raises(LongwriteError, match="lo and hi must be integers"):
        load_training_rows(bad)


def test_prepare_refuses_a_second_writer_and_a_file_not_its_own(tmp_path):
    from longwrite.io.jsonl import AppendLog

    src = write_jsonl(tmp_path / "p.jsonl", [{"prompt": p} for p in PROMPTS])
    out = tmp_path / "data.jsonl"
    other = AppendLog(out)
    other.lock()  # another `rl prepare` is writing this output
    try:
        with pytest.raises(LongwriteError, match=r"another longwrite run is writing .*data.jsonl"):
            prepare(src, out)
    finally:
        other.close()
    assert not out.exists() or out.read_text() == ""  # nothing was interleaved
    out.write_text('{"index": 0}\r\nnot json\r\n{"index": 2}\r\n')  # CRLF, edited by hand
    with pytest.raises(LongwriteError, match=r"data.jsonl:2: not valid JSON"):
        prepare(src, out)
    out.write_text('{"index": 0}\r\n{"index": 2}')  # a whole last row whose newline never came
    report = prepare(src, out)
    assert (report.already, report.written, report.dropped) == (2, 1, 1)
    assert [r["index"] for r in read_jsonl(out)] == [0, 2, 3]
    assert not (tmp_path / "data.jsonl.lock").exists()  # released when done


def test_prepare_keeps_an_empty_output_when_every_prompt_is_dropped(tmp_path):
    src = write_jsonl(tmp_path / "p.jsonl", [{"prompt": PROMPTS[1]}])
    out = tmp_path / "data.jsonl"
    assert prepare(src, out).dropped == 1
    assert out.read_text() == ""
