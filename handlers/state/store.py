"""The durable part of ``state``: an append-only patch log and checksummed snapshots in SQLite.

One database file (WAL mode) per app data directory, shared by the plugins that keep data
(``collab`` adds its tables through ``migrate``). Used from one thread at a time: the
engine runs every call on its own single worker thread.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any

import orjson

from .patches import PatchError, apply

#: Forward-only schema steps of this module's tables; never edit one that has shipped.
MIGRATIONS = [
    """
    CREATE TABLE log (
        doc TEXT NOT NULL, version INTEGER NOT NULL, ops BLOB NOT NULL, touched BLOB NOT NULL,
        author TEXT, at REAL NOT NULL, checksum TEXT NOT NULL,
        PRIMARY KEY (doc, version)) WITHOUT ROWID;
    CREATE TABLE snapshots (
        doc TEXT NOT NULL, version INTEGER NOT NULL, value BLOB NOT NULL, at REAL NOT NULL,
        checksum TEXT NOT NULL, PRIMARY KEY (doc, version)) WITHOUT ROWID;
    """,
]
#: Snapshots kept per document: the newest, and one to fall back on if it is found corrupt.
SNAPSHOTS_KEPT = 2


class StoreError(RuntimeError):
    """The database cannot be opened, migrated or trusted (a corrupt checkpoint or log)."""


@dataclass(slots=True)
class Entry:
    """One acknowledged patch: document ``doc`` went from ``version - 1`` to ``version``."""

    doc: str
    version: int
    ops: list[dict[str, Any]]
    touched: list[tuple[str, ...]]
    author: str | None
    at: float
    size: int = 0  # the ops as JSON, in bytes (to judge a catch-up without serialising it)


@dataclass(slots=True)
class Recovered:
    """A document as recovery found it: its value, version and the history kept in the log."""

    value: Any
    version: int
    history: list[Entry]
    snapshot: int  # the version of the checkpoint it started from (0: none)


def digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def dumps(value: Any) -> bytes:
    """A document as stored in a snapshot (its checksum is over these bytes)."""
    return orjson.dumps(value)


class Store:
    """The SQLite file; ``None`` path: an in-memory database (nothing survives the process)."""

    def __init__(self, path: FsPath | None, *, synchronous: str = "full") -> None:
        self.path = path
        try:
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(path) if path else ":memory:", check_same_thread=False,
                                      isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}")
            self.db.execute("PRAGMA busy_timeout=5000")
            check = self.db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise StoreError(f"state database {path} is corrupt: {check}")
            self.db.execute("CREATE TABLE IF NOT EXISTS schema (component TEXT PRIMARY KEY, version INTEGER NOT NULL)")
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the state database {path}: {exc}") from exc
        self.migrate("state", MIGRATIONS)

    def close(self) -> None:
        self.db.close()

    # ---- schema -----------------------------------------------------------

    def migrate(self, component: str, steps: Sequence[str]) -> int:
        """Run ``component``'s schema steps it has not run yet, each in one transaction.

        A database a newer release migrated further is refused: downgrades are not supported.
        """
        row = self.db.execute("SELECT version FROM schema WHERE component = ?", (component,)).fetchone()
        done = row[0] if row else 0
        if done > len(steps):
            raise StoreError(f"the state database has {component} schema version {done}, newer than this "
                             f"release knows ({len(steps)}): refusing to downgrade it")
        for number, sql in enumerate(steps[done:], start=done + 1):
            try:
                with self.transaction() as db:
                    for statement in filter(str.strip, sql.split(";")):
                        db.execute(statement)
                    db.execute("INSERT OR REPLACE INTO schema (component, version) VALUES (?, ?)", (component, number))
            except sqlite3.Error as exc:
                raise StoreError(f"migrating {component} to schema version {number} failed: {exc}") from exc
        return len(steps)

    # ---- writes -----------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed when the block ends, rolled back if it raises."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def append(self, entries: Iterable[Entry], snapshots: Iterable[tuple[str, int, bytes]] = ()) -> None:
        """Write patches (and snapshots) in one transaction: all of them are durable, or none."""
        rows = []
        for e in entries:
            ops = orjson.dumps(e.ops)
            rows.append((e.doc, e.version, ops, orjson.dumps(e.touched), e.author, e.at, digest(ops)))
        snaps = [(doc, version, value, time.time(), digest(value)) for doc, version, value in snapshots]
        with self.transaction() as db:
            db.executemany("INSERT INTO log VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            db.executemany("INSERT OR REPLACE INTO snapshots VALUES (?, ?, ?, ?, ?)", snaps)

    def prune(self, doc: str, keep_from: int) -> None:
        """Drop old snapshots (keeping SNAPSHOTS_KEPT) and log entries no longer needed: those at
        or before both the oldest kept snapshot and ``keep_from`` (the retained history)."""
        kept = [v for (v,) in self.db.execute(
            "SELECT version FROM snapshots WHERE doc = ? ORDER BY version DESC LIMIT ?", (doc, SNAPSHOTS_KEPT))]
        if not kept:
            return
        with self.transaction() as db:
            db.execute("DELETE FROM snapshots WHERE doc = ? AND version < ?", (doc, kept[-1]))
            db.execute("DELETE FROM log WHERE doc = ? AND version <= ?", (doc, min(kept[-1], keep_from)))

    def delete(self, doc: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM log WHERE doc = ?", (doc,))
            db.execute("DELETE FROM snapshots WHERE doc = ?", (doc,))

    def checkpoint_wal(self) -> None:
        """Fold the WAL into the main file (after a checkpoint, so the file alone is complete)."""
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # ---- reads ------------------------------------------------------------

    def docs(self) -> list[str]:
        return [d for (d,) in self.db.execute("SELECT doc FROM log UNION SELECT doc FROM snapshots ORDER BY 1")]

    def recover(self, doc: str, history: int) -> Recovered:
        """Rebuild ``doc``: the newest snapshot whose checksum holds, then the log after it.

        Raises StoreError when the log has a gap, a row fails its checksum, or a patch no longer
        applies: the document cannot be trusted, and nothing is silently dropped.
        """
        base, value = 0, {}
        for version, blob, checksum in self.db.execute(
                "SELECT version, value, checksum FROM snapshots WHERE doc = ? ORDER BY version DESC", (doc,)):
            if digest(blob) == checksum:
                base, value = version, orjson.loads(blob)
                break
        entries = self.entries(doc, after=base)
        version = base
        for entry in entries:
            if entry.version != version + 1:
                raise StoreError(f"state document {doc!r}: the log jumps from version {version} to {entry.version} "
                                 f"(no valid checkpoint covers the gap)")
            try:
                value, _ = apply(value, entry.ops)
            except PatchError as exc:
                raise StoreError(f"state document {doc!r}: version {entry.version} does not replay: {exc}") from exc
            version = entry.version
        kept = self.entries(doc, after=max(0, version - history)) if version - history < base else entries
        return Recovered(value, version, kept[-history:] if history else [], base)

    def entries(self, doc: str, after: int, upto: int | None = None) -> list[Entry]:
        """Log entries of ``doc`` with ``after < version <= upto``, checked against their checksums."""
        rows = self.db.execute(
            "SELECT version, ops, touched, author, at, checksum FROM log WHERE doc = ? AND version > ? "
            "AND version <= ? ORDER BY version", (doc, after, upto if upto is not None else 2**62))
        found = []
        for version, ops, touched, author, at, checksum in rows:
            if digest(ops) != checksum:
                raise StoreError(f"state document {doc!r}: log entry {version} fails its checksum")
            found.append(Entry(doc, version, orjson.loads(ops), [tuple(p) for p in orjson.loads(touched)], author, at,
                               len(ops)))
        return found

    def value_at(self, doc: str, version: int) -> Any:
        """The value of ``doc`` at ``version`` (a kept snapshot at or before it, plus the log)."""
        row = self.db.execute("SELECT version, value, checksum FROM snapshots WHERE doc = ? AND version <= ? "
                              "ORDER BY version DESC LIMIT 1", (doc, version)).fetchone()
        base, value = 0, {}
        if row is not None and digest(row[1]) == row[2]:
            base, value = row[0], orjson.loads(row[1])
        entries = self.entries(doc, base, version)
        if (entries[0].version if entries else base + 1) != base + 1 or (entries[-1].version if entries else base) != version:
            raise StoreError(f"state document {doc!r}: version {version} is no longer kept")
        for entry in entries:
            value, _ = apply(value, entry.ops)
        return value
