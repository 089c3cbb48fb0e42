"""Blocking work in worker threads: anyio's, its default limiter sized by the host's
``max_threads`` setting on first use in each event loop.

Sized at start-up instead, the limiter would load anyio's event-loop backend before the first
call is read: about a fifth of the host's start-up, for apps that may never run a sync handler.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_max_threads = 40  # anyio's own default
_sized: Any = None  # the event loop whose default limiter has that size


def configure(max_threads: int) -> None:
    """The number of worker threads blocking work may use at once (the ``max_threads`` setting)."""
    global _max_threads, _sized
    _max_threads, _sized = max_threads, None


def size() -> None:
    """Size anyio's default limiter in the running loop now (once anyio is loaded anyway, as for
    hooks and lifespans, so plugins' own ``to_thread`` calls share the limit from the start)."""
    global _sized
    from anyio import to_thread

    loop = asyncio.get_running_loop()
    if _sized is not loop:
        to_thread.current_default_thread_limiter().total_tokens = _max_threads
        _sized = loop


async def run_sync(func: Callable[..., T], *args: Any, abandon_on_cancel: bool = False) -> T:
    """``func(*args)`` in a worker thread (``anyio.to_thread.run_sync``), under the host's limit."""
    from anyio import to_thread

    if _sized is not asyncio.get_running_loop():
        size()
    return await to_thread.run_sync(func, *args, abandon_on_cancel=abandon_on_cancel)
