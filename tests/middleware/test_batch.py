"""bridge/middleware/batch.py: many callers, few handler invocations, each gets its own answer."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge import Bridge, BridgeError
from bridge.middleware.batch import Batch
from bridge.testing import AsyncTestClient
from harness import exchange, lines

pytestmark = pytest.mark.anyio


def doubling_app(max_size: int, max_delay: float = 0.02) -> tuple[Bridge, list[int]]:
    app = Bridge()
    sizes: list[int] = []

    @app.method("num.double", batch=Batch(max_size=max_size, max_delay=max_delay))
    async def double(values: list[int]) -> list[int | BridgeError]:
        sizes.append(len(values))
        return [BridgeError(4000, "no negatives", {"value": v}) if v < 0 else v * 2 for v in values]

    return app, sizes


def call(id: Any, value: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id, "method": "num.double", "params": [value]}


async def test_a_thousand_callers_make_about_fifty_invocations() -> None:
    app, sizes = doubling_app(max_size=20)
    async with AsyncTestClient(app, max_inflight=1000) as client:
        calls = [client.start("num.double", [i]) for i in range(1000)]  # all sent before any runs
        assert [await call for call in calls] == [i * 2 for i in range(1000)]
    assert len(sizes) <= 55 and max(sizes) <= 20 and sum(sizes) == 1000


async def test_one_bad_item_fails_only_its_caller() -> None:
    app, _ = doubling_app(max_size=10)
    out = {r["id"]: r for r in await exchange(app, lines(call(1, 1), call(2, -1), call(3, "x"), call(4, 4)))}
    assert out[1]["result"] == 2 and out[4]["result"] == 8
    assert out[2]["error"] == {"code": 4000, "message": "no negatives", "data": {"value": -1}}
    assert out[3]["error"]["code"] == -32602  # refused before it joined a batch


async def test_named_params_and_a_wrong_sized_answer() -> None:
    app = Bridge()

    @app.method(batch=Batch(max_size=5))
    async def lossy(items: list[str]) -> list[str]:
        return items[:-1]

    out = await exchange(app, lines(*[{"jsonrpc": "2.0", "id": i, "method": "lossy", "params": {"items": "s"}} for i in range(3)]))
    assert {r["error"]["code"] for r in out} == {-32603}


def test_batch_handlers_must_take_one_list() -> None:
    app = Bridge()
    with pytest.raises(TypeError, match="list"):

        @app.method(batch=Batch())
        async def wrong(a: int, b: int) -> list[int]:
            return []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(-50, 50), min_size=1, max_size=80), st.integers(1, 30))
def test_results_split_back_to_the_right_callers(values, max_size) -> None:
    import anyio

    app, sizes = doubling_app(max_size=max_size, max_delay=0.001)

    async def main() -> list[Any]:
        return await exchange(app, lines(*[call(i, v) for i, v in enumerate(values)]), max_inflight=200)

    out = {r["id"]: r for r in anyio.run(main)}
    for i, v in enumerate(values):
        if v < 0:
            assert out[i]["error"]["data"] == {"value": v}
        else:
            assert out[i]["result"] == v * 2
    assert sum(sizes) == len(values) and max(sizes) <= max_size


async def test_batch_metrics() -> None:
    app, sizes = doubling_app(max_size=10)
    async with AsyncTestClient(app, max_inflight=100) as client:
        for call in [client.start("num.double", [i]) for i in range(30)]:
            await call
        metrics = (await client.metrics())["methods"]["num.double"]
    assert metrics["batch"]["batches"] == len(sizes) and metrics["batch"]["meanSize"] == 30 / len(sizes)
