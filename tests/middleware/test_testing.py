"""bridge/testing.py: a middleware tested on its own, without a process or a pipe."""

from __future__ import annotations

from typing import Any

import pytest

from bridge import Bridge, BridgeError, Context
from bridge.middleware.ratelimit import RateLimit
from bridge.testing import Harness, request_for

pytestmark = pytest.mark.anyio


def app_with_search() -> Bridge:
    app = Bridge()

    @app.method("db.search")
    async def search(query: str, ctx: Context, limit: int = 10) -> list[str]:
        ctx.notify("db.searched", {"query": query, "by": ctx.participant})
        return [query] * limit

    return app


async def test_a_rate_limit_on_its_own_keeps_a_bucket_per_caller() -> None:
    app = app_with_search()
    limit = RateLimit(1, per=60, key="caller")

    async def call_next(request: Any) -> str:
        return "ran"

    assert await limit(request_for(app, "db.search", {"query": "x"}, caller="alice"), call_next) == "ran"
    with pytest.raises(BridgeError) as refused:
        await limit(request_for(app, "db.search", {"query": "x"}, caller="alice"), call_next)
    assert refused.value.code == -32003
    assert await limit(request_for(app, "db.search", {"query": "x"}, caller="bob"), call_next) == "ran"


async def test_a_request_validates_and_its_context_sends_what_the_host_would() -> None:
    harness = Harness(app_with_search())
    request = harness.request("db.search", ["q", 2], caller={"window": 3})
    assert request.validate() == {"query": "q", "limit": 2} and request.participant == "window:3"
    method = request.method
    assert await method.func(**request.validate(), ctx=request.context) == ["q", "q"]
    assert harness.sent() == [{"jsonrpc": "2.0", "method": "db.searched", "params": {"query": "q", "by": "window:3"}}]
    with pytest.raises(BridgeError) as bad:
        harness.request("db.search", {"limit": "many"}).validate()
    assert bad.value.code == -32602
