"""The built-in demo handlers: enough to see every part of the protocol work."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from pydantic import Field

from bridge import Bridge, BridgeError, Context

from .system import plugin as system

app = Bridge("bridge-builtins", "0.1.0", description="Built-in handlers of the bridge sidecar.")
app.include(system)

#: The application error code ``demo.fail`` raises.
DEMO_FAILURE = 1001


@app.method("demo.echo", idempotent=True)
async def echo(value: Any = None) -> Any:
    """Return ``value`` unchanged."""
    return value


@app.method("demo.add", idempotent=True)
async def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@app.method("demo.sleep", idempotent=True)
async def sleep(seconds: float, ctx: Context) -> float:
    """Sleep for ``seconds`` (cancel it with $/cancelRequest), then return them."""
    if seconds < 0:
        raise BridgeError(DEMO_FAILURE, "seconds must not be negative", {"seconds": seconds})
    await anyio.sleep(seconds)
    return seconds


#: Most steps ``demo.count`` takes: each is a $/progress notification.
MAX_COUNT = 100_000


@app.method("demo.count", idempotent=True)
async def count(n: Annotated[int, Field(ge=0, le=MAX_COUNT)], ctx: Context, delay: float = 0.0) -> int:
    """Count to ``n`` (at most 100,000), reporting each step as $/progress ``{done, total}``; return ``n``."""
    for done in range(1, n + 1):
        if delay:
            await anyio.sleep(delay)
        elif done % 256 == 0:
            await ctx.host.drain()  # wait while the output pipe is full
            await anyio.sleep(0)  # and let other calls run
        ctx.progress(done=done, total=n)
    return n


@app.method("demo.fail")
async def fail(message: str = "this call fails on purpose") -> None:
    """Raise an application error (code 1001) with a hint in ``data``."""
    raise BridgeError(DEMO_FAILURE, message, {"hint": "application errors carry their own code and data"})


@app.method("demo.crash")
def crash() -> None:
    """Raise an unexpected exception: the caller gets -32603 and no traceback."""
    raise RuntimeError("an unexpected failure inside a handler")


@app.method("demo.emit")
async def emit(event: str, ctx: Context, payload: Any = None) -> bool:
    """Send the notification ``event`` with ``payload`` as its params."""
    ctx.notify(event, payload)
    return True
