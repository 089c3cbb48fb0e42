"""bridge/middleware/cache.py warm-ups: after a miss, declared follow-up calls are computed in
the background, bounded by ``warm_limit``, owned (and cancelled) by the connection, counted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from bridge import Bridge, Context
from bridge.middleware.cache import Cache
from bridge.testing import AsyncTestClient

pytestmark = pytest.mark.anyio


class Docs:
    """An app whose ``doc.list`` warms ``doc.get`` for the ids it lists."""

    def __init__(self, warm_limit: int = 4, follow: int = 1) -> None:
        self.app = app = Bridge("warm-test")
        self.runs: list[str] = []
        self.gates: dict[str, anyio.Event] = {}
        self.cancelled: list[str] = []

        def nth(i: int) -> Any:
            return ("doc.get", lambda kwargs, ids: {"id": ids[i]} if len(ids) > i else None)

        @app.method("doc.list", cache=Cache(warm=[nth(i) for i in range(follow)], warm_limit=warm_limit))
        async def list_(prefix: str) -> list[str]:
            return [f"{prefix}{n}" for n in range(3)]

        @app.method("doc.get", cache=Cache())
        async def get(id: str) -> dict[str, str]:
            self.runs.append(id)
            app.notify("test/started", id)
            try:
                if id in self.gates:
                    await self.gates[id].wait()
            except BaseException:
                self.cancelled.append(id)
                raise
            app.notify("test/got", id)
            return {"id": id, "body": id.upper()}


async def test_a_miss_warms_the_declared_follow_up(tmp_path: Path) -> None:
    docs = Docs()
    async with AsyncTestClient(docs.app, cache_dir=str(tmp_path)) as client:
        assert await client.call("doc.list", ["a"]) == ["a0", "a1", "a2"]
        await client.wait_for_event("test/got", lambda id: id == "a0")
        assert await client.call("doc.get", {"id": "a0"}) == {"id": "a0", "body": "A0"}
        assert await client.call("doc.list", ["a"]) == ["a0", "a1", "a2"]  # a hit: nothing warmed again
        metrics = (await client.metrics())["methods"]
        warm = metrics["doc.list"]["cache"]["warm"]
    assert docs.runs == ["a0"] and metrics["doc.get"]["cache"]["hits"] == 1
    assert warm == {"started": 1, "done": 1, "cached": 0, "skipped": 0, "failed": 0, "running": 0}


async def test_warm_ups_are_bounded_and_a_caller_shares_a_running_one(tmp_path: Path) -> None:
    docs = Docs(warm_limit=1, follow=2)
    docs.gates["b0"] = anyio.Event()
    async with AsyncTestClient(docs.app, cache_dir=str(tmp_path)) as client:
        await client.call("doc.list", ["b"])  # warms b0 (held at its gate); b1 is over the limit
        await client.wait_for_event("test/started", lambda id: id == "b0")
        waiting = client.start("doc.get", {"id": "b0"})  # joins the warm-up's flight
        metrics = (await client.metrics())["methods"]["doc.list"]["cache"]["warm"]
        assert metrics["started"] == 1 and metrics["skipped"] == 1 and metrics["running"] == 1
        docs.gates["b0"].set()
        assert await waiting == {"id": "b0", "body": "B0"}
        assert docs.runs == ["b0"]
        get = (await client.metrics())["methods"]["doc.get"]["cache"]
        assert get["hits"] == 1 and get["misses"] == 0


async def test_warm_ups_end_with_the_connection(tmp_path: Path) -> None:
    docs = Docs()
    docs.gates["c0"] = anyio.Event()  # never set
    async with AsyncTestClient(docs.app, cache_dir=str(tmp_path), shutdown_grace=0.1) as client:
        await client.call("doc.list", ["c"])
        await client.wait_for_event("test/started", lambda id: id == "c0")
    assert docs.cancelled == ["c0"]


async def test_what_is_cached_already_is_not_computed_again(tmp_path: Path) -> None:
    docs = Docs()
    async with AsyncTestClient(docs.app, cache_dir=str(tmp_path)) as client:
        await client.call("doc.get", {"id": "d0"})
        await client.call("doc.list", ["d"])
        while (await client.metrics())["methods"]["doc.list"]["cache"]["warm"]["running"]:
            await client.call("rpc.ping")  # a round trip lets the warm-up's task run
        warm = (await client.metrics())["methods"]["doc.list"]["cache"]["warm"]
    assert docs.runs == ["d0"] and warm["cached"] == 1 and warm["done"] == 0


async def test_params_of_failing_or_declining_is_counted_not_fatal(tmp_path: Path) -> None:
    app = Bridge("warm-fail")

    @app.method("a", cache=Cache(warm=[("b", lambda kwargs, result: 1 / 0), ("b", lambda kwargs, result: None)]))
    async def a() -> int:
        return 1

    @app.method("b", cache=Cache())
    async def b() -> int:
        return 2

    async with AsyncTestClient(app, cache_dir=str(tmp_path)) as client:
        assert await client.call("a") == 1
        warm = (await client.metrics())["methods"]["a"]["cache"]["warm"]
    assert warm["failed"] == 1 and warm["started"] == 0


@pytest.mark.parametrize("target", ["nope", "plain", "mine"])
async def test_a_target_that_cannot_be_warmed_is_refused_at_start(tmp_path: Path, target: str) -> None:
    app = Bridge("warm-bad")

    @app.method("a", cache=Cache(warm=[(target, lambda kwargs, result: {})]))
    async def a() -> int:
        return 1

    @app.method("plain")
    async def plain() -> int:
        return 1

    @app.method("mine", cache=Cache())
    async def mine(ctx: Context) -> str:  # per caller: a warm-up has no caller
        return ctx.participant

    with pytest.raises(ValueError, match=f"warm-up target '{target}'"):
        async with AsyncTestClient(app, cache_dir=str(tmp_path)):
            pass


def test_a_malformed_declaration_is_refused() -> None:
    with pytest.raises(TypeError, match="a warm-up is"):
        Cache(warm=[("b",)])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="warm_limit"):
        Cache(warm_limit=0)
