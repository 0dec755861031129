"""`eval length`: LongBench-Write's length score, checked against hand-computed values."""

from __future__ import annotations

import doctest
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import longwrite.evaluate.length
from longwrite.cli.eval import eval_app
from longwrite.errors import LongwriteError
from longwrite.evaluate.length import LengthResult, length_score, load_results, summarize

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_doctests():
    result = doctest.testmod(longwrite.evaluate.length)
    assert result.attempted > 0
    assert result.failed == 0


# ---- the formula -------------------------------------------------------------------------


def test_length_score_exact():
    assert length_score(1000, 1000) == 100.0


def test_length_score_too_long():
    assert length_score(1000, 2000) == pytest.approx(200 / 3)  # 100 * (1 - 1/3) = 66.67
    assert length_score(100, 150) == pytest.approx(250 / 3)  # 100 * (1 - 0.5/3)
    assert length_score(1000, 4000) == 0.0  # 1 - 3/3
    assert length_score(1000, 5000) == 0.0  # clamped


def test_length_score_too_short():
    assert length_score(1000, 500) == 50.0  # 100 * (1 - (2 - 1)/2)
    assert length_score(100, 80) == 87.5  # 100 * (1 - 0.25/2)
    assert length_score(999, 333) == 0.0  # x/y = 3: 1 - 2/2
    assert length_score(1000, 250) == 0.0  # clamped


def test_length_score_empty_answer():
    assert length_score(1000, 0) == 0.0


def test_length_score_needs_a_positive_requirement():
    with pytest.raises(ValueError):
        length_score(0, 10)


# ---- results files -----------------------------------------------------------------------

# Word counts by hand: 4, 4, 2, 0, 3 (hello + 世 + 界; "2,000" and "!" count for nothing).
LINES = [
    {"id": "a1", "type": "A", "length": 4, "answer": "One two three four."},  # 100
    {"id": "a2", "type": "A", "length": 2, "answer": "a b, c d"},  # y = 2x: 66.67
    {"prompt": "Write a story", "type": "B", "length": 4, "answer": "2,000 more words!"},  # 50
    {"id": 7, "type": "B", "length": 3, "answer": ""},  # 0
    {"type": "B", "length": 1, "words": 3, "answer": "hello 世界"},  # y = 3x: 33.33
]


def write_results(path: Path, rows: list[object], *, blank_after: int | None = None) -> Path:
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    if blank_after is not None:
        lines.insert(blank_after, "")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def results_file(tmp_path: Path) -> Path:
    return write_results(tmp_path / "results.jsonl", LINES, blank_after=2)


def test_load_results(results_file: Path):
    results = load_results(results_file)
    assert [r.produced for r in results] == [4, 4, 2, 0, 3]
    assert [r.required for r in results] == [4, 2, 4, 3, 1]
    assert [r.line for r in results] == [1, 2, 4, 5, 6]  # line 3 is blank
    assert [r.id for r in results] == ["a1", "a2", "Write a story", "7", None]
    assert [r.type for r in results] == ["A", "A", "B", "B", "B"]


def test_summarize_by_hand(results_file: Path):
    report = summarize(load_results(results_file))
    # (100 + 200/3 + 50 + 0 + 100/3) / 5 = 250 / 5
    assert report.length_score == pytest.approx(50.0)
    assert report.n == 5
    assert list(report.by_type) == ["A", "B"]
    assert report.by_type["A"].n == 2
    assert report.by_type["A"].length_score == pytest.approx(250 / 3)  # (100 + 200/3) / 2
    assert report.by_type["B"].n == 3
    assert report.by_type["B"].length_score == pytest.approx(250 / 9)  # (50 + 0 + 100/3) / 3
    assert [r.line for r in report.worst] == [5, 6, 4, 2, 1]


def test_worst_count_and_ties():
    results = [LengthResult(i, 100, 50) for i in (3, 1, 2)] + [LengthResult(4, 100, 100)]
    report = summarize(results, worst=2)
    assert [r.line for r in report.worst] == [1, 2]  # equal scores: earlier lines first
    assert summarize(results, worst=0).worst == ()


def test_untyped_results_have_no_per_type_scores(tmp_path: Path):
    path = write_results(tmp_path / "r.jsonl", [{"length": 2, "answer": "a b"}])
    report = summarize(load_results(path))
    assert report.by_type == {}
    assert report.length_score == 100.0


def test_length_and_words_fields(tmp_path: Path):
    # `words` is the answer's own count in longwrite's outputs: never the required length
    rows = [
        {"length": 4, "answer": "a b"},  # 50
        {"length": 4, "words": 2, "answer": "a b"},  # 50
        {"length": 2.0, "answer": "a b"},  # a whole float is fine: 100
        {"length": 1, "words": 99, "answer": "a"},  # `length` wins: 100
    ]
    results = load_results(write_results(tmp_path / "r.jsonl", rows))
    assert [r.required for r in results] == [4, 4, 2, 1]
    assert [r.score for r in results] == [50.0, 50.0, 100.0, 100.0]


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ('{"length": 10, "answer": "x"', "not valid JSON"),
        ('["length", 10]', "expected a JSON object"),
        ('{"answer": "x"}', "no required length"),
        ('{"length": 0, "answer": "x"}', "positive whole number"),
        ('{"length": -5, "answer": "x"}', "positive whole number"),
        ('{"words": 5, "answer": "x"}', "no required length"),
        ('{"length": 2.5, "answer": "x"}', "positive whole number"),
        ('{"length": "2000", "answer": "x"}', "positive whole number"),
        ('{"length": true, "answer": "x"}', "positive whole number"),
        ('{"length": 10}', "no `answer` text"),
        ('{"length": 10, "answer": null}', "no `answer` text"),
    ],
)
def test_malformed_line_names_file_and_line(tmp_path: Path, bad_line: str, message: str):
    path = tmp_path / "r.jsonl"
    good = json.dumps({"length": 3, "answer": "a b c"})
    path.write_text(f"{good}\n{good}\n{bad_line}\n{good}\n", encoding="utf-8")
    result = CliRunner().invoke(eval_app, ["length", str(path)])
    assert isinstance(result.exception, LongwriteError)
    text = str(result.exception)
    assert text.startswith(f"{path}:3: ")
    assert message in text
    assert "\n" not in text


def test_missing_and_empty_files(tmp_path: Path):
    with pytest.raises(LongwriteError, match="no such file"):
        load_results(tmp_path / "absent.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(LongwriteError, match="holds no results"):
        load_results(empty)
    with pytest.raises(LongwriteError, match="folder"):
        load_results(tmp_path)


# ---- the command -------------------------------------------------------------------------


def test_cli_json(results_file: Path):
    result = CliRunner().invoke(eval_app, ["length", str(results_file), "--json", "--worst", "2"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data) == {"length_score", "n", "by_type", "worst"}
    assert data["length_score"] == pytest.approx(50.0)
    assert data["n"] == 5
    assert data["by_type"]["A"] == {"length_score": pytest.approx(250 / 3), "n": 2}
    assert data["by_type"]["B"] == {"length_score": pytest.approx(250 / 9), "n": 3}
    assert data["worst"] == [
        {"line": 5, "id": "7", "type": "B", "required": 3, "produced": 0, "score": 0.0},
        {
            "line": 6,
            "id": None,
            "type": "B",
            "required": 1,
            "produced": 3,
            "score": pytest.approx(100 / 3),
        },
    ]


def test_cli_tables(results_file: Path):
    result = CliRunner().invoke(eval_app, ["length", str(results_file)])
    assert result.exit_code == 0, result.output
    for text in ("overall", "50.00", "83.33", "27.78", "lowest 5", "Write a story"):
        assert text in result.output


def test_cli_rejects_negative_worst(results_file: Path):
    result = CliRunner().invoke(eval_app, ["length", str(results_file), "--worst", "-1"])
    assert result.exit_code == 2


def test_cli_plot_writes_a_png(results_file: Path, tmp_path: Path):
    plot = tmp_path / "lengths.png"
    result = CliRunner().invoke(eval_app, ["length", str(results_file), "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    data = plot.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 10_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lengths.png", "results.jsonl"]


def test_cli_plot_into_a_missing_folder(results_file: Path, tmp_path: Path):
    plot = tmp_path / "nowhere" / "lengths.png"
    result = CliRunner().invoke(eval_app, ["length", str(results_file), "--plot", str(plot)])
    assert isinstance(result.exception, LongwriteError)
    assert "does not exist" in str(result.exception)


def test_importing_evaluate_loads_no_plotting_library():
    code = (
        "import sys, longwrite.evaluate.length; "
        "print(sorted(m for m in ('matplotlib', 'numpy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
