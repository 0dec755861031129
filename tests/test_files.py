"""Atomic output: FILE appears whole or not at all; FILE.partial keeps interrupted work."""

import os
from pathlib import Path

import pytest

from longwrite.errors import LongwriteError
from longwrite.io.files import PartialFile, atomic_write_text, partial_path


def test_commit_replaces_the_target_atomically(tmp_path):
    target = tmp_path / "essay.md"
    target.write_text("old")
    pf = PartialFile(target)
    with pf as f:
        f.write("new text")
        assert target.read_text() == "old"  # untouched until commit
        pf.commit()
    assert target.read_text() == "new text"
    assert not pf.partial.exists()


def test_without_commit_the_partial_file_is_kept(tmp_path):
    target = tmp_path / "essay.md"
    pf = PartialFile(target)
    with pf as f:
        f.write("half a doc")
    assert not target.exists()
    assert pf.partial.name == "essay.md.partial"
    assert pf.partial.read_text() == "half a doc"


def test_unwritable_targets_fail_before_anything_starts(tmp_path):
    with pytest.raises(LongwriteError, match="does not exist"):
        PartialFile(tmp_path / "missing" / "x.md")
    with pytest.raises(LongwriteError, match="is a folder"):
        PartialFile(tmp_path)


def test_atomic_write_text(tmp_path):
    target = tmp_path / "r.json"
    atomic_write_text(target, "{}")
    assert target.read_text() == "{}"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temp file left behind


def test_a_device_or_a_pipe_is_written_in_place_never_replaced(tmp_path):
    """`-o /dev/null` (or a named pipe) must not turn the device into a regular file: the
    rename that makes a normal file atomic would replace it."""
    import stat
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    with PartialFile(fifo) as f:
        f.write("the document\n")
    # no commit needed for the reader to have it, and no `.partial` beside it
    reader.join(timeout=30)
    assert got == [b"the document\n"]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and not partial_path(fifo).exists()
    null = Path(os.devnull)
    target = PartialFile(null)
    with target as f:
        f.write("x")
        target.commit()
    assert stat.S_ISCHR(os.stat(null).st_mode)
    atomic_write_text(null, "y")
    assert stat.S_ISCHR(os.stat(null).st_mode)
