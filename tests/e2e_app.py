"""An app for the end-to-end tests: handlers that misbehave the ways real ones do."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import anyio

from bridge import Bridge, Context
from bridge.middleware.batch import Batch
from bridge.middleware.cache import Cache
from bridge.middleware.circuit import CircuitBreaker
from bridge.middleware.ratelimit import RateLimit
from bridge.middleware.stream import Stream

app = Bridge("e2e")


@app.method("system.ping")
async def ping() -> str:
    return "pong"


@app.method
def polluter() -> str:
    """Write to stdout every way a library or a child process might."""
    print("print() to stdout")
    sys.stdout.write("sys.stdout.write\n")
    sys.stdout.flush()
    os.write(1, b"os.write to fd 1\n")
    subprocess.run([sys.executable, "-c", "print('a child process printing'); import sys; print(repr(sys.stdin.read()))"], check=True)
    return "clean"


@app.method
async def hog(seconds: float) -> str:
    """Blocks the event loop: what an async handler must never do."""
    import time

    time.sleep(seconds)
    return "done"


@app.method
async def slow(seconds: float, ctx: Context) -> str:
    await anyio.sleep(seconds)
    return "done"


@app.method(cache=Cache(ttl=3600))
async def cached_pid(key: str) -> int:
    """The pid of the process that first computed ``key``: shows a cache hit across restarts."""
    return os.getpid()


lookups = {"count": 0}


@app.method(cache=Cache(tags=["lookups"]))
async def lookup(key: str) -> dict[str, int]:
    lookups["count"] += 1
    await anyio.sleep(0.05)  # long enough for identical calls to overlap
    return {"count": lookups["count"]}


@app.method(invalidates=["lookups"])
async def change() -> bool:
    return True


@app.method
async def forget(key: str) -> bool:
    app.invalidate("lookup")
    return True


@app.method(rate_limit=RateLimit(5, per=3600))
async def scarce() -> str:
    return "ok"


batch_sizes: list[int] = []


@app.method(batch=Batch(max_size=20, max_delay=0.02))
async def square(values: list[int]) -> list[int]:
    batch_sizes.append(len(values))
    return [v * v for v in values]


@app.method
async def batch_count() -> list[int]:
    return batch_sizes


@app.method(stream=Stream(chunk_size=1000))
async def export(n: int, width: int, ctx: Context):
    ctx.total = n
    pad = "x" * width
    for i in range(n):
        yield f"{i:08d}{pad}"


health = {"up": True}


@app.method(circuit=CircuitBreaker(failures=2, reset_after=0.3))
async def fragile() -> str:
    if not health["up"]:
        raise RuntimeError("down")
    return "up"


@app.method
async def set_health(up: bool) -> bool:
    health["up"] = up
    return up


@app.on_shutdown
def goodbye() -> None:
    print("shutdown hook ran", file=sys.stderr)


if os.environ.get("E2E_FAIL_STARTUP"):

    @app.on_startup
    def broken() -> None:
        raise RuntimeError("startup failed on purpose")


def spec_app() -> Bridge:
    """The methods the JSON-RPC 2.0 specification's examples call."""
    app = Bridge()

    @app.method
    def subtract(minuend: int, subtrahend: int) -> int:
        return minuend - subtrahend

    @app.method
    async def sum(a: int, b: int, c: int) -> int:
        return a + b + c

    @app.method
    async def update(a: int, b: int, c: int, d: int, e: int) -> None:
        return None

    @app.method
    async def notify_hello(n: int) -> None:
        return None

    @app.method
    async def notify_sum(a: int, b: int, c: int) -> None:
        return None

    @app.method
    async def get_data() -> list[Any]:
        return ["hello", 5]

    return app
