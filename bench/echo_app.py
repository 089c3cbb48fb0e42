"""The app the benchmark serves through bridge: one method that returns its argument."""

from typing import Any

from bridge import Bridge

app = Bridge()


@app.method
async def echo(value: Any = None) -> Any:
    return value
