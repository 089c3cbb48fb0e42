"""The built-in ``fs`` plugin: watch files (watchfiles' Rust engine) with aggregated,
compressed ``fs.changed`` events, and read under the allowed roots."""

from __future__ import annotations

import codecs
import fnmatch
import io
import itertools
import logging
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from stat import S_ISDIR, S_ISLNK, S_ISREG
from typing import Any

import anyio
from anyio.abc import TaskGroup
from pydantic import BaseModel, Field

from bridge import INTERNAL_ERROR, INVALID_PARAMS, BridgeError, Context, Plugin, __version__

from .aggregate import Aggregator, Kind
from .read import BoundedFile, TooLarge, Unlike
from .roots import AllowedRoots, PathNotAllowed

#: Application error codes of this plugin.
PATH_NOT_ALLOWED = 4301
TOO_MANY_WATCHES = 4302
NO_SUCH_WATCH = 4303
TOO_LARGE = 4304
NO_ROOTS = 4305

log = logging.getLogger("bridge.fs")


class FsSettings(BaseModel):
    roots: list[str] = Field(default_factory=list, description="allowed roots; none: every call is refused")
    compress_over: int = Field(default=100, description="a batch larger than this is summarised per directory")
    max_pending: int = Field(default=10_000, description="changed paths held per watch before the oldest drop")
    max_watches_per_caller: int = 16
    max_read_bytes: int = Field(default=16 * 1024 * 1024, ge=1,
                                description="fs.read_text reads at most this; an fs.read_lines line at most this")
    stop_timeout: float = Field(default=5.0, ge=0, description="seconds a stopping watch gets to close its "
                                "OS watches (fs.unwatch, shutdown) before it is cancelled")


class _Watch:
    __slots__ = ("id", "owner", "stop", "done")

    def __init__(self, id: str, owner: str) -> None:
        self.id = id
        self.owner = owner  # the watcher's participant id: its events go to it, only it may stop the watch
        self.stop = threading.Event()  # read by watchfiles' Rust loop in a worker thread
        self.done = anyio.Event()


class Watches:
    """What the plugin holds while the host runs (``plugin.state``): the allowed roots (None: no
    roots, every call refused), the watches by id, and the task group their tasks run in."""

    def __init__(self, roots: AllowedRoots | None, settings: FsSettings, tasks: TaskGroup) -> None:
        self.roots = roots
        self.settings = settings
        self.tasks = tasks
        self.by_id: dict[str, _Watch] = {}
        self.ids = itertools.count(1)
        self.closing = False

    async def stop(self, watches: list[_Watch]) -> bool:
        """Flag ``watches`` to stop and wait (up to ``stop_timeout``) until their OS watches are
        closed; False if one did not stop in time."""
        for w in watches:
            w.stop.set()
        with anyio.move_on_after(self.settings.stop_timeout):
            for w in watches:
                await w.done.wait()
            return True
        return False

    async def close(self) -> None:
        """Stop accepting watches, then stop every one; what did not stop in time is cancelled
        with the task group."""
        self.closing = True
        watches = list(self.by_id.values())
        if not watches:
            return
        with anyio.CancelScope(shield=True):
            stopped = await self.stop(watches)
        if stopped:
            log.info("fs: stopped %d watch(es)", len(watches))
        else:
            log.warning("fs: a watch did not stop within %s s; cancelling it", self.settings.stop_timeout)


@asynccontextmanager
async def _lifespan(plugin: Plugin) -> AsyncIterator[Watches]:
    """Settle the allowed roots once (a root that does not exist fails the plugin at start-up; no
    roots at all leaves it serving refusals: there is no implicit root) and own the watch tasks."""
    settings = plugin.settings or FsSettings()
    roots = AllowedRoots([Path(r) for r in settings.roots]) if settings.roots else None
    if roots is None:
        log.warning("fs: no roots configured, so every fs call is refused; name them in [plugins.fs] roots")
    async with anyio.create_task_group() as tasks:
        state = Watches(roots, settings, tasks)
        try:
            yield state
        finally:
            await state.close()
            tasks.cancel_scope.cancel()


plugin = Plugin("fs", __version__, description="File watching and reading under allowed roots.",
                settings=FsSettings, lifespan=_lifespan)


def _state() -> Watches:
    state: Watches | None = plugin.state
    if state is None:
        raise BridgeError(INTERNAL_ERROR, "fs is not running", {"plugin": "fs"})
    return state


def _roots(state: Watches | None = None) -> AllowedRoots:
    roots = (state or _state()).roots
    if roots is None:
        raise BridgeError(NO_ROOTS, "fs has no allowed roots: the app names them in the fs setting 'roots'",
                          {"setting": "roots"})
    return roots


def _refused(exc: PathNotAllowed) -> BridgeError:
    return BridgeError(PATH_NOT_ALLOWED, str(exc), {"path": exc.path, "reason": exc.reason})


def _resolve(roots: AllowedRoots, path: str) -> Path:
    try:
        return roots.resolve(path)
    except PathNotAllowed as exc:
        raise _refused(exc) from None


@plugin.method("watch")
async def watch(paths: list[str], ctx: Context, recursive: bool = True, include: list[str] | None = None,
                exclude: list[str] | None = None, debounce_ms: int = Field(50, ge=1, le=10_000)) -> str:
    """Watch ``paths``; changes arrive as ``fs.changed`` notifications with the returned id."""
    if not paths:
        raise BridgeError(INVALID_PARAMS, "paths must not be empty")
    state = _state()
    if state.closing:
        raise BridgeError(INTERNAL_ERROR, "fs is stopping", {"plugin": "fs"})
    roots = _roots(state)
    settings = state.settings
    real = [_resolve(roots, p) for p in paths]
    owner = ctx.participant
    if sum(1 for w in state.by_id.values() if w.owner == owner) >= settings.max_watches_per_caller:
        raise BridgeError(TOO_MANY_WATCHES, f"at most {settings.max_watches_per_caller} watches per caller",
                          {"limit": settings.max_watches_per_caller})
    # The OS watches are in place before this call returns: no change made after it is missed.
    # (watchfiles' own awatch() sets them up only once iterated.)
    from watchfiles._rust_notify import RustNotify

    notifier = RustNotify([str(p) for p in real], False, False, 300, recursive, False)
    w = _Watch(f"w{next(state.ids)}", owner)
    state.by_id[w.id] = w
    aggregator = Aggregator(max_batch_compress=settings.compress_over, max_pending=settings.max_pending)
    state.tasks.start_soon(_run, state, w, notifier, roots, include or [], exclude or [], debounce_ms, aggregator,
                           ctx, name=f"fs.watch {w.id}")
    return w.id


@plugin.method("unwatch")
async def unwatch(subscription: str, ctx: Context) -> bool:
    """Stop the caller's watch ``subscription``."""
    state = _state()
    w = state.by_id.get(subscription)
    if w is None or w.owner != ctx.participant:  # another's watch is answered as no watch at all
        raise BridgeError(NO_SUCH_WATCH, f"no watch {subscription!r}", {"subscription": subscription})
    del state.by_id[subscription]
    await state.stop([w])
    return True


async def _run(state: Watches, w: _Watch, notifier: Any, roots: AllowedRoots, include: list[str],
               exclude: list[str], debounce_ms: int, aggregator: Aggregator, ctx: Context) -> None:
    """One watch's task. It must not raise: a failure in the plugin's task group would cancel the host."""
    from bridge.threads import run_sync

    def wanted(path: str) -> bool:
        name = os.path.basename(path)
        if include and not any(fnmatch.fnmatch(name, p) for p in include):
            return False
        return not any(fnmatch.fnmatch(name, p) for p in exclude)

    def changes() -> list[tuple[Kind, str]] | None:
        """The next changes (None once stopped), in a worker thread. A recursive watch follows
        symlinks (the notify engine does), so what changed behind one that leads out of the roots
        is left out here."""
        raw = notifier.watch(debounce_ms, 10, 1000, w.stop)
        if raw == "stop":
            return None
        if not isinstance(raw, set):  # "timeout" or "signal": look at the stop flag again
            return []
        inside: dict[str, bool] = {}
        out = []
        for kind, path in settle(raw):
            directory = os.path.dirname(path)
            if directory not in inside:
                inside[directory] = roots.named_inside(directory)
            if (inside[directory] or roots.named_inside(path)) and wanted(path):
                out.append((kind, path))
        return out

    try:
        with notifier:
            while not w.stop.is_set():
                found = await run_sync(changes, abandon_on_cancel=True)
                if found is None:
                    break
                for kind, path in found:
                    aggregator.add(kind, path)
                batch = aggregator.flush()
                if batch is not None:
                    ctx.notify("fs.changed", {"subscription": w.id, **batch.to_dict(), "$meta": {"to": [w.owner]}})
    except Exception:
        log.exception("fs: watch %s failed; it is stopped", w.id)
    finally:
        state.by_id.pop(w.id, None)
        w.done.set()


_KINDS: dict[int, Kind] = {1: "created", 2: "modified", 3: "deleted"}  # watchfiles.Change values


def settle(raw: set[tuple[int, str]]) -> list[tuple[Kind, str]]:
    """watchfiles' raw changes in a stable order. A raw batch is a set, so when one path was both
    added and deleted inside it the order is lost: the disk says how it ended. Gone: created,
    then deleted (the aggregator nets that to nothing, or to ``deleted`` if it had seen the path
    before); there: created."""
    by_path: dict[str, set[int]] = {}
    for change, path in raw:
        by_path.setdefault(path, set()).add(change)
    events: list[tuple[Kind, str]] = []
    for path in sorted(by_path):
        changes = by_path[path]
        if {1, 3} <= changes:  # added and deleted: which came last?
            events.extend([("created", path)] if os.path.lexists(path) else [("created", path), ("deleted", path)])
        else:
            events.extend((_KINDS[c], path) for c in sorted(changes))  # added, modified, deleted
    return events


@plugin.method("stat", idempotent=True)
def stat(path: str) -> dict[str, Any]:
    """Size, times and kind of ``path``."""
    try:
        with _roots().open(path) as found:
            st = found.stat
    except PathNotAllowed as exc:
        raise _refused(exc) from None
    return {"path": str(found.path), "size": st.st_size, "mtime": st.st_mtime, "isDir": S_ISDIR(st.st_mode),
            "isFile": S_ISREG(st.st_mode), "mode": st.st_mode}


@plugin.method("list", idempotent=True)
def list_dir(path: str) -> list[dict[str, Any]]:
    """The entries of the directory ``path``; a symlink is listed as one (``isLink``), not followed."""
    roots = _roots()
    try:
        with roots.open(path) as found:
            if not S_ISDIR(found.stat.st_mode):
                raise BridgeError(PATH_NOT_ALLOWED, f"{path!r} is not a directory",
                                  {"path": path, "reason": "not a directory"})
            entries = roots.listdir(found)
    except PathNotAllowed as exc:
        raise _refused(exc) from None
    return [{"name": name, "isDir": S_ISDIR(st.st_mode), "isLink": S_ISLNK(st.st_mode), "size": st.st_size}
            for name, st in entries]


def _open(path: str, encoding: str, limit: int | None) -> BoundedFile:
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise BridgeError(INVALID_PARAMS, f"unknown encoding {encoding!r}", {"encoding": encoding}) from None
    try:
        return BoundedFile(_roots().open_file(path), limit)
    except PathNotAllowed as exc:
        raise _refused(exc) from None
    except TooLarge:
        raise _too_large(path, limit) from None


def _too_large(path: str, limit: int | None) -> BridgeError:
    return BridgeError(TOO_LARGE, f"{path!r} is larger than {limit} bytes; stream it with fs.read_lines",
                       {"limit": limit})


def _unlike(path: str) -> BridgeError:
    return _refused(PathNotAllowed(path, "irregular", "it yields more than its size: not a regular file"))


@plugin.method("read_text", idempotent=True)
def read_text(path: str, encoding: str = "utf-8") -> str:
    """The text of ``path`` (up to the max_read_bytes setting; use fs.read_lines for more)."""
    limit = (plugin.settings or FsSettings()).max_read_bytes
    with _open(path, encoding, limit) as file:
        try:
            data = file.readall()
        except TooLarge:
            raise _too_large(path, limit) from None
        except Unlike:
            raise _unlike(path) from None
    return data.decode(encoding, errors="replace")


@plugin.method("read_lines", idempotent=True)
def read_lines(path: str, encoding: str = "utf-8"):  # type: ignore[no-untyped-def]
    """Stream the lines of ``path`` (any size; a line up to the max_read_bytes setting), as ``$/stream`` chunks."""
    limit = (plugin.settings or FsSettings()).max_read_bytes
    with io.TextIOWrapper(io.BufferedReader(_open(path, encoding, None)), encoding=encoding, errors="replace") as text:
        while True:
            try:
                line = text.readline(limit + 1)
            except Unlike:
                raise _unlike(path) from None
            if not line:
                return
            if len(line) > limit and not line.endswith("\n"):
                raise BridgeError(TOO_LARGE, f"{path!r} has a line longer than {limit} characters", {"limit": limit})
            yield line.rstrip("\n")
