"""bridge/testing.py's clients: an app served in-process, through the real Connection, sync and async."""

from __future__ import annotations

import asyncio
import math
import threading
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge import Bridge, BridgeError, Context, Plugin
from bridge.middleware import Request
from bridge.middleware.cache import Cache
from bridge.middleware.ratelimit import RateLimit
from bridge.middleware.stream import Stream
from bridge.testing import AsyncTestClient, TestClient


def notes_app() -> tuple[Bridge, dict[str, Any]]:
    """An app exercising each part of the pipeline; ``seen`` records what the handlers saw."""
    seen: dict[str, Any] = {"pulled": {}, "closed": [], "cancelled": [], "square": 0, "middleware": [], "log": []}
    app = Bridge("notes-test")

    @app.add_middleware
    async def audit(request: Request, call_next: Any) -> Any:
        seen["middleware"].append((request.name, request.participant))
        return await call_next(request)

    @app.method("math.add")
    async def add(a: int, b: int) -> int:
        return a + b

    @app.method("notes.save")
    def save(title: str, ctx: Context) -> dict[str, Any]:  # sync: runs in a worker thread
        if not title:
            raise BridgeError(4001, "a note needs a title", {"field": "title"})
        for done in (1, 2, 3):
            ctx.progress(done=done, total=3)
        ctx.notify("notes.saved", {"title": title, "by": ctx.participant})
        return {"title": title}

    @app.method("whoami")
    async def whoami(ctx: Context) -> str:
        return ctx.participant

    @app.method("rows", stream=Stream(chunk_size=10))
    async def rows(n: int, ctx: Context, fail_at: int = -1):
        ctx.total = n
        seen["pulled"][ctx.id] = 0
        try:
            for i in range(n):
                if i == fail_at:
                    raise RuntimeError("the source broke")
                seen["pulled"][ctx.id] += 1
                yield i
                await anyio.sleep(0)
        finally:
            seen["closed"].append(ctx.id)

    @app.method("hang")
    async def hang(ctx: Context) -> None:
        ctx.notify("hang.started", {"id": ctx.id})
        try:
            await anyio.sleep_forever()
        except asyncio.CancelledError:
            seen["cancelled"].append((ctx.id, ctx.cancel_code))
            raise

    @app.method("slow")
    async def slow(seconds: float) -> str:
        await anyio.sleep(seconds)
        return "done"

    @app.method("square", cache=Cache(ttl=60))
    async def square(x: int) -> int:
        seen["square"] += 1
        return x * x

    @app.method("scarce", rate_limit=RateLimit(2, per=3600, key="caller"))
    async def scarce() -> str:
        return "ok"

    @app.method("boom")
    async def boom() -> None:
        raise RuntimeError("kaboom")

    @app.method("job.start")
    async def job_start(ticks: int, ctx: Context) -> str:
        async def run() -> None:  # outlives the call: its events come after the reply
            for tick in range(ticks):
                await anyio.sleep(0.001)
                app.notify("job.tick", {"tick": tick})
            app.notify("job.done", {"ticks": ticks})

        ctx.host.start_soon(run())
        return "started"

    @app.method("log.write")
    async def log_write(line: str) -> None:
        seen["log"].append(line)
        app.notify("log.written", {"line": line})

    return app, seen


# ---- sync -------------------------------------------------------------------------------


def test_calls_by_name_and_by_position_through_app_middleware() -> None:
    app, seen = notes_app()
    with TestClient(app) as client:
        assert client.call("math.add", {"a": 1, "b": 2}) == 3
        assert client.call("math.add", [40, 2]) == 42
    assert [name for name, _ in seen["middleware"]] == ["math.add", "math.add"]


def test_an_error_reply_raises_bridge_error_with_code_message_and_data() -> None:
    app, _ = notes_app()
    with TestClient(app) as client:
        with pytest.raises(BridgeError) as app_error:
            client.call("notes.save", {"title": ""})
        assert (app_error.value.code, app_error.value.message, app_error.value.data) == (
            4001, "a note needs a title", {"field": "title"})
        with pytest.raises(BridgeError) as invalid:
            client.call("math.add", {"a": "one"})
        assert invalid.value.code == -32602
        assert {tuple(e["loc"]) for e in invalid.value.data["errors"]} == {("a",), ("b",)}
        with pytest.raises(BridgeError) as missing:
            client.call("no.such")
        assert missing.value.code == -32601 and missing.value.data == {"method": "no.such"}


def test_the_caller_reaches_ctx_participant_and_the_middleware() -> None:
    app, seen = notes_app()
    with TestClient(app, caller={"window": 3}) as client:
        assert client.call("whoami") == "window:3"  # the client's caller, as the top-level $caller
        assert client.call("whoami", caller="alice") == "alice"  # one call's own
        assert client.call("whoami", caller=None).startswith("connection:")  # none declared
        client.call("notes.save", {"title": "t"})
        assert client.wait_for_event("notes.saved") == {"title": "t", "by": "window:3"}
    assert seen["middleware"][0] == ("whoami", "window:3") and seen["middleware"][1] == ("whoami", "alice")


def test_progress_is_collected_per_call_and_events_in_order() -> None:
    app, _ = notes_app()
    with TestClient(app) as client:
        call = client.start("notes.save", {"title": "a"})
        assert call.result() == {"title": "a"}
        assert call.progress == [{"done": 1, "total": 3}, {"done": 2, "total": 3}, {"done": 3, "total": 3}]
        tokened = client.start("notes.save", {"title": "b"}, meta={"progressToken": "tok"})
        tokened.result()
        assert len(tokened.progress) == 3 and len(call.progress) == 3  # each call its own
        assert [e.params["token"] for e in client.events if e.method == "$/progress"] == [call.id] * 3 + ["tok"] * 3
        assert [e.params["title"] for e in client.events if e.method == "notes.saved"] == ["a", "b"]


def test_events_sent_after_the_reply_are_waited_for_without_sleeping() -> None:
    app, _ = notes_app()
    with TestClient(app) as client:
        assert client.call("job.start", {"ticks": 5}) == "started"
        assert client.wait_for_event("job.done") == {"ticks": 5}
        assert client.wait_for_event("job.tick", lambda p: p["tick"] == 4) == {"tick": 4}
        client.events.clear()
        client.call("job.start", {"ticks": 3})
        ticks = client.wait_until(lambda: [e for e in client.events if e.method == "job.tick"][2:])
        assert ticks[0].params == {"tick": 2}


def test_a_notification_reaches_its_handler() -> None:
    app, seen = notes_app()
    with TestClient(app) as client:
        client.notify("log.write", {"line": "hello"})
        assert client.wait_for_event("log.written") == {"line": "hello"}
    assert seen["log"] == ["hello"]


def test_a_stream_is_iterated_item_by_item_and_ends_with_its_reply() -> None:
    app, seen = notes_app()
    with TestClient(app) as client:
        stream = client.stream("rows", {"n": 25})
        assert list(stream) == list(range(25))
        assert stream.result == {"items": 25, "chunks": 3}
        assert stream.chunk == {"id": stream.call.id, "seq": 2, "done": 25, "total": 25}
        positional = client.stream("rows", [5])  # not paced: positional params carry no $meta
        assert list(positional) == [0, 1, 2, 3, 4] and positional.result == {"items": 5, "chunks": 1}
        assert not [e for e in client.events if e.method == "$/stream"]  # they went to their streams


def test_an_error_mid_stream_follows_the_items_sent_before_it() -> None:
    app, seen = notes_app()
    with TestClient(app) as client:
        got = []
        with pytest.raises(BridgeError) as broke:
            for item in client.stream("rows", {"n": 100, "fail_at": 35}):
                got.append(item)
        assert broke.value.code == -32603
        assert got == list(range(len(got))) and 30 <= len(got) <= 35  # at least the three whole chunks
    assert len(seen["closed"]) == 1


def test_leaving_a_stream_early_cancels_it_and_closes_the_generator() -> None:
    app, seen = notes_app()
    with TestClient(app) as client:
        with client.stream("rows", {"n": 10**6}, window=1) as stream:
            assert next(stream) == 0
        assert stream.call.done and stream.call.reply["error"]["code"] == -32800
        assert seen["closed"] == [stream.call.id] and seen["pulled"][stream.call.id] < 100
        assert len(client.connection.streams) == 0


def test_cancel_answers_minus_32800_and_cancels_the_handler() -> None:
    app, seen = notes_app()
    with TestClient(app) as client:
        call = client.start("hang")
        client.wait_for_event("hang.started")
        call.cancel()
        with pytest.raises(BridgeError) as cancelled:
            call.result()
        assert cancelled.value.code == -32800
        assert seen["cancelled"] == [(call.id, -32800)]


def test_a_cache_hit_is_visible_and_the_cache_lives_in_a_temporary_directory() -> None:
    app, seen = notes_app()
    with TestClient(app) as client:
        first = client.start("square", {"x": 7}, meta={"info": True})
        assert first.result() == 49 and first.meta["cached"] is False
        second = client.start("square", {"x": 7}, meta={"info": True})
        assert second.result() == 49 and second.meta["cached"] is True
        assert client.call("square", [7]) == 49  # by position: the same key
        assert seen["square"] == 1
        assert client.metrics()["methods"]["square"]["cache"] == {"hits": 2, "misses": 1, "hitRate": 0.6667}
        directory = client.connection.cache.directory
        assert directory.exists()
    assert not directory.exists()
    again, seen_again = notes_app()  # a later test starts cold: nothing kept from this one
    with TestClient(again) as client:
        assert client.call("square", [7]) == 49 and seen_again["square"] == 1


def test_a_rate_limit_refuses_a_caller_over_its_share() -> None:
    app, _ = notes_app()
    with TestClient(app, caller="alice") as client:
        assert [client.call("scarce"), client.call("scarce")] == ["ok", "ok"]
        with pytest.raises(BridgeError) as refused:
            client.call("scarce")
        assert refused.value.code == -32003 and refused.value.data["retry_after"] > 0
        assert client.call("scarce", caller="bob") == "ok"  # a bucket per caller


def lifespan_app(order: list[str]) -> tuple[Bridge, Plugin]:
    @asynccontextmanager
    async def app_lifespan(app: Bridge):
        order.append("enter app")
        yield {"greeting": "hello"}
        order.append("leave app")

    @asynccontextmanager
    async def counter_lifespan(plugin: Plugin):
        order.append("enter counter")
        yield {"n": 0}
        order.append("leave counter")

    app = Bridge("lifespans", lifespan=app_lifespan)
    counter = Plugin("counter", lifespan=counter_lifespan)

    @app.method
    async def greeting() -> str:
        return app.state["greeting"]

    @app.method
    async def slow(seconds: float) -> str:
        await anyio.sleep(seconds)
        return "done"

    @counter.method
    def bump() -> int:
        counter.state["n"] += 1
        return counter.state["n"]

    app.on_startup(lambda: order.append("startup"))
    app.on_shutdown(lambda: order.append("shutdown"))
    app.include(counter)
    return app, counter


def test_lifespans_and_hooks_are_entered_on_with_and_left_on_leaving() -> None:
    order: list[str] = []
    app, counter = lifespan_app(order)
    with TestClient(app) as client:
        assert order == ["startup", "enter app", "enter counter"]
        assert client.call("greeting") == "hello"
        assert [client.call("counter.bump") for _ in range(3)] == [1, 2, 3]
        slow = client.start("slow", [0.05])
    assert order == ["startup", "enter app", "enter counter", "shutdown", "leave counter", "leave app"]
    assert slow.reply["result"] == "done"  # a call in flight finished first, as on EOF
    assert app.state is None and counter.state is None


def test_an_app_that_fails_to_start_raises_from_with() -> None:
    @asynccontextmanager
    async def broken(app: Bridge):
        raise RuntimeError("no database")
        yield

    with pytest.raises(RuntimeError, match="no database"):
        with TestClient(Bridge(lifespan=broken)):
            pytest.fail("the body must not run")


def test_settings_overrides_reach_the_host() -> None:
    app, _ = notes_app()
    with TestClient(app) as client:
        with pytest.raises(BridgeError) as plain:
            client.call("boom")
        assert plain.value.message == "Internal error" and "traceback" not in plain.value.data
    with TestClient(app, debug=True, max_inflight=8) as client:
        with pytest.raises(BridgeError) as debug:
            client.call("boom")
        assert debug.value.message == "Internal error: RuntimeError: kaboom" and debug.value.data["traceback"]
        assert client.metrics()["admission"]["maxInflight"] == 8
    with pytest.raises(TypeError):
        TestClient(app, no_such_setting=1)
    with pytest.raises(ValueError, match="max_inflight"):
        TestClient(app, max_inflight=0)


def test_a_call_with_no_reply_times_out_and_is_cancelled_on_the_host() -> None:
    app, seen = notes_app()
    with TestClient(app, timeout=0.2) as client:
        with pytest.raises(TimeoutError, match="no reply to hang"):
            client.call("hang")
        client.wait_until(lambda: seen["cancelled"], timeout=5)
        with pytest.raises(TimeoutError, match="no never.sent event"):
            client.wait_for_event("never.sent")
    assert seen["cancelled"][0][1] == -32800


def test_the_test_bodys_error_goes_up_as_it_is() -> None:
    order: list[str] = []
    app, _ = lifespan_app(order)
    with pytest.raises(KeyError):
        with TestClient(app) as client:
            slow = client.start("slow", [60])
            raise KeyError("the test failed")
    assert slow.reply["error"]["code"] == -32802  # cancelled at once rather than waited for
    assert order[-2:] == ["leave counter", "leave app"]


def test_misuse_is_a_clear_error() -> None:
    app, _ = notes_app()
    client = TestClient(app)
    with pytest.raises(RuntimeError, match="not open"):
        client.call("math.add", [1, 2])
    with client:
        with pytest.raises(TypeError, match="params"):
            client.call("math.add", "1, 2")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="meta needs params by name"):
            client.call("math.add", [1, 2], meta={"info": True})
        with pytest.raises(TypeError, match="method"):
            client.call(3)  # type: ignore[arg-type]
    with client:  # and it may be opened again
        assert client.call("math.add", [1, 2]) == 3


def test_sync_handlers_run_in_worker_threads_off_the_test_thread() -> None:
    app = Bridge()

    @app.method
    def thread() -> int:
        return threading.get_ident()

    with TestClient(app) as client:
        assert client.call("thread") not in (threading.get_ident(), client.connection.loop_thread)


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_named_and_positional_params_agree_and_streams_are_paced(data) -> None:
    app, seen = notes_app()
    with TestClient(app) as client:
        for _ in range(3):
            a, b = data.draw(st.integers(-2**62, 2**62)), data.draw(st.integers(-2**62, 2**62))
            assert client.call("math.add", {"b": b, "a": a}) == client.call("math.add", [a, b]) == a + b
        n, window = data.draw(st.integers(0, 200)), data.draw(st.integers(1, 4))
        stream = client.stream("rows", {"n": n}, window=window)
        for i, item in enumerate(stream):
            assert item == i
            # sent: at most the window plus one credit per chunk taken; one more may be assembled
            assert seen["pulled"][stream.call.id] <= (window + i // 10 + 2) * 10
        assert stream.result == {"items": n, "chunks": math.ceil(n / 10)}


# ---- async ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_async_calls_errors_and_the_caller() -> None:
    app, _ = notes_app()
    async with AsyncTestClient(app, caller={"participant": "p1"}) as client:
        assert await client.call("math.add", [1, 2]) == 3
        assert await client.call("whoami") == "p1"
        with pytest.raises(BridgeError) as error:
            await client.call("notes.save", {"title": ""})
        assert error.value.code == 4001 and error.value.data == {"field": "title"}
        assert (await client.metrics())["methods"]["notes.save"]["calls"] == 1


@pytest.mark.anyio
async def test_async_progress_events_and_cancel() -> None:
    app, seen = notes_app()
    async with AsyncTestClient(app) as client:
        call = client.start("notes.save", {"title": "x"})
        assert await call == {"title": "x"} and [p["done"] for p in call.progress] == [1, 2, 3]
        hanging = client.start("hang")
        assert (await client.wait_for_event("hang.started"))["id"] == hanging.id
        hanging.cancel()
        with pytest.raises(BridgeError) as cancelled:
            await hanging
        assert cancelled.value.code == -32800 and seen["cancelled"] == [(hanging.id, -32800)]


@pytest.mark.anyio
async def test_async_streams_pace_and_close() -> None:
    app, seen = notes_app()
    async with AsyncTestClient(app) as client:
        stream = client.stream("rows", {"n": 500}, window=2)
        await client.wait_until(lambda: stream.buffered == 2)
        for _ in range(50):  # every chance to run ahead of its credit
            await anyio.sleep(0)
        assert stream.buffered == 2 and seen["pulled"][stream.call.id] <= 30
        assert [item async for item in stream] == list(range(500))
        async with client.stream("rows", {"n": 10**6}) as early:
            assert await early.__anext__() == 0
        assert early.call.reply["error"]["code"] == -32800 and early.call.id in seen["closed"]


@pytest.mark.anyio
async def test_async_lifespans() -> None:
    order: list[str] = []
    app, _ = lifespan_app(order)
    async with AsyncTestClient(app) as client:
        assert await client.call("greeting") == "hello"
        assert await client.call("counter.bump") == 1
    assert order == ["startup", "enter app", "enter counter", "shutdown", "leave counter", "leave app"]


def test_the_audit_log_stays_out_of_the_users_data_directory() -> None:
    app = Bridge("audit-test")

    @app.method
    async def sensitive(ctx: Context) -> None:
        ctx.app.audit.record("sensitive.done", participant=ctx.participant)

    with TestClient(app, caller="alice") as client:
        client.call("sensitive")
        [entry] = app.audit.recent()
        assert entry["event"] == "sensitive.done" and entry["participant"] == "alice"
        path = app.audit.path
        assert path is not None and path.exists() and path.parent == Path(client.connection.settings.audit_dir)
    assert not path.exists() and not app.audit.enabled
