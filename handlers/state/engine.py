"""The live documents: patches applied in memory on the event loop, acknowledged once durable.

Patches are applied one at a time on the loop (so each is atomic and gets the next version),
then written by a group commit: every patch that arrived while the previous write was on the
disk goes in the next transaction, and its caller is answered (and subscribers told) only
once that transaction is committed. A lone small patch, with the store idle and its commits
quick, is committed on the loop itself: the two thread hops would cost it more than the wait.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from bridge import INVALID_PARAMS, BridgeError

from .patches import Path, PatchError, apply, clashes, parse, pointer, touched_paths
from .store import Entry, Store, dumps

if TYPE_CHECKING:
    from bridge.connection import Connection

log = logging.getLogger("bridge.state")
T = TypeVar("T")

#: Application error codes of the state plugin.
CONFLICT = 4501
PATCH_FAILED = 4502
TOO_LARGE = 4503
HISTORY_GONE = 4504
UNAVAILABLE = 4505
TOO_MANY_SUBSCRIPTIONS = 4506

#: Idempotency keys the embedded backend remembers (in memory: a restart forgets them).
KEYS_KEPT = 10_000
#: A lone patch is committed on the event loop (no hop to the store's thread and back) when
#: the store's recent commits took at most ``Limits.inline_commit_s`` (a moving average) and
#: its ops are at most INLINE_MAX_BYTES: the loop is then blocked for about one commit, here
#: ~0.15 ms with an fsync. A slower disk, a batch or a snapshot goes to the store's thread.
INLINE_MAX_BYTES = 64 * 1024

#: ``guard(participant, doc, action, paths)``: raise a BridgeError to refuse. action is "read" or "edit".
Guard = Callable[[str, str, str, list[Path]], None]
#: ``around(doc, participant, action)``: an async context manager entered before a state call on
#: ``doc`` (action "read", "patch" or "delete"), giving the participant the call acts as, and left
#: after it (collab on Redis reads the document's session there, before the synchronous guards,
#: and makes a patch as the participant qualified by its host).
Around = Callable[[str, str, str], AbstractAsyncContextManager[str]]
#: Called with a conflict's details before it is reported; what it returns joins the error's data.
ConflictHook = Callable[[dict[str, Any]], Awaitable[dict[str, Any] | None]]
#: A task group's ``start_soon``: where the group-commit writer runs (the owner's lifetime).
StartSoon = Callable[..., None]


@dataclass(slots=True)
class Limits:
    max_doc_bytes: int = 16 * 1024 * 1024
    max_patch_bytes: int = 1024 * 1024
    history: int = 1000
    snapshot_every: int = 1000
    max_subscriptions: int = 1024  # per connection
    #: A lone patch is committed on the event loop while commits average at most this long (0: never).
    inline_commit_s: float = 0.001


@dataclass(slots=True)
class Doc:
    """A document; one never written is the empty object at version 0."""

    value: Any = field(default_factory=dict)
    version: int = 0
    durable: int = 0  # the newest version on disk
    history: deque[Entry] = field(default_factory=deque)
    #: The value's size as JSON, or an upper bound of it: a patch without ``copy`` grows a
    #: document by at most its own size, so most patches need not serialise the document.
    size: int = 2

    @classmethod
    def recovered(cls, value: Any, version: int, history: list[Entry]) -> Doc:
        return cls(value, version, version, deque(history), len(dumps(value)))

    def advance(self, entry: Entry, value: Any, bound: int, history: int) -> None:
        """Become ``value`` at ``entry.version``, keeping at most ``history`` entries."""
        self.value, self.version = value, entry.version
        self.history.append(entry)
        while len(self.history) > history:
            self.history.popleft()
        self.size = bound

    def since(self, version: int) -> list[Entry] | None:
        """The entries after ``version``, or None when they are no longer all kept."""
        if version == self.version:
            return []
        oldest = self.history[0].version if self.history else self.version + 1
        if version < oldest - 1:
            return None
        return list(itertools.islice(self.history, version - oldest + 1, None))


@dataclass(slots=True)
class Change:
    """A patch checked against ``doc`` as it is now, ready to become its next version."""

    doc: Doc
    value: Any
    ops: list[dict[str, Any]]
    touched: list[Path]
    blob: bytes | None  # the new value as JSON, when it had to be measured
    bound: int  # the new value's size as JSON, or an upper bound of it
    size: int  # the patch's size as JSON


@dataclass(slots=True)
class Subscription:
    id: str
    doc: str
    participant: str
    connection: Connection


class Documents:
    """Named JSON documents with their versions, history, subscribers and durable store."""

    def __init__(self, store: Store, start_soon: StartSoon, limits: Limits | None = None,
                 executor: ThreadPoolExecutor | None = None) -> None:
        self.store = store
        self._start_soon = start_soon
        self.limits = limits or Limits()
        self.docs: dict[str, Doc] = {}
        self.guards: list[Guard] = []
        self.around: list[Around] = []
        self.conflict_hooks: list[ConflictHook] = []
        self.subscriptions: dict[str, Subscription] = {}
        self._ids = itertools.count(1)
        self._executor = executor or ThreadPoolExecutor(1, thread_name_prefix="bridge-state")
        self._pending: list[tuple[Entry, bytes | None, asyncio.Future[None]]] = []
        self._writing: asyncio.Future[None] | None = None  # resolved when the running writer has nothing left
        self._on_thread: set[Future[Any]] = set()  # calls given to the store's thread, until they end there
        self._commit_time = 0.0  # seconds a commit took, moving average
        self._broken: str | None = None
        self._reloading: asyncio.Event | None = None  # set while memory is being re-read from disk
        # idempotency keys used, oldest first: the version, or the first try's outcome while it runs
        self._keys: dict[tuple[str, str, str], int | asyncio.Future[int]] = {}

    # ---- life -------------------------------------------------------------

    @classmethod
    async def open(cls, path: Any, start_soon: StartSoon, limits: Limits | None = None, synchronous: str = "full",
                   accept_loss: bool = False) -> Documents:
        """Open the store (off the loop) and recover every document from it (``accept_loss``:
        see Store). The writer runs in the task group of ``start_soon``: close() before it ends."""
        executor = ThreadPoolExecutor(1, thread_name_prefix="bridge-state")  # the store's one thread, from here on
        store: Store | None = None
        try:
            store = await asyncio.get_running_loop().run_in_executor(
                executor, lambda: Store(path, synchronous=synchronous, accept_loss=accept_loss))
            docs = cls(store, start_soon, limits, executor)
            recovered = await docs.run(docs._recover_all)
        except BaseException:
            if store is not None:  # a database that cannot be trusted is let go at once (it is held alone)
                store.close()
            executor.shutdown(wait=False)
            raise
        log.info("state: %d document(s) recovered from %s", recovered, path or "memory")
        return docs

    def _recover_all(self) -> int:
        for name in self.store.docs():
            found = self.store.recover(name, self.limits.history)
            self.docs[name] = Doc.recovered(found.value, found.version, found.history)
        return len(self.docs)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the store's thread. Only one thread touches SQLite at a time: a
        patch is committed on the loop only when no call is queued or running there (one whose
        caller was cancelled counts until it has really ended)."""
        work = self._executor.submit(fn, *args)
        self._on_thread.add(work)
        work.add_done_callback(self._on_thread.discard)
        return await asyncio.wrap_future(work)

    async def close(self) -> None:
        """Wait until every pending patch is written, fold the WAL in, close the store."""
        await self._written()
        await self.run(self.store.checkpoint_wal)
        await self.run(self.store.close)
        self._executor.shutdown(wait=True)

    # ---- reads ------------------------------------------------------------

    def get(self, name: str, participant: str) -> Doc:
        self._guard(participant, name, "read", [()])
        return self.docs.get(name) or Doc()

    def names(self) -> list[str]:
        return sorted(n for n, d in self.docs.items() if d.version)

    async def _around_call(self, name: str, participant: str, action: str,
                           call: Callable[[str], Awaitable[T]]) -> T:
        """``call(participant)`` inside every ``around`` hook (the participant as they give it)."""
        async with AsyncExitStack() as stack:
            for hook in self.around:
                participant = await stack.enter_async_context(hook(name, participant, action))
            return await call(participant)

    async def refresh(self, name: str) -> None:
        """Bring ``name`` up to date before a read (a shared backend catches up; here memory is)."""
        if self.around:
            return await self._around_call(name, "", "read", lambda _: self._refresh(name))
        await self._refresh(name)

    async def _refresh(self, name: str) -> None:
        """Memory is up to date: nothing to do here."""

    async def listing(self) -> list[dict[str, Any]]:
        """``[{doc, version}]`` of every document written."""
        return [{"doc": name, "version": self.docs[name].version} for name in self.names()]

    # ---- writes -----------------------------------------------------------

    async def patch(self, name: str, ops: Any, base: int | None, participant: str, key: str | None = None) -> int:
        """Apply ``ops`` to ``name`` (from ``base``, or the current version if None); the new version.

        ``key``: the caller's idempotency key; a patch whose key ``participant`` already used on
        ``name`` (among the last KEYS_KEPT, in this process) is not applied again: its version
        is returned."""
        if self.around:
            return await self._around_call(name, participant, "patch",
                                           lambda who: self._patch_as(name, ops, base, who, key))
        return await self._patch_as(name, ops, base, participant, key)

    async def _patch_as(self, name: str, ops: Any, base: int | None, participant: str, key: str | None) -> int:
        """``patch``, the hooks run: the backend's own."""
        if key is not None:
            return await self._patch_once((name, participant, key), ops, base)

        while self._reloading is not None:
            await self._reloading.wait()
        self._check_usable()
        try:
            return await self._patch(name, ops, base, participant)
        except BridgeError:
            doc = self.docs.get(name)
            if doc is not None and doc.version == 0 and not any(s.doc == name for s in self.subscriptions.values()):
                del self.docs[name]  # a refused first patch leaves no empty document behind
            raise

    async def _patch_once(self, k: tuple[str, str, str], ops: Any, base: int | None) -> int:
        """``patch`` under idempotency key ``k``: a retry arriving while the first try is still
        being written waits for its outcome (the same version, or the same error); a key whose
        patch failed is forgotten, so it may be tried again."""
        done = self._keys.get(k)
        if done is not None:
            return done if isinstance(done, int) else await asyncio.shield(done)
        first: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        first.add_done_callback(lambda f: f.cancelled() or f.exception())  # a retry need not be waiting
        self._keys[k] = first
        try:
            version = await self._patch_as(k[0], ops, base, k[1], None)
        except BaseException as exc:
            del self._keys[k]
            first.set_exception(exc if isinstance(exc, Exception) else asyncio.CancelledError())
            raise
        self._keys[k] = version
        first.set_result(version)
        while len(self._keys) > KEYS_KEPT:
            del self._keys[next(iter(self._keys))]
        return version

    async def _patch(self, name: str, ops: Any, base: int | None, participant: str) -> int:
        c = await self._prepare(name, ops, base, participant)
        return await self._commit(name, c.doc, c.value, c.ops, c.touched, participant, c.blob, c.bound, c.size)

    async def _prepare(self, name: str, ops: Any, base: int | None, participant: str,
                       doc: Doc | None = None) -> Change:
        """Check ``ops`` against ``name`` as it is now (or as ``doc`` has it: a batch decided one
        patch after another): the rebased change, or a BridgeError (a conflict with what changed
        since ``base``, a patch that fails, a limit). Nothing awaits unless it raises, so the
        change is still against the current version."""
        try:
            ops = parse(ops)
        except PatchError as exc:
            raise BridgeError(INVALID_PARAMS, str(exc)) from None
        size = len(orjson.dumps(ops))
        if size > self.limits.max_patch_bytes:
            raise BridgeError(TOO_LARGE, f"the patch is {size} bytes; at most {self.limits.max_patch_bytes}",
                              {"limit": self.limits.max_patch_bytes, "size": size})
        if doc is None:
            doc = self.docs.setdefault(name, Doc())
        if base is not None and base > doc.version:
            raise BridgeError(INVALID_PARAMS, f"base_version {base} is ahead of {name!r} (version {doc.version})",
                              {"doc": name, "version": doc.version})
        theirs = [] if base is None else doc.since(base)
        if theirs is None:
            raise BridgeError(HISTORY_GONE, f"base_version {base} of {name!r} is older than the kept history; "
                              f"get the document again", {"doc": name, "version": doc.version})
        failed: PatchError | None = None
        try:
            value, touched = apply(doc.value, ops)
        except PatchError as exc:
            try:
                touched = [p for op in ops for p in touched_paths(op)]
            except PatchError:  # a malformed pointer: it touches nothing that could conflict
                touched = []
            value, failed = None, exc
        self._guard(participant, name, "edit", touched)
        if theirs and clashes(touched, [p for e in theirs for p in e.touched]):
            await self._conflict(name, doc, base, ops, touched, theirs, participant)
        if failed is not None:
            raise BridgeError(PATCH_FAILED, str(failed), {"doc": name, "version": doc.version})
        blob, bound = None, doc.size + size
        if bound > self.limits.max_doc_bytes or any(op["op"] == "copy" for op in ops):
            blob = dumps(value)  # near the limit (or a copy, which may grow it by anything): measure
            bound = len(blob)
            if bound > self.limits.max_doc_bytes:
                raise BridgeError(TOO_LARGE, f"{name!r} would be {bound} bytes; at most {self.limits.max_doc_bytes}",
                                  {"limit": self.limits.max_doc_bytes, "size": bound})
        return Change(doc, value, ops, touched, blob, bound, size)

    async def _commit(self, name: str, doc: Doc, value: Any, ops: list[dict[str, Any]], touched: list[Path],
                      participant: str, blob: bytes | None, bound: int, size: int) -> int:
        # Nothing awaits between reading ``doc`` in patch() and here: each patch is applied
        # atomically on the loop, on the version it was checked against.
        entry = Entry(name, doc.version + 1, ops, touched, participant, time.time(), size)
        doc.advance(entry, value, bound, self.limits.history)
        snapshot = None
        if entry.version % self.limits.snapshot_every == 0:
            snapshot = blob if blob is not None else dumps(value)
            doc.size = len(snapshot)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._pending.append((entry, snapshot, done))
        if self._writing is None:
            self._writing = loop.create_future()
            loop.call_soon(loop.call_soon, self._flush)  # two loop turns: the calls read with this one join it
        await done  # a cancelled caller cancels only this future: the writer skips it, the patch stays
        return entry.version

    def _flush(self) -> None:
        """Write what is pending: a lone small patch here, on the loop, when the store is idle
        and quick (``Limits.inline_commit_s``); anything else by the writer, on the store's thread."""
        batch = self._pending
        entry, snapshot, _ = batch[0]
        try:
            if (len(batch) > 1 or snapshot is not None or entry.size > INLINE_MAX_BYTES or self._on_thread
                    or self._commit_time > self.limits.inline_commit_s or not self.limits.inline_commit_s):
                self._start_soon(self._write)
                return
            self._pending = []
            try:
                self._append([entry], [])
            except Exception as exc:
                self._start_soon(self._write, (batch, exc))  # the writer fails it, and writes what follows
                return
            self._written_now(batch)
        except Exception as exc:  # a bug, or the owner's task group gone: refuse what follows
            self._writer_failed(batch, exc)
        writing, self._writing = self._writing, None
        writing.set_result(None)  # type: ignore[union-attr]

    def _append(self, entries: list[Entry], snapshots: list[tuple[str, int, bytes]]) -> None:
        """``store.append``, timed (on whichever thread commits)."""
        start = time.perf_counter()
        self.store.append(entries, snapshots)
        self._commit_time += (time.perf_counter() - start - self._commit_time) / 4

    def _written_now(self, batch: list[tuple[Entry, bytes | None, asyncio.Future[None]]]) -> None:
        """A batch is committed: answer its callers, tell subscribers."""
        for entry, _, done in batch:
            doc = self.docs.get(entry.doc)
            if doc is not None:
                doc.durable = entry.version
            if not done.done():
                done.set_result(None)
            self._tell(entry)

    async def _conflict(self, name: str, doc: Doc, base: int | None, ops: list[dict[str, Any]],
                        mine: list[Path], theirs: list[Entry], participant: str) -> None:
        their_paths = [p for e in theirs for p in e.touched]
        paths = clashes(mine, their_paths)
        info: dict[str, Any] = {
            "doc": name, "base_version": base, "current_version": doc.version,
            "paths": [pointer(p) for p in paths],
            "authors": sorted({e.author for e in theirs if e.author is not None and any(
                clashes(e.touched, paths))}),
        }
        data = dict(info)
        for hook in self.conflict_hooks:  # e.g. collab records it and adds its conflict_id
            data.update(await hook({**info, "ops": ops, "participant": participant, "clashing": paths,
                                    "value": doc.value}) or {})
        raise BridgeError(CONFLICT, f"{name!r} changed at {', '.join(info['paths'])} since version {base} "
                          f"(now {doc.version})", data)

    async def _write(self, failed: tuple[list[tuple[Entry, bytes | None, asyncio.Future[None]]], Exception]
                     | None = None) -> None:
        """Write what is pending, batch after batch, until nothing is (``failed``: a batch whose
        commit on the loop failed, to fail first)."""
        batch: list[tuple[Entry, bytes | None, asyncio.Future[None]]] = []
        try:
            if failed is not None:
                batch = failed[0]
                await self._write_failed(*failed)
            while self._pending:
                batch, self._pending = self._pending, []
                entries = [e for e, _, _ in batch]
                snapshots = [(e.doc, e.version, s) for e, s, _ in batch if s is not None]
                try:
                    await self.run(self._append, entries, snapshots)
                except Exception as exc:
                    await self._write_failed(batch, exc)
                    continue
                self._written_now(batch)
                for doc_name in {e.doc for e, s, _ in batch if s is not None}:
                    keep_from = self.docs[doc_name].version - self.limits.history if doc_name in self.docs else 0
                    try:
                        await self.run(self.store.prune, doc_name, keep_from)
                    except Exception as exc:  # only space is lost: the log is longer until the next snapshot
                        log.warning("state: pruning %r failed: %s", doc_name, exc)
        except Exception as exc:  # a bug, not the disk: refuse what follows rather than end the owner's task group
            self._writer_failed(batch, exc)
        finally:
            writing, self._writing = self._writing, None
            if writing is not None:
                writing.set_result(None)

    def _writer_failed(self, batch: list[tuple[Entry, bytes | None, asyncio.Future[None]]], exc: Exception) -> None:
        log.error("state: the writer failed", exc_info=exc)
        self._broken = f"the state writer failed: {exc}"
        error = BridgeError(UNAVAILABLE, self._broken)
        for _, _, done in batch + self._pending:
            if not done.done():
                done.set_exception(error)
        self._pending = []

    async def _written(self) -> None:
        """Wait until the writer (if one runs) has written everything pending."""
        if self._writing is not None:
            await asyncio.shield(self._writing)

    async def _write_failed(self, batch: list[tuple[Entry, bytes | None, asyncio.Future[None]]],
                            exc: Exception) -> None:
        """A write failed: fail its patches and every one applied after them, then reload the
        documents they touched from disk, so memory again says what the disk says."""
        batch = batch + self._pending
        self._pending = []
        log.error("state: writing %d patch(es) failed: %s", len(batch), exc)
        owned = self._reloading is None  # a delete may already hold patches back
        if owned:
            self._reloading = asyncio.Event()
        try:
            for name in {e.doc for e, _, _ in batch}:
                found = await self.run(self.store.recover, name, self.limits.history)
                self.docs[name] = Doc.recovered(found.value, found.version, found.history)
                self._tell_reset(name)
        except Exception as reload_error:  # the disk cannot be trusted any more
            self._broken = f"the state store failed: {reload_error}"
            log.error("state: %s; every later write is refused", self._broken)
        finally:
            if owned and self._reloading is not None:
                self._reloading.set()
                self._reloading = None
        error = BridgeError(UNAVAILABLE, f"the patch could not be made durable: {exc}")
        for _, _, done in batch:
            if not done.done():
                done.set_exception(error)

    def _check_usable(self) -> None:
        if self._broken is not None:
            raise BridgeError(UNAVAILABLE, self._broken)

    def _guard(self, participant: str, name: str, action: str, paths: list[Path]) -> None:
        for guard in self.guards:
            guard(participant, name, action, paths)

    async def value_at(self, name: str, version: int) -> Any:
        """``name`` as it was at ``version`` (StoreError if that version is no longer kept)."""
        await self._written()
        doc = self.docs.get(name)
        if doc is not None and version == doc.version:
            return doc.value
        return await self.run(self.store.value_at, name, version)

    # ---- subscriptions ----------------------------------------------------

    def subscribe(self, name: str, since: int | None, participant: str, conn: Connection,
                  compact: bool = False) -> dict[str, Any]:
        """Register for ``state.changed`` of ``name``; the reply catches the caller up from ``since``
        (with ``compact``, by the whole value when that is smaller than the ops)."""
        self._guard(participant, name, "read", [()])
        doc = self.docs.get(name) or Doc()
        if since is not None and since > doc.version:
            raise BridgeError(INVALID_PARAMS, f"since_version {since} is ahead of {name!r} (version {doc.version})",
                              {"doc": name, "version": doc.version})
        if sum(1 for s in self.subscriptions.values() if s.connection is conn) >= self.limits.max_subscriptions:
            raise BridgeError(TOO_MANY_SUBSCRIPTIONS, f"at most {self.limits.max_subscriptions} subscriptions per "
                              f"connection; unsubscribe first", {"limit": self.limits.max_subscriptions})
        sub = Subscription(f"s{next(self._ids)}", name, participant, conn)
        self.subscriptions[sub.id] = sub
        reply: dict[str, Any] = {"subscription": sub.id, "doc": name, "to": doc.version}
        entries = doc.since(since) if since is not None else None
        if entries is None:
            reply.update(full=True, value=doc.value, reason="no since_version given" if since is None else
                         f"version {since} is older than the kept history")
        else:
            size = sum(e.size for e in entries)
            value = orjson.dumps(doc.value) if compact and size > 1024 else None
            if value is not None and len(value) < size:
                reply.update(full=True, value=orjson.Fragment(value),
                             reason=f"the value ({len(value)} bytes) is smaller than the ops of the "
                                    f"{len(entries)} versions since {since} ({size} bytes)")
            else:
                reply.update(full=False, ops=[op for e in entries for op in e.ops])
        reply["from"] = since
        return reply

    def unsubscribe(self, sub_id: str, participant: str) -> bool:
        sub = self.subscriptions.get(sub_id)
        if sub is None or sub.participant != participant:
            return False
        del self.subscriptions[sub_id]
        return True

    def _listeners(self, name: str) -> list[tuple[Connection, list[str]]]:
        """Each connection with subscribers to ``name``, and who they are."""
        found: dict[int, tuple[Connection, list[str]]] = {}
        for sid, sub in list(self.subscriptions.items()):
            if sub.connection.closed:
                del self.subscriptions[sid]
            elif sub.doc == name:
                who = found.setdefault(id(sub.connection), (sub.connection, []))[1]
                if sub.participant not in who:
                    who.append(sub.participant)
        return list(found.values())

    def _send(self, name: str, event: str, params: dict[str, Any]) -> None:
        """Once per connection, to the participants that subscribed (``$meta.to``), so a client
        serving several windows gives them only to those windows."""
        for conn, who in self._listeners(name):
            conn.notify(event, {**params, "$meta": {"to": who}})

    def _tell(self, entry: Entry) -> None:
        self._send(entry.doc, "state.changed", {"doc": entry.doc, "from": entry.version - 1, "to": entry.version,
                                                "ops": entry.ops, "author": entry.author})

    def _tell_reset(self, name: str) -> None:
        doc = self.docs[name]
        self._send(name, "state.reset", {"doc": name, "version": doc.version, "value": doc.value})

    # ---- maintenance ------------------------------------------------------

    async def checkpoint(self) -> dict[str, int]:
        """Snapshot every document at its durable version now, prune, and fold the WAL in."""
        await self._written()
        taken = {n: d.version for n, d in self.docs.items() if d.version and d.version == d.durable}
        blobs = [(n, d.version, dumps(d.value)) for n, d in self.docs.items() if n in taken]
        await self.run(self.store.append, [], blobs)
        for name, version in taken.items():
            await self.run(self.store.prune, name, version - self.limits.history)
        await self.run(self.store.checkpoint_wal)
        return taken

    async def delete(self, name: str, participant: str) -> bool:
        """Delete ``name`` and its history. Patches wait meanwhile, so none lands in between."""
        if self.around:
            return await self._around_call(name, participant, "delete", lambda who: self._delete(name, who))
        return await self._delete(name, participant)

    async def _delete(self, name: str, participant: str) -> bool:
        self._check_usable()
        self._guard(participant, name, "edit", [()])
        if name not in self.docs:
            return False
        while self._reloading is not None:
            await self._reloading.wait()
        gate = self._reloading = asyncio.Event()
        try:
            await self._written()
            await self.run(self.store.delete, name)
            self.docs.pop(name, None)
        finally:
            gate.set()
            self._reloading = None
        self._tell_reset_deleted(name)
        return True

    def _tell_reset_deleted(self, name: str) -> None:
        self._send(name, "state.reset", {"doc": name, "version": 0, "value": {}, "deleted": True})
