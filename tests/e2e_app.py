"""An app for the end-to-end tests: handlers that misbehave the ways real ones do."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import anyio

from bridge import Bridge, Context
from bridge.middleware.cache import Cache

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
async def slow(seconds: float, ctx: Context) -> str:
    await anyio.sleep(seconds)
    return "done"


@app.method(cache=Cache(ttl=3600))
async def cached_pid(key: str) -> int:
    """The pid of the process that first computed ``key``: shows a cache hit across restarts."""
    return os.getpid()


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
