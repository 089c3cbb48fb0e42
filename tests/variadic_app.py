"""The handler shapes of tests/test_variadic.py, served by the real host there too."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from bridge import Bridge, Context

app = Bridge("variadic")


@app.method
def total(*numbers: float) -> float:
    """The JSON-RPC specification's own ``sum``: any number of positional params."""
    return sum(numbers)


@app.method
def echo(**params: Any) -> dict[str, Any]:
    """A forwarder: any named params, as they came."""
    return params


@app.method
def point(x: int, y: int = 0, /, label: str = "") -> list[Any]:
    return [x, y, label]


@app.method
async def mixed(first: str, *rest: int, flag: bool = False, **extra: Annotated[int, Field(ge=0)]) -> list[Any]:
    return [first, list(rest), flag, extra]


@app.method
async def who(ctx: Context, /, *tags: str) -> list[Any]:
    return [ctx.method, list(tags)]
