"""The run log's SQLite file: where it lives, its schema, and how it survives faults.

`$LONGWRITE_HOME/logs.db` (default: the platform's user data folder, via `platformdirs`).
Prompts and documents can be private, so the folder is created 0700 (and so is every parent
folder created for it, whatever the umask) and the file 0600; SQLite gives its `-wal` and
`-shm` files the database file's mode.

Choices:
- One `runs` row per run, and the raw text in a `chunks` table, one row per batch the
  recorder appends. Appending is then one short INSERT, never a rewrite of a growing row.
  `--best-of` candidates stream into `candidate_chunks` (by candidate) while they are
  sampled, so a run killed before one was chosen still has its text; the chosen one is
  then the run's raw text as for any run.
- WAL mode with `synchronous=NORMAL`: a commit is durable against a killed process (not a
  power cut), costs no fsync, and readers (`longwrite logs`) never block a writing run.
  A busy timeout lets two `longwrite` processes write at once; every write is one
  autocommitted statement, so locks are held for microseconds.
- A running run names its owner (host, pid, and the process's start time from /proc, so a
  reused pid is not taken for the owner). A run whose owner is gone is marked interrupted
  when the log is next read (`reap`): `kill -9` and reboots leave no running ghosts.
- A file SQLite says is not a database, or is malformed, or whose pages `PRAGMA quick_check`
  finds damaged when it is opened, is moved aside (`logs.db.corrupt-TIME`) with one warning,
  and a new log is started. The check reads every page but checks no index content: about
  0.15 s for a 280 MB log (the text of some 50 million words), once per command.
- A run's `options` that are not a JSON object (a damaged row) read as none: the run is
  listed and shown, and `continue` refuses it in one line.
- `claim` (a run continued) is one conditional UPDATE: of two `longwrite continue` on one
  run, the second finds it running and is refused, instead of both appending to it.
- Ids are short, sortable and printable: 6 base-32 characters of seconds since 2024, then
  2 random ones (`logs` orders by time; any unique prefix names a run).
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from longwrite.errors import LongwriteError, say
from longwrite.runlog.owners import my_owner, owner_alive
from longwrite.runlog.parts import PARTS_SCHEMA, SCHEMA_VERSION, RunParts

DB_NAME = "logs.db"
BUSY_TIMEOUT_S = 10.0
ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford's base 32, lower case
EPOCH = 1_704_067_200  # 2024-01-01 UTC: six characters of seconds last until 2058

RUNNING, DONE, CUT_OFF, INTERRUPTED, FAILED = "running", "done", "cut off", "interrupted", "failed"

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    kind TEXT NOT NULL,
    user_prompt TEXT NOT NULL,
    prompt TEXT NOT NULL,
    options TEXT NOT NULL,
    status TEXT NOT NULL,
    finish_reason TEXT,
    target INTEGER,
    words INTEGER,
    tokens INTEGER NOT NULL DEFAULT 0,
    seconds REAL NOT NULL DEFAULT 0,
    started REAL,
    owner TEXT,
    output TEXT,
    error TEXT
);
CREATE TABLE IF NOT EXISTS chunks (
    n INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    at REAL NOT NULL,
    text TEXT NOT NULL,
    tokens INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_run ON chunks (run_id, n);
CREATE TABLE IF NOT EXISTS candidate_chunks (
    n INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    at REAL NOT NULL,
    text TEXT NOT NULL,
    tokens INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS candidate_chunks_run ON candidate_chunks (run_id, n);
"""


class LogError(LongwriteError):
    """The log cannot be read (or has no such run): one line, exit 2."""


def log_home() -> Path:
    """`$LONGWRITE_HOME`, else the platform's user data folder for longwrite."""
    home = os.environ.get("LONGWRITE_HOME")
    if home:
        return Path(home).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("longwrite", appauthor=False))


def db_path() -> Path:
    return log_home() / DB_NAME


def log_wanted(no_log: bool = False) -> bool:
    """False with `--no-log` or `LONGWRITE_NO_LOG` set to anything but empty/0/false/no."""
    env = os.environ.get("LONGWRITE_NO_LOG", "").strip().lower()
    return not no_log and env in ("", "0", "false", "no")


def new_id(now: float | None = None) -> str:
    """8 characters: seconds since 2024 in base 32 (sortable), then 2 random ones."""
    n = max(0, int((time.time() if now is None else now) - EPOCH))
    head = ""
    for _ in range(6):
        n, r = divmod(n, 32)
        head = ALPHABET[r] + head
    return head + "".join(secrets.choice(ALPHABET) for _ in range(2))


@dataclass(frozen=True)
class RunRecord:
    """One row of the log (without its text: `Store.raw` reads that)."""

    id: str
    created: float
    kind: str
    user_prompt: str
    prompt: str
    status: str
    finish_reason: str | None
    target: int | None
    words: int | None
    tokens: int
    seconds: float
    owner: str | None = None
    output: str | None = None
    error: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = dict(vars(self))
        data.pop("owner")
        return data


_COLUMNS = (
    "id, created, kind, user_prompt, prompt, status, finish_reason, target, words, tokens, "
    "seconds, owner, output, error, options"
)


def _options(text: Any) -> dict[str, Any]:
    """A run's options as stored; a damaged value (not a JSON object) reads as none."""
    from longwrite.io.records import LineError, decode_object

    try:
        return decode_object(text if isinstance(text, str | bytes) else "")
    except LineError:
        return {}


def _record(row: tuple) -> RunRecord:
    *head, options = row
    return RunRecord(*head, options=_options(options))


class Store(RunParts):
    """The open log. Every method is one short statement or transaction."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

    @classmethod
    def open(cls, path: Path | None = None) -> Store:
        """Open (creating the folder and file, private) or start anew when corrupt.

        Raises OSError or sqlite3.Error when the log cannot be written at all."""
        path = path or db_path()
        _private_folder(path.parent)
        try:
            conn = _connect(path)
        except sqlite3.DatabaseError as e:
            if getattr(e, "sqlite_errorname", "") not in ("SQLITE_NOTADB", "SQLITE_CORRUPT"):
                raise
            damage = str(e)
        else:
            damage = _damage(conn)
            if damage is None:
                return cls(conn, path)
            conn.close()
        aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
        for suffix in ("", "-wal", "-shm"):
            old = Path(str(path) + suffix)
            if old.exists():
                os.replace(old, Path(str(aside) + suffix))
        say(f"longwrite: warning: the run log {path} was corrupt ({damage}): moved to {aside}")
        return cls(_connect(path), path)

    def close(self) -> None:
        self.conn.close()

    # -- writing ------------------------------------------------------------------------------

    def new_run(
        self,
        *,
        kind: str,
        user_prompt: str,
        prompt: str,
        options: dict[str, Any],
        target: int | None = None,
        output: str | None = None,
    ) -> str:
        now = time.time()
        for _ in range(20):  # two runs in the same second may draw the same id
            run_id = new_id(now)
            try:
                self.conn.execute(
                    "INSERT INTO runs (id, created, kind, user_prompt, prompt, options, status,"
                    " target, started, owner, output) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (run_id, now, kind, user_prompt, prompt, json.dumps(options), RUNNING,
                     target, now, my_owner(), output),
                )  # fmt: skip
                return run_id
            except sqlite3.IntegrityError:
                continue
        raise sqlite3.IntegrityError("no free run id")

    def append(self, run_id: str, text: str, tokens: int) -> None:
        """Append a piece of a run's raw text (and the tokens it took): one INSERT."""
        self.conn.execute(
            "INSERT INTO chunks (run_id, at, text, tokens) VALUES (?,?,?,?)",
            (run_id, time.time(), text, tokens),
        )

    def append_candidate(self, run_id: str, index: int, text: str, tokens: int) -> None:
        """Append a piece of best-of candidate `index`'s text: one INSERT."""
        self.conn.execute(
            "INSERT INTO candidate_chunks (run_id, idx, at, text, tokens) VALUES (?,?,?,?,?)",
            (run_id, index, time.time(), text, tokens),
        )

    def claim(self, run_id: str, options: dict[str, Any], target: int | None) -> None:
        """Mark a run running again under this process (`continue`), with its new options.

        One conditional UPDATE: a run another process has claimed meanwhile (it is running)
        is not taken, and `LogError` says who has it."""
        taken = self.conn.execute(
            "UPDATE runs SET status=?, owner=?, started=?, options=?, target=?, error=NULL "
            "WHERE id=? AND status<>?",
            (RUNNING, my_owner(), time.time(), json.dumps(options), target, run_id, RUNNING),
        ).rowcount
        if taken:
            return
        row = self.conn.execute("SELECT owner FROM runs WHERE id=?", (run_id,)).fetchone()
        pid = (row[0] or "").split(":")[1:2] if row else []
        who = f" (pid {pid[0]})" if pid and pid[0] else ""
        raise LogError(
            f"run {run_id} is being continued by another process{who}: wait for it, or stop it"
        )

    def update_options(self, run_id: str, options: dict[str, Any]) -> None:
        """Add what a run learns as it goes (a sectioned run's outline) to its options."""
        row = self.conn.execute("SELECT options FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            return
        merged = {**_options(row[0]), **options}
        self.conn.execute("UPDATE runs SET options=? WHERE id=?", (json.dumps(merged), run_id))

    def finish(
        self,
        run_id: str,
        status: str,
        *,
        finish_reason: str | None = None,
        words: int | None = None,
        seconds: float = 0.0,
        error: str | None = None,
    ) -> None:
        """End a run: its status, and this session's seconds added to the earlier ones."""
        self.conn.execute(
            "UPDATE runs SET status=?, finish_reason=?, words=?, seconds=seconds+?, error=?, "
            "owner=NULL, tokens=(SELECT coalesce(sum(tokens), 0) FROM chunks WHERE run_id=?) "
            "WHERE id=?",
            (status, finish_reason, words, round(seconds, 3), error, run_id, run_id),
        )

    def delete(self, run_id: str) -> None:
        with self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute("DELETE FROM chunks WHERE run_id=?", (run_id,))
            self.conn.execute("DELETE FROM candidate_chunks WHERE run_id=?", (run_id,))
            self.conn.execute("DELETE FROM cuts WHERE run_id=?", (run_id,))
            self.conn.execute("DELETE FROM section_chunks WHERE run_id=?", (run_id,))
            self.conn.execute("DELETE FROM versions WHERE run_id=?", (run_id,))
            self.conn.execute("DELETE FROM runs WHERE id=?", (run_id,))

    def reap(self, words_of: Callable[[str], int]) -> int:
        """Mark running runs whose process is gone as interrupted; returns how many."""
        rows = self.conn.execute(
            "SELECT id, owner, started FROM runs WHERE status=?", (RUNNING,)
        ).fetchall()
        dead = 0
        for run_id, owner, started in rows:
            if owner_alive(owner):
                continue
            last = self.conn.execute(
                "SELECT max(at) FROM (SELECT at FROM chunks WHERE run_id=?"
                " UNION ALL SELECT at FROM candidate_chunks WHERE run_id=?)",
                (run_id, run_id),
            ).fetchone()[0]
            seconds = max(0.0, (last or started or 0) - (started or 0))
            self.finish(
                run_id, INTERRUPTED, finish_reason="killed", words=words_of(self.raw(run_id)),
                seconds=seconds, error="the process ended without finishing the run",
            )  # fmt: skip
            dead += 1
        return dead

    # -- reading ------------------------------------------------------------------------------

    def runs(self, limit: int | None = None, status: str | None = None) -> list[RunRecord]:
        """The most recent runs (with `status` only, when given), newest first."""
        rows = self.conn.execute(
            f"SELECT {_COLUMNS} FROM runs WHERE ? IS NULL OR status=? "
            "ORDER BY created DESC, id DESC LIMIT ?",
            (status, status, -1 if limit is None else limit),
        ).fetchall()
        return [_record(r) for r in rows]

    def get(self, run_id: str) -> RunRecord | None:
        row = self.conn.execute(f"SELECT {_COLUMNS} FROM runs WHERE id=?", (run_id,)).fetchone()
        return _record(row) if row else None

    def resolve(self, ref: str) -> RunRecord:
        """The run named by `ref`: an id, any unique prefix of one, or `last` (the newest)."""
        ref = ref.strip().lower()
        if ref == "last":
            newest = self.runs(1)
            if not newest:
                raise LogError(f"the run log is empty ({self.path})")
            return newest[0]
        if not ref or any(c not in ALPHABET for c in ref):
            raise LogError(f"no run {ref!r} in the log (see `longwrite logs`)")
        ids = [r[0] for r in self.conn.execute(
            "SELECT id FROM runs WHERE id >= ? AND id < ? ORDER BY id LIMIT 6", (ref, ref + "~")
        )]  # fmt: skip
        if not ids:
            raise LogError(f"no run {ref!r} in the log (see `longwrite logs`)")
        if len(ids) > 1:
            more = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
            raise LogError(f"{ref!r} names more than one run ({more}): give more of the id")
        record = self.get(ids[0])
        assert record is not None
        return record

    def raw(self, run_id: str) -> str:
        """The raw completion text of a run, as the model will see it when continuing."""
        rows = self.conn.execute("SELECT text FROM chunks WHERE run_id=? ORDER BY n", (run_id,))
        return "".join(r[0] for r in rows)

    def candidates(self, run_id: str) -> dict[int, tuple[str, int]]:
        """Best-of candidates as logged while sampled: index -> (raw text, tokens)."""
        rows = self.conn.execute(
            "SELECT idx, text, tokens FROM candidate_chunks WHERE run_id=? ORDER BY n", (run_id,)
        )
        out: dict[int, tuple[str, int]] = {}
        for index, text, tokens in rows:
            old_text, old_tokens = out.get(index, ("", 0))
            out[index] = (old_text + text, old_tokens + tokens)
        return out


def _private_folder(folder: Path) -> None:
    """Create `folder` and each missing parent readable by the user alone (mkdir's `parents`
    would make the parents 0777 less the umask: 0777 under umask 000); leave existing ones."""
    missing = []
    while not folder.is_dir():
        missing.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    for part in reversed(missing):
        try:
            part.mkdir(mode=0o700)
        except FileExistsError:
            if not part.is_dir():
                raise
            continue  # another process made it just now
        os.chmod(part, 0o700)  # mkdir's mode is filtered by the umask


def _damage(conn: sqlite3.Connection) -> str | None:
    """What `PRAGMA quick_check` finds wrong with the open log, or None."""
    try:
        rows = conn.execute("PRAGMA quick_check(1)").fetchall()
    except sqlite3.DatabaseError as e:
        return str(e)
    found = " ".join(str(rows[0][0]).split()) if rows else "no answer"  # on one line
    return None if found == "ok" else f"quick_check: {found}"


def _connect(path: Path) -> sqlite3.Connection:
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
            with conn:
                conn.execute("BEGIN IMMEDIATE")
                for statement in (SCHEMA + PARTS_SCHEMA).split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.execute("SELECT count(*) FROM runs").fetchone()
    except BaseException:
        conn.close()
        raise
    return conn
