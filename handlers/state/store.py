"""The durable part of ``state``: an append-only patch log and checksummed snapshots in SQLite.

One database file (WAL mode) per app data directory, shared by the plugins that keep data
(``collab`` adds its tables through ``migrate``). Used from one thread at a time: the
engine runs every call on its own single worker thread. After every commit the marker file
beside the database (``marker.py``) records the newest patch (and how many other writes the
``meta`` row counts), so opening a database that lost acknowledged writes is refused (HistoryLost).
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path as FsPath
from typing import Any

import orjson

from .marker import Mark, Marker, MarkerError
from .patches import PatchError, apply

log = logging.getLogger("bridge.state")

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
#: The WAL is folded into the database once it holds this many pages (SQLite's default: 1000).
#: A commit that grows the WAL file pays in its fsync for a journal commit of the file's new
#: size: ~180 against ~95 us a lone patch here, and the file starts empty at every start. At 300
#: pages (~1.2 MiB) it stops growing after ~230 lone patches instead of ~770: the first 1,000
#: patches one at a time after a start are 24-26% faster (bench/state.mjs). Later patches
#: measured the same within the runs' spread; at 100 pages they cost 5-7% more (folded more often).
WAL_PAGES = 300
#: Store bookkeeping outside any component's schema: one row, its id and the commits that
#: appended no patch (those that do are checked by their newest patch instead: see Mark).
META = "CREATE TABLE IF NOT EXISTS meta (id TEXT NOT NULL, writes INTEGER NOT NULL)"
#: What a user can do about a database that cannot be trusted (appended to the refusal).
REMEDY = ("restore the database from a backup (then start once with accept_loss too, as it is older than the "
          "marker), or move it aside with its -wal and -ack files to start empty; setting memory_if_unavailable "
          "runs in memory without it")


class StoreError(RuntimeError):
    """The database cannot be opened, migrated or trusted (a corrupt checkpoint or log)."""


class HistoryLost(StoreError):
    """The database holds less than its marker says was acknowledged (or is another database)."""

    def __init__(self, path: FsPath | None, problem: str, expected: Mark | None, found: Mark | None,
                 found_version: int = 0) -> None:
        super().__init__(
            f"state database {path}: {problem}. To open it as it is and accept the loss, start once with the "
            f"state setting accept_loss (BRIDGE_STATE_ACCEPT_LOSS=1, or accept_loss = true in [plugins.state]); "
            f"or {REMEDY}")
        self.problem, self.expected, self.found = problem, expected, found
        self.found_version = found_version  # of the marker's newest document, in the database


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


#: Checksums that cover a row's document and version too start with this; older ones (the
#: value alone, from releases before it) are still accepted, and replaced as snapshots are.
V2 = "2:"


def row_digest(doc: str, version: int, *parts: bytes) -> str:
    h = hashlib.blake2b(f"{len(doc)}:{doc}:{version}:".encode(), digest_size=16)
    for part in parts:
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return V2 + h.hexdigest()


def holds(checksum: str, doc: str, version: int, *parts: bytes) -> bool:
    """Whether a row's ``checksum`` matches its contents (``parts``; a legacy one: the first)."""
    if checksum.startswith(V2):
        return row_digest(doc, version, *parts) == checksum
    return digest(parts[0]) == checksum


def dumps(value: Any) -> bytes:
    """A document as stored in a snapshot (its checksum is over these bytes)."""
    return orjson.dumps(value)


class Store:
    """The SQLite file; ``None`` path: an in-memory database (nothing survives the process).

    Opening compares the database with its marker and raises HistoryLost if it holds less than
    was acknowledged; with ``accept_loss`` it opens anyway, keeps the error in ``loss`` (for the
    caller to log and audit) and resets the marker to what the database holds. The store holds
    the file alone until ``close``: another one waits up to ``wait`` seconds, then StoreError.
    """

    def __init__(self, path: FsPath | None, *, synchronous: str = "full", accept_loss: bool = False,
                 wait: float = 5.0) -> None:
        self.path = path
        self.marker = Marker(marker_path(path)) if path is not None else None
        self.loss: HistoryLost | None = None
        try:
            self._open(path, synchronous, accept_loss, wait)
            self.migrate("state", MIGRATIONS)
        except BaseException:  # what opening got to is let go at once (the file is held alone)
            self.close()
            raise

    def _open(self, path: FsPath | None, synchronous: str, accept_loss: bool, wait: float) -> None:
        """Connect, check the database against its marker, and start a new one's bookkeeping."""
        try:
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(path) if path else ":memory:", check_same_thread=False,
                                      isolation_level=None)
            self.db.execute(f"PRAGMA busy_timeout={int(wait * 1000)}")  # a host that is stopping may hold it a moment
            # This host alone: its documents live in its memory, so a second host on the file would
            # fork their histories. Held from the first read to close, the lock refuses that host,
            # and spares every transaction its locks on the shared-memory index (~4 us a commit).
            self.db.execute("PRAGMA locking_mode=EXCLUSIVE")
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}")
            self.db.execute(f"PRAGMA wal_autocheckpoint={WAL_PAGES}")
            check = self.db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise StoreError(f"state database {path} is corrupt: {check}")
            expected, found = self._compare(accept_loss)
            if found is None:
                found = Mark(uuid.uuid4().hex)
                self.db.execute("BEGIN IMMEDIATE")
                self.db.execute("CREATE TABLE IF NOT EXISTS schema (component TEXT PRIMARY KEY, "
                                "version INTEGER NOT NULL)")
                self.db.execute(META)
                self.db.execute("DELETE FROM meta")
                self.db.execute("INSERT INTO meta VALUES (?, ?)", (found.id, found.writes))
                self.db.execute("COMMIT")
            if expected is not None and self.loss is None and expected.writes == found.writes:
                found = expected  # the newest patch is as the marker says (it was checked)
            self._mark = found
            if self.marker is not None and expected != found:  # new, lagging, or a loss accepted
                if expected is None and self.loss is None and self._mark.writes:
                    log.warning("state: the marker %s was missing; recreated (whether this database lost "
                                "acknowledged writes before now cannot be checked)", self.marker.path)
                self.marker.reset(found)
        except (sqlite3.Error, OSError) as exc:
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise StoreError(f"the state database {path} is in use by another process (another host of this "
                                 "app?); one host at a time serves a state database") from exc
            raise StoreError(f"cannot open the state database {path}: {exc}") from exc

    def close(self) -> None:
        """Let the database go (its lock with it); also what opening got to, when it failed."""
        db = getattr(self, "db", None)
        if db is not None:
            db.close()
        if self.marker is not None:
            self.marker.close()

    # ---- the marker ---------------------------------------------------------

    def _compare(self, accept_loss: bool) -> tuple[Mark | None, Mark | None]:
        """The marker's mark and the database's; raises HistoryLost (unless ``accept_loss``) if
        the database holds less than the marker says was acknowledged."""
        found = self._meta()
        if self.marker is None:
            return None, found
        try:
            expected = self.marker.read()
        except MarkerError as exc:
            expected, problem = None, f"{exc}, so whether acknowledged patches are missing cannot be checked"
        else:
            problem = self._missing(expected, found)
        if problem is None:
            return expected, found
        top = self._top(expected.doc) if found is not None and expected is not None and expected.doc else 0
        error = HistoryLost(self.path, problem, expected, found, top)
        if not accept_loss:
            raise error
        self.loss = error
        return expected, found

    def _missing(self, expected: Mark | None, found: Mark | None) -> str | None:
        """What the database lacks of what the marker says was acknowledged (None: nothing)."""
        if expected is None:
            return None  # a new database, one from before markers, or a marker deleted: nothing to compare
        marker = self.marker.path if self.marker is not None else None
        said = (f"the marker {marker} says version {expected.version} of {expected.doc!r} had been acknowledged"
                if expected.doc is not None else f"the marker {marker} says {expected.writes} write(s) had been made")
        if found is None:
            return f"{said}, but the database holds nothing (it is empty, or was replaced by a new file)"
        if found.id != expected.id:
            return f"{said}, but the database is not the one it was written for (it was replaced)"
        if found.writes > expected.writes:
            return None  # the marker lags (its write was lost with the machine): a delete may have followed
        top = self._top(expected.doc) if expected.doc is not None else 0
        if found.writes == expected.writes and top >= expected.version:
            return None
        lost = []
        if expected.doc is not None and top < expected.version:
            lost.append(f"the database has that document only up to version {top}: versions {top + 1}-"
                        f"{expected.version} and any later patch of another document are missing")
        if found.writes < expected.writes:
            lost.append(f"it holds {found.writes} of the {expected.writes} other writes (deletes, clean-ups, "
                        f"collab changes) made")
        return (f"{said}, but {'; '.join(lost)} (as when the -wal file beside the database is deleted, truncated "
                f"or damaged after the host was killed)")

    def _meta(self) -> Mark | None:
        if self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone() is None:
            return None
        row = self.db.execute("SELECT id, writes FROM meta").fetchone()
        return Mark(*row) if row else None

    def _top(self, doc: str) -> int:
        """The newest version of ``doc`` the database has a row for (0: none)."""
        try:
            row = self.db.execute("SELECT max(v) FROM (SELECT max(version) AS v FROM log WHERE doc = ? UNION ALL "
                                  "SELECT max(version) FROM snapshots WHERE doc = ?)", (doc, doc)).fetchone()
        except sqlite3.OperationalError:  # no such table: nothing was ever written
            return 0
        return row[0] or 0

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
    def transaction(self, newest: tuple[str, int] | None = None, forget: str | None = None
                    ) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed when the block ends, rolled back if it raises; then
        the marker is told. One that appends patches names the ``newest``; any other counts
        itself in ``meta`` (``forget``: a document deleted, no longer the newest patch's).
        """
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
            m = self._mark
            if newest is not None:
                mark = Mark(m.id, m.writes, *newest)
            else:
                mark = Mark(m.id, m.writes + 1, *((None, 0) if forget is not None and forget == m.doc
                                                   else (m.doc, m.version)))
                self.db.execute("UPDATE meta SET writes = ?", (mark.writes,))
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        self._committed(mark)

    def _committed(self, mark: Mark) -> None:
        """A commit is durable: tell the marker."""
        self._mark = mark
        if self.marker is not None:
            try:
                self.marker.write(mark)
            except OSError as exc:  # the commit stands; only the check at the next start is weaker
                log.warning("state: updating the marker %s failed: %s", self.marker.path, exc)

    def append(self, entries: Iterable[Entry], snapshots: Iterable[tuple[str, int, bytes]] = ()) -> None:
        """Write patches (and snapshots) in one transaction: all of them are durable, or none."""
        rows = []
        for e in entries:
            ops, touched = orjson.dumps(e.ops), orjson.dumps(e.touched)
            rows.append((e.doc, e.version, ops, touched, e.author, e.at, row_digest(e.doc, e.version, ops, touched)))
        snaps = [(doc, version, value, time.time(), row_digest(doc, version, value))
                 for doc, version, value in snapshots]
        if len(rows) == 1 and not snaps and not self.db.in_transaction:  # one statement: its own transaction
            self.db.execute("INSERT INTO log VALUES (?, ?, ?, ?, ?, ?, ?)", rows[0])
            self._committed(Mark(self._mark.id, self._mark.writes, rows[0][0], rows[0][1]))
            return
        with self.transaction((rows[-1][0], rows[-1][1]) if rows else None) as db:
            if rows:
                db.executemany("INSERT INTO log VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            if snaps:
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
        with self.transaction(forget=doc) as db:
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
        applies: the document cannot be trusted, and nothing is silently dropped. Newer snapshots
        that fail their checksum are dropped once the document is rebuilt without them, with a
        warning.
        """
        base, value, damaged = 0, {}, []
        snapshots = self.db.execute(
            "SELECT version, value, checksum FROM snapshots WHERE doc = ? ORDER BY version DESC", (doc,))
        try:
            for version, blob, checksum in snapshots:
                if holds(checksum, doc, version, blob):
                    base, value = version, orjson.loads(blob)
                    break
                damaged.append(version)
        finally:
            snapshots.close()
        bad = f"; its snapshot at version {damaged[-1]} fails its checksum" if damaged else ""
        entries = self.entries(doc, after=base)
        version = base
        for entry in entries:
            if entry.version != version + 1:
                raise self._untrusted(doc, f"the log jumps from version {version} to {entry.version}{bad}: "
                                           f"no valid snapshot covers versions {version + 1}-{entry.version - 1}")
            try:
                value, _ = apply(value, entry.ops)
            except PatchError as exc:
                raise self._untrusted(doc, f"version {entry.version} does not replay: {exc}") from exc
            version = entry.version
        if damaged:
            if not entries and base == 0:  # nothing at all to rebuild it from
                raise self._untrusted(doc, f"its only snapshot (version {damaged[-1]}) fails its checksum "
                                           f"and the log holds nothing to rebuild it from")
            log.warning("state database %s: document %r: the snapshot(s) at version(s) %s fail their checksum; "
                        "rebuilt from %s and the log up to version %d (nothing lost); dropping them",
                        self.path, doc, ", ".join(map(str, damaged)),
                        f"the snapshot at version {base}" if base else "the start", version)
            try:
                with self.transaction() as db:
                    db.executemany("DELETE FROM snapshots WHERE doc = ? AND version = ?", [(doc, v) for v in damaged])
            except sqlite3.Error as exc:  # they are skipped again next time
                log.warning("state: dropping the damaged snapshot(s) of %r failed: %s", doc, exc)
        kept = self.entries(doc, after=max(0, version - history)) if version - history < base else entries
        return Recovered(value, version, kept[-history:] if history else [], base)

    def _untrusted(self, doc: str, reason: str) -> StoreError:
        return StoreError(f"state database {self.path}: document {doc!r} cannot be rebuilt: {reason}; {REMEDY}")

    def entries(self, doc: str, after: int, upto: int | None = None) -> list[Entry]:
        """Log entries of ``doc`` with ``after < version <= upto``, checked against their checksums."""
        rows = self.db.execute(
            "SELECT version, ops, touched, author, at, checksum FROM log WHERE doc = ? AND version > ? "
            "AND version <= ? ORDER BY version", (doc, after, upto if upto is not None else 2**62))
        found = []
        try:
            for version, ops, touched, author, at, checksum in rows:
                if not holds(checksum, doc, version, ops, touched):
                    raise self._untrusted(doc, f"log entry {version} fails its checksum")
                found.append(Entry(doc, version, orjson.loads(ops), [tuple(p) for p in orjson.loads(touched)], author,
                                   at, len(ops)))
        finally:  # a statement left open (the error's traceback holds this frame) would keep close() from
            rows.close()  # letting the database go
        return found

    def value_at(self, doc: str, version: int) -> Any:
        """The value of ``doc`` at ``version`` (a kept snapshot at or before it, plus the log)."""
        row = self.db.execute("SELECT version, value, checksum FROM snapshots WHERE doc = ? AND version <= ? "
                              "ORDER BY version DESC LIMIT 1", (doc, version)).fetchone()
        base, value = 0, {}
        if row is not None and holds(row[2], doc, row[0], row[1]):
            base, value = row[0], orjson.loads(row[1])
        entries = self.entries(doc, base, version)
        if (entries[0].version if entries else base + 1) != base + 1 or (entries[-1].version if entries else base) != version:
            raise StoreError(f"state document {doc!r}: version {version} is no longer kept")
        for entry in entries:
            value, _ = apply(value, entry.ops)
        return value


def marker_path(path: FsPath) -> FsPath:
    """Where the marker of the database at ``path`` lives: beside it, ``<name>-ack``."""
    return path.with_name(path.name + "-ack")
