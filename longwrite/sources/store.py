"""One index's SQLite file: files, their passages, the full-text index, cached embeddings.

Why SQLite: FTS5 with BM25 ranking ships inside Python's own sqlite3, so full-text search
needs no server and no dependency, and one file per index is easy to list, move and delete.

Tables:
- `meta`: the index's name, the roots it was built from, its schema version.
- `files`: every indexed file with its size, mtime and SHA-256, so a re-index re-reads only
  the files whose size or mtime changed and whose content really did (`sources.build`).
- `passages`: the displayed text of each passage, its file, its locator (page, heading, line)
  and estimated tokens.
- `passages_fts`: FTS5 over the passages' search text (`sources.terms`: CJK as bigrams), one
  row per passage with the same rowid; Porter stemming for English. `passages_terms` (FTS5's
  vocabulary table) says in how many passages each term is: a query leaves out the terms
  in most of them (`frequencies`), which BM25 gives almost no weight and which would make
  it score nearly every passage.
- `vectors`: embeddings by passage and embedding model (float32), filled only when dense
  retrieval is asked for (`sources.embed`).

WAL mode: a write run that reads an index never blocks, nor is blocked by, `longwrite index`
refreshing it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from longwrite.sources.chunk import Piece
from longwrite.sources.terms import search_text

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 30.0
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    path TEXT UNIQUE NOT NULL,
    shown TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha TEXT NOT NULL,
    passages INTEGER NOT NULL,
    indexed REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS passages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    file_id INTEGER NOT NULL,
    n INTEGER NOT NULL,
    locator TEXT NOT NULL,
    text TEXT NOT NULL,
    tokens INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS passages_file ON passages (file_id);
CREATE VIRTUAL TABLE IF NOT EXISTS passages_fts
    USING fts5(body, tokenize = 'porter unicode61 remove_diacritics 2');
CREATE VIRTUAL TABLE IF NOT EXISTS passages_terms USING fts5vocab(passages_fts, row);
CREATE TABLE IF NOT EXISTS vectors (
    passage_id INTEGER NOT NULL,
    model TEXT NOT NULL,
    vector BLOB NOT NULL,
    PRIMARY KEY (passage_id, model)
);
"""


# The query's words through the index's tokenizer: a one-row-per-word table of this
# connection, and its vocabulary by instance (row -> the term it became).
_PROBE = """
CREATE VIRTUAL TABLE IF NOT EXISTS temp.probe
    USING fts5(body, tokenize = 'porter unicode61 remove_diacritics 2');
CREATE VIRTUAL TABLE IF NOT EXISTS temp.probe_terms USING fts5vocab(temp, probe, instance);
"""


@dataclass(frozen=True)
class Passage:
    """A stored passage, as retrieval returns it and a citation names it."""

    index: str  # the index's name
    id: int  # its rowid in that index
    file: str  # the file as shown (relative to the folder indexed, the folder's name first)
    locator: str  # "p. 4", a heading, "line 120"
    text: str
    tokens: int  # estimated

    @property
    def key(self) -> str:
        return f"{self.index}:{self.id}"


@dataclass(frozen=True)
class FileRow:
    id: int
    size: int
    mtime_ns: int
    sha: str


class IndexFile:
    """An open index file, used by one thread at a time."""

    def __init__(self, path: Path, name: str, *, create: bool = False) -> None:
        if not create and not path.is_file():
            raise FileNotFoundError(path)
        self.path = path
        self.name = name
        self._probe = False
        # One thread at a time, though not always the one that opened it (a run's request is
        # resolved on one thread and written on another in `stream()`).
        self.conn = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
        )
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        if create:
            self.conn.executescript(SCHEMA)
            self.set_meta(version=SCHEMA_VERSION)
        version = self.meta().get("version")
        if version != SCHEMA_VERSION:
            self.conn.close()
            raise sqlite3.DatabaseError(f"index schema {version!r}, not {SCHEMA_VERSION}")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> IndexFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- meta ---------------------------------------------------------------------------

    def meta(self) -> dict[str, object]:
        rows = self.conn.execute("SELECT key, value FROM meta").fetchall()
        return {k: json.loads(v) for k, v in rows}

    def set_meta(self, **values: object) -> None:
        self.conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [(k, json.dumps(v, ensure_ascii=False)) for k, v in values.items()],
        )

    @property
    def roots(self) -> list[str]:
        roots = self.meta().get("roots")
        return [str(r) for r in roots] if isinstance(roots, list) else []

    # -- files and passages ---------------------------------------------------------------

    def files(self) -> dict[str, FileRow]:
        rows = self.conn.execute("SELECT path, id, size, mtime_ns, sha FROM files").fetchall()
        return {path: FileRow(i, size, mtime, sha) for path, i, size, mtime, sha in rows}

    def begin(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def put_file(
        self, path: str, shown: str, size: int, mtime_ns: int, sha: str, pieces: list[Piece]
    ) -> None:
        """`path` with its passages `pieces`, replacing whatever it held before."""
        self.remove_file(path)
        cur = self.conn.execute(
            "INSERT INTO files (path, shown, size, mtime_ns, sha, passages, indexed) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (path, shown, size, mtime_ns, sha, len(pieces), time.time()),
        )
        file_id = cur.lastrowid
        # Ids are never reused (AUTOINCREMENT): a passage's id names it in a run's citations.
        row = self.conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'passages'")
        first = (row.fetchone() or (0,))[0] + 1
        ids = range(first, first + len(pieces))
        rows = [
            (i, file_id, n, p.locator, p.text, p.tokens)
            for n, (i, p) in enumerate(zip(ids, pieces, strict=True))
        ]
        self.conn.executemany(
            "INSERT INTO passages (id, file_id, n, locator, text, tokens) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            rows,
        )
        self.conn.executemany(
            "INSERT INTO passages_fts (rowid, body) VALUES (?, ?)",
            [(i, search_text(p.text)) for i, p in zip(ids, pieces, strict=True)],
        )

    def touch_file(self, path: str, size: int, mtime_ns: int) -> None:
        """A file whose mtime changed but whose content did not."""
        self.conn.execute(
            "UPDATE files SET size = ?, mtime_ns = ? WHERE path = ?", (size, mtime_ns, path)
        )

    def remove_file(self, path: str) -> int:
        """`path` and its passages gone; how many passages it had."""
        row = self.conn.execute("SELECT id FROM files WHERE path = ?", (path,)).fetchone()
        if row is None:
            return 0
        ids = [r[0] for r in self.conn.execute("SELECT id FROM passages WHERE file_id = ?", row)]
        self.conn.executemany("DELETE FROM passages_fts WHERE rowid = ?", [(i,) for i in ids])
        self.conn.executemany("DELETE FROM vectors WHERE passage_id = ?", [(i,) for i in ids])
        self.conn.execute("DELETE FROM passages WHERE file_id = ?", row)
        self.conn.execute("DELETE FROM files WHERE id = ?", row)
        return len(ids)

    def counts(self) -> tuple[int, int, int]:
        """(files, passages, estimated tokens) in the index."""
        files = self.conn.execute("SELECT COUNT(*) FROM files").fetchone()[0]
        passages, tokens = self.conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(tokens), 0) FROM passages"
        ).fetchone()
        return files, passages, tokens

    # -- search ---------------------------------------------------------------------------

    def frequencies(self, words: list[str]) -> dict[str, int]:
        """In how many passages each of `words` is (as the index's tokenizer reads it:
        "Islands" is counted as "island"). The words are put through the same tokenizer in a
        temporary table of this connection, whose vocabulary maps each to its term."""
        if not words:
            return {}
        if not self._probe:
            self.conn.executescript(_PROBE)
            self._probe = True
        self.conn.execute("DELETE FROM temp.probe")
        self.conn.executemany("INSERT INTO temp.probe (rowid, body) VALUES (?, ?)",
                              list(enumerate(words)))  # fmt: skip
        term_of = {words[row]: term for row, term in
                   self.conn.execute("SELECT doc, term FROM temp.probe_terms")}  # fmt: skip
        terms = sorted(set(term_of.values()))
        df: dict[str, int] = {}
        for at in range(0, len(terms), 500):
            part = terms[at : at + 500]
            marks = ",".join("?" * len(part))
            df.update(self.conn.execute(
                f"SELECT term, doc FROM passages_terms WHERE term IN ({marks})", part
            ).fetchall())  # fmt: skip
        return {w: df.get(term_of.get(w, ""), 0) for w in words}

    def size(self) -> int:
        """Passages in the index."""
        return self.conn.execute("SELECT COUNT(*) FROM passages").fetchone()[0]

    def search(self, match: str, limit: int) -> list[tuple[int, float]]:
        """(passage id, BM25 score: higher is better) of the best `limit` matches."""
        if not match:
            return []
        rows = self.conn.execute(
            "SELECT rowid, rank FROM passages_fts WHERE passages_fts MATCH ? ORDER BY rank LIMIT ?",
            (match, limit),
        ).fetchall()
        return [(rowid, -rank) for rowid, rank in rows]

    def passages(self, ids: Iterable[int]) -> dict[int, Passage]:
        """The passages with these ids (those that still exist)."""
        wanted = list(dict.fromkeys(ids))
        out: dict[int, Passage] = {}
        for at in range(0, len(wanted), 500):
            part = wanted[at : at + 500]
            marks = ",".join("?" * len(part))
            rows = self.conn.execute(
                "SELECT p.id, f.shown, p.locator, p.text, p.tokens FROM passages p "
                f"JOIN files f ON f.id = p.file_id WHERE p.id IN ({marks})",
                part,
            ).fetchall()
            for pid, shown, locator, text, tokens in rows:
                out[pid] = Passage(self.name, pid, shown, locator, text, tokens)
        return out

    # -- embeddings -----------------------------------------------------------------------

    def unembedded(self, model: str, limit: int) -> list[tuple[int, str]]:
        """Up to `limit` (id, text) of passages without a vector from `model`."""
        return self.conn.execute(
            "SELECT p.id, p.text FROM passages p LEFT JOIN vectors v "
            "ON v.passage_id = p.id AND v.model = ? WHERE v.passage_id IS NULL "
            "ORDER BY p.id LIMIT ?",
            (model, limit),
        ).fetchall()

    def put_vectors(self, model: str, rows: list[tuple[int, bytes]]) -> None:
        self.conn.executemany(
            "INSERT OR REPLACE INTO vectors (passage_id, model, vector) VALUES (?, ?, ?)",
            [(i, model, v) for i, v in rows],
        )

    def vectors(self, model: str) -> list[tuple[int, bytes]]:
        return self.conn.execute(
            "SELECT passage_id, vector FROM vectors WHERE model = ? ORDER BY passage_id", (model,)
        ).fetchall()
