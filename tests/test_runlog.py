"""The run log in process: the store (ids, privacy, dead owners, faults), the recorder's
batching, and `logs` / `continue` over scripted engines (short runs, thinking, refusals).

The end-to-end faults (kill -9, Ctrl-C, cut-off, dropped and vanished servers, concurrent
runs) run real processes against a scripted server in test_runlog_faults.py.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from scripted import RoundsEngine, ScriptedEngine, cut

from longwrite.cli.app import main
from longwrite.errors import LongwriteError
from longwrite.runlog.recorder import Recorder, start_run
from longwrite.runlog.store import (
    ALPHABET,
    DONE,
    INTERRUPTED,
    RUNNING,
    Store,
    db_path,
    my_owner,
    new_id,
    owner_alive,
)

TRANSCRIPT = (
    "<think>Plan: a title, then two short sections.</think>\n<answer>\n# Tides\n\n"
    "The sea rises and falls twice a day.\n\n## Why\n\nThe Moon pulls the water."
)
ANSWER = "# Tides\n\nThe sea rises and falls twice a day.\n\n## Why\n\nThe Moon pulls the water."


def run_main(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    out, err = capsys.readouterr()
    return e.value.code, out, err


@pytest.fixture
def engines(monkeypatch):
    """Stand scripted engines in for the real ones: each load gets the next of `queue`."""
    queue: list = []
    monkeypatch.setattr("longwrite.engines.load_engine", lambda *a, **k: queue.pop(0))
    monkeypatch.setattr("longwrite.engines.resolve_engine_name", lambda *a, **k: "scripted")
    return queue


def logged(run_id: str | None = None):
    store = Store.open()
    try:
        record = store.resolve(run_id or "last")
        return record, store.raw(record.id)
    finally:
        store.close()


# -- the store -----------------------------------------------------------------------------


def test_ids_are_short_sortable_printable():
    ids = [new_id(t) for t in (1_750_000_000, 1_750_000_001, 1_760_000_000, 1_900_000_000)]
    assert all(len(i) == 8 and set(i) <= set(ALPHABET) for i in ids)
    assert [i[:6] for i in ids] == sorted(i[:6] for i in ids)
    assert ids[0][:6] != ids[1][:6]  # one second apart: different, in order


def test_log_is_private_and_in_longwrite_home(log_home):
    store = Store.open()
    run_id = store.new_run(kind="write", user_prompt="p", prompt="P", options={})
    store.append(run_id, "text", 1)
    assert db_path() == log_home / "logs.db" and store.path == db_path()
    assert stat.S_IMODE(log_home.stat().st_mode) == 0o700
    for name in ("logs.db", "logs.db-wal", "logs.db-shm"):
        assert stat.S_IMODE((log_home / name).stat().st_mode) == 0o600, name
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()


def test_prefixes_and_last_name_runs(log_home):
    store = Store.open()
    a = store.new_run(kind="write", user_prompt="a", prompt="A", options={})
    store.conn.execute("UPDATE runs SET id='aaaa0000', created=1 WHERE id=?", (a,))
    b = store.new_run(kind="write", user_prompt="b", prompt="B", options={})
    store.conn.execute("UPDATE runs SET id='aaab0000', created=2 WHERE id=?", (b,))
    assert store.resolve("aaaa").id == "aaaa0000"
    assert store.resolve("AAAB").id == "aaab0000"  # ids are printed lower case; any case works
    assert store.resolve("last").id == "aaab0000"
    with pytest.raises(LongwriteError, match="more than one run"):
        store.resolve("aaa")
    with pytest.raises(LongwriteError, match="no run"):
        store.resolve("zz")
    store.close()


def test_dead_owner_is_interrupted_and_a_reused_pid_is_not_the_owner(log_home):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store = Store.open()
    gone = store.new_run(kind="write", user_prompt="a", prompt="A", options={})
    store.append(gone, "<think>p</think><answer>one two three", 5)
    host, pid, start = my_owner().split(":")
    store.conn.execute("UPDATE runs SET owner=? WHERE id=?", (f"{host}:{dead.pid}:", gone))
    reused = store.new_run(kind="write", user_prompt="b", prompt="B", options={})
    # our own pid, but a process started at another time: the pid was reused
    store.conn.execute("UPDATE runs SET owner=? WHERE id=?", (f"{host}:{pid}:{start}9", reused))
    live = store.new_run(kind="write", user_prompt="c", prompt="C", options={})
    assert owner_alive(my_owner()) and not owner_alive(f"{host}:{dead.pid}:")
    assert store.reap(len) == 2  # words_of: the caller's counting, given the raw text
    assert store.get(gone).status == INTERRUPTED and store.get(gone).tokens == 5
    assert store.get(gone).words == len("<think>p</think><answer>one two three")
    assert store.get(reused).status == INTERRUPTED
    assert store.get(live).status == RUNNING
    store.close()


def test_zombie_owner_is_dead(log_home):
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child.pid}/stat").read_text().split(") ")[1][0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    host = my_owner().split(":")[0]
    try:
        assert not owner_alive(f"{host}:{child.pid}:")  # killed, not yet waited for
    finally:
        child.wait()


def test_a_corrupt_log_is_moved_aside_and_a_new_one_started(log_home, capsys):
    log_home.mkdir(mode=0o700)
    (log_home / "logs.db").write_bytes(b"this is not a database, it was cut short" * 200)
    recorder = start_run(kind="write", user_prompt="p", prompt="P", options={})
    assert recorder.active
    recorder.add("hello", 1)
    recorder.finish(DONE, words=1)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "corrupt" in err and "moved to" in err
    (aside,) = log_home.glob("logs.db.corrupt-*")
    assert aside.read_bytes().startswith(b"this is not a database")
    record, raw = logged()
    assert raw == "hello" and record.status == DONE


def test_a_full_disk_is_one_warning_and_the_run_goes_on(log_home, capsys):
    recorder = start_run(kind="write", user_prompt="p", prompt="P", options={})
    store = recorder.store
    pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
    store.conn.execute(f"PRAGMA max_page_count={pages}")  # SQLite's own "disk is full"
    for _ in range(200):
        recorder.add("x" * 100, 1)  # each add flushes (>= 256 characters pending)
    recorder.finish(DONE)
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "run log stopped" in err and "full" in err and "still streams" in err


def test_recorder_batches_by_time_and_size(log_home):
    now = [0.0]
    store = Store.open()
    run_id = store.new_run(kind="write", user_prompt="p", prompt="P", options={})
    recorder = Recorder(store, run_id, clock=lambda: now[0], ticker=False)
    rows = lambda: store.conn.execute(  # noqa: E731
        "SELECT text, tokens FROM chunks WHERE run_id=? ORDER BY n", (run_id,)
    ).fetchall()
    for i in range(60):  # 5 characters a token at 64 tokens/s (a binary-exact clock)
        now[0] = i / 64
        recorder.add("abcde", 1)
    # written once the oldest piece had waited 0.5 s (32 ticks later), not 60 times
    assert rows() == [("abcde" * 33, 33)]
    recorder.add("y" * 300, 2)  # a few hundred characters are written at once
    assert rows()[1:] == [("abcde" * 27 + "y" * 300, 29)]
    recorder.finish(DONE)


def test_a_stalled_stream_is_flushed_within_a_second(log_home):
    recorder = start_run(kind="write", user_prompt="p", prompt="P", options={})
    recorder.add("<think>a plan that stalls", 3)
    deadline = time.monotonic() + 1.0
    reader = Store.open()
    while not reader.raw(recorder.run_id):
        assert time.monotonic() < deadline, "pending text not written within a second"
        time.sleep(0.02)
    assert reader.raw(recorder.run_id) == "<think>a plan that stalls"
    reader.close()
    recorder.finish(DONE)


# -- the write command records; `logs` lists and shows ---------------------------------------


def test_a_write_run_is_logged_with_its_settings(engines, capsys, monkeypatch):
    engines.append(ScriptedEngine(cut(TRANSCRIPT)))
    monkeypatch.setenv("LONGWRITE_API_KEY", "sk-secret")
    code, out, _ = run_main(["Write about tides", "--words", "20", "--seed", "3",
                             "--temperature", "0.5", "--max-rounds", "0"], capsys)  # fmt: skip
    assert code == 0 and out == ANSWER
    record, raw = logged()
    assert raw == TRANSCRIPT and record.status == DONE and record.finish_reason == "stop"
    assert record.user_prompt == "Write about tides" and record.kind == "write"
    assert record.prompt.endswith("Write about tides. The answer should be about 20 words long. "
                                  "<|assistant|>:")  # fmt: skip
    assert record.words == 15 and record.target == 20 and record.tokens == len(cut(TRANSCRIPT))
    o = record.options
    assert (o["engine"], o["seed"], o["temperature"], o["target_range"]) == ("scripted", 3, 0.5,
                                                                            [18, 22])  # fmt: skip
    assert o["max_tokens"] > 0 and "sk-secret" not in json.dumps(o)


@pytest.mark.parametrize("off", [["--no-log"], []])
def test_no_log_writes_nothing(engines, capsys, monkeypatch, log_home, off):
    if not off:
        monkeypatch.setenv("LONGWRITE_NO_LOG", "1")
    engines.append(ScriptedEngine(cut(TRANSCRIPT)))
    code, out, _ = run_main(["Write about tides", *off], capsys)
    assert code == 0 and out == ANSWER
    assert not log_home.exists()


def test_logs_lists_newest_first_and_shows_documents(engines, capsys):
    for text in (TRANSCRIPT, TRANSCRIPT.replace("Tides", "Waves")):
        engines.append(ScriptedEngine(cut(text)))
    run_main(["Write about tides", "--max-rounds", "0"], capsys)
    run_main(["Write about waves\r\nplease", "--words", "300", "--max-rounds", "0"], capsys)
    code, out, err = run_main(["logs"], capsys)
    lines = out.splitlines()
    assert code == 0 and len(lines) == 2 and err == ""
    assert "done" in lines[0] and "15 / 300" in lines[0] and "Write about waves please" in lines[0]
    assert lines[1].endswith("Write about tides") and " 15  " in lines[1]
    newest, oldest = lines[0].split()[0], lines[1].split()[0]
    assert run_main(["logs", "-n", "1"], capsys)[1].splitlines() == lines[:1]
    listed = json.loads(run_main(["logs", "--json"], capsys)[1])
    assert [r["id"] for r in listed] == [newest, oldest]
    # A unique prefix: two runs in the same second share six characters, and the seventh is
    # drawn at random (a fixed 7 failed one run in 32 as an ambiguous prefix).
    unique = next(k for k in range(7, len(oldest) + 1) if oldest[:k] != newest[:k])
    assert run_main(["logs", "show", oldest[:unique]], capsys)[1] == ANSWER  # piped: raw
    code, out, _ = run_main(["logs", "show", oldest, "--thinking", "keep"], capsys)
    assert out.startswith("<think>\nPlan: a title") and out.endswith(ANSWER)
    full = json.loads(run_main(["logs", "show", "last", "--json"], capsys)[1])
    assert full["id"] == newest and full["raw"] == TRANSCRIPT.replace("Tides", "Waves")
    assert full["thinking"] == "Plan: a title, then two short sections."
    code, out, _ = run_main(["logs", "path"], capsys)
    assert out.strip() == str(db_path())
    code, _, err = run_main(["logs", "rm", newest], capsys)
    assert code == 0 and newest in err
    assert [r["id"] for r in json.loads(run_main(["logs", "--json"], capsys)[1])] == [oldest]


def test_logs_errors_are_one_line(engines, capsys):
    code, out, err = run_main(["logs"], capsys)
    assert code == 0 and out == "" and "no runs logged yet" in err
    for argv in (["logs", "show", "abc"], ["continue"], ["logs", "rm", "last"]):
        code, _, err = run_main(argv, capsys)
        assert code == 2 and err.count("\n") == 1 and err.startswith("longwrite: error:"), argv
    engines.append(ScriptedEngine(cut(TRANSCRIPT)))
    run_main(["Write about tides"], capsys)
    code, _, err = run_main(["logs", "show", "zz9"], capsys)
    assert code == 2 and "no run 'zz9'" in err and err.count("\n") == 1


# -- continue ---------------------------------------------------------------------------------

FIRST = "<think>plan</think>\n<answer>\nOne two three four five."  # 5 words
MORE = "Six seven eight nine ten eleven twelve."


def test_continue_a_short_run_starts_a_new_paragraph(engines, capsys):
    engines.append(RoundsEngine([FIRST], ["stop"]))
    code, out, _ = run_main(["Write about tides", "--words", "12", "--max-rounds", "0"], capsys)
    assert code == 0 and out == "One two three four five."
    record, _ = logged()
    assert record.status == DONE and record.words == 5
    more = RoundsEngine([MORE], ["stop"])
    engines.append(more)
    code, out, err = run_main(["continue"], capsys)
    assert code == 0, err
    assert out == "\n\n" + MORE  # only the new text
    assert more.prompts == [record.prompt + FIRST + "\n\n"]
    assert more.samplings[0].min_tokens > 0  # the missing words are asked for
    record, raw = logged(record.id)
    assert raw == FIRST + "\n\n" + MORE and record.words == 12 and record.status == DONE
    assert record.tokens == len(cut(FIRST)) + len(cut(MORE))
    # finished and on target: said so, exit 2; `--words` asks for more
    code, _, err = run_main(["continue", record.id], capsys)
    assert code == 2 and "is finished (12 words" in err and "--words" in err
    engines.append(RoundsEngine([" Thirteen fourteen fifteen sixteen."], ["stop"]))
    code, out, _ = run_main(["continue", "--words", "16", "--all", "-o", "/dev/null"], capsys)
    assert code == 0 and logged()[0].words == 16 and logged()[0].target == 16


def test_continue_a_run_that_was_still_thinking(engines, capsys):
    whole = "<think>Plan: first the moon, then the sun.</think>\n<answer>\nThe moon pulls."
    engines.append(ScriptedEngine(cut(whole), interrupt_after=5))  # Ctrl-C while thinking
    code, out, err = run_main(["Write about tides"], capsys)
    assert code == 130 and out == "" and "longwrite continue" in err
    record, raw = logged()
    assert record.status == INTERRUPTED and raw == "".join(cut(whole)[:5])
    assert raw.startswith("<think>Plan") and "</think>" not in raw
    rest = RoundsEngine([whole[len(raw) :]], ["stop"])
    engines.append(rest)
    code, out, err = run_main(["continue", "--thinking", "show"], capsys)
    assert code == 0 and out == "The moon pulls."
    assert rest.prompts == [record.prompt + raw]  # mid-thought, no separator
    assert raw == "<think>Plan"  # 5 deltas of cycling sizes 1, 3, 2, 4, 1
    assert err.startswith(": first the moon, then the sun.")  # the thinking carries on
    assert logged()[1] == whole


def test_continue_all_and_output_file_get_the_whole_document(engines, capsys, tmp_path):
    engines.append(ScriptedEngine(cut(TRANSCRIPT), interrupt_after=30))
    assert run_main(["Write about tides"], capsys)[0] == 130
    _, raw = logged()
    engines.append(RoundsEngine([TRANSCRIPT[len(raw) :]], ["stop"]))
    code, out, _ = run_main(["continue", "--all"], capsys)
    assert code == 0 and out == ANSWER
    engines.append(ScriptedEngine(cut(TRANSCRIPT), interrupt_after=40))
    assert run_main(["Write about tides"], capsys)[0] == 130
    _, raw = logged()
    engines.append(RoundsEngine([TRANSCRIPT[len(raw) :]], ["stop"]))
    target = tmp_path / "doc.md"
    code, out, _ = run_main(["continue", "-o", str(target)], capsys)
    assert code == 0 and out == "" and target.read_text(encoding="utf-8") == ANSWER


def test_continue_refuses_a_running_run_and_a_batch_row(capsys):
    store = Store.open()
    store.new_run(kind="write", user_prompt="p", prompt="P", options={})  # owned by us: live
    code, _, err = run_main(["continue"], capsys)
    assert code == 2 and "still running" in err
    store.new_run(kind="batch", user_prompt="batch in.jsonl", prompt="", options={}, output="o")
    code, _, err = run_main(["continue", "last"], capsys)
    assert code == 2 and "batch run" in err
    store.close()


# -- the API ----------------------------------------------------------------------------------


def test_the_api_logs_only_when_asked(log_home):
    from longwrite import write

    write("Write about tides", engine=ScriptedEngine(cut(TRANSCRIPT)))
    assert not log_home.exists()
    result = write("Write about tides", engine=ScriptedEngine(cut(TRANSCRIPT)), log=True)
    record, raw = logged()
    assert raw == TRANSCRIPT and record.words == result.words and record.status == DONE


def test_logs_reads_a_database_another_process_holds_open(engines, capsys):
    """A reader never waits on a running writer (WAL): `logs` while a run streams."""
    recorder = start_run(kind="write", user_prompt="streaming", prompt="P", options={})
    recorder.add("<think>x</think><answer>a b c", 1)
    recorder.flush()
    holder = sqlite3.connect(db_path(), timeout=0)
    holder.execute("BEGIN IMMEDIATE")  # a writer in the middle of a transaction
    try:
        code, out, _ = run_main(["logs"], capsys)
    finally:
        holder.rollback()
        holder.close()
    assert code == 0 and "running" in out and "streaming" in out
    recorder.finish(DONE)
    assert os.environ["LONGWRITE_HOME"] in str(db_path())


# -- batch ------------------------------------------------------------------------------------


def test_batch_records_one_row_pointing_at_its_output(tmp_path, capsys):
    from sse_server import Script
    from test_batch_servers import EchoServer, write_input

    write_input(tmp_path / "in.jsonl", 3)
    out = tmp_path / "out.jsonl"
    with EchoServer(Script(pieces=(8,))) as srv:
        argv = ["batch", str(tmp_path / "in.jsonl"), "-o", str(out), "--server", srv.url,
                "--max-rounds", "0", "--max-tokens", "200"]  # fmt: skip
        code, _, err = run_main(argv, capsys)
    assert code == 0, err
    (record,) = Store.open().runs()
    assert record.kind == "batch" and record.output == str(out) and record.status == DONE
    assert record.options["servers"] == [srv.url]
    assert len(out.read_text().splitlines()) == 3  # the items are in OUT, not in the log
    code, listing, _ = run_main(["logs"], capsys)
    assert f"batch -> {out}" in listing and "done" in listing


@pytest.mark.slow
def test_logs_show_renders_markdown_on_a_terminal(engines, capsys):
    """On a terminal `logs show` prints the document as the main command's final render
    (Markdown, no status line, no escape codes beyond colour); piped it stays raw."""
    from pty_run import run_on_pty, terminal_env
    from test_render import one_shot, screen

    engines.append(ScriptedEngine(cut(TRANSCRIPT)))
    run_main(["Write about tides", "--max-rounds", "0"], capsys)
    code, out = run_on_pty(
        [sys.executable, "-m", "longwrite", "logs", "show", "last"],
        terminal_env(LONGWRITE_HOME=os.environ["LONGWRITE_HOME"]),
    )
    assert code == 0, out
    assert "\x1b[" in out  # styled: this is the rendered form, not the raw text
    shown = [line for line in screen(out) if line.strip()]
    assert shown == [line for line in one_shot(ANSWER, width=100) if line.strip()]
    assert "<answer>" not in out and "Plan: a title" not in out  # thinking hidden


def test_logs_lists_the_runs_of_one_status(engines, capsys):
    engines.append(ScriptedEngine(cut(TRANSCRIPT)))
    engines.append(ScriptedEngine(cut(TRANSCRIPT), interrupt_after=30))
    run_main(["Write about tides", "--max-rounds", "0"], capsys)
    assert run_main(["Write about waves", "--max-rounds", "0"], capsys)[0] == 130
    code, out, _ = run_main(["logs", "--status", "interrupted"], capsys)
    (line,) = out.splitlines()
    assert code == 0 and " interrupted " in line and line.endswith("Write about waves")
    code, out, err = run_main(["logs", "--status", "failed"], capsys)
    assert code == 0 and out == "" and "no failed runs" in err
    code, _, err = run_main(["logs", "--status", "lost"], capsys)
    assert code == 2 and "lost" in err
