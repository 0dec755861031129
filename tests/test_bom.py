"""Files as Windows tools write them: a UTF-8 byte order mark, then CRLF line ends.

Notepad and PowerShell 5 (`Out-File`, `Set-Content -Encoding utf8`) start a UTF-8 file with
EF BB BF. Every file a user names is read through one reader that drops it, so the first
line of a batch input, a results file, a query file or a servers file is not lost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from longwrite.batch.input import read_items
from longwrite.batch.pool import server_urls
from longwrite.evaluate.arena import load_candidate
from longwrite.evaluate.length import load_results
from longwrite.evaluate.quality import load_items
from longwrite.evaluate.writingbench import load_queries
from longwrite.generate.job import WriteOptions

BOM = b"\xef\xbb\xbf"


def windows_file(tmp_path: Path, lines: list[str], name: str = "f.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(BOM + "".join(line + "\r\n" for line in lines).encode("utf-8"))
    return path


def rows(*objs: dict) -> list[str]:
    return [json.dumps(o, ensure_ascii=False) for o in objs]


def test_batch_input(tmp_path):
    path = windows_file(tmp_path, rows({"id": "a", "prompt": "Write a poem"},
                                       {"id": "b", "prompt": "Write a letter"}))  # fmt: skip
    items, problems = read_items(path, WriteOptions(prompt=""))
    assert problems == [] and [i.id for i in items] == ["a", "b"]
    assert items[0].prompt == "Write a poem"


def test_eval_length_results(tmp_path):
    path = windows_file(tmp_path, rows({"id": "a", "length": 100, "answer": "one two"}))
    (result,) = load_results(path)
    assert result.required == 100 and result.produced == 2


def test_eval_quality_results(tmp_path):
    path = windows_file(tmp_path, rows({"id": "a", "prompt": "Write.", "answer": "Done."}))
    (item,) = load_items(path)
    assert item.id == "a"


def test_writingbench_queries_and_arena_results(tmp_path):
    checklist = [{"name": "n", "criteria_description": "d", "1-2": "a", "3-4": "b",
                  "5-6": "c", "7-8": "d", "9-10": "e"}]  # fmt: skip
    queries = windows_file(tmp_path, rows({"index": 1, "domain1": "A", "domain2": "B",
                                           "query": "Write.", "checklist": checklist}))  # fmt: skip
    assert [q.query for q in load_queries(queries)] == ["Write."]
    answers = windows_file(tmp_path, rows({"idx": 7, "answer": "Mine."}), "mine.jsonl")
    assert load_candidate(answers) == {"7": "Mine."}


def test_servers_file(tmp_path):
    path = windows_file(tmp_path, ["http://gpu1:8000  # first", "http://gpu2:8000"], "s.txt")
    assert server_urls(None, path) == ["http://gpu1:8000", "http://gpu2:8000"]


@pytest.mark.parametrize("suffix", [".txt", ".jsonl"])
def test_pretraining_corpus(tmp_path, suffix):
    from longwrite.rl.corpus import file_texts

    line = json.dumps({"text": "A long book."}) if suffix == ".jsonl" else "A long book."
    path = windows_file(tmp_path, [line], "book" + suffix)
    (text,) = [t.strip() for t in file_texts(path, "text")]
    assert text == "A long book."


def test_rl_prompts(tmp_path):
    from longwrite.rl.data import read_prompts

    path = windows_file(tmp_path, rows({"prompt": "Write a saga", "length": 900}))
    assert [row["prompt"] for _, row in read_prompts(path)] == ["Write a saga"]
