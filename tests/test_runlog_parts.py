"""The parts of a run kept beside its text (runlog/parts.py): a log made before they existed
gets their tables when it is next opened, and each part reads back as written."""

from __future__ import annotations

import sqlite3

from longwrite.runlog.parts import SCHEMA_VERSION
from longwrite.runlog.store import SCHEMA, Store

OLD_TABLES = ("runs", "chunks", "candidate_chunks")


def test_a_log_of_the_first_schema_gets_the_new_tables_and_keeps_its_runs(tmp_path):
    path = tmp_path / "logs.db"
    conn = sqlite3.connect(path)
    for statement in SCHEMA.split(";"):  # the first schema: what a log made before held
        if statement.strip() and any(f"EXISTS {t} " in statement for t in OLD_TABLES):
            conn.execute(statement)
    conn.execute(
        "INSERT INTO runs (id, created, kind, user_prompt, prompt, options, status) "
        "VALUES ('abc', 0, 'write', 'q', 'p', '{}', 'done')"
    )
    conn.execute("PRAGMA user_version=1")
    conn.commit()
    conn.close()
    store = Store.open(path)
    try:
        assert store.get("abc") is not None  # the old run is still there
        store.append_cut("abc", 10, "cut text")
        store.append_section("abc", 2, "part of section 3", 4)
        store.append_section("abc", 2, " and the rest", 3, "stop")
        v = store.start_version("abc", 1, "shorter")
        store.append_version(v, "new ")
        store.append_version(v, "text")
        store.finish_version(v, "done")
        assert store.cuts("abc") == [(10, "cut text")]
        assert store.sections("abc") == {2: ("part of section 3 and the rest", 7, "stop")}
        assert store.versions("abc") == [(v, 1, "new text", "shorter", "done")]
        assert store.undo_version("abc", 1) == v and store.undo_version("abc", 1) is None
        version = store.conn.execute("PRAGMA user_version").fetchone()[0]
        assert version == SCHEMA_VERSION
        store.delete("abc")
        assert not store.cuts("abc") and not store.sections("abc") and not store.versions("abc")
    finally:
        store.close()
