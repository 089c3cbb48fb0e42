"""bridge/middleware/cache.py: cached replies and single flights never cross callers.

The module's ``app`` is also served by the real host in the end-to-end test.
"""

from __future__ import annotations

import os
from typing import Any

import anyio
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge import Bridge, Context, Settings
from bridge.connection import Connection
from bridge.middleware.cache import Cache, cache_key
from harness import ROOT, Host, MemoryReader, MemoryWriter, exchange, lines

app = Bridge("cache-callers")
runs: dict[str, int] = {}


def _ran(name: str) -> int:
    runs[name] = runs.get(name, 0) + 1
    return runs[name]


@app.method(cache=Cache(ttl=3600))
async def inbox(folder: str, ctx: Context) -> dict[str, Any]:
    """Sees its caller: cached per caller without being told."""
    _ran("inbox")
    await anyio.sleep(0.05)  # long enough for identical calls to overlap
    return {"owner": ctx.participant, "folder": folder}


@app.method(cache=Cache(ttl=3600, per_caller=False))
async def shared_clock(ctx: Context) -> int:
    """Takes a Context but declares its reply the same for every caller."""
    return _ran("shared_clock")


@app.method(cache=Cache(ttl=3600, per_caller=True))
async def quota(kind: str) -> int:
    """Sees no Context, but its author says the reply depends on the caller."""
    return _ran("quota")


@app.method(cache=Cache(ttl=3600))
async def public(kind: str) -> int:
    """Neither: one reply for everyone."""
    return _ran("public")


@app.method(invalidates=["inbox"])
async def deliver() -> bool:
    return True


def call(id: Any, method: str, caller: Any, **params: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"info": True}
    if caller is not None:
        meta["caller"] = caller
    return {"jsonrpc": "2.0", "id": id, "method": method, "params": {**params, "$meta": meta}}


@pytest.fixture(autouse=True)
def _fresh_runs() -> None:
    runs.clear()


async def one_by_one(app: Bridge, *messages: Any, **settings: Any) -> list[Any]:
    """Send each message on one connection once the one before it is answered; the replies."""
    reader, writer = MemoryReader(keep_open=True), MemoryWriter()
    conn = Connection(app, Settings(ready=False, framing="ndjson", **settings), reader, writer)
    async with anyio.create_task_group() as tg:
        tg.start_soon(conn.run)
        with anyio.fail_after(10):
            for sent, message in enumerate(messages, 1):
                reader.feed(lines(message))
                while writer.data.count(b"\n") < sent:
                    await anyio.sleep(0.001)
        reader.close()
    return [orjson.loads(line) for line in bytes(writer.data).splitlines()]


@pytest.mark.anyio
async def test_a_handler_that_sees_its_caller_is_cached_per_caller(tmp_path) -> None:
    alice, bob, again = await one_by_one(
        app, *[call(i, "inbox", who, folder="private") for i, who in enumerate(["alice", "bob", "alice"])],
        cache_dir=str(tmp_path),
    )
    assert alice["result"] == {"owner": "alice", "folder": "private"} and alice["$meta"]["cached"] is False
    assert bob["result"] == {"owner": "bob", "folder": "private"} and bob["$meta"]["cached"] is False
    assert again["result"] == alice["result"] and again["$meta"]["cached"] is True  # still cached, per caller
    assert runs["inbox"] == 2


@pytest.mark.anyio
async def test_invalidation_drops_every_callers_replies(tmp_path) -> None:
    out = await one_by_one(app, call(1, "inbox", "alice", folder="f"), call(2, "inbox", "bob", folder="f"),
                           call(3, "deliver", None),
                           call(4, "inbox", "alice", folder="f"), call(5, "inbox", "bob", folder="f"),
                           cache_dir=str(tmp_path))
    assert [r["$meta"].get("cached") for r in out] == [False, False, None, False, False] and runs["inbox"] == 4


@pytest.mark.anyio
async def test_single_flight_is_per_caller(tmp_path) -> None:
    out = await exchange(app, lines(
        *[call(i, "inbox", "alice" if i % 2 else "bob", folder="f") for i in range(40)],
    ), cache_dir=str(tmp_path))
    owners = {r["id"]: r["result"]["owner"] for r in out}
    assert owners == {i: "alice" if i % 2 else "bob" for i in range(40)}
    assert runs["inbox"] == 2  # one run per caller, each shared by that caller's twenty calls


@pytest.mark.anyio
async def test_per_caller_can_be_declared_either_way(tmp_path) -> None:
    out = await one_by_one(app, 
        call(1, "shared_clock", "alice"), call(2, "shared_clock", "bob"),
        call(3, "quota", "alice", kind="k"), call(4, "quota", "bob", kind="k"), call(5, "quota", "alice", kind="k"),
        call(6, "public", "alice", kind="k"), call(7, "public", None, kind="k"),
        cache_dir=str(tmp_path),
    )
    results = {r["id"]: r["result"] for r in out}
    assert results[1] == results[2] == 1 and runs["shared_clock"] == 1  # per_caller=False: shared
    assert results[3] == results[5] != results[4] and runs["quota"] == 2  # per_caller=True: kept apart
    assert results[6] == results[7] == 1 and runs["public"] == 1  # no Context, not declared: shared


def serve(cache_dir: Any) -> Host:
    """The real host serving this module's ``app`` (which imports the tests' ``harness``)."""
    path = os.pathsep.join(filter(None, [str(ROOT / "tests"), os.environ.get("PYTHONPATH")]))
    return Host("tests.middleware.test_cache_callers:app", env={"BRIDGE_CACHE_DIR": str(cache_dir), "PYTHONPATH": path})


def test_two_callers_end_to_end(tmp_path) -> None:
    """Through the real host: bob never receives alice's cached reply."""
    with serve(tmp_path) as host:
        host.recv()
        host.send(call("a1", "inbox", "alice", folder="private"))
        assert host.reply("a1")["result"] == {"owner": "alice", "folder": "private"}
        host.send(call("b1", "inbox", "bob", folder="private"))
        bob = host.reply("b1")
        assert bob["result"] == {"owner": "bob", "folder": "private"} and bob["$meta"]["cached"] is False
        host.send(call("a2", "inbox", "alice", folder="private"))
        alice = host.reply("a2")
        assert alice["result"]["owner"] == "alice" and alice["$meta"]["cached"] is True
        host.send(*[call(f"c{i}", "inbox", "carol" if i % 2 else "dave", folder="new") for i in range(20)])
        owners = {r["id"]: r["result"]["owner"] for r in (host.recv() for _ in range(20))}
        assert owners == {f"c{i}": "carol" if i % 2 else "dave" for i in range(20)}


def test_per_caller_replies_stay_in_their_run(tmp_path) -> None:
    """``window:1`` of the next run is another window: it must not get this one's reply."""
    for cached in (False, True):
        with serve(tmp_path) as host:
            host.recv()
            host.send(call("i", "inbox", {"window": 1}, folder="private"))
            assert host.reply("i")["$meta"]["cached"] is False
            host.send(call("p", "public", {"window": 1}, kind="k"))
            assert host.reply("p")["$meta"]["cached"] is cached  # the caller-independent reply persists
            host.close_stdin()  # a clean stop: the disk writes finish
            assert host.wait() == 0


callers = st.none() | st.text(max_size=8)
params = st.dictionaries(st.text(max_size=4), st.integers() | st.text(max_size=300) | st.none(), max_size=4)


@given(callers, params, callers, params, st.randoms())
def test_cache_keys_are_shared_exactly_by_the_same_caller_and_params(c1, p1, c2, p2, random) -> None:
    if random.random() < 0.3:  # often the same call again, its params in another order
        c2, p2 = c1, dict(random.sample(list(p1.items()), len(p1)))
    assert (cache_key("m", p1, c1) == cache_key("m", p2, c2)) == ((c1, p1) == (c2, p2))
