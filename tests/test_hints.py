"""Common mistakes get a hint: a coroutine returned unawaited, a result its annotation does not
describe (debug mode), bytes results (base64), a generator that raises before a full chunk."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from harness import exchange, lines

from bridge import Bridge, Context
from bridge.middleware.stream import Stream

pytestmark = pytest.mark.anyio


def call(id: Any, method: str, params: Any = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id, "method": method, **({"params": params} if params is not None else {})}


async def fetch() -> int:
    await asyncio.sleep(0)
    return 1


async def test_a_coroutine_returned_unawaited_is_named_with_a_hint() -> None:
    app = Bridge()

    @app.method
    async def forgot() -> int:
        return fetch()  # type: ignore[return-value]

    @app.method
    def sync_forgot() -> int:
        return fetch()  # type: ignore[return-value]

    out = {r["id"]: r for r in await exchange(app, lines(call(1, "forgot"), call(2, "sync_forgot")))}
    for id in (1, 2):
        error = out[id]["error"]
        assert error["code"] == -32603
        assert "coroutine fetch() unawaited: did you forget `await`?" in error["message"]


async def test_debug_mode_warns_once_when_a_result_does_not_match_its_annotation(caplog: pytest.LogCaptureFixture) -> None:
    app = Bridge()

    @app.method
    async def count() -> int:
        return "many"  # type: ignore[return-value]

    @app.method
    async def fine() -> list[int]:
        return [1, 2]

    with caplog.at_level(logging.WARNING, logger="bridge"):
        out = await exchange(app, lines(call(1, "count"), call(2, "count"), call(3, "fine")), debug=True)
    assert {r["id"]: r["result"] for r in out} == {1: "many", 2: "many", 3: [1, 2]}  # the reply goes out as it is
    warnings = [r.getMessage() for r in caplog.records if "does not describe" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("count returned a result its annotation")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bridge"):
        await exchange(Bridge(), lines(call(1, "rpc.ping")))
    assert not [r for r in caplog.records if "does not describe" in r.getMessage()]


async def test_bytes_results_go_out_as_base64() -> None:
    app = Bridge()
    raw = bytes(range(256))

    @app.method
    async def blob() -> bytes:
        return raw

    @app.method
    async def blobs() -> dict[str, Any]:
        return {"parts": [raw[:3], b"\xff"]}

    out = {r["id"]: r["result"] for r in await exchange(app, lines(call(1, "blob"), call(2, "blobs")))}
    assert base64.b64decode(out[1]) == raw
    assert [base64.b64decode(p) for p in out[2]["parts"]] == [raw[:3], b"\xff"]


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_generator_that_raises_still_sends_what_it_yielded_first(kind: str) -> None:
    app = Bridge()

    if kind == "sync":
        @app.method("rows", stream=Stream(chunk_size=100))
        def rows_sync(ctx: Context) -> Iterator[int]:
            yield 1
            yield 2
            raise ValueError("the source broke")
    else:
        @app.method("rows", stream=Stream(chunk_size=100))
        async def rows_async(ctx: Context) -> AsyncIterator[int]:
            yield 1
            yield 2
            raise ValueError("the source broke")

    out = await exchange(app, lines(call(1, "rows")))
    chunks = [m["params"] for m in out if m.get("method") == "$/stream"]
    assert chunks == [{"id": 1, "seq": 0, "items": [1, 2], "done": 2}]
    reply = next(m for m in out if m.get("id") == 1)
    assert reply["error"]["code"] == -32603
    assert out.index(reply) > out.index(next(m for m in out if m.get("method") == "$/stream"))
