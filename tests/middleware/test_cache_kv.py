"""bridge/kv.py and the key/value side of bridge/cache.py: ``ctx.cache`` get/set/delete with a
TTL, its own namespace, the lazily opened store, and the sweep of expired entries; and
``invalidation_method`` (bridge/middleware/cache.py), the client's way to drop replies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

import bridge.cache
from bridge import Bridge, BridgeError, Context
from bridge.cache import KV_PREFIX, CacheStore
from bridge.middleware.cache import Cache, cache_key, invalidation_method
from bridge.testing import AsyncTestClient
from harness import Host

pytestmark = pytest.mark.anyio


def kv_app() -> Bridge:
    """No method caches replies: the store must open on the first ``ctx.cache`` use."""
    app = Bridge("kv-test")

    @app.method("kv.set")
    async def set_(ctx: Context, key: str, value: Any, ttl: float | None = None) -> None:
        ctx.cache.set(key, value, ttl)

    @app.method("kv.get")
    async def get(ctx: Context, key: str) -> Any:
        return ctx.cache.get(key, "missing")

    @app.method("kv.delete")
    async def delete(ctx: Context, key: str) -> bool:
        return ctx.cache.delete(key)

    @app.method("kv.sync_roundtrip")
    def sync_roundtrip(ctx: Context, key: str, value: Any) -> Any:  # a worker thread
        ctx.cache.set(key, value)
        return ctx.cache.get(key)

    return app


async def test_set_get_delete_without_any_cached_method(tmp_path: Path) -> None:
    app = kv_app()
    async with AsyncTestClient(app, cache_dir=str(tmp_path)) as client:
        assert client.connection is not None and client.connection.cache is None  # nothing opened yet
        assert await client.call("kv.get", {"key": "a"}) == "missing"
        await client.call("kv.set", {"key": "a", "value": {"n": [1, 2.5, "x", None]}})
        assert await client.call("kv.get", {"key": "a"}) == {"n": [1, 2.5, "x", None]}
        assert await client.call("kv.delete", {"key": "a"}) is True
        assert await client.call("kv.delete", {"key": "a"}) is False
        assert await client.call("kv.get", {"key": "a"}) == "missing"
        assert await client.call("kv.sync_roundtrip", {"key": "t", "value": [1, 2]}) == [1, 2]


async def test_values_persist_across_restarts(tmp_path: Path) -> None:
    app = kv_app()
    async with AsyncTestClient(app, cache_dir=str(tmp_path)) as client:
        await client.call("kv.set", {"key": "k", "value": "kept"})
    async with AsyncTestClient(app, cache_dir=str(tmp_path)) as client:
        assert await client.call("kv.get", {"key": "k"}) == "kept"


async def test_ttl_expires_and_the_sweep_counts_it(tmp_path: Path) -> None:
    app = kv_app()
    async with AsyncTestClient(app, cache_dir=str(tmp_path)) as client:
        await client.call("kv.set", {"key": "short", "value": 1, "ttl": 0.05})
        await client.call("kv.set", {"key": "long", "value": 2})
        await anyio.sleep(0.06)  # the TTL itself: time has to pass
        assert await client.call("kv.get", {"key": "short"}) == "missing"
        store = client.connection.cache  # type: ignore[union-attr]
        assert store is not None
        store.set_value("short2", b"1", 0.01)
        await anyio.sleep(0.02)
        swept = await store.sweep()
        cache = (await client.metrics())["cache"]
        # short2 in memory (short's memory copy went on its read), and on disk
        assert cache["sweeps"] == 1 and cache["expiredMemory"] == 1 and cache["expiredDisk"] >= 1
        assert swept == cache["expiredMemory"] + cache["expiredDisk"]
        assert await client.call("kv.get", {"key": "long"}) == 2


async def test_the_connection_sweeps_periodically_once_a_store_exists(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bridge.cache, "SWEEP_INTERVAL", 0.01)
    app = kv_app()
    async with AsyncTestClient(app, cache_dir=str(tmp_path)) as client:
        await client.call("kv.set", {"key": "gone", "value": 1, "ttl": 0.01})
        store = client.connection.cache  # type: ignore[union-attr]
        with anyio.fail_after(5):
            while store.expired["memory"] == 0:  # type: ignore[union-attr]
                await anyio.sleep(0.01)  # polling the sweep task's effect
        assert store.sweeps >= 1  # type: ignore[union-attr]


async def test_values_and_replies_do_not_share_keys(tmp_path: Path) -> None:
    app = kv_app()
    runs = []

    @app.method("db.search", cache=Cache(tags=["db"]))
    async def search(query: str) -> list[str]:
        runs.append(query)
        return [query]

    async with AsyncTestClient(app, cache_dir=str(tmp_path)) as client:
        reply_key = cache_key("db.search", {"query": "q"})
        await client.call("kv.set", {"key": reply_key, "value": "not a reply"})
        assert await client.call("db.search", {"query": "q"}) == ["q"]
        assert await client.call("db.search", {"query": "q"}) == ["q"] and runs == ["q"]
        assert await client.call("kv.get", {"key": reply_key}) == "not a reply"
        app.invalidate("db")  # drops replies, never values
        assert await client.call("kv.get", {"key": reply_key}) == "not a reply"


@given(key=st.text(min_size=1), method=st.text(min_size=1).filter(lambda m: not m.startswith("\x00")),
       query=st.text())
def test_no_value_key_is_a_reply_key(key: str, method: str, query: str) -> None:
    assert KV_PREFIX + key != cache_key(method, {"query": query})


async def test_bad_keys_values_and_ttls_are_refused(tmp_path: Path) -> None:
    app = kv_app()
    async with AsyncTestClient(app, cache_dir=str(tmp_path)) as client:
        kv = _kv(client)
        with pytest.raises(TypeError, match="non-empty string"):
            kv.set("", 1)
        with pytest.raises(TypeError, match="non-empty string"):
            kv.get(3)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="not JSON-serialisable"):
            kv.set("k", object())
        with pytest.raises(ValueError, match="ttl must be positive"):
            kv.set("k", 1, ttl=0)


def _kv(client: AsyncTestClient) -> Any:
    from bridge.kv import KeyValue

    return KeyValue(client.connection)  # type: ignore[arg-type]


def test_a_store_without_a_directory_keeps_values_in_memory() -> None:
    store = CacheStore(None, 1 << 20)
    store.set_value("k", b'"v"', None)
    assert store.get_value("k") == b'"v"'
    assert store.delete_value("k") is True and store.get_value("k") is None


# ---- invalidation from the client --------------------------------------------------------


def invalidating_app() -> tuple[Bridge, list[str]]:
    app = Bridge("invalidate-test")
    runs: list[str] = []

    @app.method("db.search", cache=Cache(tags=["db"]))
    async def search(query: str) -> str:
        runs.append(query)
        return f"{query}:{len(runs)}"

    @app.method("db.plain")
    async def plain() -> int:
        return 1

    app.add_method(invalidation_method(app), "cache.invalidate")
    return app, runs


async def test_the_client_invalidates_by_method_and_by_tag(tmp_path: Path) -> None:
    app, runs = invalidating_app()
    async with AsyncTestClient(app, cache_dir=str(tmp_path)) as client:
        assert await client.call("db.search", ["q"]) == "q:1"
        assert await client.call("db.search", ["q"]) == "q:1"
        assert await client.call("cache.invalidate", {"targets": ["db.search"]}) == ["db.search"]
        assert await client.call("db.search", ["q"]) == "q:2"
        assert await client.call("cache.invalidate", [["db"]]) == ["db.search"]
        assert await client.call("db.search", ["q"]) == "q:3"


async def test_invalidating_what_is_not_cached_is_a_clear_error(tmp_path: Path) -> None:
    app, _ = invalidating_app()
    async with AsyncTestClient(app, cache_dir=str(tmp_path)) as client:
        with pytest.raises(BridgeError) as error:
            await client.call("cache.invalidate", {"targets": ["db.plain", "nope", "db"]})
    assert error.value.code == -32602
    assert error.value.data == {"unknown": ["db.plain", "nope"]}


# ---- a real host, restarted ----------------------------------------------------------------

KV_APP = """
from bridge import Bridge, Context

app = Bridge("kv-e2e")

@app.method
def remember(ctx: Context, key: str, value: object = None) -> object:
    previous = ctx.cache.get(key)
    if value is not None:
        ctx.cache.set(key, value)
    return previous
"""


def test_a_real_host_keeps_values_across_restarts(tmp_path: Path) -> None:
    (tmp_path / "kvapp.py").write_text(KV_APP)
    env = {"BRIDGE_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"}

    def remember(params: dict[str, Any]) -> Any:
        with Host("kvapp:app", env=env) as host:
            host.recv()
            host.send({"jsonrpc": "2.0", "id": 1, "method": "remember", "params": params})
            reply = host.reply(1)
            host.close_stdin()
            assert host.wait() == 0
        return reply["result"]

    assert remember({"key": "k", "value": {"seen": 1}}) is None
    assert remember({"key": "k"}) == {"seen": 1}  # a new process read it from disk


def test_a_ttl_runs_from_the_set_not_from_the_delayed_disk_write(tmp_path: Path) -> None:
    """Disk writes go behind the loop, in order: one held back past an entry's TTL must not
    give it a fresh TTL on disk (it outlived its TTL by the write's delay, seen under load)."""
    import threading
    import time

    store = CacheStore(tmp_path, 1 << 20)
    try:
        store.set_value("first", b"0", None)
        store.flush()
        gate = threading.Event()
        store._writes.submit(gate.wait)  # the writer is busy (a slow disk, a loaded machine)
        store.set_value("short", b"1", 0.05)
        store.set_value("long", b"2", 3600)
        time.sleep(0.06)  # the TTL itself: time has to pass
        gate.set()
        assert store.get_value("short") is None
        assert store.get_value("long") == b"2"
        disk = store._open()
        assert disk.get(KV_PREFIX + "short") is None
        assert 3590 < disk.get(KV_PREFIX + "long", expire_time=True)[1] - time.time() <= 3600
    finally:
        store.close()
