"""`longwrite eval report`: the Markdown page (as text) and the PNG plots beside it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from longwrite.cli.eval import eval_app
from longwrite.errors import LongwriteError
from longwrite.evaluate.quality import (
    DIMENSIONS,
    Verdict,
    answer_digest,
    load_items,
)
from longwrite.evaluate.report import ReportData, plot_paths, render_markdown, write_report
from longwrite.evaluate.summary import summarize_quality

PNG = b"\x89PNG\r\n\x1a\n"


def words(n: int) -> str:
    return " ".join(["word"] * n)


ROWS = [
    {"id": "a", "type": "essay", "length": 100, "answer": words(100)},  # S_l 100
    {"id": "b|x", "type": "essay", "length": 100, "answer": words(50)},  # S_l 50
    {"id": "c", "type": "story", "length": 200, "answer": words(400)},  # S_l 66.67
    {"id": "d", "type": "story", "length": 200, "answer": words(200)},  # S_l 100
]
RATINGS = {"a": (5, 5, 5, 5, 5, 5), "b|x": (3, 3, 3, 3, 3, 3), "c": (5, 4, 3, 2, 1, 5)}


def write_files(tmp_path: Path, *, quality: bool = True) -> Path:
    results = tmp_path / "run.jsonl"
    results.write_text(
        "".join(json.dumps({"prompt": f"Write {r['id']}.", **r}) + "\n" for r in ROWS),
        encoding="utf-8",
    )
    if quality:
        # each verdict names what it judged (`answer_sha`): only then does it count
        sha = {r["id"]: answer_digest(f"Write {r['id']}.", r["answer"]) for r in ROWS}
        verdicts = [
            Verdict(k, dict(zip(DIMENSIONS, map(float, v), strict=True)), 1, None, sha[k])
            for k, v in RATINGS.items()
        ]
        verdicts.append(Verdict("d", None, 3, "malformed reply: no JSON object", sha["d"]))
        (tmp_path / "run.quality.jsonl").write_text(
            "".join(json.dumps(v.to_json()) + "\n" for v in verdicts), encoding="utf-8"
        )
    return results


def test_report_page_and_plots(tmp_path: Path) -> None:
    results = write_files(tmp_path)
    page = tmp_path / "out" / "report.md"
    page.parent.mkdir()
    written = write_report(results, page, worst=2)
    length_png, hist_png = plot_paths(page)
    assert written == [length_png, hist_png, page]
    assert length_png.name == "report.length.png" and hist_png.name == "report.scores.png"
    for png in (length_png, hist_png):
        data = png.read_bytes()
        assert data.startswith(PNG) and len(data) > 5_000
    assert sorted(p.name for p in page.parent.iterdir()) == sorted(p.name for p in written)
    text = page.read_text(encoding="utf-8")
    # S_l = (100 + 50 + 66.67 + 100) / 4; S_q = (100 + 50 + 58.33) / 3; overall = their mean
    s_l, s_q = (100 + 50 + 200 / 3 + 100) / 4, (100 + 50 + 350 / 6) / 3
    assert f"| S_l (length) | {s_l:.2f} | 4 |" in text
    assert f"| S_q (quality) | {s_q:.2f} | 3 |" in text
    assert f"| overall = mean(S_l, S_q) | {(s_l + s_q) / 2:.2f} | - |" in text
    assert "| essay | 2 | 75.00 | 75.00 | 75.00 |" in text
    assert f"| story | 2 | {(200 / 3 + 100) / 2:.2f} | {350 / 6:.2f} |" in text
    assert "| relevance | 4.33 | 83.33 |" in text  # (5 + 3 + 5) / 3
    assert "![Required against produced length](report.length.png)" in text
    assert "![Distribution of the per-item scores](report.scores.png)" in text
    worst_length = text.split("## Worst cases: length")[1].split("##")[0]
    assert worst_length.index("b\\|x") < worst_length.index("| 3 | c |")  # 50 before 66.67
    assert "| 1 | a |" not in worst_length  # only the 2 worst
    worst_quality = text.split("## Worst cases: quality")[1].split("##")[0]
    assert "| 2 | b\\|x | essay | 50.00 | relevance (3) |" in worst_quality
    assert "| 3 | c | story | 58.33 | breadth and depth (1) |" in worst_quality
    assert "## Unscored" in text and "`d`" in text


def test_report_without_quality_scores_covers_length_only(tmp_path: Path) -> None:
    results = write_files(tmp_path, quality=False)
    page = tmp_path / "report.md"
    write_report(results, page)
    text = page.read_text(encoding="utf-8")
    assert "S_l (length)" in text and "S_q" not in text and "quality" not in text.lower()
    assert "| essay | 2 | 75.00 |" in text
    assert (tmp_path / "report.scores.png").read_bytes().startswith(PNG)


def test_render_markdown_is_a_pure_function_of_the_scores(tmp_path: Path) -> None:
    results = write_files(tmp_path)
    items = load_items(results)
    data = ReportData(
        results="run.jsonl",
        quality_file=None,
        items=tuple(items),
        verdicts={},
        summary=summarize_quality(items, {}),
        length_plot=None,
        hist_plot=None,
        worst=0,
    )
    text = render_markdown(data)
    assert render_markdown(data) == text
    assert text.startswith("# LongBench-Write report\n\nResults: `run.jsonl` (4 items).")
    assert "## Plots" not in text and "Worst" not in text


def test_report_errors_are_user_errors(tmp_path: Path) -> None:
    results = write_files(tmp_path, quality=False)
    with pytest.raises(LongwriteError, match="no such file"):
        write_report(results, tmp_path / "r.md", quality=tmp_path / "missing.jsonl")
    with pytest.raises(LongwriteError, match="does not exist"):
        write_report(results, tmp_path / "nowhere" / "r.md")


def test_eval_report_command(tmp_path: Path) -> None:
    results = write_files(tmp_path)
    page = tmp_path / "report.md"
    out = CliRunner().invoke(eval_app, ["report", str(results), "-o", str(page)])
    assert out.exit_code == 0, out.output
    assert out.stdout.split() == [str(p) for p in plot_paths(page)] + [str(page)]
    assert "S_q (quality)" in page.read_text(encoding="utf-8")
