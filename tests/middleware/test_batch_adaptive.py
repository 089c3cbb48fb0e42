"""bridge/middleware/batch.py: ``min_size``, the adaptive wait between ``min_delay`` and
``max_delay``, and the metrics that say why batches went."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge import Bridge
from bridge.middleware.batch import Batch
from bridge.testing import AsyncTestClient

pytestmark = pytest.mark.anyio


def summing_app(batch: Batch) -> tuple[Bridge, list[int]]:
    app = Bridge()
    sizes: list[int] = []

    @app.method("num.double", batch=batch)
    async def double(values: list[int]) -> list[int]:
        sizes.append(len(values))
        return [v * 2 for v in values]

    return app, sizes


async def test_a_batch_under_min_size_waits_for_more_calls() -> None:
    # min_delay=0 would let each call go alone; min_size holds them until there are three
    app, sizes = summing_app(Batch(max_size=10, max_delay=5.0, min_delay=0, min_size=3))
    async with AsyncTestClient(app) as client:
        calls = []
        for i in range(3):
            calls.append(client.start("num.double", [i]))
            assert await client.call("rpc.ping") == "pong"  # the call has joined the batch by now
        assert [await c for c in calls] == [0, 2, 4]
    assert sizes == [3]


async def test_max_delay_still_lets_a_small_batch_go() -> None:
    app, sizes = summing_app(Batch(max_size=10, max_delay=0.05, min_size=5))
    async with AsyncTestClient(app) as client:
        assert await client.call("num.double", [21]) == 42
        metrics = (await client.metrics())["methods"]["num.double"]["batch"]
    assert sizes == [1]
    assert metrics["flushedOnTime"] == 1 and metrics["flushedFull"] == 0
    assert metrics["meanWaitMs"] >= 50 * 0.9  # loop timers may fire a hair early


async def test_metrics_count_full_batches() -> None:
    app, sizes = summing_app(Batch(max_size=2, max_delay=5.0))
    async with AsyncTestClient(app, max_inflight=100) as client:
        calls = [client.start("num.double", [i]) for i in range(6)]
        assert [await c for c in calls] == [i * 2 for i in range(6)]
        metrics = (await client.metrics())["methods"]["num.double"]["batch"]
    assert sizes == [2, 2, 2]
    assert metrics["flushedFull"] == 3 and metrics["flushedOnTime"] == 0
    assert metrics["arrivalGapMs"] is None  # not adaptive: arrivals are not tracked


def test_defaults_wait_max_delay_and_describe_as_before() -> None:
    batch = Batch(max_size=7, max_delay=0.03)
    assert batch.min_size == 1 and batch.min_delay == 0.03
    assert batch.wait() == 0.03
    assert batch.describe() == {"x-batch": {"maxSize": 7, "maxDelay": 0.03}}
    assert Batch(7, 0.03, min_size=2, min_delay=0.01).describe() == {
        "x-batch": {"maxSize": 7, "maxDelay": 0.03, "minSize": 2, "minDelay": 0.01}}


@pytest.mark.parametrize("options", [
    {"min_size": 0}, {"min_size": 21}, {"min_delay": -0.001}, {"min_delay": 0.02},
])
def test_bad_bounds_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="min_"):
        Batch(max_size=20, max_delay=0.01, **options)  # type: ignore[arg-type]


@given(
    min_delay=st.floats(0, 0.05), extra=st.floats(0, 0.5), max_size=st.integers(1, 100),
    gaps=st.lists(st.floats(0, 2), min_size=1, max_size=20),
)
def test_the_adaptive_wait_stays_within_its_bounds(min_delay: float, extra: float, max_size: int,
                                                   gaps: list[float]) -> None:
    batch = Batch(max_size=max_size, max_delay=min_delay + extra, min_delay=min_delay)
    now = 0.0
    batch._arrived(now)
    for gap in gaps:
        now += gap
        batch._arrived(now)
    assert min_delay <= batch.wait() <= min_delay + extra
    if batch.gap is not None and batch.gap >= batch.max_delay:
        assert batch.wait() == min_delay  # calls come further apart than max_delay: nobody to wait for


def test_a_burst_waits_longer_than_a_trickle() -> None:
    burst, trickle = Batch(10, 0.1, min_delay=0.001), Batch(10, 0.1, min_delay=0.001)
    for i in range(5):
        burst._arrived(i * 0.002)  # 500 calls a second: 10 fill a batch in ~20 ms
        trickle._arrived(i * 1.0)  # one a second: waiting gains nothing
    assert burst.wait() == pytest.approx(0.02)
    assert trickle.wait() == 0.001
