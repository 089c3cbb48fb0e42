"""The metrics the designs name, in rpc.metrics: mean and max latency, host-wide totals, messages
sent, the cache store's size, failed batches and batch timing, stream means, buffer utilisation."""

from __future__ import annotations

import math
import threading
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge import Bridge, BridgeError, Cache
from bridge.metrics import RING, Metrics
from bridge.middleware.batch import Batch
from bridge.middleware.stream import Stream
from bridge.testing import TestClient


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=100, allow_nan=False), min_size=1, max_size=3 * RING))
def test_mean_and_max_cover_every_call_not_just_the_ring(latencies: list[float]) -> None:
    """Recorded the way the connection records (a running sum and max beside the ring)."""
    stats = Metrics().stats("m")
    for elapsed in latencies:
        stats.record(elapsed)
    latency = stats.snapshot()["latencyMs"]
    assert math.isclose(latency["mean"], round(sum(latencies) / len(latencies) * 1e3, 3), abs_tol=1e-3)
    assert latency["max"] == round(max(latencies) * 1e3, 3)
    # the ring's p99 is never above the max, but for float32 rounding (a part in 2**24)
    assert latency["max"] >= latency["p99"] * (1 - 2**-23) - 1e-3


def test_a_method_never_called_has_no_mean_or_max() -> None:
    assert Metrics().stats("m").snapshot()["latencyMs"] == {"p50": None, "p95": None, "p99": None,
                                                            "mean": None, "max": None}


def test_host_totals_count_requests_notifications_responses_and_errors() -> None:
    app = Bridge()
    seen = threading.Event()

    @app.method
    async def ok() -> int:
        return 1

    @app.method
    async def bad() -> int:
        raise BridgeError(4000, "no")

    @app.method
    async def note() -> None:
        seen.set()

    with TestClient(app) as client:
        before = client.metrics()["totals"]
        for _ in range(3):
            client.call("ok")
        with pytest.raises(BridgeError):
            client.call("bad")
        client.notify("note")
        client.wait_until(seen.is_set)
        client.connection.notify("$/hello", {"x": 1})  # type: ignore[union-attr]
        totals = client.metrics()["totals"]
    assert totals["requests"] - before["requests"] == 5  # ok x3, bad, and the first rpc.metrics
    assert totals["notifications"] == 1
    assert totals["errors"] == 1
    assert totals["errorRate"] == round(1 / (totals["requests"] + totals["notifications"]), 4)
    assert totals["notificationsSent"] - before["notificationsSent"] == 1
    # every reply sent so far (this rpc.metrics' own is framed after its snapshot)
    assert totals["responses"] - before["responses"] == 5
    assert totals["messagesSent"] == totals["responses"] + totals["notificationsSent"]
    assert totals["messagesReceived"] >= totals["requests"] + totals["notifications"]


def test_the_cache_store_reports_its_entries_and_bytes(tmp_path: Any) -> None:
    app = Bridge()

    @app.method(cache=Cache())
    async def square(x: int) -> str:
        return "x" * x

    with TestClient(app, cache_dir=str(tmp_path)) as client:
        for x in (10, 20, 30, 10):
            client.call("square", {"x": x})
        cache = client.metrics()["cache"]
        client.connection.cache.flush()  # type: ignore[union-attr]
        on_disk = client.metrics()["cache"]
    assert cache["memoryEntries"] == 3
    assert cache["memoryBytes"] == sum(len(f'"{"x" * x}"') for x in (10, 20, 30))
    assert on_disk["diskEntries"] == 3 and on_disk["diskBytes"] >= cache["memoryBytes"]


def test_failed_batches_and_the_handlers_mean_time() -> None:
    app = Bridge()

    @app.method(batch=Batch(max_size=2, max_delay=5))
    async def double(items: list[int]) -> list[int]:
        if 13 in items:
            raise RuntimeError("unlucky")
        return [2 * i for i in items]

    with TestClient(app) as client:
        calls = [client.start("double", {"items": i}) for i in (1, 2, 13, 4)]
        assert calls[0].result() == 2 and calls[1].result() == 4
        for call in calls[2:]:
            with pytest.raises(BridgeError):
                call.result()
        batch = client.metrics()["methods"]["double"]["batch"]
    assert batch["batches"] == 2 and batch["failed"] == 1 and batch["meanSize"] == 2
    assert batch["meanRunMs"] is not None and batch["meanRunMs"] >= 0
    assert batch["meanWaitMs"] is not None  # each batch filled at once: waited next to nothing


def test_streams_report_mean_chunk_size_and_duration() -> None:
    app = Bridge()

    @app.method(stream=Stream(chunk_size=4))
    async def count(n: int):
        for i in range(n):
            yield i
            await anyio.sleep(0)

    with TestClient(app) as client:
        assert list(client.stream("count", {"n": 10})) == list(range(10))
        assert list(client.stream("count", {"n": 2})) == [0, 1]
        stream = client.metrics()["methods"]["count"]["stream"]
    assert stream["streams"] == 2 and stream["chunks"] == 4  # 4 + 4 + 2, then 2
    assert stream["meanChunkItems"] == 3.0
    assert stream["meanChunkBytes"] == round(stream["bytes"] / 4, 1)
    assert stream["meanDurationMs"] is not None and stream["meanDurationMs"] > 0


def test_buffers_show_inflight_against_its_limit_and_open_stream_windows() -> None:
    app = Bridge()
    release = anyio.Event()

    @app.method
    async def hold() -> None:
        await release.wait()

    @app.method(stream=Stream(chunk_size=1))
    async def endless():
        i = 0
        while True:
            yield i
            i += 1

    with TestClient(app, max_inflight=8) as client:
        held = client.start("hold")
        stream = client.stream("endless", {}, window=3)
        conn = client.connection
        assert conn is not None
        client.wait_until(lambda: len(conn.streams) == 1 and conn.streams.credit() == 0)
        buffers = client.metrics()["buffers"]
        assert buffers["maxInflight"] == 8
        assert buffers["inflight"] == 3  # hold, endless and this rpc.metrics
        assert buffers["inflightUtilisation"] == round(3 / 8, 4)
        assert buffers["openStreams"] == 1 and buffers["streamCredit"] == 0  # its window of 3 is spent
        assert buffers["outputQueueBytes"] >= 0
        next(iter(stream))  # taking a chunk grants one credit back
        client.wait_until(lambda: conn.streams.credit() >= 0)
        stream.close()
        client.portal.call(release.set)  # type: ignore[union-attr]
        held.result()


def test_reading_the_cache_figures_does_not_count_as_using_the_entries() -> None:
    """stats() walks the memory tier without touching its LRU order: the oldest entry is still evicted first."""
    from bridge.cache import CacheStore

    store = CacheStore(None, 1000, memory_items=3)
    for key in "abc":
        store.set(key, b"xyz", None, "m", False)
    assert store.stats()["memoryEntries"] == 3 and store.stats()["memoryBytes"] == 9
    store.set("d", b"y", None, "m", False)
    assert sorted(store._memory.keys()) == ["b", "c", "d"]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=100, allow_nan=False, width=32), max_size=3 * RING))
def test_the_ring_grows_with_the_calls_and_holds_the_last_of_them(latencies: list[float]) -> None:
    """A method's ring starts short (an app of many methods called a few times holds little) and
    doubles as calls come, up to RING entries; it holds the last min(calls, RING) latencies."""
    from bridge.metrics import FIRST_RING

    stats = Metrics().stats("m")
    for elapsed in latencies:
        stats.record(elapsed)
    n = len(latencies)
    assert len(stats.ring) == min(RING, max(FIRST_RING, 1 << (n - 1).bit_length() if n else 0))
    kept = min(n, RING)
    assert sorted(stats.ring[:kept]) == sorted(latencies[n - kept:])


def test_a_method_called_a_few_times_holds_a_short_ring_and_one_called_often_a_full_one() -> None:
    """Through the connection: its calls grow their method's ring as ``record`` does."""
    from bridge.metrics import FIRST_RING

    app = Bridge()

    @app.method
    async def rare(x: int) -> int:
        return x

    @app.method
    async def often(x: int) -> int:
        return x

    with TestClient(app) as client:
        assert client.call("rare", {"x": 1}) == 1
        assert [client.call("often", {"x": i}) for i in range(RING + 40)] == list(range(RING + 40))
        methods = client.metrics()["methods"]
        stats = client.connection.metrics.methods  # type: ignore[union-attr]
    assert len(stats["rare"].ring) == FIRST_RING and len(stats["often"].ring) == RING
    assert methods["rare"]["calls"] == 1 and methods["often"]["calls"] == RING + 40
    assert methods["often"]["latencyMs"]["p99"] <= methods["often"]["latencyMs"]["max"] * (1 + 2**-23) + 1e-3
