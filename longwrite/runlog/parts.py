"""What the run log keeps beside a run's text: loop cuts, sections written at once, versions.

Why apart from `runlog.store`: the run's own record and raw text are one concern (a run as it
streamed); these are the parts later features keep next to it, each a table of its own:
- `cuts`: text the loop guard cut from the answer, so a wrong cut never loses it
  (`logs show ID --cut`);
- `section_chunks`: the raw text of sections written in parallel (`--parallel`), each as it
  streams, and how it ended, so `continue` carries each one on;
- `versions`: every version of a section written again (`revise`), as it streams, and
  whether it is done, unfinished or set aside (`--undo`).
`Store` mixes these methods in; the tables are created with the rest of the schema (a log made
before they existed gets them when it is next opened).
"""

from __future__ import annotations

import sqlite3
import time

SCHEMA_VERSION = 2  # 1: runs, chunks, candidate_chunks; 2: the tables below

PARTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS section_chunks (
    n INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    k INTEGER NOT NULL,
    at REAL NOT NULL,
    text TEXT NOT NULL,
    tokens INTEGER NOT NULL,
    finish TEXT
);
CREATE INDEX IF NOT EXISTS section_chunks_run ON section_chunks (run_id, n);
CREATE TABLE IF NOT EXISTS versions (
    n INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    k INTEGER NOT NULL,
    at REAL NOT NULL,
    instruction TEXT NOT NULL,
    text TEXT NOT NULL,
    status TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS versions_run ON versions (run_id, n);
CREATE TABLE IF NOT EXISTS cuts (
    n INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    at REAL NOT NULL,
    at_char INTEGER NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS cuts_run ON cuts (run_id, n);
"""


class RunParts:
    """The methods of `Store` for the tables above (`conn` is the store's connection)."""

    conn: sqlite3.Connection

    def append_section(
        self, run_id: str, k: int, text: str, tokens: int, finish: str | None = None
    ) -> None:
        """Append a piece of section `k`'s raw text, written in parallel with others
        (`finish` on the last piece: how the section ended)."""
        self.conn.execute(
            "INSERT INTO section_chunks (run_id, k, at, text, tokens, finish) VALUES (?,?,?,?,?,?)",
            (run_id, k, time.time(), text, tokens, finish),
        )

    def sections(self, run_id: str) -> dict[int, tuple[str, int, str | None]]:
        """Sections written in parallel, as logged: k -> (raw text, tokens, finish or None)."""
        rows = self.conn.execute(
            "SELECT k, text, tokens, finish FROM section_chunks WHERE run_id=? ORDER BY n",
            (run_id,),
        )
        out: dict[int, tuple[str, int, str | None]] = {}
        for k, text, tokens, finish in rows:
            old_text, old_tokens, old_finish = out.get(k, ("", 0, None))
            out[k] = (old_text + text, old_tokens + tokens, finish or old_finish)
        return out

    def start_version(self, run_id: str, k: int, instruction: str) -> int:
        """A new version of section `k` (`revise`), being written; its number."""
        cur = self.conn.execute(
            "INSERT INTO versions (run_id, k, at, instruction, text, status) VALUES (?,?,?,?,?,?)",
            (run_id, k, time.time(), instruction, "", "writing"),
        )
        return int(cur.lastrowid or 0)

    def append_version(self, version: int, text: str) -> None:
        """Text of a version being written, appended as it streams."""
        self.conn.execute("UPDATE versions SET text = text || ? WHERE n=?", (text, version))

    def finish_version(self, version: int, status: str) -> None:
        """How a version's writing ended: "done", or "interrupted"/"failed" (never current)."""
        self.conn.execute("UPDATE versions SET status=? WHERE n=?", (status, version))

    def versions(self, run_id: str) -> list[tuple[int, int, str, str, str]]:
        """Every version of the run's sections, oldest first: (n, k, text, instruction,
        status)."""
        rows = self.conn.execute(
            "SELECT n, k, text, instruction, status FROM versions WHERE run_id=? ORDER BY n",
            (run_id,),
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]

    def undo_version(self, run_id: str, k: int) -> int | None:
        """Section `k`'s latest finished version set aside ("undone"); its number, or None."""
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            row = self.conn.execute(
                "SELECT n FROM versions WHERE run_id=? AND k=? AND status='done' "
                "ORDER BY n DESC LIMIT 1",
                (run_id, k),
            ).fetchone()
            if row is None:
                return None
            self.conn.execute("UPDATE versions SET status='undone' WHERE n=?", (row[0],))
            return int(row[0])

    def append_cut(self, run_id: str, at_char: int, text: str) -> None:
        """Keep text the loop guard cut from a run's answer at `at_char` (never lost)."""
        self.conn.execute(
            "INSERT INTO cuts (run_id, at, at_char, text) VALUES (?,?,?,?)",
            (run_id, time.time(), at_char, text),
        )

    def cuts(self, run_id: str) -> list[tuple[int, str]]:
        """The text the loop guard cut from a run, in order: (answer offset, text)."""
        rows = self.conn.execute(
            "SELECT at_char, text FROM cuts WHERE run_id=? ORDER BY n", (run_id,)
        )
        return [(at, text) for at, text in rows]
