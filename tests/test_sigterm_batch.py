"""`batch` stopped by SIGTERM (a scheduler's time limit) keeps whole lines and resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sse_server import Script, ScriptedServer

from longwrite.io.jsonl import read_records
from longwrite.prompt.request import build_request

pytestmark = pytest.mark.slow

ANSWER = "A short piece, different for nobody, written slowly."


def test_sigterm_keeps_whole_lines_and_a_rerun_finishes(tmp_path: Path) -> None:
    prompts = ["Write a note."] * 6  # one prompt (the scripted server answers one), six ids
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"id": f"n{i}", "prompt": p}) + "\n"
                              for i, p in enumerate(prompts)))  # fmt: skip
    out = tmp_path / "out.jsonl"
    text = "<think>Plan.</think>\n<answer>\n" + ANSWER
    env = {**os.environ, "LONGWRITE_SERVER": ""}
    argv = [sys.executable, "-m", "longwrite", "batch", str(source), "-o", str(out),
            "--concurrency", "1", "--max-rounds", "0"]  # fmt: skip
    base = build_request(prompts[0]).prompt
    script = Script(text=text, prompt=base, pieces=(2,), delay=0.02)  # about 1 s a line
    with ScriptedServer(script) as slow:
        proc = subprocess.Popen([*argv, "--server", slow.url], env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        deadline = time.monotonic() + 60
        while len(read_records(out)) < 1:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no line finished"
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "Traceback" not in err
    kept = read_records(out)
    assert 1 <= len(kept) < len(prompts)
    assert all(r["answer"] == ANSWER for r in kept)  # whole lines only
    with ScriptedServer(Script(text=text, prompt=base)) as fast:
        again = subprocess.run([*argv, "--server", fast.url], env=env, text=True,
                               capture_output=True, timeout=120)  # fmt: skip
    assert again.returncode == 0, again.stderr
    done = read_records(out)
    assert sorted(r["id"] for r in done) == [f"n{i}" for i in range(6)]
