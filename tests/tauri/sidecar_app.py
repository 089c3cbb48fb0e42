"""What the Tauri tests' sidecar serves: the built-in demo app (the one examples/tauri bundles)
plus ``data.rows``, a stream, so one host shows calls, progress, events and credit,
``sidecar.argv``, the arguments the shell plugin started it with, and a shutdown hook that
writes "shut down" to the file ``$SIDECAR_SHUTDOWN_MARK`` names, if set."""

from __future__ import annotations

import os
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


@app.on_shutdown
def mark_shutdown() -> None:
    """Leave the mark a test looks for: the host ran its shutdown hooks."""
    if path := os.environ.get("SIDECAR_SHUTDOWN_MARK"):
        with open(path, "w") as f:
            f.write("shut down")
