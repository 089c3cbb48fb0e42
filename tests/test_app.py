"""bridge/app.py: ``Bridge``, registration, app middleware, defaults, notify and invalidate."""

from __future__ import annotations

from typing import Any

import pytest
from harness import exchange, lines

from bridge import Bridge, Request
from bridge.middleware.batch import Batch
from bridge.middleware.cache import Cache
from bridge.middleware.stream import Stream

def test_registration_rules() -> None:
    app = Bridge()

    @app.method("a.b")
    async def first() -> None: ...

    with pytest.raises(ValueError, match="registered twice"):
        app.add_method(first, "a.b")
    with pytest.raises(ValueError, match="reserved"):
        app.add_method(first, "rpc.mine")
    with pytest.raises(TypeError, match=r"batched or streamed handler cannot take \*args"):
        app.add_method(lambda *items: None, "star", batch=Batch())
    @app.method
    async def gen():
        yield 1

    assert app.methods["gen"].kind is not None  # a generator handler streams
    with pytest.raises(TypeError, match="generator"):
        from bridge.middleware.stream import Stream

        app.add_method(lambda: 1, "not_a_generator", stream=Stream())

    @app.method
    async def plain_name() -> None: ...

    assert "plain_name" in app.methods
    assert app.methods["a.b"].description is None


def test_unknown_options_and_conflicting_kinds_are_refused_at_registration() -> None:
    app = Bridge()
    with pytest.raises(TypeError, match="unknown method option.*cahce"):
        app.add_method(lambda: 1, "typo", cahce=Cache())  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="not both"):
        app.add_method(lambda items: items, "both", batch=Batch(), stream=Stream())
    with pytest.raises(ValueError, match="timeout must be positive"):
        app.add_method(lambda: 1, "never", timeout=0)


@pytest.mark.anyio
async def test_app_middleware_runs_outermost_in_the_order_added() -> None:
    app = Bridge()
    seen: list[str] = []

    def tracer(label: str) -> Any:
        async def mw(request: Request, call_next: Any) -> Any:
            seen.append(f"{label}>")
            try:
                return await call_next(request)
            finally:
                seen.append(f"<{label}")
        return mw

    app.add_middleware(tracer("first"))
    app.add_middleware(tracer("second"))

    @app.method(middleware=[tracer("own")])
    async def f() -> int:
        seen.append("handler")
        return 1

    out = await exchange(app, lines({"jsonrpc": "2.0", "id": 1, "method": "f"}))
    assert out == [{"jsonrpc": "2.0", "id": 1, "result": 1}]
    assert seen == ["first>", "second>", "own>", "handler", "<own", "<second", "<first"]


@pytest.mark.anyio
async def test_the_apps_timeout_is_every_methods_default_and_a_method_may_set_its_own() -> None:
    import anyio

    app = Bridge(timeout=0.05)

    @app.method
    async def slow() -> None:
        await anyio.sleep(30)

    @app.method(timeout=30)
    async def patient() -> str:
        await anyio.sleep(0.1)
        return "done"

    out = {r["id"]: r for r in await exchange(app, lines({"jsonrpc": "2.0", "id": 1, "method": "slow"},
                                                         {"jsonrpc": "2.0", "id": 2, "method": "patient"}))}
    assert out[1]["error"]["code"] == -32001
    assert out[2]["result"] == "done"


def test_notify_needs_a_connection() -> None:
    with pytest.raises(RuntimeError, match="not serving"):
        Bridge().notify("event", {})


@pytest.mark.anyio
async def test_invalidate_drops_cached_replies_by_method_name_or_tag(tmp_path: Any) -> None:
    app = Bridge()
    runs = {"a": 0, "b": 0}

    @app.method(cache=Cache(tags=["things"]))
    async def a() -> int:
        runs["a"] += 1
        return runs["a"]

    @app.method(cache=Cache())
    async def b() -> int:
        runs["b"] += 1
        return runs["b"]

    @app.method
    async def forget(target: str) -> None:
        app.invalidate(target)

    def call(id: int, method: str, params: Any = None) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": id, "method": method, **({"params": params} if params else {})}

    out = await exchange(app, lines(call(1, "a"), call(2, "b")), lines(call(3, "a"), call(4, "b")),
                         lines(call(5, "forget", ["things"])), lines(call(6, "a"), call(7, "b")),
                         lines(call(8, "forget", ["b"])), lines(call(9, "a"), call(10, "b")), cache_dir=str(tmp_path))
    results = {r["id"]: r.get("result") for r in out}
    assert [results[i] for i in (1, 3, 6, 9)] == [1, 1, 2, 2]  # the tag dropped a's reply once
    assert [results[i] for i in (2, 4, 7, 10)] == [1, 1, 1, 2]  # the name dropped b's
