"""The app the benchmark serves through bridge: one method that returns its argument, and
``add`` for the start-up benchmark's calls whose params need validation (bench/startup_first_reply.py)."""

from typing import Any

from bridge import Bridge

app = Bridge()


@app.method
async def echo(value: Any = None) -> Any:
    return value


@app.method
async def add(a: int, b: int) -> int:
    return a + b
