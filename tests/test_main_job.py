"""The main job end to end: a real `longwrite` process on the tiny local model.

The tiny model's text is noise, so these tests assert on the pipeline (exit codes, files,
JSON fields, determinism, Ctrl-C), never on what the text says.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow

LONGWRITE = [sys.executable, "-m", "longwrite"]


def run(args, **kwargs):
    return subprocess.run(LONGWRITE + args, capture_output=True, text=True, timeout=180, **kwargs)


def test_json_result_on_the_tiny_model(tiny_model_dir):
    proc = run(
        [
            "Write a 300-word story",
            "--words",
            "300",
            "--model",
            str(tiny_model_dir),
            "--max-tokens",
            "40",
            "--seed",
            "1",
            "--json",
        ]
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data) == {
        "prompt",
        "thinking",
        "answer",
        "words",
        "tokens",
        "finish_reason",
        "seconds",
        "rounds",
        "guard",
    }
    assert isinstance(data["guard"], list)  # the guards' interventions, none or some
    assert data["prompt"] == "Write a 300-word story"
    assert 0 < data["tokens"] <= 40
    assert data["finish_reason"] in ("stop", "length")
    assert data["finish_reason"] == "stop" or data["tokens"] == 40


def test_stdin_prompt_and_output_file_match_the_json_run(tiny_model_dir, tmp_path):
    common = ["--model", str(tiny_model_dir), "--max-tokens", "30", "--seed", "3"]
    prompt = "写一篇2000字的散文，题目是《秋》"
    target = tmp_path / "essay.md"
    proc = run(["-o", str(target), *common], input=prompt)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert not (tmp_path / "essay.md.partial").exists()
    again = json.loads(run([prompt, "--json", *common]).stdout)  # same seed, same text
    assert target.read_text(encoding="utf-8") == again["answer"]


def test_piped_stdout_is_raw_text(tiny_model_dir):
    proc = run(
        ["Write a poem", "--model", str(tiny_model_dir), "--max-tokens", "30", "--seed", "2"]
    )
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout and "\x1b" not in proc.stderr


def test_missing_model_folder_is_one_line_exit_2(tmp_path):
    proc = run(["Write a poem", "--model", str(tmp_path / "nope")])
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("longwrite: error:")
    assert "nope" in proc.stderr


def test_count_with_the_model_tokenizer(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer

    doc = tmp_path / "doc.md"
    doc.write_text("Tides rise and fall. 潮起潮落。", encoding="utf-8")
    proc = run(["count", str(doc), "--tokenizer", str(tiny_model_dir), "--json"])
    assert proc.returncode == 0, proc.stderr
    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    expected = len(tok.encode(doc.read_text(encoding="utf-8"), add_special_tokens=False))
    assert json.loads(proc.stdout) == {"file": str(doc), "words": 4 + 4, "tokens": expected}


def test_ctrl_c_keeps_the_partial_file_and_exits_130(tiny_model_dir, tmp_path):
    target = tmp_path / "long.md"
    partial = tmp_path / "long.md.partial"
    proc = subprocess.Popen(
        LONGWRITE
        + [
            "Write a very long report",
            "--model",
            str(tiny_model_dir),
            "--temperature",
            "0",
            "--max-tokens",
            "20000",
            "-o",
            str(target),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if partial.exists() and partial.stat().st_size > 200:
            break
        time.sleep(0.1)
    assert proc.poll() is None, f"finished before Ctrl-C: {proc.communicate()}"
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted: kept" in err and "Traceback" not in err
    assert not target.exists()
    assert partial.stat().st_size > 200


def test_best_of_on_the_tiny_model(tiny_model_dir):
    proc = run(
        ["Write a 30-word note", "--model", str(tiny_model_dir), "--max-tokens", "24",
         "--seed", "4", "--best-of", "3", "--json"]
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    candidates = data["candidates"]
    assert [c["index"] for c in candidates] == [0, 1, 2]
    totals = [c["scores"]["total"] for c in candidates]
    assert totals[data["best"]] == max(totals)
    assert data["words"] == candidates[data["best"]]["words"]
    assert data["tokens"] == sum(c["tokens"] for c in candidates)
    assert proc.stderr.count("candidate ") == 3 and "(best)" in proc.stderr


def test_continuation_through_the_transformers_engine(tiny_model_dir):
    from dataclasses import replace

    from longwrite.engines.base import Sampling
    from longwrite.engines.transformers import TransformersEngine
    from longwrite.generate.rounds import Continuation, write_document
    from longwrite.prompt.request import build_request

    class Sink:
        def handle(self, event):
            pass

        def add_tokens(self, n):
            pass

    engine = TransformersEngine(str(tiny_model_dir), device="cpu")
    seen = []
    try:
        request = build_request("Write a long story", max_tokens=40, temperature=0)
        # Greedy decoding of the random model is deterministic: a stop string taken from its
        # own first output makes the first round end early, with a short answer.
        probe = Sampling(max_tokens=16, temperature=0, stop=())
        first = "".join(c.text for c in engine.stream(request.prompt, probe))
        stop = first[6:9]
        request = replace(request, sampling=replace(request.sampling, stop=(stop,)))
        original = engine.stream

        def spy(prompt, sampling):
            seen.append((prompt, sampling))
            return original(prompt, sampling)

        engine.stream = spy
        result = write_document(
            engine, request, Sink(), continuation=Continuation(below=10_000, max_rounds=1)
        )
    finally:
        engine.close()
    assert len(result.rounds) == 2 and result.rounds[0].finish_reason == "stop"
    assert seen[1][0].startswith(request.prompt + first[: first.index(stop)])
    assert seen[1][1].min_tokens > 0
    assert seen[1][1].max_tokens == 40 - result.rounds[0].tokens
    # min_tokens holds off the stop string too (the greedy continuation would repeat it at once)
    assert result.rounds[1].tokens >= seen[1][1].min_tokens
    assert result.tokens == sum(r.tokens for r in result.rounds)
