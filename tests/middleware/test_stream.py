"""bridge/middleware/stream.py: chunks, progress, credit, errors and cancellation mid-stream."""

from __future__ import annotations

from typing import Any

import anyio
import orjson
import pytest

from bridge import Bridge, Context, Settings
from bridge.connection import Connection
from bridge.middleware.stream import Stream
from harness import MemoryReader, MemoryWriter, exchange, lines

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
    chunks = [m for m in out if m.get("method") == "$/stream"]
    assert len(chunks) == 2 and out[-1]["error"]["code"] == -32603
    assert state["closed"]


async def _run_until(conn: Connection, writer: MemoryWriter, predicate) -> None:
    with anyio.fail_after(5):
        while not predicate([orjson.loads(x) for x in bytes(writer.data).splitlines()]):
            await anyio.sleep(0.001)


async def test_credit_holds_the_generator_back_and_grants_release_it() -> None:
    app, state = stream_app()
    reader = MemoryReader([lines(call(1, "data.export", {"n": 1000, "$meta": {"stream": {"window": 2}}}))],
                          keep_open=True)
    writer = MemoryWriter()
    conn = Connection(app, Settings(ready=False, framing="ndjson"), reader, writer)
    async with anyio.create_task_group() as tg:
        tg.start_soon(conn.run)
        await _run_until(conn, writer, lambda ms: sum(m.get("method") == "$/stream" for m in ms) == 2)
        for _ in range(50):  # every chance to run ahead
            await anyio.sleep(0)
        sent = [m for m in map(orjson.loads, bytes(writer.data).splitlines()) if m.get("method") == "$/stream"]
        assert len(sent) == 2
        assert state["pulled"] <= 300  # two chunks sent and at most the third assembled, no more
        reader.feed(lines({"jsonrpc": "2.0", "method": "$/stream/credit", "params": {"id": 1, "credit": 100}}))
        await _run_until(conn, writer, lambda ms: any(m.get("id") == 1 and "result" in m for m in ms))
        reader.close()
    assert state["pulled"] == 1000


async def test_cancel_mid_stream_closes_the_generator() -> None:
    app, state = stream_app()
    reader = MemoryReader([lines(call(1, "data.export", {"n": 10**6, "$meta": {"stream": {"window": 1}}}))],
                          keep_open=True)
    writer = MemoryWriter()
    conn = Connection(app, Settings(ready=False, framing="ndjson"), reader, writer)
    async with anyio.create_task_group() as tg:
        tg.start_soon(conn.run)
        await _run_until(conn, writer, lambda ms: any(m.get("method") == "$/stream" for m in ms))
        reader.feed(lines({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 1}}))
        await _run_until(conn, writer, lambda ms: any(m.get("id") == 1 and "error" in m for m in ms))
        reader.close()
    reply = [m for m in map(orjson.loads, bytes(writer.data).splitlines()) if m.get("id") == 1 and "error" in m][0]
    assert reply["error"]["code"] == -32800
    assert state["closed"] and state["pulled"] < 1000
    assert len(conn.streams) == 0


async def test_stream_metrics() -> None:
    app, _ = stream_app()
    await exchange(app, lines(call(1, "data.export", {"n": 150}), call(2, "data.export", {"n": 10, "fail_at": 5})))
    out = await exchange(app, lines({"jsonrpc": "2.0", "id": "m", "method": "rpc.metrics"}))
    stream = out[0]["result"]["methods"]["data.export"]["stream"]
    assert stream["streams"] == 2 and stream["chunks"] == 2 and stream["failed"] == 1
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
    reader = MemoryReader(keep_open=True)
    writer = MemoryWriter()
    conn = Connection(app, Settings(ready=False, framing="ndjson"), reader, writer)
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(conn.run)
            for i in range(n):
                reader.feed(lines(call(i, "data.slow", {"n": 100_000})))
                await anyio.sleep(0.002)
                reader.feed(lines({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": i}}))
            while conn.inflight:
                await anyio.sleep(0.01)
            reader.close()
    replies = [orjson.loads(line) for line in bytes(writer.data).splitlines() if b'"error"' in line]
    assert len(replies) == n and {r["error"]["code"] for r in replies} == {-32800}
    assert len(finished) == n
