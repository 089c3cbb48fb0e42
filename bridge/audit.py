"""The audit log: one JSON line per sensitive operation, append-only, rotated by size.

``app.audit.record("services.refused", participant="window:2", reason="...")`` writes
``{"ts", "event", "participant", ...fields}``. Every app has one; it does nothing until the
host opens it at start from the settings (``audit``, ``audit_dir``, ``audit_max_bytes``,
``audit_backups``, ``audit_max_entry_bytes``), or a test opens it with ``open``. ``record``
never raises and is safe from any thread: a log that cannot be written costs one warning on
stderr, never a call.

Rotation is the standard library's ``RotatingFileHandler`` (``audit.jsonl``, then
``audit.jsonl.1`` ... ``.N``, oldest last) rather than our own: it is tested code for exactly
this, and rotates before a line that would not fit (a line is never split across files).
Two hosts of one app writing at once still append whole lines (``O_APPEND``); their rotations
may interleave the order across files.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson

if TYPE_CHECKING:
    from pathlib import Path
    from logging.handlers import RotatingFileHandler

    from .settings import Settings

log = logging.getLogger("bridge.audit")

FILE_NAME = "audit.jsonl"
#: The most entries ``recent`` returns (``system.audit``'s ``limit`` bound).
MAX_RECENT = 1000
#: A field whose JSON is longer than this is replaced by ``{"truncated": bytes}`` when the
#: entry is over its size limit.
_FIELD_KEPT = 1024


class AuditLog:
    """The app's audit log: ``record`` an event, read the ``recent`` ones."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handler: RotatingFileHandler | None = None
        self.path: Path | None = None
        self.max_entry_bytes = 64 * 1024
        self._warned = False
        self._pending: Callable[[], None] | None = None

    @property
    def enabled(self) -> bool:
        return self._handler is not None or self._pending is not None

    def open_later(self, directory: Callable[[], str | os.PathLike[str]], **options: int) -> None:
        """``open`` on the first ``record`` or ``recent``, in ``directory()``: a host that
        records nothing never imports the rotating handler nor resolves the data directory
        (start-up). A directory that cannot be opened then is one warning, never an error."""

        def opening() -> None:
            where: Any = "the app's data directory"
            try:
                where = directory()
                self.open(where, **options)
            except (OSError, ValueError) as exc:
                log.warning("audit log in %s cannot be opened (%s: %s); serving without it", where,
                            type(exc).__name__, exc)

        self.close()
        self._pending = opening

    def _open_pending(self) -> None:
        with self._lock:
            opening, self._pending = self._pending, None
        if opening is not None:
            opening()

    def open(self, directory: str | os.PathLike[str], *, max_bytes: int = 10 * 1024 * 1024, backups: int = 3,
             max_entry_bytes: int = 64 * 1024) -> None:
        """Append to ``directory/audit.jsonl`` (created, owner-only); over ``max_bytes`` it is
        rotated and ``backups`` older files are kept. An entry is at most ``max_entry_bytes``."""
        if max_bytes < 1 or backups < 0 or max_entry_bytes < 256:
            raise ValueError("audit: max_bytes must be at least 1, backups at least 0, max_entry_bytes at least 256")
        from pathlib import Path  # on first use: not imported at start-up

        path = Path(directory).expanduser() / FILE_NAME
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        handler = _handler_class()(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8", delay=True)
        handler.setFormatter(_LineFormatter())
        handler.audit = self
        with self._lock:
            old, self._handler = self._handler, handler
            self.path = path
            self.max_entry_bytes = max_entry_bytes
            self._warned = False
        if old is not None:
            old.close()

    def close(self) -> None:
        """Stop writing (``record`` does nothing again)."""
        with self._lock:
            handler, self._handler = self._handler, None
            self._pending = None
        if handler is not None:
            handler.close()

    def record(self, event: str, *, participant: str | None = None, **fields: Any) -> None:
        """Append ``{"ts", "event", "participant", ...fields}``; never raises."""
        if self._handler is None:
            if self._pending is None:
                return
            self._open_pending()
        try:
            line = self._encode(event, participant, fields)
            entry = logging.makeLogRecord({"msg": line, "levelno": logging.INFO})
            with self._lock:
                if self._handler is not None:
                    self._handler.handle(entry)
        except Exception as exc:  # the audit log never fails what it records
            self._warn(exc)

    def recent(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest ``limit`` entries (at most ``MAX_RECENT``), oldest first, read from the
        file and its rotated predecessors; unreadable lines are skipped."""
        limit = max(0, min(limit, MAX_RECENT))
        if self._pending is not None:
            self._open_pending()
        files = []  # opened under the lock, a consistent set (a rotation renames, the handles stay)
        with self._lock:
            handler, path = self._handler, self.path
            if handler is None or path is None or limit == 0:
                return []
            for n in range(handler.backupCount + 1):
                try:
                    file = open(path if n == 0 else path.with_name(f"{path.name}.{n}"), "rb")
                except OSError:
                    break
                files.append((file, file.seek(0, os.SEEK_END)))
        found: list[bytes] = []
        for file, size in files:  # read outside the lock: record() never waits for a reader
            with file:
                if len(found) < limit:
                    found[:0] = _tail(file, size, limit - len(found))
        entries = []
        for line in found:
            try:
                entries.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue
        return entries

    def _encode(self, event: str, participant: str | None, fields: dict[str, Any]) -> str:
        t = time.time()
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z",
            "event": event, "participant": participant,
        }
        for key, value in fields.items():
            entry.setdefault(key, value)
        data = _dumps(entry)
        if len(data) > self.max_entry_bytes:  # a caller's oversized input must not fill the log
            for key in fields:
                if key in ("ts", "event", "participant"):
                    continue
                size = len(_dumps(entry[key]))
                if size > _FIELD_KEPT:
                    entry[key] = {"truncated": size}
            data = _dumps(entry)
            if len(data) > self.max_entry_bytes:  # still too long (many fields): keep the head only
                data = _dumps({k: entry[k] for k in ("ts", "event", "participant")} | {"truncated": len(data)})
        return data.decode()

    def _warn(self, exc: BaseException) -> None:
        if not self._warned:
            self._warned = True
            log.warning("audit log %s cannot be written (%s: %s); carrying on without it", self.path,
                        type(exc).__name__, exc)


def configure(audit: AuditLog, settings: Settings, app_name: str) -> None:
    """Open ``audit`` as the host's settings say, on its first use (nothing when
    ``settings.audit`` is off). A directory that cannot be created is one warning: the host
    serves without its audit log."""
    if not settings.audit:
        audit.close()
        return
    audit.open_later(lambda: settings.audit_dir or default_directory(app_name), max_bytes=settings.audit_max_bytes,
                     backups=settings.audit_backups, max_entry_bytes=settings.audit_max_entry_bytes)


def default_directory(app_name: str) -> Path:
    """The app's per-user data directory (where the ``state`` plugin keeps its database too)."""
    from platformdirs import user_data_path

    return user_data_path(app_name, appauthor=False)


class _LineFormatter(logging.Formatter):
    """The entry is JSON already (encoded outside the handler's lock)."""

    def format(self, record: logging.LogRecord) -> str:
        return str(record.msg)


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=repr, option=orjson.OPT_NON_STR_KEYS)


def _tail(file: BinaryIO, size: int, want: int) -> list[bytes]:
    """The last ``want`` non-empty lines of the first ``size`` bytes of ``file``, read backwards."""
    pos = size
    chunks: list[bytes] = []
    newlines = 0
    while pos > 0 and newlines <= want:
        step = min(1 << 16, pos)
        pos -= step
        file.seek(pos)
        chunks.append(file.read(step))
        newlines += chunks[-1].count(b"\n")
    lines = b"".join(reversed(chunks)).split(b"\n")
    if pos > 0:
        lines = lines[1:]  # the first is a part of a line
    return [line for line in lines if line.strip()][-want:]


_HANDLER: list[type[RotatingFileHandler]] = []


def _handler_class() -> type[RotatingFileHandler]:
    """Defined on first use: ``logging.handlers`` is not imported at start-up."""
    if _HANDLER:
        return _HANDLER[0]
    from logging.handlers import RotatingFileHandler

    class Handler(RotatingFileHandler):
        audit: AuditLog

        def _open(self) -> Any:
            """Owner-only, append-only: the file is created 0600 whatever the umask."""
            fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            return open(fd, "a", encoding=self.encoding, errors=self.errors)

        def handleError(self, record: logging.LogRecord) -> None:
            import sys

            self.audit._warn(sys.exc_info()[1] or OSError("write failed"))

    _HANDLER.append(Handler)
    return Handler
