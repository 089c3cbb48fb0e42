"""The built-in ``fs`` plugin: watch files (watchfiles' Rust engine) with aggregated,
compressed ``fs.changed`` events, and read under the allowed roots."""

from __future__ import annotations

import asyncio
import fnmatch
import itertools
import os
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from bridge import INVALID_PARAMS, BridgeError, Context, Plugin, __version__

from .aggregate import Aggregator, Kind
from .roots import AllowedRoots, PathNotAllowed

#: Application error codes of this plugin.
PATH_NOT_ALLOWED = 4301
TOO_MANY_WATCHES = 4302
NO_SUCH_WATCH = 4303
TOO_LARGE = 4304


class FsSettings(BaseModel):
    roots: list[str] = Field(default_factory=list, description="allowed roots; empty: cwd and home")
    compress_over: int = Field(default=100, description="a batch larger than this is summarised per directory")
    max_pending: int = Field(default=10_000, description="changed paths held per watch before the oldest drop")
    max_watches_per_caller: int = 16
    max_read_bytes: int = 16 * 1024 * 1024


plugin = Plugin("fs", __version__, description="File watching and reading under allowed roots.",
                settings=FsSettings)
_watches: dict[str, _Watch] = {}
_ids = itertools.count(1)


class _Watch:
    __slots__ = ("id", "caller", "task", "stop")

    def __init__(self, id: str, caller: Any) -> None:
        self.id = id
        self.caller = caller
        self.task: asyncio.Task[None] | None = None
        self.stop = threading.Event()  # read by watchfiles' Rust loop in a worker thread


_allowed: list[AllowedRoots] = []


@plugin.on_startup
def _check_roots() -> None:
    """Settle the allowed roots once: a root that does not exist fails the plugin at start-up."""
    _allowed[:] = [_make_roots()]


def _make_roots() -> AllowedRoots:
    settings = plugin.settings or FsSettings()
    return AllowedRoots([Path(r) for r in settings.roots]) if settings.roots else AllowedRoots.default()


def _roots() -> AllowedRoots:
    if not _allowed:
        _allowed.append(_make_roots())
    return _allowed[0]


def _resolve(path: str) -> Path:
    try:
        return _roots().resolve(path)
    except PathNotAllowed as exc:
        raise BridgeError(PATH_NOT_ALLOWED, str(exc), {"path": path, "reason": getattr(exc, "reason", None)}) from None


@plugin.method("watch")
async def watch(paths: list[str], ctx: Context, recursive: bool = True, include: list[str] | None = None,
                exclude: list[str] | None = None, debounce_ms: int = Field(50, ge=1, le=10_000)) -> str:
    """Watch ``paths``; changes arrive as ``fs.changed`` notifications with the returned id."""
    if not paths:
        raise BridgeError(INVALID_PARAMS, "paths must not be empty")
    settings = plugin.settings or FsSettings()
    real = [_resolve(p) for p in paths]
    caller = ctx.participant
    if sum(1 for w in _watches.values() if w.caller == caller) >= settings.max_watches_per_caller:
        raise BridgeError(TOO_MANY_WATCHES, f"at most {settings.max_watches_per_caller} watches per caller",
                          {"limit": settings.max_watches_per_caller})
    # The OS watches are in place before this call returns: no change made after it is missed.
    # (watchfiles' own awatch() sets them up only once iterated.)
    from watchfiles._rust_notify import RustNotify

    notifier = RustNotify([str(p) for p in real], False, False, 300, recursive, False)
    w = _Watch(f"w{next(_ids)}", caller)
    _watches[w.id] = w
    aggregator = Aggregator(max_batch_compress=settings.compress_over, max_pending=settings.max_pending)
    w.task = asyncio.get_running_loop().create_task(
        _run(w, notifier, include or [], exclude or [], debounce_ms, aggregator, ctx))
    return w.id


@plugin.method("unwatch")
async def unwatch(subscription: str) -> bool:
    """Stop the watch ``subscription``."""
    w = _watches.pop(subscription, None)
    if w is None:
        raise BridgeError(NO_SUCH_WATCH, f"no watch {subscription!r}", {"subscription": subscription})
    w.stop.set()
    if w.task is not None:
        await asyncio.wait({w.task}, timeout=5)
    return True


async def _run(w: _Watch, notifier: Any, include: list[str], exclude: list[str],
               debounce_ms: int, aggregator: Aggregator, ctx: Context) -> None:
    from anyio import to_thread

    def wanted(path: str) -> bool:
        name = os.path.basename(path)
        if include and not any(fnmatch.fnmatch(name, p) for p in include):
            return False
        return not any(fnmatch.fnmatch(name, p) for p in exclude)

    try:
        with notifier:
            while not w.stop.is_set():
                raw = await to_thread.run_sync(notifier.watch, debounce_ms, 10, 1000, w.stop, abandon_on_cancel=True)
                if raw == "stop":
                    break
                if not isinstance(raw, set):  # "timeout" or "signal": look at the stop flag again
                    continue
                for kind, path in settle(raw):
                    if wanted(path):
                        aggregator.add(kind, path)
                batch = aggregator.flush()
                if batch is not None:
                    ctx.notify("fs.changed", {"subscription": w.id, **batch.to_dict()})
    finally:
        _watches.pop(w.id, None)


_KINDS: dict[int, Kind] = {1: "created", 2: "modified", 3: "deleted"}  # watchfiles.Change values


def settle(raw: set[tuple[int, str]]) -> list[tuple[Kind, str]]:
    """watchfiles' raw changes in a stable order. A raw batch is a set, so when one path was both
    added and deleted inside it the order is lost: the disk says how it ended."""
    by_path: dict[str, set[int]] = {}
    for change, path in raw:
        by_path.setdefault(path, set()).add(change)
    events: list[tuple[Kind, str]] = []
    for path in sorted(by_path):
        changes = by_path[path]
        if {1, 3} <= changes:  # added and deleted: which came last?
            events.append(("created" if os.path.lexists(path) else "deleted", path))
        else:
            events.extend((_KINDS[c], path) for c in sorted(changes))  # added, modified, deleted
    return events


@plugin.on_shutdown
async def _stop_all() -> None:
    for w in list(_watches.values()):
        w.stop.set()
    tasks = [w.task for w in _watches.values() if w.task is not None]
    if tasks:
        await asyncio.wait(tasks, timeout=5)


@plugin.method("stat", idempotent=True)
async def stat(path: str) -> dict[str, Any]:
    """Size, times and kind of ``path``."""
    real = _resolve(path)
    st = real.stat()
    return {"path": str(real), "size": st.st_size, "mtime": st.st_mtime, "isDir": real.is_dir(),
            "isFile": real.is_file(), "mode": st.st_mode}


@plugin.method("list", idempotent=True)
async def list_dir(path: str) -> list[dict[str, Any]]:
    """The entries of the directory ``path``."""
    real = _resolve(path)
    if not real.is_dir():
        raise BridgeError(PATH_NOT_ALLOWED, f"{path!r} is not a directory", {"path": path, "reason": "not a directory"})
    out = []
    for entry in sorted(os.scandir(real), key=lambda e: e.name):
        try:
            out.append({"name": entry.name, "isDir": entry.is_dir(), "size": entry.stat().st_size})
        except OSError:
            continue
    return out


@plugin.method("read_text", idempotent=True)
def read_text(path: str, encoding: str = "utf-8") -> str:
    """The text of ``path`` (up to the max_read_bytes setting; use fs.read_lines for more)."""
    real = _resolve(path)
    limit = (plugin.settings or FsSettings()).max_read_bytes
    if real.stat().st_size > limit:
        raise BridgeError(TOO_LARGE, f"{path!r} is larger than {limit} bytes; stream it with fs.read_lines",
                          {"limit": limit})
    return real.read_text(encoding=encoding, errors="replace")


@plugin.method("read_lines", idempotent=True)
def read_lines(path: str, encoding: str = "utf-8"):  # type: ignore[no-untyped-def]
    """Stream the lines of ``path`` (any size), as ``$/stream`` chunks."""
    real = _resolve(path)
    with open(real, encoding=encoding, errors="replace") as file:
        for line in file:
            yield line.rstrip("\n")
