"""Apps for tests/test_lifespan.py: state in what lifespans yield, tasks owned by a task group."""

from __future__ import annotations

import os
import sys
from contextlib import asynccontextmanager
from typing import Any

import anyio

from bridge import Bridge, Plugin

order: list[str] = []


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@asynccontextmanager
async def app_lifespan(app: Bridge):
    _say("enter app")
    yield {"greeting": "hello"}
    _say("leave app")


@asynccontextmanager
async def ticker_lifespan(plugin: Plugin):
    async with anyio.create_task_group() as tg:  # every task the plugin starts is owned here
        state: dict[str, Any] = {"ticks": 0}

        async def tick() -> None:
            while True:
                state["ticks"] += 1
                await anyio.sleep(0.001)

        tg.start_soon(tick)
        _say("enter ticker")
        yield state
        tg.cancel_scope.cancel()
    _say("leave ticker")


@asynccontextmanager
async def broken_lifespan(plugin: Plugin):
    if os.environ.get("BREAK_PLUGIN"):
        raise RuntimeError("no database")
    yield None
    if os.environ.get("HANG_PLUGIN"):
        _say("hanging")
        await anyio.sleep_forever()  # a plugin that never finishes stopping


app = Bridge("lifespan", lifespan=app_lifespan)
ticker = Plugin("ticker", lifespan=ticker_lifespan)
broken = Plugin("broken", lifespan=broken_lifespan)


@app.method
async def greeting() -> str:
    return app.state["greeting"]


@ticker.method
async def ticks() -> int:
    while ticker.state["ticks"] == 0:
        await anyio.sleep(0.001)
    return ticker.state["ticks"]


@broken.method
async def ping(word: str = "pong") -> str:
    return word


app.include(ticker)
app.include(broken)

failing = Bridge("failing", lifespan=broken_lifespan)
