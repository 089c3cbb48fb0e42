"""The acknowledged-writes marker: a small file beside the state database saying how far the
database had got, so one that lost its tail (a deleted, truncated or damaged WAL; a file
emptied or replaced) is refused at start-up instead of silently serving an older history.

The file has two fixed-size slots, each a checksummed line of JSON, written alternately in
place after every commit: a torn write spoils only the slot being written, and the other still
holds the previous mark. It is not fsynced per commit (the database is; the marker only has
to survive the process being killed, which the page cache does): after a power loss it may
lag behind the database, which weakens the check but never makes it refuse a good database.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import orjson

SLOT = 512  # bytes; within one disk sector, so a write is rarely torn at all


@dataclass(frozen=True, slots=True)
class Mark:
    """How far a database had got: its id, the newest patch, and how many other writes.

    A lost tail of the database always includes its last commit: if that appended patches,
    ``doc`` at ``version`` is missing; if it was anything else (a delete, a clean-up, a collab
    change), ``writes`` is smaller. So patches need not count themselves in the database.
    """

    id: str
    writes: int = 0  # commits that appended no patch
    doc: str | None = None  # the document and version of the newest patch (None after its delete)
    version: int = 0


class MarkerError(OSError):
    """The marker file exists but neither of its slots can be read."""


def _digest(body: bytes) -> str:
    return hashlib.blake2b(body, digest_size=16).hexdigest()


def encode(mark: Mark, seq: int = 0) -> bytes:
    """One slot: ``<checksum> <json>``, padded with spaces, ending in a newline (``seq`` orders slots)."""
    body = orjson.dumps({"seq": seq, "id": mark.id, "writes": mark.writes, "doc": mark.doc, "version": mark.version})
    if len(body) > SLOT - 40:  # a very long document name: keep the rest, drop the name
        body = orjson.dumps({"seq": seq, "id": mark.id, "writes": mark.writes, "doc": None, "version": 0})
    return b"%s %s\n" % (_digest(body).encode(), body.ljust(SLOT - 34))


def decode(slot: bytes) -> tuple[int, Mark] | None:
    """``(seq, mark)`` of a slot, or None if it is torn or damaged."""
    digest, _, body = slot.partition(b" ")
    body = body.rstrip()
    if len(slot) != SLOT or _digest(body) != digest.decode("ascii", "replace"):
        return None
    try:
        fields = orjson.loads(body)
        return fields.pop("seq"), Mark(**fields)
    except (orjson.JSONDecodeError, TypeError, KeyError, AttributeError):
        return None


class Marker:
    """The marker file of one database (``state.sqlite3-ack`` beside ``state.sqlite3``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._seq = 0

    def read(self) -> Mark | None:
        """The newest readable mark; None if there is no marker. MarkerError if it is unreadable."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        slots = [s for s in (decode(data[i:i + SLOT]) for i in (0, SLOT)) if s is not None]
        if not slots:
            raise MarkerError(f"the marker {self.path} is damaged ({len(data)} bytes, no readable slot)")
        self._seq, mark = max(slots, key=lambda s: s[0])
        return mark

    def reset(self, mark: Mark) -> None:
        """(Re)create the file holding ``mark`` in both slots: written aside, fsynced, renamed over."""
        self.close()
        temp = self.path.with_name(self.path.name + ".tmp")
        record = encode(mark, self._seq)
        with open(temp, "wb") as file:
            file.write(record + record)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, self.path)
        _fsync_dir(self.path.parent)

    def write(self, mark: Mark) -> None:
        """Record ``mark`` in place, in the slot the previous mark is not in (one small write)."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | getattr(os, "O_BINARY", 0))
        self._seq += 1
        record, offset = encode(mark, self._seq), (self._seq % 2) * SLOT
        if hasattr(os, "pwrite"):
            os.pwrite(self._fd, record, offset)
        else:  # Windows: only the store's thread writes, so seek + write is as good
            os.lseek(self._fd, offset, os.SEEK_SET)
            os.write(self._fd, record)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (POSIX; Windows cannot open a directory, nor needs to)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
