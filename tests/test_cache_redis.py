"""The reply cache shared through Redis (``--cache-redis``, bridge/cache_redis.py) against a real
redis-server: a reply cached on one host is served by another, invalidation by method or tag on
one host is seen by the other's next call, Redis lost mid-session (or absent at start) leaves
every call working on the host's own cache with one warning, and sharing resumes by itself with
nothing stale served. Hosts are real processes; the tier's own rules (a reply computed before an
invalidation is never stored after it, TTL as Redis expiry, a slow Redis is a miss, a Redis that
lost its data leaves nothing local to serve, no reply from the host's disk) are checked in-process
against a real Redis too."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis import Redis

from bridge import Bridge, Context
from bridge.cache_redis import READ_TIMEOUT, SharedTier
from bridge.middleware.cache import Cache, cache_key

from harness import Host, exchange, lines
from redis_server import RedisServer

APP = '''
import os

from bridge import Bridge
from bridge.middleware.cache import Cache, invalidation_method

app = Bridge("shared-cache-test")
HOST = os.environ["TEST_HOST"]
runs = {"lookup": 0, "prices": 0}


@app.method("lookup", cache=Cache(ttl=600, tags=["catalog"]))
async def lookup(item: str, size: int = 1) -> dict:
    runs["lookup"] += 1
    return {"item": item, "size": size, "host": HOST, "run": runs["lookup"]}


@app.method("prices", cache=Cache(tags=["catalog"]))
async def prices(item: str) -> dict:
    runs["prices"] += 1
    return {"item": item, "host": HOST}


@app.method("runs")
async def count() -> dict:
    return runs


@app.method("edit", invalidates=["lookup"])
async def edit() -> bool:
    return True


@app.method("restock", invalidates=["catalog"])
async def restock() -> bool:
    return True


@app.method("reprice")
async def reprice() -> bool:
    await app.invalidate("prices")  # waits until every host sharing the cache has dropped them
    return True


app.add_method(invalidation_method(app), "cache.invalidate")
'''

SHARING = b"shared cache: replies shared through the Redis"
UNREACHABLE = b"is unreachable"
BACK = b"is reachable again"


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of the test's own (pub/sub channels are server-wide), with an AOF so a restart keeps
    its data (as a team's Redis would)."""
    server = RedisServer(tmp_path / "redis", appendonly=True).start()
    try:
        yield server
    finally:
        server.stop()


class Hosts:
    """Real hosts of one app, each with its own cache directory, sharing one Redis."""

    def __init__(self, tmp_path: Path, url: str) -> None:
        (tmp_path / "shared_cache_app.py").write_text(APP)
        self.tmp_path, self.url, self.hosts = tmp_path, url, []  # type: ignore[var-annotated]

    def start(self, name: str, wait: bool = True) -> Host:
        host = Host("shared_cache_app:app", "--no-ready", "--cache-redis", self.url, "--cache-dir",
                    str(self.tmp_path / f"cache-{name}"),
                    env={"TEST_HOST": name, "PYTHONPATH": str(self.tmp_path)})
        self.hosts.append(host)
        if wait:
            host.wait_stderr(SHARING)
        return host

    def close(self) -> None:
        for host in self.hosts:
            host.__exit__()


@pytest.fixture
def hosts(tmp_path: Path, redis: RedisServer) -> Iterator[Hosts]:
    group = Hosts(tmp_path, redis.url)
    try:
        yield group
    finally:
        group.close()


_ids = iter(range(1, 1 << 30))


def call(host: Host, method: str, params: Any = None) -> Any:
    """The result of ``method`` on ``host``."""
    reply = host.call(method, params, next(_ids))
    assert "result" in reply, reply
    return reply["result"]


def cached(host: Host, method: str, params: dict[str, Any]) -> bool:
    """Whether ``host`` answered from its cache (what a caller asking ``$meta.info`` learns)."""
    reply = host.call(method, {**params, "$meta": {"info": True}}, next(_ids))
    return bool(reply["$meta"]["cached"])


def shared(host: Host) -> dict[str, Any]:
    return call(host, "rpc.metrics")["cache"]["shared"]


def until(condition: Any, what: str, state: Any = lambda: None, timeout: float = 10.0) -> None:
    """Wait for ``condition()`` (the host's own counters: there is nothing else to wait on)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {state()}"
        time.sleep(0.01)


def stored(host: Host, count: int) -> None:
    """Wait until ``host`` has written ``count`` replies to Redis (writes are off the call's path)."""
    until(lambda: shared(host)["stored"] >= count, f"{count} replies stored", lambda: shared(host))


def warnings(host: Host) -> list[str]:
    return [line for line in host.stderr.decode(errors="replace").splitlines() if " WARNING bridge.cache" in line]


# ---- two hosts, one Redis ------------------------------------------------------------------


def test_a_reply_cached_on_one_host_is_served_by_another_without_running_the_handler(hosts: Hosts) -> None:
    a, b = hosts.start("a"), hosts.start("b")
    first = call(a, "lookup", {"item": "tea", "size": 2})
    assert first == {"item": "tea", "size": 2, "host": "a", "run": 1}
    stored(a, 1)
    # the same params in another order (and positionally) are the same key on every host
    assert call(b, "lookup", {"size": 2, "item": "tea"}) == first
    assert call(b, "lookup", ["tea", 2]) == first
    assert call(b, "runs") == {"lookup": 0, "prices": 0}  # B's handler never ran
    assert shared(b)["hits"] == 1  # the second call was B's own memory tier
    assert cached(b, "lookup", {"item": "tea", "size": 2})
    # other params are another reply, computed where they are asked for
    assert call(b, "lookup", {"item": "tea", "size": 3})["host"] == "b"


def test_an_invalidation_on_one_host_is_seen_by_the_next_call_on_another(hosts: Hosts) -> None:
    a, b = hosts.start("a"), hosts.start("b")
    call(a, "lookup", {"item": "tea"})
    call(a, "prices", {"item": "tea"})
    stored(a, 2)
    assert call(b, "lookup", {"item": "tea"})["host"] == "a"  # now in B's memory tier too
    assert call(b, "prices", {"item": "tea"})["host"] == "a"

    assert call(a, "edit") is True  # invalidates the method lookup
    assert call(b, "lookup", {"item": "tea"})["host"] == "b"
    assert call(b, "prices", {"item": "tea"})["host"] == "a"  # another method: untouched
    assert call(b, "runs") == {"lookup": 1, "prices": 0}

    assert call(a, "restock") is True  # invalidates the tag catalog: both methods
    assert call(b, "prices", {"item": "tea"})["host"] == "b"
    assert call(b, "lookup", {"item": "tea"})["host"] == "b"
    assert call(b, "runs") == {"lookup": 2, "prices": 1}

    # a handler's `await app.invalidate(...)` returns once every host has dropped the replies
    before = call(b, "runs")["prices"]
    for i in range(1, 6):
        assert call(a, "reprice") is True
        call(b, "prices", {"item": "tea"})
        assert call(b, "runs")["prices"] == before + i  # B ran it again: nothing old was served

    # a client's cache.invalidate (by tag) on B reaches A's memory tier
    # B's replies are written, or refused, one for each run of its handlers (its first lookup may
    # reach Redis after restock invalidated lookup, and a reply computed before an invalidation is
    # never stored after it); the last, prices after the fifth reprice, is what A is served next
    ran = sum(call(b, "runs").values())
    until(lambda: (lambda s: s["stored"] + s["refused"])(shared(b)) >= ran, "B's writes", lambda: shared(b))
    served = call(a, "prices", {"item": "tea"})
    assert served["host"] == "b", shared(a)  # now in A's memory too (a read slower than READ_TIMEOUT misses)
    assert call(b, "cache.invalidate", [["catalog"]]) == ["lookup", "prices"]
    assert call(a, "prices", {"item": "tea"})["host"] == "a"
    assert call(a, "runs")["prices"] == 2
    assert warnings(a) == warnings(b) == []


def test_redis_lost_mid_session_the_hosts_go_on_alone_with_one_warning_then_share_again(
        hosts: Hosts, redis: RedisServer) -> None:
    a, b = hosts.start("a"), hosts.start("b")
    call(a, "lookup", {"item": "tea"})
    stored(a, 1)
    assert call(b, "lookup", {"item": "tea"})["host"] == "a"

    redis.stop()
    for host in (a, b):
        host.wait_stderr(UNREACHABLE)
    # several reconnection attempts fail meanwhile, and none of them says so again
    until(lambda: shared(a)["attempts"] >= 4 and shared(b)["attempts"] >= 4, "reconnection attempts")
    assert call(a, "lookup", {"item": "tea"})["host"] == "a"  # each host's memory still answers
    assert call(b, "lookup", {"item": "tea"})["host"] == "a"
    assert call(b, "lookup", {"item": "jam"})["host"] == "b"  # a miss runs the handler, kept locally
    assert call(b, "lookup", {"item": "jam"})["host"] == "b"
    assert call(b, "runs")["lookup"] == 1
    assert call(a, "edit") is True  # made while away: Redis and B must still learn of it
    assert call(a, "lookup", {"item": "tea"})["run"] == 2
    assert len(warnings(a)) == len(warnings(b)) == 1
    assert shared(a)["live"] is shared(b)["live"] is False

    redis.start()
    for host in (a, b):
        host.wait_stderr(BACK)
    until(lambda: shared(a)["live"] and shared(b)["live"], "both hosts sharing again")
    # A's invalidation reached B: its old tea reply (and jam, cached while away) are gone
    assert call(b, "lookup", {"item": "tea"})["host"] == "b"
    assert call(b, "runs")["lookup"] == 2
    # and sharing resumed by itself
    call(a, "lookup", {"item": "milk"})
    stored(a, 2)
    assert call(b, "lookup", {"item": "milk"})["host"] == "a"
    assert len(warnings(a)) == len(warnings(b)) == 1


def test_redis_down_at_start_is_local_caching_until_it_comes(hosts: Hosts, redis: RedisServer) -> None:
    redis.stop()
    a = hosts.start("a", wait=False)
    a.wait_stderr(UNREACHABLE)
    assert call(a, "lookup", {"item": "tea"})["run"] == 1
    assert call(a, "lookup", {"item": "tea"})["run"] == 1  # cached on the host meanwhile
    redis.start()
    a.wait_stderr(BACK)
    b = hosts.start("b")
    assert call(a, "lookup", {"item": "tea"})["run"] == 2  # cached while away: not trusted once back
    stored(a, 1)
    assert call(b, "lookup", {"item": "tea"})["host"] == "a"
    assert len(warnings(a)) == 1


def test_bridge_cache_clear_empties_the_apps_part_of_the_shared_redis_and_nothing_else(
        hosts: Hosts, redis: RedisServer, tmp_path: Path) -> None:
    import subprocess
    import sys

    a = hosts.start("a")
    call(a, "lookup", {"item": "tea"})
    call(a, "prices", {"item": "tea"})
    stored(a, 2)
    direct = Redis.from_url(redis.url)
    direct.set("bridge:cache:another-app:{x}:kept", b"1")  # another app's, and not a cache key at all
    direct.set("unrelated", b"1")
    ours = [k for k in direct.scan_iter("bridge:cache:shared-cache-test*")]
    assert len(ours) >= 3  # two replies, counters, the dataset token
    done = subprocess.run([sys.executable, "-m", "bridge", "cache", "clear", "shared_cache_app:app", "--cache-redis",
                           redis.url, "--cache-dir", str(tmp_path / "cache-cli")], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(tmp_path), "TEST_HOST": "cli"}, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"cleared {len(ours)} shared cache keys of shared-cache-test" in done.stdout
    assert list(direct.scan_iter("bridge:cache:shared-cache-test*")) == []
    assert direct.get("bridge:cache:another-app:{x}:kept") == b"1" and direct.get("unrelated") == b"1"
    b = hosts.start("b")
    assert call(b, "lookup", {"item": "tea"})["host"] == "b"  # computed again: nothing shared is left
    direct.close()


def test_a_url_that_is_not_redis_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    with Host("--cache-redis", "http://user:secret@example.com") as host:
        assert host.wait() == 2
        error = host.stderr.decode()
        assert "cache_redis must be a URL starting with redis://" in error and "secret" not in error


# ---- the tier's rules, in-process ------------------------------------------------------------


@pytest.mark.anyio
async def test_a_sharing_host_never_serves_replies_from_its_disk_and_drops_those_left_there(
        tmp_path: Path, redis: RedisServer) -> None:
    app, runs = Bridge("disk-then-shared"), [0]

    @app.method("m", cache=Cache())
    async def m() -> int:
        runs[0] += 1
        return runs[0]

    @app.method("put")
    async def put(ctx: Context) -> bool:
        ctx.cache.set("k", "kept")
        return True

    @app.method("read")
    async def read(ctx: Context) -> Any:
        return ctx.cache.get("k")

    async def results(*methods: str, **settings: Any) -> list[Any]:
        calls = lines(*({"jsonrpc": "2.0", "id": i, "method": name} for i, name in enumerate(methods)))
        replies = await exchange(app, calls, cache_dir=str(tmp_path / "cache"), **settings)
        return [r["result"] for r in sorted(replies, key=lambda r: r["id"])]

    assert await results("m", "put") == [1, True]
    assert await results("m") == [1]  # served from this host's disk
    assert await results("m", "read", cache_redis=redis.url) == [2, "kept"]  # not with Redis shared
    assert await results("m") == [3]  # and the reply left on disk is gone, for later runs too


class Tier:
    """A SharedTier running (as a host's would) with a memory of its own."""

    def __init__(self, url: str, app: str = "tier-test", **options: Any) -> None:
        self.memory: dict[str, bytes] = {}
        self.tier = SharedTier(url, app, self.drop, lambda: {k.partition("\x00")[0] for k in self.memory}, **options)

    def drop(self, method: str | None) -> int:
        keys = [k for k in self.memory if method is None or k.startswith(method + "\x00")]
        for key in keys:
            del self.memory[key]
        return len(keys)

    async def __aenter__(self) -> SharedTier:
        self.task = asyncio.get_running_loop().create_task(self.tier.run())
        with anyio.fail_after(10):
            while not self.tier.live:  # the connection's first round trips
                assert not self.task.done(), self.task
                await asyncio.sleep(0.005)
        return self.tier

    async def __aexit__(self, *exc: object) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def written(tier: SharedTier, count: int) -> None:
    """Wait until ``tier`` has written ``count`` replies (or had them refused): they go off the caller's path."""
    with anyio.fail_after(10):
        while tier.counts["stored"] + tier.counts["refused"] < count:
            await asyncio.sleep(0.005)


@pytest.mark.anyio
async def test_a_reply_computed_before_an_invalidation_is_never_stored_after_it(redis: RedisServer) -> None:
    async with Tier(redis.url) as one, Tier(redis.url) as two:
        key = cache_key("lookup", {"item": "tea"})
        assert await one.get(key) == (None, None, 0)  # a miss; the method's counter was 0
        await two.invalidate(["lookup"])  # meanwhile, on another host
        one.put(key, b'"old"', 60, 0)  # the reply computed from before
        await written(one, 1)
        assert one.counts["refused"] == 1 and await two.get(key) == (None, None, 1)
        one.put(key, b'"new"', 60, 1)  # computed after it: stored, with its TTL as the expiry
        await written(one, 2)
        body, ttl, counter = await two.get(key)  # type: ignore[misc]
        assert (body, counter) == (b'"new"', 1) and 59 < ttl <= 60  # type: ignore[operator]
        assert 0 < Redis.from_url(redis.url).pttl(one.key(key)) <= 60_000


@pytest.mark.anyio
async def test_a_ttl_runs_from_the_put_not_from_the_delayed_shared_write(redis: RedisServer) -> None:
    """Shared writes go off the caller's path: one that waited past its reply's TTL is not
    stored with a fresh TTL (the reply would outlive its TTL by the wait on every host)."""
    async with Tier(redis.url) as one, Tier(redis.url) as two:
        short, long = cache_key("lookup", {"item": "tea"}), cache_key("lookup", {"item": "milk"})
        one.put(short, b'"tea"', 0.05, 0)
        one.put(long, b'"milk"', 60, 0)
        time.sleep(0.06)  # the loop (and its writer) held up past the TTL: time has to pass
        with anyio.fail_after(10):
            while one.counts["stored"] + one.counts["expiredUnwritten"] < 2:
                await asyncio.sleep(0.005)
        assert one.counts["expiredUnwritten"] == 1 and await two.get(short) == (None, None, 0)
        body, ttl, _ = await two.get(long)  # type: ignore[misc]
        assert body == b'"milk"' and 59 < ttl <= 60  # type: ignore[operator]


@pytest.mark.anyio
async def test_a_slow_redis_is_a_miss_within_the_read_timeout(redis: RedisServer) -> None:
    async with Tier(redis.url) as tier:
        key = cache_key("lookup", {"item": "tea"})
        tier.put(key, b"1", None, 0)
        await written(tier, 1)
        direct = Redis.from_url(redis.url)
        direct.execute_command("CLIENT", "PAUSE", 2000, "ALL")  # every command waits two seconds
        try:
            started = time.perf_counter()
            assert await tier.get(key) is None
            assert time.perf_counter() - started < READ_TIMEOUT + 0.1
            assert tier.counts["timeouts"] == 1 and tier.live  # one slow read is not an outage
        finally:
            direct.execute_command("CLIENT", "UNPAUSE")


@pytest.mark.anyio
async def test_an_invalidation_reaches_every_tiers_memory_and_no_other_method(redis: RedisServer) -> None:
    a, b = Tier(redis.url), Tier(redis.url)
    async with a as one, b as two:
        key, other = cache_key("lookup", {"item": "tea"}), cache_key("prices", {"item": "tea"})
        a.memory[key] = b.memory[key] = b.memory[other] = b"1"
        await one.invalidate(["lookup"])  # done in Redis (the store drops its own memory first)
        with anyio.fail_after(10):
            while key in b.memory or key in a.memory:  # the message is on its way to every host
                await asyncio.sleep(0.005)
        assert b.memory == {other: b"1"} and two.counter("lookup") == one.counter("lookup") == 1


@pytest.mark.anyio
async def test_a_redis_that_lost_its_data_leaves_no_local_entry_to_be_served(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    server = RedisServer(tmp_path / "volatile").start()  # no AOF: a restart loses everything
    try:
        memory = Tier(server.url)
        async with memory as tier:
            key = cache_key("lookup", {"item": "tea"})
            assert await tier.get(key) == (None, None, 0)  # the counter is known from here on
            memory.memory[key] = memory.memory[cache_key("prices", {})] = b"1"
            server.stop()
            with anyio.fail_after(10):
                while tier.live:
                    await asyncio.sleep(0.005)
            server.start()
            with anyio.fail_after(10):
                while not tier.live:  # it reconnects by itself
                    await asyncio.sleep(0.005)
            assert memory.memory == {} and tier.counts["staleDropped"] == 2
        [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert warning.startswith(f"shared cache: the Redis at {server.url} is unreachable (")
        assert warning.endswith("); caching on this host only until it is back")
    finally:
        server.stop()


params = st.dictionaries(st.text(max_size=8), st.one_of(st.integers(), st.text(max_size=8), st.none()), max_size=6)


@given(params, params, st.sampled_from(["lookup", "prices", "a{b}c", "x y"]))
def test_redis_keys_ignore_param_order_and_keep_every_method_in_one_slot(one: dict[str, Any], two: dict[str, Any],
                                                                        method: str) -> None:
    tier = SharedTier("redis://127.0.0.1:1/0", "app{1}", lambda m: 0, set)
    key = tier.key(cache_key(method, one))
    assert tier.key(cache_key(method, dict(reversed(list(one.items()))))) == key
    assert (tier.key(cache_key(method, two)) == key) == (one == two)
    slot = tier.slot(method)  # one hash tag: the method's (the app's braces are escaped)
    assert key.startswith(slot + ":") and slot.count("{") == slot.count("}") == 1
    assert key.startswith("bridge:cache:app%7B1%7D:{")
