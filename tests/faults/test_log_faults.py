"""The run log under faults: a damaged page, a run whose settings are not JSON, two
`continue` claiming one run, parent folders made under umask 000."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from faults.common import cli, errors
from longwrite.runlog.store import INTERRUPTED, LogError, Store, db_path


def fill(store: Store, runs: int, chunks: int = 40) -> list[str]:
    """`runs` interrupted runs of a few hundred KB each, as a long day of writing leaves."""
    ids = []
    for k in range(runs):
        run = store.new_run(kind="write", user_prompt=f"Write {k}.", prompt="P", options={})
        for _ in range(chunks):
            store.append(run, f"paragraph {k} " * 200, 400)
        store.finish(run, INTERRUPTED)
        ids.append(run)
    return ids


def test_a_damaged_page_is_moved_aside_once_and_a_new_log_starts(log_home: Path) -> None:
    store = Store.open(db_path())
    fill(store, 6)
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    path = db_path()
    data = bytearray(path.read_bytes())
    page = 4096
    middle = (len(data) // page // 2) * page  # a page of the chunks table, half way in
    data[middle : middle + page] = bytes(range(256)) * (page // 256)
    path.write_bytes(bytes(data))
    listing = cli("logs")
    assert listing.returncode == 0, listing.stderr
    assert errors(listing.stderr) == []
    warning, empty = listing.stderr.splitlines()
    assert warning.startswith(f"longwrite: warning: the run log {path} was corrupt")
    assert "quick_check: *** in database main *** Page " in warning and "moved to" in warning
    assert empty.startswith("no runs logged yet")
    aside = [p for p in path.parent.iterdir() if p.name.startswith("logs.db.corrupt-")]
    assert len(aside) == 1 and aside[0].stat().st_size == len(data)  # kept as it was
    again = cli("logs")
    assert again.returncode == 0 and again.stderr.startswith("no runs logged yet")  # said once


def test_a_run_whose_options_are_not_json_is_listed_and_not_continued(log_home: Path) -> None:
    store = Store.open(db_path())
    (run,) = fill(store, 1, chunks=2)
    store.conn.execute("UPDATE runs SET options=? WHERE id=?", ('{"max_tokens": 4', run))
    store.close()
    listing = cli("logs", "--json")
    assert listing.returncode == 0, listing.stderr
    assert errors(listing.stderr) == []
    shown = cli("logs", "show", run)
    assert shown.returncode == 0 and shown.stdout.startswith("paragraph 0")
    carried = cli("continue", run, "--server", "127.0.0.1:9")
    assert carried.returncode == 2
    assert errors(carried.stderr) == [
        f"longwrite: error: run {run}'s settings in the run log are damaged: it cannot be "
        f"continued (`longwrite logs show {run}` prints its text)"
    ]


def test_of_two_claims_on_one_run_the_second_is_refused(log_home: Path) -> None:
    first, second = Store.open(db_path()), Store.open(db_path())
    (run,) = fill(first, 1, chunks=1)
    # Both processes checked the run (interrupted) before either claimed it.
    assert first.get(run).status == second.get(run).status == INTERRUPTED
    first.claim(run, {"max_tokens": 10}, None)
    with pytest.raises(LogError, match=f"run {run} is being continued by another process"):
        second.claim(run, {"max_tokens": 20}, None)
    assert second.get(run).options == {"max_tokens": 10}  # the first one's claim stands
    first.close()
    second.close()


def test_parent_folders_are_private_under_umask_000(tmp_path: Path, monkeypatch) -> None:
    home = tmp_path / "a" / "b" / "home"
    monkeypatch.setenv("LONGWRITE_HOME", str(home))
    old = os.umask(0)
    try:
        Store.open(db_path()).close()
    finally:
        os.umask(old)
    for folder in (tmp_path / "a", tmp_path / "a" / "b", home):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    assert stat.S_IMODE(db_path().stat().st_mode) == 0o600
