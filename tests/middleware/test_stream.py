"""bridge/middleware/stream.py: chunks, progress, credit, errors and cancellation mid-stream."""

from __future__ import annotations

from typing import Any

import anyio
import orjson
import pytest

from bridge import Bridge, BridgeError, Context
from bridge.middleware.stream import Stream
from bridge.testing import AsyncTestClient
from harness import exchange, lines

pytestmark = pytest.mark.anyio


def stream_app() -> tuple[Bridge, dict[str, Any]]:
    app = Bridge()
    state: dict[str, Any] = {"pulled": 0, "closed": False}

    @app.method("data.export", stream=Stream(chunk_size=100))
    async def export(n: int, ctx: Context, fail_at: int = -1):
        ctx.total = n
        try:
            for i in range(n):
                if i == fail_at:
                    raise RuntimeError("the source broke")
                state["pulled"] += 1
                yield {"row": i}
                await anyio.sleep(0)
        finally:
            state["closed"] = True

    @app.method("data.lines", stream=Stream(chunk_size=1000, chunk_bytes=64))
    def lines_of(text: str):
        yield from text.split()

    return app, state


def call(id: Any, method: str, params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id, "method": method, "params": params}


async def test_chunks_progress_and_the_closing_reply() -> None:
    app, state = stream_app()
    out = await exchange(app, lines(call(7, "data.export", {"n": 250})))
    chunks, reply = out[:-1], out[-1]
    assert [c["method"] for c in chunks] == ["$/stream"] * 3
    assert [(c["params"]["seq"], c["params"]["done"], c["params"]["total"]) for c in chunks] == [
        (0, 100, 250), (1, 200, 250), (2, 250, 250)]
    assert all(c["params"]["id"] == 7 for c in chunks)
    assert [item["row"] for c in chunks for item in c["params"]["items"]] == list(range(250))
    assert reply == {"jsonrpc": "2.0", "id": 7, "result": {"items": 250, "chunks": 3}}
    assert state["closed"]


async def test_sync_generators_and_byte_sized_chunks() -> None:
    app, _ = stream_app()
    words = " ".join(f"word{i:03d}" for i in range(40))
    out = await exchange(app, lines(call(1, "data.lines", {"text": words})))
    chunks = [m["params"]["items"] for m in out if m.get("method") == "$/stream"]
    assert [w for c in chunks for w in c] == words.split()
    assert all(len(orjson.dumps(c)) <= 64 + 20 for c in chunks) and len(chunks) > 5


async def test_an_error_mid_stream_follows_the_chunks_already_sent() -> None:
    app, state = stream_app()
    out = await exchange(app, lines(call(1, "data.export", {"n": 500, "fail_at": 230})))
    chunks = [m["params"] for m in out if m.get("method") == "$/stream"]
    assert [c["done"] for c in chunks] == [100, 200, 230]  # the partial chunk goes out before the error
    assert out[-1]["error"]["code"] == -32603
    assert state["closed"]


async def test_credit_holds_the_generator_back_and_grants_release_it() -> None:
    app, state = stream_app()
    async with AsyncTestClient(app) as client:
        stream = client.stream("data.export", {"n": 1000}, window=2)
        await client.wait_until(lambda: stream.buffered == 2)
        for _ in range(50):  # every chance to run ahead
            await anyio.sleep(0)
        assert stream.buffered == 2  # two chunks sent, none taken: no credit for a third
        assert state["pulled"] <= 300  # two chunks sent and at most the third assembled, no more
        rows = [item["row"] async for item in stream]  # each chunk taken grants one credit
    assert rows == list(range(1000)) and stream.result == {"items": 1000, "chunks": 10}
    assert state["pulled"] == 1000


async def test_cancel_mid_stream_closes_the_generator() -> None:
    app, state = stream_app()
    async with AsyncTestClient(app) as client:
        stream = client.stream("data.export", {"n": 10**6}, window=1)
        assert await stream.__anext__() == {"row": 0}
        stream.call.cancel()
        with pytest.raises(BridgeError) as cancelled:
            async for _ in stream:
                pass
        assert cancelled.value.code == -32800
        assert state["closed"] and state["pulled"] < 1000
        assert len(client.connection.streams) == 0


async def test_stream_metrics() -> None:
    app, _ = stream_app()
    await exchange(app, lines(call(1, "data.export", {"n": 150}), call(2, "data.export", {"n": 10, "fail_at": 5})))
    out = await exchange(app, lines({"jsonrpc": "2.0", "id": "m", "method": "rpc.metrics"}))
    stream = out[0]["result"]["methods"]["data.export"]["stream"]
    assert stream["streams"] == 2 and stream["chunks"] == 3 and stream["failed"] == 1  # 2 + the 5 items before the error
    assert stream["bytes"] > 150 * len('{"row":100}')


async def test_cancelling_sync_generators_mid_step_answers_cancelled_and_closes_each_once() -> None:
    """A cancel landing while a worker ran the generator's ``next()`` closed it mid-step: -32603
    "generator already executing" instead of -32800 (8 of 1,000 here), and ``finally`` skipped."""
    import time

    app = Bridge()
    finished: list[int] = []

    @app.method("data.slow", stream=Stream(chunk_size=1))
    def slow(n: int):
        try:
            for i in range(n):
                time.sleep(0.0005)  # most of the time is spent inside next()
                yield i
        finally:
            finished.append(1)

    n = 1000
    codes = []
    async with AsyncTestClient(app, timeout=60) as client:
        calls = []
        for _ in range(n):
            calls.append(call := client.start("data.slow", {"n": 100_000}))
            await anyio.sleep(0.002)
            call.cancel()
        for call in calls:
            with pytest.raises(BridgeError) as cancelled:
                await call
            codes.append(cancelled.value.code)
    assert len(codes) == n and set(codes) == {-32800}
    assert len(finished) == n
