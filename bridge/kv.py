"""``KeyValue``: a small key/value store for handlers (``ctx.cache``), on the host's cache store.

Values are JSON (what a handler may return), kept by string key with an optional TTL, in
the same directory, size limit and memory tier as cached replies but a namespace of their
own: invalidating a method's replies never touches them. Expired entries are swept
periodically (``rpc.metrics`` ``cache.expiredMemory`` / ``expiredDisk``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from .codec import dumps

if TYPE_CHECKING:
    from .connection import Connection

T = TypeVar("T")


class KeyValue:
    """``get``/``set``/``delete`` of JSON values by key. Safe from async handlers and from
    the worker threads sync handlers run in (the work is done on the event loop)."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def get(self, key: str, default: Any = None) -> Any:
        """The value stored under ``key``, or ``default`` if there is none or it expired."""
        _check_key(key)
        body = self._on_loop(lambda: self._conn.cache_store().get_value(key))
        return default if body is None else orjson.loads(body)

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store ``value`` (JSON-serialisable) under ``key`` for ``ttl`` seconds (None: until
        evicted by the size limit or deleted). It persists across restarts."""
        _check_key(key)
        if ttl is not None and not ttl > 0:
            raise ValueError(f"ttl must be positive seconds or None, not {ttl!r}")
        try:
            body = dumps(value)
        except (TypeError, orjson.JSONEncodeError) as exc:
            raise TypeError(f"cache value for {key!r} is not JSON-serialisable: {exc}") from None
        self._on_loop(lambda: self._conn.cache_store().set_value(key, body, ttl))

    def delete(self, key: str) -> bool:
        """Drop ``key``; whether it held a value."""
        _check_key(key)
        return self._on_loop(lambda: self._conn.cache_store().delete_value(key))

    def _on_loop(self, work: Callable[[], T]) -> T:
        loop = self._conn._loop
        if loop is None or threading.get_ident() == self._conn.loop_thread:
            return work()

        async def run() -> T:
            return work()

        return asyncio.run_coroutine_threadsafe(run(), loop).result()

    def __repr__(self) -> str:
        return "KeyValue()"


def _check_key(key: Any) -> None:
    if not isinstance(key, str) or not key:
        raise TypeError(f"a cache key is a non-empty string, not {key!r}")
