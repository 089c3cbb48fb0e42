"""A streaming app for client_js's tests only: rows to stream, and what the generator did."""

from __future__ import annotations

import anyio

from bridge import Bridge, BridgeError, Context
from bridge.middleware.stream import Stream

app = Bridge("stream-test")
state = {"pulled": 0, "closed": 0}


@app.method("data.rows", stream=Stream(chunk_size=100))
async def rows(n: int, ctx: Context, width: int = 10, fail_at: int = -1, delay: float = 0.0):
    """``n`` strings ``"<8-digit index><width x's>"``; raises 1001 at item ``fail_at``."""
    ctx.total = n
    pad = "x" * width
    try:
        for i in range(n):
            if i == fail_at:
                raise BridgeError(1001, "the source broke", {"at": i})
            if delay:
                await anyio.sleep(delay)
            state["pulled"] += 1
            yield f"{i:08d}{pad}"
    finally:
        state["closed"] += 1


@app.method("data.state")
async def get_state() -> dict[str, int]:
    """How many items the generators produced and how many of them closed."""
    return dict(state)


@app.method("data.reset")
async def reset() -> bool:
    state.update(pulled=0, closed=0)
    return True
