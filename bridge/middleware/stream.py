"""``Stream``: a generator handler's items go to the caller in chunks, paced by credit.

The wire protocol (see docs/protocol.md): each chunk is a ``$/stream`` notification
``{id, seq, items, done, total?}``; the final reply ``{items, chunks}`` closes the stream.
A caller that sends ``$meta.stream`` gets credit-based flow control: it may be sent only
as many chunks as it has granted (``$meta.stream.window`` at first, then
``$/stream/credit {id, credit}``), and the generator is not advanced while it has none.
Every stream also waits on the pipe: a reader that falls behind stops the generator.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from time import perf_counter

import anyio

from . import Request

if TYPE_CHECKING:
    from ..connection import Connection
    from ..methods import Method, Param

debug = logging.getLogger("bridge.debug")  # with --debug: a line per stream
_ZERO = {"streams": 0, "chunks": 0, "bytes": 0, "failed": 0, "items": 0, "seconds": 0.0}


class Stream:
    """Send a generator's items in chunks of ``chunk_size`` items, or fewer when they pass
    ``chunk_bytes`` of JSON. One instance may serve several methods."""

    def __init__(self, chunk_size: int = 100, chunk_bytes: int | None = None) -> None:
        if chunk_size < 1 or (chunk_bytes is not None and chunk_bytes < 1):
            raise ValueError("chunk_size and chunk_bytes must be positive")
        self.chunk_size = chunk_size
        self.chunk_bytes = chunk_bytes
        self.counts: dict[str, dict[str, Any]] = {}  # by method: _ZERO's keys

    def metrics(self, method: str) -> dict[str, Any]:
        """Streams, chunks, bytes and failures of this method; mean chunk size (items and bytes)
        and mean duration of the streams that ended, for rpc.metrics."""
        c = self.counts.get(method, _ZERO)
        ended, chunks = c["streams"] - c.get("running", 0), c["chunks"]
        return {"stream": {
            "streams": c["streams"], "chunks": chunks, "bytes": c["bytes"], "failed": c["failed"],
            "meanChunkItems": round(c["items"] / chunks, 2) if chunks else None,
            "meanChunkBytes": round(c["bytes"] / chunks, 1) if chunks else None,
            "meanDurationMs": round(c["seconds"] / ended * 1e3, 3) if ended else None,
        }}

    def describe(self) -> dict[str, Any]:
        """For rpc.discover: call it as a stream ($/stream chunks, then {items, chunks})."""
        return {"x-stream": {"chunkSize": self.chunk_size}}

    def signature(self, method: Method, params: list[Param]) -> tuple[list[Param], Any]:
        """The params as declared; the reply only closes the stream (the items go as chunks)."""
        return params, dict[str, int]

    async def endpoint(self, request: Request) -> Any:
        """The end of the chain: run the generator, send its items in chunks, return the totals."""
        method = request.method
        kwargs = dict(request.validate())
        context = request.context
        if method.context_param is not None:
            kwargs[method.context_param] = context
        conn: Connection = request.connection
        counts = self.counts.get(request.name)
        if counts is None:
            counts = self.counts[request.name] = {**_ZERO, "running": 0}
        counts["streams"] += 1
        opted = request.meta.get("stream")
        credit = Credit(opted.get("window", conn.settings.stream_window) if isinstance(opted, dict) else conn.settings.stream_window,
                        paced=opted is not None)
        conn.streams.open(request.id, credit)
        early = request._call.credit  # granted before the stream began (while the call was queued)
        if early and credit.paced:
            credit.grant(early)
        items = _items(method.func(**kwargs))
        done = seq = sent = 0
        counts["running"] += 1
        started = perf_counter()
        try:
            async for chunk in self._chunks(items):
                await credit.take()
                message: dict[str, Any] = {"id": request.id, "seq": seq, "items": chunk, "done": done + len(chunk)}
                if context.total is not None:
                    message["total"] = context.total
                size = conn.notify("$/stream", message)
                counts["bytes"] += size
                sent += size
                await conn.drain()  # the pipe's own back-pressure
                done += len(chunk)
                seq += 1
                counts["chunks"] += 1
                counts["items"] += len(chunk)
        except BaseException as exc:
            outcome = "failed" if isinstance(exc, Exception) else "cancelled"
            if isinstance(exc, Exception):
                counts["failed"] += 1
            raise
        else:
            outcome = "done"
        finally:
            await items.aclose()
            conn.streams.close(request.id, credit)
            elapsed = perf_counter() - started
            counts["seconds"] += elapsed
            counts["running"] -= 1
            if conn.settings.debug:
                debug.debug("stream %s id=%r %s: %d chunks, %d items, %d bytes, %.3f ms", request.name, request.id,
                            outcome, seq, done, sent, elapsed * 1e3)
        return {"items": done, "chunks": seq}

    async def _chunks(self, items: AsyncIterator[Any]) -> AsyncIterator[list[Any]]:
        """Group items; sizes are measured only when ``chunk_bytes`` is set."""
        from ..codec import dumps

        chunk: list[Any] = []
        size = 0
        try:
            async for item in items:
                chunk.append(item)
                if self.chunk_bytes is not None:
                    size += len(dumps(item)) + 1
                if len(chunk) >= self.chunk_size or (self.chunk_bytes is not None and size >= self.chunk_bytes):
                    yield chunk
                    chunk, size = [], 0
        except Exception:
            if chunk:  # what it yielded before it raised still goes out, then the error
                yield chunk
            raise
        if chunk:
            yield chunk


class Credits:
    """A connection's running streams by request id: what ``$/stream/credit`` tops up."""

    __slots__ = ("_by_id",)

    def __init__(self) -> None:
        self._by_id: dict[Any, Credit] = {}

    def open(self, id: Any, credit: Credit) -> None:
        if id is not None:
            self._by_id[id] = credit

    def close(self, id: Any, credit: Credit) -> None:
        if id is not None and self._by_id.get(id) is credit:
            del self._by_id[id]

    def grant(self, id: Any, credit: int) -> bool:
        """Give stream ``id`` more credit; False if no such stream runs (yet)."""
        stream = self._by_id.get(id)
        if stream is None:
            return False
        stream.grant(credit)
        return True

    def __len__(self) -> int:
        return len(self._by_id)

    def credit(self) -> int:
        """Chunks the paced streams may still send before they wait for credit (their open windows)."""
        return sum(max(c.available, 0) for c in self._by_id.values() if c.paced)


class Credit:
    """How many chunks the caller lets us send; unpaced streams always have credit."""

    def __init__(self, window: Any, *, paced: bool) -> None:
        self.paced = paced
        self.available = int(window) if isinstance(window, int) and window > 0 else 16
        self._wake = anyio.Event()

    def grant(self, credit: int) -> None:
        self.available += credit
        self._wake.set()

    async def take(self) -> None:
        if not self.paced:
            return
        while self.available <= 0:
            self._wake = anyio.Event()
            await self._wake.wait()
        self.available -= 1


def _items(produced: Any) -> Any:
    """An async iterator over an async or sync generator's items (sync ones step in a thread)."""
    if inspect.isasyncgen(produced):
        return produced
    if isinstance(produced, Iterator):
        return _from_sync(produced)
    raise TypeError(f"a streaming handler must be a generator, got {type(produced).__name__}")


async def _from_sync(gen: Iterator[Any]) -> AsyncIterator[Any]:
    done = object()
    try:
        while (item := await _in_thread(next, gen, done)) is not done:
            yield item
    finally:
        close = getattr(gen, "close", None)
        if close is not None:
            await _in_thread(close)


async def _in_thread(func: Any, *args: Any) -> Any:
    """``func(*args)`` in a worker thread. A cancellation waits for it to return before it is
    raised: a generator cannot be closed while its ``next()`` runs (it is "already executing")."""
    import asyncio

    from ..threads import run_sync

    step = asyncio.ensure_future(run_sync(func, *args))
    try:
        return await asyncio.shield(step)
    except asyncio.CancelledError:
        while not step.done():
            try:
                await asyncio.wait([step])
            except asyncio.CancelledError:  # cancelled again: the step still has to end first
                continue
        raise
