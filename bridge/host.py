"""``Host``: the small public handle a handler has on the host serving it (``ctx.host``)."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .connection import Connection


class Host:
    """The connection a call came on, as much of it as handlers need: calls in flight,
    metrics, events, output back-pressure, stopping. One per connection."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    @property
    def inflight(self) -> int:
        """Calls (and batches) running now."""
        return self._conn.inflight

    @property
    def closed(self) -> bool:
        """True once the client stopped reading: nothing more can be delivered."""
        return self._conn.closed

    def metrics(self) -> dict[str, Any]:
        """The document ``rpc.metrics`` returns."""
        return self._conn.metrics_snapshot()

    def notify(self, method: str, params: Any = None) -> None:
        """Send the client a notification (an event); safe from any thread."""
        self._conn.notify(method, params)

    async def drain(self) -> None:
        """Wait while the output pipe is full (a handler that sends much should, now and then)."""
        await self._conn.drain()

    def start_soon(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` as a task the connection owns: cancelled and awaited when it ends."""
        self._conn.start_soon(coro)

    def stop(self, reason: str | None = None, exit_code: int = 0) -> None:
        """Stop reading input: calls in flight get the grace period, queued ones are refused.
        ``reason`` goes to stderr; a non-zero ``exit_code`` is the host's exit status."""
        self._conn.stop(reason, exit_code)
