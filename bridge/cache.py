"""Where cached replies live: a small memory tier in front of diskcache, or of a Redis every host
shares (``cache_redis``, ``bridge.cache_redis``).

The disk tier persists across restarts in a per-app directory, with a size limit and
least-recently-used eviction. Hits on hot keys never touch SQLite. If the directory
cannot be opened or turns out corrupt, the store carries on with memory alone after one
warning: a call never fails because of its cache.

With a shared tier, replies go to memory and Redis, not to this host's disk (an entry there
would outlive the host's run and miss the invalidations other hosts make meanwhile); a hit in
memory is still a lookup on the loop, a miss asks Redis (``fetch``). The key/value entries
(``ctx.cache``) stay on this host's disk either way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from .cache_redis import SharedTier

log = logging.getLogger("bridge.cache")

MEMORY_ITEMS = 1024
#: Seconds between sweeps of expired entries (see ``CacheStore.sweep``).
SWEEP_INTERVAL = 60.0
#: Keys of the key/value API start with this, its disk entries carry ``KV_TAG``: no reply
#: key starts with NUL (a reply's key starts with its method's name), so neither reads the other's.
KV_PREFIX = "\x00kv\x00"
KV_TAG = "\x00kv"


class CacheStore:
    """Cached reply bodies (JSON bytes) by key, each tagged with its method."""

    def __init__(self, directory: str | Path | None, size_limit: int, memory_items: int = MEMORY_ITEMS) -> None:
        import threading
        from pathlib import Path

        from cachetools import LRUCache

        self.directory = Path(directory) if directory else None
        self.size_limit = size_limit
        # The memory tier holds (body, expires_at) by key, expiry on time.monotonic(); the disk
        # tier keeps diskcache's own. (cachetools' LRUCache.get is 4x quicker than its TLRUCache.)
        self._memory: Any = LRUCache(maxsize=memory_items)
        self._disk: Any = None
        self._disk_failed = self.directory is None
        self._opening = threading.Lock()
        self._writes: Any = None  # one worker thread: disk writes in order, off the event loop
        self.sweeps = 0
        self.expired = {"memory": 0, "disk": 0}  # entries the sweeps dropped
        self.shared: SharedTier | None = None  # the Redis tier, while the app serves with cache_redis set
        self._loop: asyncio.AbstractEventLoop | None = None
        self._invalidating: set[asyncio.Task[None]] = set()

    def get(self, key: str, persist: bool = True) -> bytes | None:
        """The body cached under ``key``; with ``persist`` False, only from memory."""
        hit = self._memory.get(key)
        if hit is not None:
            if hit[1] > time.monotonic():
                return hit[0]
            self._memory.pop(key, None)
        if not persist or self.shared is not None:
            return None
        return self._disk_get(key)

    def _disk_get(self, key: str) -> bytes | None:
        disk = self._open()
        if disk is None:
            return None
        try:
            found = disk.get(key, default=None, expire_time=True)
        except Exception as exc:  # a corrupt database, a vanished directory
            self._give_up(exc)
            return None
        body, expires = found if found is not None else (None, None)
        if body is not None:
            ttl = (expires - time.time()) if expires else None
            self._memory[key] = (body, time.monotonic() + ttl if ttl else float("inf"))
        return body

    async def fetch(self, key: str) -> tuple[bytes | None, int | None]:
        """After a miss in ``get``: the body the shared tier holds under ``key`` (kept in memory
        too), and the counter to give ``set`` for a reply computed now (None: Redis was not
        asked or did not answer in time; such a reply stays on this host)."""
        shared = self.shared
        if shared is None:
            return None, None
        found = await shared.get(key)
        if found is None:
            return None, None
        body, ttl, counter = found
        if body is not None and shared.counter(key.partition("\x00")[0]) == counter:  # not invalidated meanwhile
            self._memory[key] = (body, time.monotonic() + ttl if ttl else float("inf"))
        return body, counter

    def set(self, key: str, body: bytes, ttl: float | None, method: str, persist: bool = True,
            seen: int | None = None) -> None:
        """Cache ``body``; with ``persist`` False in memory only (a per-caller reply: caller ids
        such as ``window:3`` are numbered afresh each run, and private replies stay off disk).
        With a shared tier, a persisted reply goes to Redis if ``fetch`` gave a counter (``seen``)."""
        shared = self.shared
        if shared is not None and seen is not None and shared.counter(method) != seen:
            return  # computed from before an invalidation another host made meanwhile: keep nowhere
        self._memory[key] = (body, time.monotonic() + ttl if ttl else float("inf"))
        if not persist:
            return
        if shared is not None and not key.startswith(KV_PREFIX):
            if seen is not None:
                shared.put(key, body, ttl, seen)
            return
        # The TTL runs from now, not from when the writer thread gets to it (it may be behind).
        self._write("set_until", key, body, time.time() + ttl if ttl else None, method)

    def get_value(self, key: str) -> bytes | None:
        """A key/value entry (``bridge.kv``): what ``set_value`` stored under ``key``, if unexpired.
        Unlike a reply, a read right after a write sees it even if memory dropped it."""
        kv_key = KV_PREFIX + key
        hit = self._memory.get(kv_key)
        if hit is not None:
            if hit[1] > time.monotonic():
                return hit[0]  # type: ignore[no-any-return]
            self._memory.pop(kv_key, None)
        self.flush()
        return self._disk_get(kv_key)

    def set_value(self, key: str, body: bytes, ttl: float | None) -> None:
        """Store a key/value entry, in memory and (in order, off the loop) on disk."""
        self.set(KV_PREFIX + key, body, ttl, KV_TAG)

    def delete_value(self, key: str) -> bool:
        """Drop a key/value entry now; whether there was one (unexpired)."""
        kv_key = KV_PREFIX + key
        hit = self._memory.pop(kv_key, None)
        found = hit is not None and hit[1] > time.monotonic()
        self.flush()
        disk = self._open()
        if disk is not None:
            try:
                found = bool(disk.delete(kv_key)) or found
            except Exception as exc:
                self._give_up(exc)
        return found

    def sweep_memory(self) -> int:
        """Drop the memory tier's expired entries (on the loop: the tier is not thread-safe); how many."""
        from cachetools import Cache

        now = time.monotonic()
        peek = Cache.__getitem__  # LRUCache's own would count each look as a use
        expired = [key for key in list(self._memory.keys()) if peek(self._memory, key)[1] <= now]
        for key in expired:
            self._memory.pop(key, None)
        self.expired["memory"] += len(expired)
        return len(expired)

    def sweep_disk(self) -> int:
        """Drop the disk tier's expired entries (blocking: from a worker thread); how many."""
        self.flush()
        disk = self._open()
        if disk is None:
            return 0
        try:
            count = int(disk.expire())
        except Exception as exc:
            self._give_up(exc)
            return 0
        self.expired["disk"] += count
        return count

    async def sweep(self) -> int:
        """Drop expired entries in both tiers; how many. ``stats()`` keeps the counts."""
        from .threads import run_sync

        count = self.sweep_memory() + await run_sync(self.sweep_disk)
        self.sweeps += 1
        return count

    async def maintain(self, app_name: str = "", shared: str = "", interval: float | None = None) -> None:
        """The store's life while a connection serves (a task it owns, cancelled at the end):
        a sweep every ``interval`` seconds (default ``SWEEP_INTERVAL``) and, with ``shared`` (the
        ``cache_redis`` URL), the shared tier of ``app_name``'s replies beside it."""
        import anyio

        self._loop = asyncio.get_running_loop()
        url = shared
        if not url:
            while True:
                await anyio.sleep(SWEEP_INTERVAL if interval is None else interval)
                await self.sweep()
        from .cache_redis import SharedTier

        self.shared = SharedTier(url, app_name, self._drop_replies, self._methods_held)
        self._write("purge_replies")  # see the module's docstring: none on disk stays to be served later
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self.shared.run)
                while True:
                    await anyio.sleep(SWEEP_INTERVAL if interval is None else interval)
                    await self.sweep()
        finally:
            self.shared = None

    def invalidate(self, method: str) -> Awaitable[None] | None:
        """Drop every cached reply of ``method``, now: a read right after must not find one
        on disk (so this waits for the writes queued before it). With a shared tier, Redis
        and every host follow; awaiting what this returns waits until Redis has done it."""
        self._drop_replies(method)
        if self.shared is None:
            self._now("evict", method)
            return None
        done = self.shared.invalidate([method])
        try:
            task = asyncio.get_running_loop().create_task(done)
        except RuntimeError:  # a worker thread (a sync handler's app.invalidate): the loop does it
            asyncio.run_coroutine_threadsafe(done, self._loop)  # type: ignore[arg-type]
            return None
        self._invalidating.add(task)
        task.add_done_callback(self._invalidating.discard)
        return task

    def _drop_replies(self, method: str | None) -> int:
        """Drop ``method``'s replies from memory (None: every reply, no key/value entry); how many."""
        prefix = "" if method is None else method + "\x00"
        keys = [k for k in self._memory.keys() if k.startswith(prefix) and not k.startswith(KV_PREFIX)]
        for key in keys:
            self._memory.pop(key, None)
        return len(keys)

    def _methods_held(self) -> set[str]:
        """The methods with replies in memory."""
        return {k.partition("\x00")[0] for k in list(self._memory.keys()) if not k.startswith(KV_PREFIX)}

    def stats(self) -> dict[str, Any]:
        """Entries and bytes of reply bodies held, in memory and on disk (counted on read; the
        disk tier only once open: a read never opens it)."""
        from cachetools import Cache

        peek = Cache.__getitem__  # the base class's read: LRUCache's own would count as a use
        memory = [peek(self._memory, key) for key in list(self._memory)]
        report: dict[str, Any] = {
            "memoryEntries": len(memory), "memoryBytes": sum(len(body) for body, _ in memory),
            "diskEntries": None, "diskBytes": None,
        }
        report.update(sweeps=self.sweeps, expiredMemory=self.expired["memory"], expiredDisk=self.expired["disk"])
        if self.shared is not None:
            report["shared"] = self.shared.stats()
        disk = self._disk
        if disk is not None:
            try:
                report["diskEntries"], report["diskBytes"] = len(disk), int(disk.volume())
            except Exception as exc:
                self._give_up(exc)
        return report

    def clear(self) -> int:
        """Drop every cached reply, in memory and on disk; how many there were on disk."""
        self._memory.clear()
        self.flush()
        disk = self._open()
        if disk is None:
            return 0
        try:
            return int(disk.clear())
        except Exception as exc:
            self._give_up(exc)
            return 0

    def _now(self, operation: str, *args: Any) -> None:
        self.flush()
        disk = self._open()
        if disk is not None:
            try:
                getattr(disk, operation)(*args)
            except Exception as exc:
                self._give_up(exc)

    def flush(self) -> None:
        """Wait for the disk writes queued so far."""
        if self._writes is not None:
            self._writes.submit(lambda: None).result()

    def close(self) -> None:
        if self._writes is not None:
            self._writes.shutdown(wait=True)
            self._writes = None
        if self._disk is not None:
            self._disk.close()

    def open(self) -> None:
        """Open the disk tier now (from a worker thread, say) rather than on first use."""
        self._open()

    def _write(self, operation: str, *args: Any, **kwargs: Any) -> None:
        if self._disk_failed:
            return
        if self._writes is None:
            from concurrent.futures import ThreadPoolExecutor

            self._writes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bridge-cache")

        def write() -> None:
            disk = self._open()
            if disk is not None:
                try:
                    if operation == "purge_replies":
                        _purge_replies(disk)
                    elif operation == "set_until":
                        _set_until(disk, *args)
                    else:
                        getattr(disk, operation)(*args, **kwargs)
                except Exception as exc:
                    self._give_up(exc)

        self._writes.submit(write)

    def _open(self) -> Any:
        if self._disk is not None or self._disk_failed:
            return self._disk
        with self._opening:
            if self._disk is not None or self._disk_failed:
                return self._disk
            try:
                import diskcache

                self.directory.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
                self._disk = diskcache.Cache(
                    str(self.directory), size_limit=self.size_limit,
                    eviction_policy="least-recently-used", tag_index=True,
                )
            except Exception as exc:
                self._give_up(exc)
        return self._disk

    def _give_up(self, exc: Exception) -> None:
        if not self._disk_failed:
            log.warning("cache directory %s is unusable (%s); caching in memory only", self.directory, exc)
        self._disk_failed = True
        disk, self._disk = self._disk, None
        if disk is not None:
            try:
                disk.close()
            except Exception:
                pass


def _set_until(disk: Any, key: str, body: bytes, deadline: float | None, tag: str) -> None:
    """Write an entry that expires at ``deadline`` (wall clock, as diskcache's own), or drop
    it if that has passed: an expired value must not come back from disk."""
    if deadline is None:
        disk.set(key, body, tag=tag)
        return
    left = deadline - time.time()
    if left > 0:
        disk.set(key, body, expire=left, tag=tag)
    else:
        disk.delete(key)


def _purge_replies(disk: Any) -> None:
    """Delete every reply from a diskcache, keeping the key/value entries."""
    for key in list(disk.iterkeys()):
        if not (isinstance(key, str) and key.startswith(KV_PREFIX)):
            disk.delete(key)


def default_directory(app_name: str) -> Path:
    """The platform's per-user cache directory, one folder per app."""
    from platformdirs import user_cache_path

    return user_cache_path("bridge") / "".join(c if c.isalnum() or c in "-_." else "_" for c in app_name)
