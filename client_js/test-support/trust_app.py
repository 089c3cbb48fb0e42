"""An app for client_js's trust tests: who the host takes a caller for, a per-caller rate
limit, a sleeper, a fast call and a stream. Serve it with ``--plugin state --plugin collab``."""

from __future__ import annotations

import anyio

from bridge import Bridge, Context
from bridge.middleware.ratelimit import RateLimit
from bridge.middleware.stream import Stream

app = Bridge("trust-test")


@app.method("who")
async def who(ctx: Context) -> str:
    """The caller's participant id, as every plugin sees it."""
    return ctx.participant


@app.method("limited", rate_limit=RateLimit(2, per=3600, key="caller"))
async def limited(ctx: Context) -> str:
    """Two calls an hour per caller."""
    return ctx.participant


@app.method("nap")
async def nap(seconds: float) -> float:
    """Sleep ``seconds`` (cancel it with $/cancelRequest)."""
    await anyio.sleep(seconds)
    return seconds


@app.method("rows", stream=Stream(chunk_size=10))
async def rows(n: int):
    """``n`` short strings, ten to a chunk."""
    for i in range(n):
        yield f"row {i}"
