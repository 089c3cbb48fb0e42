"""What the Tauri tests' sidecar serves: the built-in demo app (the one examples/tauri bundles)
plus ``data.rows``, a stream, so one host shows calls, progress, events and credit, and
``sidecar.argv``, the arguments the shell plugin started it with."""

from __future__ import annotations

import sys

from bridge import Context
from bridge.builtins.demo import app
from bridge.middleware.stream import Stream

__all__ = ["app"]


@app.method("data.rows", stream=Stream(chunk_size=10))
async def rows(n: int, ctx: Context):
    """``n`` strings ``"row <i>"``, ten a chunk."""
    ctx.total = n
    for i in range(n):
        yield f"row {i}"


@app.method("sidecar.argv")
async def argv() -> list[str]:
    """The sidecar's own arguments, as the shell plugin passed them."""
    return sys.argv[1:]
