"""bridge/compat/jsonrpcserver.py: handlers written for jsonrpcserver run unchanged."""

from __future__ import annotations

import pytest

jsonrpcserver = pytest.importorskip("jsonrpcserver")

from harness import exchange, lines
from jsonrpcserver import Error, InvalidParams, Result, Success

from bridge import Bridge
from bridge.compat.jsonrpcserver import include_jsonrpcserver

pytestmark = pytest.mark.anyio


def ping() -> Result:
    return Success("pong")


async def divide(a: int, b: int) -> Result:
    if b == 0:
        return Error(1, "division by zero", {"a": a})
    return Success(a / b)


def strict(x) -> Result:
    return InvalidParams("x is wrong") if x != 1 else Success(x)


async def test_jsonrpcserver_handlers_are_served() -> None:
    app = Bridge()
    include_jsonrpcserver(app, {"ping": ping, "divide": divide, "strict": strict}, prefix="legacy.")
    out = await exchange(app, lines(
        {"jsonrpc": "2.0", "id": 1, "method": "legacy.ping"},
        {"jsonrpc": "2.0", "id": 2, "method": "legacy.divide", "params": [6, 3]},
        {"jsonrpc": "2.0", "id": 3, "method": "legacy.divide", "params": {"a": 1, "b": 0}},
        {"jsonrpc": "2.0", "id": 4, "method": "legacy.divide", "params": {"a": "x", "b": 1}},
        {"jsonrpc": "2.0", "id": 5, "method": "legacy.strict", "params": [2]},
    ))
    by_id = {r["id"]: r for r in out}
    assert by_id[1]["result"] == "pong"
    assert by_id[2]["result"] == 2.0
    assert by_id[3]["error"] == {"code": 1, "message": "division by zero", "data": {"a": 1}}
    assert by_id[4]["error"]["code"] == -32602  # bridge validates from the type hints
    assert by_id[5]["error"] == {"code": -32602, "message": "Invalid params", "data": "x is wrong"}


def test_the_global_registry_is_the_default() -> None:
    from jsonrpcserver import method

    @method(name="bridge_test_compat_only")
    def only() -> Result:
        return Success(1)

    app = Bridge()
    include_jsonrpcserver(app)
    assert "bridge_test_compat_only" in app.methods
