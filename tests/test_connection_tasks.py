"""How calls map onto tasks (bridge/connection.py): a worker task starts the calls that are
ready, one after another; a call that waits keeps that task as its own. To the handler it must
look exactly like a task per call."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import anyio
import orjson
import pytest
from harness import MemoryReader, MemoryWriter, exchange, lines
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge import Bridge, Context, Settings
from bridge.connection import Connection

pytestmark = pytest.mark.anyio

VAR: contextvars.ContextVar[str] = contextvars.ContextVar("VAR", default="unset")


def call(id: Any, method: str, params: Any = None) -> dict[str, Any]:
    message = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        message["params"] = params
    return message


def tasks_app(seen: list[tuple[asyncio.Task[Any] | None, asyncio.Task[Any] | None]] | None = None) -> Bridge:
    app = Bridge()
    seen = [] if seen is None else seen

    @app.method
    async def quick(n: int) -> int:
        return n

    @app.method
    async def waits(n: int) -> dict[str, Any]:
        """Waits inside an anyio cancel scope: entered in one step, left in a later one."""
        before = asyncio.current_task()
        with anyio.fail_after(5):
            await anyio.sleep(0.01 * (n % 3))
            await anyio.lowlevel.checkpoint()
        after = asyncio.current_task()
        seen.append((before, after))  # kept alive, so no two can share an id()
        return {"n": n, "same": before is after}

    @app.method
    async def set_var(value: str) -> str:
        previous = VAR.get()
        VAR.set(value)
        return previous

    @app.method
    async def set_var_and_wait(value: str) -> list[str]:
        previous = VAR.get()
        VAR.set(value)
        await anyio.sleep(0.01)
        return [previous, VAR.get()]

    return app


async def test_calls_that_wait_each_keep_one_task_of_their_own_among_calls_that_do_not() -> None:
    messages = []
    for n in range(60):
        messages.append(call(n, "waits" if n % 4 == 0 else "quick", {"n": n}))
    seen: list[tuple[Any, Any]] = []
    replies = {r["id"]: r for r in await exchange(tasks_app(seen), lines(*messages))}
    assert set(replies) == set(range(60))
    assert all(replies[n]["result"]["same"] for n in range(0, 60, 4))  # the scope left in its own task
    assert len(seen) == 15 and len({id(after) for _, after in seen}) == 15  # no two shared a task
    assert all(replies[n]["result"] == n for n in range(60) if n % 4)


async def test_context_variables_set_by_one_call_are_not_seen_by_the_next() -> None:
    messages = [call(n, "set_var", {"value": f"v{n}"}) for n in range(20)]
    messages += [call(100 + n, "set_var_and_wait", {"value": f"w{n}"}) for n in range(5)]
    replies = {r["id"]: r["result"] for r in await exchange(tasks_app(), lines(*messages))}
    assert all(replies[n] == "unset" for n in range(20))
    assert all(replies[100 + n] == ["unset", f"w{n}"] for n in range(5))
    assert VAR.get() == "unset"


async def test_a_handler_that_lets_out_a_cancelled_error_nobody_asked_for_is_answered() -> None:
    app = Bridge()

    @app.method
    async def inner_cancelled() -> None:
        raise asyncio.CancelledError  # e.g. an inner task's, awaited and re-raised

    @app.method
    async def inner_cancelled_later() -> None:
        await anyio.sleep(0)
        raise asyncio.CancelledError

    @app.method
    async def ok(n: int) -> int:
        return n

    replies = {r["id"]: r for r in await exchange(app, lines(
        call("a", "inner_cancelled"), call(1, "ok", [1]), call("b", "inner_cancelled_later"), call(2, "ok", [2]),
    ))}
    assert replies["a"]["error"]["code"] == -32603 and replies["b"]["error"]["code"] == -32603
    assert replies["a"]["error"]["data"]["exception"] == "CancelledError"
    assert replies[1]["result"] == 1 and replies[2]["result"] == 2


async def test_a_finished_calls_late_cancel_does_not_reach_the_call_its_task_went_on_to_run() -> None:
    app = Bridge()
    finished: list[Context] = []
    release = anyio.Event()
    waiting = anyio.Event()

    @app.method
    async def first(ctx: Context) -> str:
        finished.append(ctx)
        return "done"

    @app.method
    async def second() -> str:
        waiting.set()
        await release.wait()
        return "not cancelled"

    writer = MemoryWriter()
    reader = MemoryReader([lines(call(1, "first"), call(2, "second"))], keep_open=True)
    conn = Connection(app, Settings(ready=False, framing="ndjson"), reader, writer)
    async with anyio.create_task_group() as tg:
        tg.start_soon(conn.run)
        await waiting.wait()
        finished[0]._call.cancel(-32800)  # what a stale reference to the first call could do
        release.set()
        reader.close()
    replies = {r["id"]: r for r in map(orjson.loads, bytes(writer.data).splitlines())}
    assert replies[1]["result"] == "done" and replies[2]["result"] == "not cancelled"


async def test_a_cancel_reaches_only_the_waiting_call_it_names() -> None:
    app = Bridge()
    started: list[int] = []
    all_waiting = anyio.Event()

    @app.method
    async def park(n: int) -> int:
        started.append(n)
        if len(started) == 5:
            all_waiting.set()
        await anyio.sleep(0.2)
        return n

    writer = MemoryWriter()
    reader = MemoryReader([lines(*(call(n, "park", [n]) for n in range(5)))], keep_open=True)
    conn = Connection(app, Settings(ready=False, framing="ndjson"), reader, writer)
    async with anyio.create_task_group() as tg:
        tg.start_soon(conn.run)
        await all_waiting.wait()
        reader.feed(lines({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 2}}))
        reader.close()
    replies = {r["id"]: r for r in map(orjson.loads, bytes(writer.data).splitlines())}
    assert replies[2]["error"]["code"] == -32800
    assert [replies[n]["result"] for n in (0, 1, 3, 4)] == [0, 1, 3, 4]


async def test_calls_that_come_one_read_at_a_time_leave_no_task_or_worker_behind() -> None:
    chunks = [lines(call(n, "waits" if n % 2 else "quick", {"n": n})) for n in range(10)]
    chunks.append(lines(call("x", "set_var", {"value": "v"})) + lines(call("y", "quick", {"n": 1})))
    writer = MemoryWriter()
    conn = Connection(tasks_app(), Settings(ready=False, framing="ndjson"), MemoryReader(chunks), writer)
    with anyio.fail_after(10):
        await conn.run()
    replies = {r["id"]: r for r in map(orjson.loads, bytes(writer.data).splitlines())}
    assert set(replies) == {*range(10), "x", "y"} and all("result" in r for r in replies.values())
    assert (conn._tasks, conn._calls, conn._worker, list(conn._ready), conn._inflight) == (set(), set(), None, [], 0)


async def test_calls_of_a_method_that_waits_start_together_once_it_is_known_to_wait() -> None:
    """A method whose call waited gets a task per call: a burst of its calls all start in the
    same loop turn (a worker would start them a turn apart, so none would see the others)."""
    app = Bridge()
    started: list[int] = []
    seen: dict[int, int] = {}

    @app.method
    async def gather(n: int) -> None:
        started.append(n)
        await anyio.lowlevel.checkpoint()
        seen[n] = len(started)

    first = lines(call(0, "gather", [0]), call(1, "quick_one", [1]))  # read together: worker-run
    burst = lines(*(call(n, "gather", [n]) for n in range(2, 22)))

    @app.method
    async def quick_one(n: int) -> int:
        return n

    replies = await exchange(app, first, burst)
    assert len(replies) == 22 and app.methods["gather"].waits
    assert all(seen[n] == 21 for n in range(2, 22))  # each saw the whole burst started


def _order_app(log: list[int]) -> Bridge:
    app = Bridge()

    @app.method
    async def waits_then(n: int) -> int:
        log.append(n)
        await anyio.lowlevel.checkpoint()
        return n

    @app.method
    async def at_once(n: int) -> int:
        log.append(n)
        return n

    return app


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kinds=st.lists(st.booleans(), min_size=1, max_size=120), taught=st.booleans(),
       chunks=st.integers(1, 4), inflight=st.sampled_from([4, 16, 128]))
def test_calls_start_in_the_order_they_were_read(kinds: list[bool], taught: bool, chunks: int, inflight: int) -> None:
    """Whatever mix of calls that wait and calls that do not, split over reads however, and
    beyond the in-flight bound (queued): each call's first step runs in the order it was read
    (a patch sent before a get is applied before the get runs)."""
    log: list[int] = []
    app = _order_app(log)
    messages = [call(n, "waits_then" if wait else "at_once", [n]) for n, wait in enumerate(kinds)]
    size = -(-len(messages) // chunks)
    reads = [lines(*messages[i:i + size]) for i in range(0, len(messages), size)]
    if taught:  # the host already saw waits_then wait
        reads.insert(0, lines(call("t", "waits_then", [-1])))

    async def run() -> list[Any]:
        return await exchange(app, *reads, max_inflight=inflight, max_inflight_per_caller=inflight)

    replies = anyio.run(run)
    assert len(replies) == len(messages) + taught
    assert [n for n in log if n >= 0] == list(range(len(kinds)))
