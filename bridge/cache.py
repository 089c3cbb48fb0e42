"""Where cached replies live: a small memory tier in front of diskcache.

The disk tier persists across restarts in a per-app directory, with a size limit and
least-recently-used eviction. Hits on hot keys never touch SQLite. If the directory
cannot be opened or turns out corrupt, the store carries on with memory alone after one
warning: a call never fails because of its cache.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

log = logging.getLogger("bridge.cache")

MEMORY_ITEMS = 1024


class CacheStore:
    """Cached reply bodies (JSON bytes) by key, each tagged with its method."""

    def __init__(self, directory: str | Path | None, size_limit: int, memory_items: int = MEMORY_ITEMS) -> None:
        from pathlib import Path

        from cachetools import TLRUCache

        self.directory = Path(directory) if directory else None
        self.size_limit = size_limit
        self._memory: Any = TLRUCache(maxsize=memory_items, ttu=lambda _key, value, _now: value[1])
        self._disk: Any = None
        self._disk_failed = self.directory is None

    # The memory tier holds (body, expires_at) with time.monotonic() expiry; disk uses diskcache's own.

    def get(self, key: str) -> bytes | None:
        hit = self._memory.get(key)
        if hit is not None:
            return hit[0]
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

    def set(self, key: str, body: bytes, ttl: float | None, method: str) -> None:
        self._memory[key] = (body, time.monotonic() + ttl if ttl else float("inf"))
        disk = self._open()
        if disk is not None:
            try:
                disk.set(key, body, expire=ttl, tag=method)
            except Exception as exc:
                self._give_up(exc)

    def invalidate(self, method: str) -> None:
        """Drop every cached reply of ``method``."""
        prefix = method + "\x00"
        for key in [k for k in self._memory.keys() if k.startswith(prefix)]:
            self._memory.pop(key, None)
        disk = self._open()
        if disk is not None:
            try:
                disk.evict(method)
            except Exception as exc:
                self._give_up(exc)

    def clear(self) -> None:
        self._memory.clear()
        disk = self._open()
        if disk is not None:
            try:
                disk.clear()
            except Exception as exc:
                self._give_up(exc)

    def close(self) -> None:
        if self._disk is not None:
            self._disk.close()

    @property
    def persistent(self) -> bool:
        return self._open() is not None

    def _open(self) -> Any:
        if self._disk is None and not self._disk_failed:
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


def default_directory(app_name: str) -> Path:
    """The platform's per-user cache directory, one folder per app."""
    from platformdirs import user_cache_path

    return user_cache_path("bridge") / "".join(c if c.isalnum() or c in "-_." else "_" for c in app_name)
