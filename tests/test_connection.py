"""bridge/connection.py in-process: the JSON-RPC 2.0 spec's examples and the dispatch rules."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import orjson
import pytest
from e2e_app import spec_app
from harness import MemoryReader, MemoryWriter, exchange, lines
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge import Bridge, Context, Settings
from bridge.connection import Connection

pytestmark = pytest.mark.anyio


def strip(reply: dict[str, Any]) -> dict[str, Any]:
    """The reply as the spec shows it (bridge adds detail in error.data)."""
    if "error" in reply:
        reply = {**reply, "error": {k: v for k, v in reply["error"].items() if k != "data"}}
    return reply


SPEC = [
    ('{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}',
     {"jsonrpc": "2.0", "result": 19, "id": 1}),
    ('{"jsonrpc": "2.0", "method": "subtract", "params": [23, 42], "id": 2}',
     {"jsonrpc": "2.0", "result": -19, "id": 2}),
    ('{"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, "minuend": 42}, "id": 3}',
     {"jsonrpc": "2.0", "result": 19, "id": 3}),
    ('{"jsonrpc": "2.0", "method": "subtract", "params": {"minuend": 42, "subtrahend": 23}, "id": 4}',
     {"jsonrpc": "2.0", "result": 19, "id": 4}),
    ('{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}', None),
    ('{"jsonrpc": "2.0", "method": "foobar"}', None),
    ('{"jsonrpc": "2.0", "method": "foobar", "id": "1"}',
     {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "1"}),
    ('{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]',
     {"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": None}),
    ('{"jsonrpc": "2.0", "method": 1, "params": "bar"}',
     {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": None}),
    ('[{"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"}, {"jsonrpc": "2.0", "method"]',
     {"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": None}),
    ("[]", {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": None}),
    ("[1]", [{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": None}]),
    ("[1,2,3]", [{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": None}] * 3),
    ("""[
        {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
        {"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"},
        {"foo": "boo"},
        {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
        {"jsonrpc": "2.0", "method": "get_data", "id": "9"}
    ]""".replace("\n", " "),
     [
         {"jsonrpc": "2.0", "result": 7, "id": "1"},
         {"jsonrpc": "2.0", "result": 19, "id": "2"},
         {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": None},
         {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "5"},
         {"jsonrpc": "2.0", "result": ["hello", 5], "id": "9"},
     ]),
    ('[{"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]}, {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}]',
     None),
]


def canonical(reply: Any) -> Any:
    if isinstance(reply, list):
        return sorted(orjson.dumps(strip(r), option=orjson.OPT_SORT_KEYS) for r in reply)
    return strip(reply)


@pytest.mark.parametrize("request_text,expected", SPEC)
async def test_spec_examples(request_text: str, expected: Any) -> None:
    out = await exchange(spec_app(), request_text.encode() + b"\n")
    if expected is None:
        assert out == []
    else:
        assert len(out) == 1
        assert canonical(out[0]) == canonical(expected)


async def test_ids_are_echoed_exactly() -> None:
    ids = ["abc", "", 0, -7, 2**60, 1.5, None, "1"]
    out = await exchange(spec_app(), lines(*[
        {"jsonrpc": "2.0", "id": i, "method": "subtract", "params": [3, 1]} for i in ids
    ]))
    assert sorted(map(orjson.dumps, (r["id"] for r in out))) == sorted(map(orjson.dumps, ids))
    assert all(r["result"] == 2 for r in out)


@pytest.mark.parametrize("bad", [
    {"jsonrpc": "2.0", "id": True, "method": "get_data"},
    {"jsonrpc": "2.0", "id": [1], "method": "get_data"},
    {"jsonrpc": "2.0", "id": {"a": 1}, "method": "get_data"},
])
async def test_bad_ids_get_invalid_request_with_null_id(bad) -> None:
    [reply] = await exchange(spec_app(), lines(bad))
    assert reply["id"] is None and reply["error"]["code"] == -32600


@pytest.mark.parametrize("bad,reason", [
    ({"jsonrpc": "1.0", "id": 1, "method": "get_data"}, "version"),
    ({"id": 1, "method": "get_data"}, "no version"),
    ({"jsonrpc": "2.0", "id": 1, "method": "get_data", "params": 3}, "scalar params"),
    ({"jsonrpc": "2.0", "id": 1, "method": "get_data", "params": "x"}, "string params"),
    ({"jsonrpc": "2.0", "id": 1}, "no method"),
])
async def test_invalid_requests_keep_their_id(bad, reason) -> None:
    [reply] = await exchange(spec_app(), lines(bad))
    assert reply == {"jsonrpc": "2.0", "id": 1, "error": reply["error"]}
    assert reply["error"]["code"] == -32600, reason


async def test_responses_from_the_client_are_not_answered() -> None:
    out = await exchange(spec_app(), lines({"jsonrpc": "2.0", "id": 5, "result": 1}, {"jsonrpc": "2.0", "id": 6, "error": {"code": 1, "message": "x"}}))
    assert out == []


async def test_notifications_never_get_replies_even_on_error() -> None:
    out = await exchange(spec_app(), lines(
        {"jsonrpc": "2.0", "method": "subtract", "params": {"minuend": "x"}},
        {"jsonrpc": "2.0", "method": "nope"},
        {"jsonrpc": "2.0", "method": "$/whatever", "params": {}},
        {"jsonrpc": "2.0", "method": "subtract", "params": [1, 2, 3]},
    ))
    assert out == []


async def test_batch_too_large_is_rejected_whole() -> None:
    batch = [{"jsonrpc": "2.0", "id": i, "method": "get_data"} for i in range(5)]
    [reply] = await exchange(spec_app(), lines(batch), max_batch=4)
    assert reply["error"]["code"] == -32600 and reply["error"]["data"]["limit"] == 4


# ---- property: any mix of entries in a batch gets exactly the right replies ----

entries = st.one_of(
    st.builds(lambda i: ("ok", {"jsonrpc": "2.0", "id": i, "method": "subtract", "params": [i, 1]}), st.integers(0, 10**6)),
    st.builds(lambda i: ("note", {"jsonrpc": "2.0", "method": "subtract", "params": [i, 1]}), st.integers(-(2**62), 2**62)),
    st.builds(lambda i: ("missing", {"jsonrpc": "2.0", "id": f"m{i}", "method": "nope"}), st.integers(0, 10**6)),
    st.builds(lambda i: ("badparams", {"jsonrpc": "2.0", "id": f"p{i}", "method": "subtract", "params": {"minuend": "x"}}), st.integers(0, 10**6)),
    st.builds(lambda v: ("invalid", v), st.one_of(st.integers(-(2**62), 2**62), st.text(), st.none(), st.just({"foo": 1}), st.lists(st.integers(-(2**62), 2**62), max_size=2))),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(entries, min_size=1, max_size=25))
def test_any_batch_gets_exactly_the_right_replies(batch) -> None:
    async def main() -> list[Any]:
        return await exchange(spec_app(), lines([entry for _, entry in batch]))

    out = anyio.run(main)
    expected = [(kind, entry) for kind, entry in batch if kind != "note"]
    if not expected:
        assert out == []
        return
    [replies] = out
    assert len(replies) == len(expected)
    by_kind: dict[str, int] = {}
    for kind, _ in expected:
        by_kind[kind] = by_kind.get(kind, 0) + 1
    codes = [r.get("error", {}).get("code") for r in replies]
    assert codes.count(None) == by_kind.get("ok", 0)
    assert codes.count(-32601) == by_kind.get("missing", 0)
    assert codes.count(-32602) == by_kind.get("badparams", 0)
    assert codes.count(-32600) == by_kind.get("invalid", 0)
    for kind, entry in expected:
        if kind == "ok":
            assert {"jsonrpc": "2.0", "id": entry["id"], "result": entry["params"][0] - 1} in replies


# ---- cancellation, timeouts, in-flight bound ----

def slow_app(started: anyio.Event | None = None) -> Bridge:
    app = Bridge()

    @app.method
    async def wait(ctx: Context) -> str:
        if started is not None:
            started.set()
        await anyio.sleep_forever()
        return "never"

    @app.method(timeout=0.05)
    async def too_slow() -> None:
        await anyio.sleep_forever()

    return app


async def test_cancel_request_cancels_the_handler() -> None:
    started = anyio.Event()
    writer = MemoryWriter()
    reader = MemoryReader([lines({"jsonrpc": "2.0", "id": "w", "method": "wait"})], keep_open=True)
    conn = Connection(slow_app(started), Settings(ready=False, framing="ndjson"), reader, writer)
    async with anyio.create_task_group() as tg:
        tg.start_soon(conn.run)
        await started.wait()
        reader.feed(lines({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": "w"}}))
        reader.close()
    [reply] = [orjson.loads(x) for x in bytes(writer.data).splitlines()]
    assert reply["id"] == "w" and reply["error"]["code"] == -32800


async def test_timeout_has_its_own_code() -> None:
    [reply] = await exchange(slow_app(), lines({"jsonrpc": "2.0", "id": 1, "method": "too_slow"}))
    assert reply["error"]["code"] == -32001
    assert reply["error"]["data"] == {"timeout": 0.05}


async def test_shutdown_cancels_what_outlives_the_grace_period() -> None:
    [reply] = await exchange(slow_app(), lines({"jsonrpc": "2.0", "id": 1, "method": "wait"}), shutdown_grace=0.01)
    assert reply["error"]["code"] == -32802


async def test_calls_past_the_bound_wait_but_input_is_read() -> None:
    app = Bridge()
    gate = anyio.Event()
    running = 0
    peak = 0

    @app.method
    async def block() -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await gate.wait()
        running -= 1
        return 1

    chunks = [lines({"jsonrpc": "2.0", "id": i, "method": "block"}) for i in range(10)]
    reader = MemoryReader(chunks)
    writer = MemoryWriter()
    settings = Settings(ready=False, framing="ndjson", max_inflight=3, max_inflight_per_caller=3)
    conn = Connection(app, settings, reader, writer)
    async with anyio.create_task_group() as tg:
        tg.start_soon(conn.run)
        while running < 3 or reader.pending():
            await anyio.lowlevel.checkpoint()
        for _ in range(20):  # give the host every chance to overrun the bound
            await anyio.lowlevel.checkpoint()
        assert running == 3  # the other 7 were read (cancels behind them would be seen) and wait
        gate.set()
    assert peak == 3
    assert len(bytes(writer.data).splitlines()) == 10


async def test_ready_is_sent_first_once_framing_is_known() -> None:
    out = await exchange(spec_app(), lines({"jsonrpc": "2.0", "id": 1, "method": "get_data"}), ready=True, framing="auto")
    assert out[0]["method"] == "$/ready" and out[0]["params"]["framing"] == "ndjson"
    assert out[1]["result"] == ["hello", 5]


async def test_lsp_framing_replies_in_kind() -> None:
    from bridge.framing import encode_lsp

    writer = MemoryWriter()
    body = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "get_data"})
    conn = Connection(spec_app(), Settings(ready=False), MemoryReader([encode_lsp(body)]), writer)
    await conn.run()
    assert bytes(writer.data) == encode_lsp(b'{"jsonrpc":"2.0","id":1,"result":["hello",5]}')


async def test_writes_carry_whole_frames_and_coalesce() -> None:
    app = Bridge()

    @app.method
    async def chatty(ctx: Context) -> int:
        for i in range(50):
            ctx.notify("tick", {"i": i})
            await anyio.lowlevel.checkpoint()
        return 1

    writer = MemoryWriter()
    reqs = lines(*[{"jsonrpc": "2.0", "id": i, "method": "chatty"} for i in range(5)])
    conn = Connection(app, Settings(ready=False, framing="ndjson"), MemoryReader([reqs]), writer)
    await conn.run()
    messages = 5 * 50 + 5
    assert len(bytes(writer.data).splitlines()) == messages
    for chunk in writer.chunks:  # every write ends on a frame boundary
        assert chunk.endswith(b"\n")
        assert all(orjson.loads(line) for line in chunk.splitlines())
    assert len(writer.chunks) < messages / 4  # one write per loop turn, not per message


async def test_cancel_in_the_same_read_as_its_request() -> None:
    chunk = lines(
        {"jsonrpc": "2.0", "id": 1, "method": "wait"},
        {"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 1}},
    )
    [reply] = await exchange(slow_app(), chunk)
    assert reply["id"] == 1 and reply["error"]["code"] == -32800


async def test_nothing_is_left_behind() -> None:
    app = slow_app()

    @app.method
    def sync_ok(x: int) -> int:
        return x

    writer = MemoryWriter()
    reader = MemoryReader([lines(
        {"jsonrpc": "2.0", "id": 1, "method": "wait"},
        {"jsonrpc": "2.0", "id": 2, "method": "too_slow"},
        {"jsonrpc": "2.0", "id": 3, "method": "sync_ok", "params": [3]},
        {"jsonrpc": "2.0", "id": 4, "method": "sync_ok", "params": ["x"]},
        [{"jsonrpc": "2.0", "id": 5, "method": "sync_ok", "params": [5]}, {"jsonrpc": "2.0", "method": "sync_ok", "params": [6]}],
        {"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 1}},
        {"jsonrpc": "2.0", "id": 6, "method": "missing"},
    ), b"not json\n"])
    conn = Connection(app, Settings(ready=False, framing="ndjson"), reader, writer)
    await conn.run()
    replies = [orjson.loads(x) for x in bytes(writer.data).splitlines()]
    assert len(replies) == 7  # 1, 2, 3, 4, the batch, 6, the parse error
    assert (conn._inflight, conn._calls, conn._by_id, conn._tasks, conn._out) == (0, set(), {}, set(), [])


async def test_notify_from_any_thread_keeps_order() -> None:
    import threading

    app = Bridge()

    @app.method
    async def from_thread(ctx: Context) -> str:
        def work() -> None:
            for i in range(100):
                app.notify("tick", i)

        thread = threading.Thread(target=work)
        thread.start()
        await anyio.to_thread.run_sync(thread.join)
        return "done"

    writer = MemoryWriter()
    conn = Connection(app, Settings(ready=False, framing="ndjson"), MemoryReader([lines({"jsonrpc": "2.0", "id": 1, "method": "from_thread"})]), writer)
    app.connection = conn
    await conn.run()
    out = [orjson.loads(x) for x in bytes(writer.data).splitlines()]
    assert [m["params"] for m in out if m.get("method") == "tick"] == list(range(100))
    assert out[-1] == {"jsonrpc": "2.0", "id": 1, "result": "done"}


async def test_stop_answers_what_was_read_but_never_started() -> None:
    started = anyio.Event()
    writer = MemoryWriter()
    waiting = [{"jsonrpc": "2.0", "id": i, "method": "wait"} for i in range(3)]
    reader = MemoryReader([lines(*waiting, [{"jsonrpc": "2.0", "id": "b", "method": "wait"}])], keep_open=True)
    conn = Connection(slow_app(started), Settings(ready=False, framing="ndjson", max_inflight=1, shutdown_grace=0), reader, writer)
    async with anyio.create_task_group() as tg:
        tg.start_soon(conn.run)
        await started.wait()
        conn.stop()
    out = [orjson.loads(x) for x in bytes(writer.data).splitlines()]
    singles = {m["id"]: m["error"]["code"] for m in out if isinstance(m, dict)}
    assert singles == {0: -32802, 1: -32802, 2: -32802}  # 0 ran and was cancelled; 1 and 2 never started
    assert [m for m in out if isinstance(m, list)] == [[{"jsonrpc": "2.0", "id": "b", "error": {"code": -32802, "message": "Server cancelled the request"}}]]


async def test_every_host_answers_rpc_ping() -> None:
    [reply] = await exchange(Bridge(), lines({"jsonrpc": "2.0", "id": 1, "method": "rpc.ping"}))
    assert reply == {"jsonrpc": "2.0", "id": 1, "result": "pong"}


async def test_null_params_mean_no_params() -> None:
    """pygls's client sends ``"params": null`` for a request without params (vscode-jsonrpc's
    server accepts it); any other non-structured value stays an error."""
    out = await exchange(spec_app(), lines({"jsonrpc": "2.0", "id": 1, "method": "get_data", "params": None}))
    assert out == [{"jsonrpc": "2.0", "id": 1, "result": ["hello", 5]}]


async def test_an_input_that_fails_ends_like_eof_after_the_calls_it_gave(caplog: pytest.LogCaptureFixture) -> None:
    """A reader that raises (a terminal gone, a file unreadable) is the end of the input: the calls
    read before it are answered and the connection stops, rather than waiting on input forever."""

    class Failing(MemoryReader):
        async def read(self, n: int = -1, /) -> bytes:
            data = await super().read(n)
            if not data:
                raise OSError(5, "Input/output error")
            return data

    writer = MemoryWriter()
    reader = Failing([lines({"jsonrpc": "2.0", "id": 1, "method": "subtract", "params": [5, 3]})], keep_open=False)
    with anyio.fail_after(10):
        await Connection(spec_app(), Settings(ready=False, framing="ndjson"), reader, writer).run()
    [reply] = [orjson.loads(x) for x in bytes(writer.data).splitlines()]
    assert reply == {"jsonrpc": "2.0", "id": 1, "result": 2}
    assert "reading the input failed" in caplog.text


async def test_a_read_of_many_calls_is_answered_every_flush_every_replies() -> None:
    """A client pipelining calls gets the first replies while the rest are worked on (and can
    send more meanwhile), not all of a read's replies in one write at the end."""
    from bridge.connection import FLUSH_EVERY

    app = Bridge("flush")

    @app.method
    async def echo(value: int) -> int:
        return value

    n = 2 * FLUSH_EVERY + 10
    writer = MemoryWriter()
    calls = lines(*({"jsonrpc": "2.0", "id": i, "method": "echo", "params": [i]} for i in range(n)))
    conn = Connection(app, Settings(ready=False, framing="ndjson"), MemoryReader([calls]), writer)
    with anyio.fail_after(10):
        await conn.run()
    assert [chunk.count(b"\n") for chunk in writer.chunks] == [FLUSH_EVERY, FLUSH_EVERY, 10]
    assert [orjson.loads(line)["result"] for line in bytes(writer.data).splitlines()] == list(range(n))
