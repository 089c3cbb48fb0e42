"""bridge/cache.py and bridge/middleware/cache.py: hits, keys, expiry, invalidation, single flight."""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge import Bridge, BridgeError
from bridge.cache import CacheStore
from bridge.middleware.cache import Cache, cache_key
from harness import exchange, lines

pytestmark = pytest.mark.anyio


def req(id: Any, method: str, params: Any = None, info: bool = False) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        message["params"] = params
    if info:
        message["params"] = {**(params or {}), "$meta": {"info": True}}
    return message


def counting_app(**cache_options: Any) -> tuple[Bridge, dict[str, int]]:
    app = Bridge("cache-test")
    runs = {"search": 0, "other": 0}

    @app.method("db.search", cache=Cache(**cache_options, tags=["db"]))
    async def search(query: str, limit: int = 10) -> dict[str, Any]:
        runs["search"] += 1
        await anyio.sleep(0.01)
        return {"query": query, "limit": limit, "run": runs["search"]}

    @app.method("db.other", cache=Cache(tags=["db"]))
    async def other() -> int:
        runs["other"] += 1
        return runs["other"]

    @app.method("db.write", invalidates=["db.search"])
    async def write() -> bool:
        return True

    @app.method("db.write_all", invalidates=["db"])
    async def write_all() -> bool:
        return True

    @app.method("db.fail", cache=Cache())
    async def fail() -> None:
        runs["other"] += 1
        raise BridgeError(4000, "no")

    return app, runs


async def test_hits_ignore_param_order_and_form(tmp_path) -> None:
    app, runs = counting_app()
    out = await exchange(app, lines(req(1, "db.search", {"query": "a", "limit": 3})), cache_dir=str(tmp_path))
    assert out[0]["result"]["run"] == 1
    out = await exchange(app, lines(
        req(2, "db.search", {"limit": 3, "query": "a"}, info=True),
        req(3, "db.search", ["a", 3]),
        req(4, "db.search", {"query": "b", "limit": 3}),
    ), cache_dir=str(tmp_path))
    by_id = {r["id"]: r for r in out}
    assert by_id[2]["result"] == by_id[3]["result"] == {"query": "a", "limit": 3, "run": 1}
    assert by_id[2]["$meta"]["cached"] is True and "handlerMs" in by_id[2]["$meta"]
    assert "$meta" not in by_id[3]  # strict clients that did not ask see a plain reply
    assert by_id[4]["result"]["run"] == 2
    assert runs["search"] == 2


async def test_single_flight(tmp_path) -> None:
    app, runs = counting_app()
    out = await exchange(app, lines(*[req(i, "db.search", {"query": "same"}) for i in range(50)]), cache_dir=str(tmp_path))
    assert runs["search"] == 1
    assert len(out) == 50 and {r["result"]["run"] for r in out} == {1}


async def test_errors_are_not_cached(tmp_path) -> None:
    app, runs = counting_app()
    out = await exchange(app, lines(req(1, "db.fail")), cache_dir=str(tmp_path))
    out += await exchange(app, lines(req(2, "db.fail")), cache_dir=str(tmp_path))
    assert [r["error"]["code"] for r in out] == [4000, 4000] and runs["other"] == 2


async def test_ttl_expires(tmp_path) -> None:
    app, runs = counting_app(ttl=0.05)
    await exchange(app, lines(req(1, "db.search", {"query": "t"})), cache_dir=str(tmp_path))
    await anyio.sleep(0.15)  # past the ttl: what this test is about
    out = await exchange(app, lines(req(2, "db.search", {"query": "t"})), cache_dir=str(tmp_path))
    assert out[0]["result"]["run"] == 2


async def test_invalidation_by_method_and_by_tag(tmp_path) -> None:
    app, runs = counting_app()
    d = str(tmp_path)
    await exchange(app, lines(req(1, "db.search", {"query": "x"}), req(2, "db.other")), cache_dir=d)
    out = await exchange(app, lines(req(3, "db.write")), cache_dir=d)
    out += await exchange(app, lines(req(4, "db.search", {"query": "x"}), req(5, "db.other")), cache_dir=d)
    results = {r["id"]: r["result"] for r in out}
    assert results[4]["run"] == 2 and results[5] == 1  # only db.search was dropped
    await exchange(app, lines(req(6, "db.write_all")), cache_dir=d)
    out = await exchange(app, lines(req(7, "db.search", {"query": "x"}), req(8, "db.other")), cache_dir=d)
    results = {r["id"]: r["result"] for r in out}
    assert results[7]["run"] == 3 and results[8] == 2  # the tag dropped both


async def test_an_unwritable_directory_degrades_to_memory_with_one_warning(tmp_path, caplog) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    app, runs = counting_app()
    with caplog.at_level(logging.WARNING, logger="bridge.cache"):
        out = await exchange(app, lines(*[req(i, "db.search", {"query": "m"}) for i in range(3)],
                                        req(9, "db.search", {"query": "n"})), cache_dir=str(blocker / "sub"))
    assert all("result" in r for r in out)
    assert runs["search"] == 2  # memory still caches
    assert len([r for r in caplog.records if "unusable" in r.getMessage()]) == 1


async def test_a_corrupt_database_degrades_to_memory(tmp_path, caplog) -> None:
    (tmp_path / "cache.db").write_bytes(b"this is not sqlite" * 100)
    app, runs = counting_app()
    with caplog.at_level(logging.WARNING, logger="bridge.cache"):
        out = await exchange(app, lines(req(1, "db.search", {"query": "c"}), req(2, "db.search", {"query": "c"})),
                             cache_dir=str(tmp_path))
    assert [r["result"]["run"] for r in out] == [1, 1]
    assert any("unusable" in r.getMessage() for r in caplog.records)


def test_store_size_limit_evicts(tmp_path) -> None:
    store = CacheStore(tmp_path, size_limit=256 * 1024, memory_items=1)
    body = b"x" * 32 * 1024
    for i in range(64):
        store.set(f"m\x00{i}", body, None, "m")
    store.flush()
    assert store._disk.volume() < 1024 * 1024  # 2 MiB written, the disk tier stayed near its limit
    store.close()


@given(st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5) | st.none(), max_size=6), st.randoms())
def test_cache_key_ignores_key_order(kwargs, random) -> None:
    items = list(kwargs.items())
    random.shuffle(items)
    assert cache_key("m", kwargs) == cache_key("m", dict(items))


@given(st.dictionaries(st.text(max_size=5), st.integers(), min_size=1, max_size=4), st.text(max_size=5))
def test_cache_key_separates_methods_and_values(kwargs, other_method) -> None:
    key = cache_key("m", kwargs)
    if other_method != "m":
        assert cache_key(other_method, kwargs) != key
    changed = {k: v + 1 for k, v in kwargs.items()}
    assert cache_key("m", changed) != key
