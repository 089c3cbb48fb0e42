"""bridge/metrics.py: per-method counters, percentiles over the ring, what middleware adds."""

from __future__ import annotations

from typing import Any

from bridge import Bridge
from bridge.metrics import RING, Metrics


def test_percentiles_and_errors_over_the_last_ring_of_calls() -> None:
    metrics = Metrics()
    stats = metrics.stats("m")
    for i in range(RING + 100):  # the oldest 100 fall out of the ring
        stats.record((i % 100) / 1000)
    stats.error(-32602)
    snapshot = metrics.snapshot()["methods"]["m"]
    assert snapshot["calls"] == RING + 100 and snapshot["errors"] == 1
    assert snapshot["errorsByCode"] == {"-32602": 1}
    latency = snapshot["latencyMs"]
    assert 45 <= latency["p50"] <= 55 and 90 <= latency["p95"] <= latency["p99"] <= 99.0


def test_each_middleware_adds_its_own_figures() -> None:
    class Reporting:
        async def __call__(self, request: Any, call_next: Any) -> Any:
            return await call_next(request)

        def metrics(self, method: str) -> dict[str, Any]:
            return {"mine": {"method": method}}

    app = Bridge()

    @app.method(middleware=[Reporting()])
    async def m() -> None: ...

    metrics = Metrics()
    metrics.stats("m")
    assert metrics.snapshot(app.methods)["methods"]["m"]["mine"] == {"method": "m"}
    never_called = Metrics().snapshot(app.methods)["methods"]["m"]  # listed before its first call, at zero
    assert never_called["calls"] == 0 and never_called["latencyMs"]["p50"] is None
    assert never_called["mine"] == {"method": "m"}


def test_a_methods_counters_are_made_on_its_first_call() -> None:
    """An app of many methods holds a latency ring only for the methods that were called."""
    import anyio
    from harness import exchange, lines

    app = Bridge()
    for i in range(50):
        async def handler(i: int = i) -> int:
            return i
        app.add_method(handler, f"m{i}")
    out = anyio.run(lambda: exchange(app, lines({"jsonrpc": "2.0", "id": 1, "method": "m7"},
                                                {"jsonrpc": "2.0", "id": 2, "method": "rpc.metrics"})))
    methods = next(r for r in out if r["id"] == 2)["result"]["methods"]
    assert methods["m7"]["calls"] == 1 and methods["m8"]["calls"] == 0 and len(methods) >= 50


def test_message_rate_counts_received_messages() -> None:
    metrics = Metrics()
    metrics.received(5)
    assert metrics.snapshot()["messages"] == 5
