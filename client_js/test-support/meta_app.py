"""An app for client_js's reply-metadata tests: a cached method whose computation waits for a
gate, so concurrent identical calls meet in one flight; and a plain method."""

from __future__ import annotations

import anyio

from bridge import Bridge, BridgeError, Cache

app = Bridge("meta-test")
gate = anyio.Event()
computed: dict[str, int] = {}


@app.method("lookup", cache=Cache(ttl=3600))
async def lookup(key: str) -> str:
    """``key`` upper-cased, once the gate is open; counts how often it was computed."""
    await gate.wait()
    computed[key] = computed.get(key, 0) + 1
    return key.upper()


@app.method("open_gate")
async def open_gate() -> bool:
    """Let every waiting and later lookup through."""
    gate.set()
    return True


@app.method("computed")
async def computed_count(key: str) -> int:
    """How many times ``key`` was computed (cache hits and shared flights do not count)."""
    return computed.get(key, 0)


@app.method("fail")
async def fail() -> None:
    """Always the app's error 1001."""
    raise BridgeError(1001, "failed on purpose")
