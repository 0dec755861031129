"""The one reader of JSON objects (`io.records`) and the append-only file (`io.jsonl`) on the
inputs that broke them: Unicode line breaks inside strings, a line of invalid UTF-8, JSON
nested 100,000 deep, a judge reply of 100,000 braces, damaged verdict fields, a file that is
not ours given as OUT, a planted lock link, a write the disk refuses, and an output that is
also the input. Every case ends in a line number or one clear refusal, and no file that is
not ours is changed.
"""

from __future__ import annotations

import doctest
import errno
import json
import os
import time
from pathlib import Path

import pytest

import longwrite.io.records
import longwrite.redact
from longwrite.batch.input import read_items
from longwrite.errors import LongwriteError
from longwrite.evaluate.judged import reply_object
from longwrite.evaluate.length import load_results
from longwrite.evaluate.quality import load_items, match_verdicts, parse_judgement
from longwrite.evaluate.writingbench import parse_verdict
from longwrite.generate.job import WriteOptions
from longwrite.io.files import atomic_write_text, check_apart
from longwrite.io.jsonl import AppendLog, WriteFailed, read_records
from longwrite.io.records import MAX_DEPTH, LineError, decode_object, read_lines

BASE = WriteOptions(prompt="", max_tokens=200, max_rounds=0)
NESTED = "[" * 100_000 + "]" * 100_000
# Text a model really writes with these: a line separator pasted from a web page, and the
# NEL a Windows-1252 round trip leaves behind.
ODD_BREAKS = "Tides rise\u2028and fall.\u0085Twice a day."


def write(path: Path, *lines: str | bytes, end: bytes = b"\n") -> Path:
    raw = [line.encode("utf-8") if isinstance(line, str) else line for line in lines]
    path.write_bytes(b"\n".join(raw) + end)
    return path


# ---------------------------------------------------------------- 11, 12: lines and bytes


def test_unicode_line_breaks_inside_a_string_are_not_line_ends(tmp_path: Path) -> None:
    path = write(
        tmp_path / "in.jsonl",
        json.dumps({"prompt": ODD_BREAKS}, ensure_ascii=False),
        json.dumps({"prompt": "Second."}),
    )
    assert [(line.number, line.obj) for line in read_lines(path)] == [
        (1, {"prompt": ODD_BREAKS}),
        (2, {"prompt": "Second."}),
    ]
    items, problems = read_items(path, BASE)
    assert [(i.line, i.prompt) for i in items] == [(1, ODD_BREAKS), (2, "Second.")]
    assert problems == []


def test_batch_output_with_a_line_separator_is_scored(tmp_path: Path) -> None:
    record = {"id": "a", "prompt": "p", "answer": ODD_BREAKS, "length": 5, "type": "t"}
    path = write(tmp_path / "out.jsonl", json.dumps(record, ensure_ascii=False))
    (result,) = load_results(path)
    assert (result.line, result.produced) == (1, 7)
    (item,) = load_items(path)
    assert item.answer == ODD_BREAKS


def test_a_line_of_invalid_utf8_is_skipped_in_batch_and_named(tmp_path: Path) -> None:
    path = write(
        tmp_path / "in.jsonl",
        json.dumps({"prompt": "First."}),
        b'{"prompt": "caf\xe9 latin-1"}',
        json.dumps({"prompt": "Third."}),
    )
    items, problems = read_items(path, BASE)
    assert [i.line for i in items] == [1, 3]
    assert [(p.line, p.message) for p in problems] == [(2, "not UTF-8 text (a bad byte at "
                                                         "column 16)")]  # fmt: skip


def test_a_line_of_invalid_utf8_names_its_line_in_eval(tmp_path: Path) -> None:
    good = json.dumps({"prompt": "p", "answer": "a b", "length": 2})
    path = write(tmp_path / "out.jsonl", good, b'{"prompt": "p", "answer": "\xff", "length": 2}')
    with pytest.raises(LongwriteError, match=r"out.jsonl:2: not UTF-8 text"):
        load_results(path)


def test_deep_nesting_is_a_bad_line_not_a_recursion_error(tmp_path: Path) -> None:
    path = write(
        tmp_path / "in.jsonl",
        json.dumps({"prompt": "First."}),
        '{"prompt": "x", "meta": ' + NESTED + "}",
        json.dumps({"prompt": "Third.", "meta": [[[[1]]]]}),
    )
    items, problems = read_items(path, BASE)
    assert [i.line for i in items] == [1, 3]
    assert [p.line for p in problems] == [2] and "nested" in problems[0].message
    # Just past the limit: decodes, but could not be written back into OUT safely.
    deep = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    with pytest.raises(LineError, match="nested more than"):
        decode_object('{"a": ' + deep + "}")
    assert decode_object('{"a": ' + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "}")


# ---------------------------------------------------------------- 10: replies and verdicts


@pytest.mark.parametrize(
    "parse",
    [parse_judgement, parse_verdict, lambda r: reply_object(r, ("winner",))],
    ids=["quality", "writingbench", "arena"],
)
def test_a_reply_of_a_hundred_thousand_braces_is_a_malformed_reply(parse) -> None:
    started = time.process_time()
    with pytest.raises(ValueError, match="no JSON object|no rating"):
        parse('{"score": ' * 100_000)
    assert time.process_time() - started < 5  # bounded tries, not one per brace


def test_a_verdict_after_prose_and_braces_is_still_found() -> None:
    reply = 'I weigh {both} sides. {"note": 1} Final: ```json\n{"score": 7, "reason": "ok"}\n```'
    assert parse_verdict(reply) == {"score": 7, "reason": "ok"}


def test_a_damaged_verdict_field_names_its_line(tmp_path: Path) -> None:
    results = write(tmp_path / "r.jsonl", json.dumps({"id": "a", "prompt": "p", "answer": "x"}))
    items = load_items(results)
    good = {"key": "a", "scores": None, "attempts": 1, "answer_sha": items[0].digest}
    records = [(1, good), (2, {**good, "attempts": "x"})]
    with pytest.raises(LongwriteError, match=r"q.jsonl:2: `attempts` must be a whole number"):
        match_verdicts(items, records, path=tmp_path / "q.jsonl")


# ---------------------------------------------------------------- 1: only our files change


@pytest.mark.parametrize(
    "content",
    [
        b'Meeting notes\n- call the plumber\n{"id": 1}\nno final newline',
        b'{"id": "a"}\nhello\n{"id": "b", "torn',  # a bad line before a torn-looking tail
        b"one line of notes and no newline",
        b"[1, 2, 3]",
    ],
    ids=["notes", "bad-line-then-torn", "one-line", "array"],
)
def test_a_file_that_is_not_ours_is_refused_and_left_as_it_was(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    with pytest.raises(LongwriteError, match=r"notes.txt:\d+: .*refusing to append"):
        AppendLog(path).load()
    assert path.read_bytes() == content
    with pytest.raises(LongwriteError, match=r"notes.txt:\d+: "):
        read_records(path)


def test_a_torn_record_of_ours_is_cut_and_a_reader_leaves_it(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(b'{"id": "a"}\n{"id": "b", "answer": "\xc3')  # cut inside a character
    assert read_records(path) == [{"id": "a"}]
    assert path.read_bytes().endswith(b"\xc3")  # a reader changes nothing
    log = AppendLog(path)
    assert log.load() == [{"id": "a"}] and log.dropped_torn
    assert path.read_bytes() == b'{"id": "a"}\n'


# ---------------------------------------------------------------- 6: the lock file


def test_a_planted_lock_link_is_refused_and_its_target_kept(tmp_path: Path) -> None:
    precious = tmp_path / "thesis.md"
    precious.write_text("years of work\n")
    out = tmp_path / "out.jsonl"
    (tmp_path / "out.jsonl.lock").symlink_to(precious)
    with pytest.raises(LongwriteError, match=r"out.jsonl.lock is a symbolic link"):
        AppendLog(out).lock()
    assert precious.read_text() == "years of work\n"


def test_a_lock_file_hard_linked_to_another_file_is_refused(tmp_path: Path) -> None:
    precious = tmp_path / "thesis.md"
    precious.write_text("years of work\n")
    os.link(precious, tmp_path / "out.jsonl.lock")
    with pytest.raises(LongwriteError, match=r"not a lock file of longwrite"):
        AppendLog(tmp_path / "out.jsonl").lock()
    assert precious.read_text() == "years of work\n"


def test_a_link_planted_at_the_temporary_name_is_not_followed(tmp_path: Path) -> None:
    precious = tmp_path / "thesis.md"
    precious.write_text("years of work\n")
    (tmp_path / f".report.md.{os.getpid()}.tmp").symlink_to(precious)  # a name one can guess
    atomic_write_text(tmp_path / "report.md", "the report\n")
    assert (tmp_path / "report.md").read_text() == "the report\n"
    assert precious.read_text() == "years of work\n"


# ---------------------------------------------------------------- 2: a write that fails


def test_a_write_the_disk_refuses_leaves_no_torn_line(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "out.jsonl"
    log = AppendLog(path)
    log.append({"id": "a"})
    real_write = os.write

    def half_then_full(fd: int, data) -> int:
        if fd == log._fd and len(data) > 4:  # the kernel takes part of it, then no room
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as m:
        m.setattr(os, "write", half_then_full)
        with pytest.raises(WriteFailed, match="No space left on device") as info:
            log.append({"id": "b", "answer": "x" * 100})
    assert info.value.full and info.value.exit_code == 1
    log.append({"id": "c"})
    log.close()
    assert path.read_bytes() == b'{"id": "a"}\n{"id": "c"}\n'


# ---------------------------------------------------------------- 5: output is an input


def test_an_output_that_is_an_input_is_refused(tmp_path: Path) -> None:
    given = write(tmp_path / "in.jsonl", json.dumps({"prompt": "p"}))
    (tmp_path / "alias.jsonl").symlink_to(given)
    for out in (given, tmp_path / "." / "in.jsonl", tmp_path / "alias.jsonl"):
        with pytest.raises(LongwriteError, match="is also what this command reads"):
            check_apart([out], [given])
    check_apart([tmp_path / "out.jsonl"], [given, None])


def test_doctests() -> None:
    for module in (longwrite.io.records, longwrite.redact):
        assert doctest.testmod(module).failed == 0
