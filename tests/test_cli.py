"""The command line: routing, options, outputs, errors and Ctrl-C (scripted engine)."""

import json
import subprocess
import sys

import pytest
from scripted import CandidatesEngine, RoundsEngine, ScriptedEngine, cut
from typer.testing import CliRunner

from longwrite import __version__
from longwrite.cli.app import app, main, route
from longwrite.prompt.templates import build_prompt

TRANSCRIPT = (
    "<think>Plan: a title, then two short sections.</think>\n<answer>\n# Tides\n\n"
    "The sea rises and falls twice a day.\n\n## Why\n\nThe Moon pulls the water."
)
THINKING = "Plan: a title, then two short sections."
ANSWER = "# Tides\n\nThe sea rises and falls twice a day.\n\n## Why\n\nThe Moon pulls the water."

runner = CliRunner()


@pytest.fixture
def scripted(monkeypatch):
    def install(text=TRANSCRIPT, finish="stop", interrupt_after=None):
        engine = ScriptedEngine(cut(text), finish=finish, interrupt_after=interrupt_after)
        monkeypatch.setattr("longwrite.engines.load_engine", lambda *a, **k: engine)
        monkeypatch.setattr("longwrite.engines.resolve_engine_name", lambda *a, **k: "scripted")
        return engine

    return install


def run_main(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    out, err = capsys.readouterr()
    return e.value.code, out, err


def test_route_sends_prompts_to_write():
    assert route(["Write a poem"]) == ["write", "Write a poem"]
    assert route(["--words", "5", "x"]) == ["write", "--words", "5", "x"]
    assert route([]) == ["write"]
    assert route(["count", "a.md"]) == ["count", "a.md"]
    assert route(["--help"]) == ["--help"]
    assert route(["--", "serve"]) == ["write", "--", "serve"]  # a prompt that is a name


def test_version(capsys):
    code, out, _ = run_main(["--version"], capsys)
    assert code == 0 and out.strip() == f"longwrite {__version__}"


def test_piped_stdout_gets_the_raw_answer(scripted):
    engine = scripted()
    result = runner.invoke(
        app, ["write", "Write about tides", "--words", "300", "--seed", "7", "--max-rounds", "0"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == ANSWER
    assert "\x1b" not in result.stdout
    steered = "Write about tides. The answer should be about 300 words long."
    assert engine.prompts == [build_prompt(steered)]
    assert engine.samplings[0].seed == 7
    assert engine.closed


def test_json_output_has_every_field(scripted):
    scripted(finish="length")
    result = runner.invoke(app, ["write", "Write about tides", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["prompt"] == "Write about tides"
    assert data["thinking"] == THINKING
    assert data["answer"] == ANSWER
    # Tides | The sea rises and falls twice a day (8) | Why | The Moon pulls the water (5)
    assert data["words"] == 1 + 8 + 1 + 5
    assert data["tokens"] == len(cut(TRANSCRIPT))
    assert data["finish_reason"] == "length"
    assert data["seconds"] >= 0


def test_thinking_keep_puts_the_think_block_in_the_output(scripted):
    scripted()
    result = runner.invoke(app, ["write", "x", "--thinking", "keep"])
    assert result.stdout == f"<think>\n{THINKING}\n</think>\n\n{ANSWER}"


def test_thinking_show_goes_to_stderr_not_stdout(scripted):
    scripted()
    result = runner.invoke(app, ["write", "x", "--thinking", "show"])
    assert result.stdout == ANSWER
    assert THINKING in result.stderr


def test_thinking_hidden_by_default(scripted):
    scripted()
    result = runner.invoke(app, ["write", "x"])
    assert THINKING not in result.output


def test_output_file_is_written_atomically(scripted, tmp_path):
    scripted()
    target = tmp_path / "essay.md"
    result = runner.invoke(app, ["write", "x", "-o", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_text(encoding="utf-8") == ANSWER
    assert result.stdout == ""  # the document went to the file only
    assert not (tmp_path / "essay.md.partial").exists()


def test_ctrl_c_keeps_the_partial_file_and_exits_130(scripted, tmp_path):
    engine = scripted(interrupt_after=40)
    target = tmp_path / "essay.md"
    target.write_text("previous version")
    result = runner.invoke(app, ["write", "x", "-o", str(target)])
    assert result.exit_code == 130
    partial = tmp_path / "essay.md.partial"
    kept = "".join(cut(TRANSCRIPT)[:40])
    assert partial.read_text(encoding="utf-8") == kept.split("<answer>\n", 1)[1]
    assert target.read_text() == "previous version"  # never half-overwritten
    assert "interrupted" in result.stderr and str(partial) in result.stderr
    assert engine.closed_streams == 1


def test_ctrl_c_on_a_pipe_flushes_what_was_written(scripted):
    scripted(interrupt_after=40)
    result = runner.invoke(app, ["write", "x"])
    assert result.exit_code == 130
    assert result.stdout == "".join(cut(TRANSCRIPT)[:40]).split("<answer>\n", 1)[1]


def test_prompt_from_stdin(scripted):
    engine = scripted()
    result = runner.invoke(
        app, ["write", "--max-rounds", "0"], input="写一篇2000字的散文，题目是《秋》\n"
    )
    assert result.exit_code == 0, result.output
    # the newline that ends piped text is not part of the prompt
    assert engine.prompts == [build_prompt("写一篇2000字的散文，题目是《秋》")]
    assert "<|用户|>" in engine.prompts[0]


def test_dry_run_json_loads_no_model(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("dry run must not load an engine")

    monkeypatch.setattr("longwrite.engines.load_engine", boom)
    result = runner.invoke(app, ["write", "Write a story about tides", "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    for key in ("prompt", "language", "target_words", "max_tokens", "stop", "temperature", "top_p"):
        assert key in data
    assert data["prompt"] == build_prompt("Write a story about tides")
    assert data["stop"] == ["<|user|>", "<|endoftext|>", "</answer>"]
    assert (data["language"], data["max_tokens"], data["temperature"]) == ("en", 15500, 0.6)
    assert data["target_words"] is None and data["target_range"] is None


def test_dry_run_shows_the_stated_target_and_its_budget():
    result = runner.invoke(
        app, ["write", "Write a 3,000-word essay on tides", "--dry-run", "--json"]
    )
    data = json.loads(result.stdout)
    assert data["target_words"] == 3000 and data["target_range"] == [2700, 3300]
    assert data["steered"] is False  # the prompt states its length itself
    budget = data["budget"]
    assert data["max_tokens"] == budget["max_tokens"]
    per_word = budget["tokens_per_word"] * 1.25
    assert budget["max_tokens"] == budget["think_tokens"] + -(-3300 * per_word // 1)


def test_words_steers_a_prompt_that_states_no_length():
    result = runner.invoke(app, ["write", "Write about tides", "-w", "800", "--dry-run", "--json"])
    data = json.loads(result.stdout)
    assert data["steered"] is True and data["target_words"] == 800
    assert data["target_range"] == [720, 880]
    assert "Write about tides. The answer should be about 800 words long." in data["prompt"]
    assert data["user_prompt"] == "Write about tides"


def test_words_overrides_the_stated_length_without_steering():
    result = runner.invoke(
        app, ["write", "Write a 3,000-word essay", "-w", "1000", "--dry-run", "--json"]
    )
    data = json.loads(result.stdout)
    assert data["target_words"] == 1000 and data["steered"] is False
    assert data["prompt"] == build_prompt("Write a 3,000-word essay")


def test_dry_run_plain_prints_the_prompt():
    result = runner.invoke(app, ["write", "Write a {} poem", "--dry-run", "--max-tokens", "99"])
    assert result.stdout.strip() == build_prompt("Write a {} poem")
    assert "max_tokens=99" in result.stderr


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["   "], "prompt is empty"),
        (["x", "--words", "0"], "--words"),
        (["x", "--words", "many"], "--words"),
        (["x", "--engine", "foo"], "--engine"),
        (["x", "--bogus"], "--bogus"),
        (["x", "--thinking", "loud"], "--thinking"),
        (["x", "--model", "/no/such/model"], "/no/such/model"),
        (["x", "-o", "/no/such/dir/out.md"], "/no/such/dir"),
        (["count", "/no/such/file.md"], "/no/such/file.md"),
    ],
)
def test_user_errors_are_one_line_exit_2(argv, fragment, capsys):
    code, out, err = run_main(argv, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("longwrite: error:"), err
    assert fragment in lines[0]
    assert "Traceback" not in err


def test_no_prompt_and_a_terminal_stdin_is_an_error(capsys, monkeypatch):
    class Tty:
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stdin", Tty())
    code, _, err = run_main([], capsys)
    assert code == 2 and "no prompt" in err


def test_count_files_and_total(tmp_path, capsys):
    a, b = tmp_path / "a.md", tmp_path / "b.md"
    a.write_text("Hello world, 你好", encoding="utf-8")  # 2 + 2
    b.write_text("one two three", encoding="utf-8")
    code, out, _ = run_main(["count", str(a), str(b)], capsys)
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].split()[:2] == ["4", "words"] and lines[0].endswith("a.md")
    assert lines[1].split()[:2] == ["3", "words"]
    assert lines[2].split() == ["7", "words", "total"]


def test_count_stdin_json():
    result = runner.invoke(app, ["count", "-", "--json"], input="写作 is fun")
    assert json.loads(result.stdout) == {"file": "-", "words": 4, "tokens": None}


def _modules_loaded_by(argv: list[str]) -> set[str]:
    code = (
        "import sys\n"
        "from longwrite.cli.app import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('torch', 'transformers', 'vllm') if m in sys.modules]\n"
        "print('LOADED=' + ','.join(heavy), file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    line = [x for x in proc.stderr.splitlines() if x.startswith("LOADED=")][-1]
    return set(filter(None, line.removeprefix("LOADED=").split(",")))


def test_help_and_dry_run_import_no_heavy_library():
    assert _modules_loaded_by(["--help"]) == set()
    assert _modules_loaded_by(["write", "--help"]) == set()
    assert _modules_loaded_by(["Write a poem", "--dry-run", "--json"]) == set()


def test_short_answer_is_continued_and_rounds_are_in_the_json(monkeypatch):
    first = "<think>p</think><answer>One two three four five."
    engine = RoundsEngine([first, "Six seven eight nine ten."], ["stop", "stop"])
    monkeypatch.setattr("longwrite.engines.load_engine", lambda *a, **k: engine)
    monkeypatch.setattr("longwrite.engines.resolve_engine_name", lambda *a, **k: "scripted")
    result = runner.invoke(app, ["write", "Write a 10-word note", "--json"])
    data = json.loads(result.stdout)
    assert data["answer"] == "One two three four five.\n\nSix seven eight nine ten."
    assert [r["answer_words"] for r in data["rounds"]] == [5, 10]
    assert len(engine.prompts) == 2


def test_best_of_prints_the_best_and_scores_every_candidate(monkeypatch):
    padded = "Tides rise and fall. " * 40
    short = "Tides."  # far below the 30-word target
    good = (
        "Tides rise twice a day because the Moon pulls the oceans. "
        "Coasts and basins shape the range, and the Sun adds a smaller pull of its own."
    )
    engine = CandidatesEngine(
        [f"<think>a</think><answer>{padded}", f"<think>b</think><answer>{good}",
         f"<think>c</think><answer>{short}"]
    )  # fmt: skip
    monkeypatch.setattr("longwrite.engines.load_engine", lambda *a, **k: engine)
    monkeypatch.setattr("longwrite.engines.resolve_engine_name", lambda *a, **k: "scripted")
    result = runner.invoke(app, ["write", "Write about tides in 30 words", "--best-of", "3"])
    assert result.exit_code == 0, result.output
    assert engine.samplings[0].n == 3
    assert result.stdout == good
    assert "candidate 2" in result.stderr and "(best)" in result.stderr
    as_json = runner.invoke(
        app, ["write", "Write about tides in 30 words", "--best-of", "3", "--json"]
    )
    data = json.loads(as_json.stdout)
    assert data["best"] == 1 and len(data["candidates"]) == 3
    scores = [c["scores"] for c in data["candidates"]]
    assert scores[0]["repetition"] > 0.5 > scores[1]["repetition"]  # the padded one is caught
    assert scores[1]["total"] == max(s["total"] for s in scores)


def test_a_target_that_cannot_fit_is_reported_before_generating(scripted):
    engine = scripted()
    # --one-pass: without it such a target is written in sections (tests/test_sections.py)
    result = runner.invoke(
        app, ["write", "Write about tides", "--words", "30000", "--json", "--one-pass"]
    )
    assert result.exit_code == 0, result.output
    line = next(x for x in result.stderr.splitlines() if "does not fit" in x)
    # 33,000 words (the top of the range) against a 32,768-token context
    assert line.startswith("longwrite: warning: a 33,000-word answer does not fit in one pass")
    assert "room for about" in line
    assert engine.samplings[0].max_tokens < 32768  # capped by what the context leaves
