"""Atomic output: FILE appears whole or not at all; FILE.partial keeps interrupted work."""

import pytest

from longwrite.errors import LongwriteError
from longwrite.io.files import PartialFile, atomic_write_text


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
