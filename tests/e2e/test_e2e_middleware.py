"""End to end through the real process: rate limits, coalescing, streams, circuits."""

from __future__ import annotations

import time

from harness import Host
from test_e2e import _rss_kib

APP = "tests.e2e_app:app"


def test_rate_limit_under_a_burst():
    with Host(APP) as host:
        host.recv()
        host.send(*[{"jsonrpc": "2.0", "id": i, "method": "scarce"} for i in range(200)])
        replies = [host.recv() for _ in range(200)]
        assert sum("result" in r for r in replies) == 5
        assert all(r["error"]["code"] == -32003 for r in replies if "error" in r)


def test_a_thousand_concurrent_calls_are_coalesced():
    with Host(APP, env={"BRIDGE_MAX_INFLIGHT": "1000"}) as host:
        host.recv()
        host.send(*[{"jsonrpc": "2.0", "id": i, "method": "square", "params": [i]} for i in range(1000)])
        replies = {r["id"]: r["result"] for r in (host.recv() for _ in range(1000))}
        assert replies == {i: i * i for i in range(1000)}
        sizes = host.call("batch_count", id="c")["result"]
        assert sum(sizes) == 1000 and len(sizes) <= 55


def test_a_million_items_to_a_slow_reader_with_flat_memory():
    n, width = 1_000_000, 100  # ~110 MB of items
    with Host(APP, keep_raw=False) as host:
        host.recv()
        baseline = _rss_kib(host.proc.pid)
        host.send({"jsonrpc": "2.0", "id": 1, "method": "export",
                   "params": {"n": n, "width": width, "$meta": {"stream": {"window": 4}}}})
        received = chunks = 0
        peak = baseline
        while True:
            message = host.recv(timeout=30)
            if message.get("id") == 1:
                break
            assert message["method"] == "$/stream" and message["params"]["seq"] == chunks
            received += len(message["params"]["items"])
            chunks += 1
            if chunks % 50 == 0:
                peak = max(peak, _rss_kib(host.proc.pid))
            host.send({"jsonrpc": "2.0", "method": "$/stream/credit", "params": {"id": 1, "credit": 1}})
        assert message["result"] == {"items": n, "chunks": chunks} and received == n
        assert message is not None and chunks == n // 1000
        assert (peak - baseline) < 40 * 1024, f"host grew {(peak - baseline) // 1024} MiB"


def test_cancel_mid_stream():
    with Host(APP) as host:
        host.recv()
        host.send({"jsonrpc": "2.0", "id": "s", "method": "export",
                   "params": {"n": 10**9, "width": 10, "$meta": {"stream": {"window": 2}}}})
        first = host.recv()
        assert first["method"] == "$/stream"
        host.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": "s"}})
        reply, _ = host.recv_until(lambda m: m.get("id") == "s")
        assert reply["error"]["code"] == -32800
        assert host.call("square", [3], id="after")["result"] == 9  # still serving


def test_the_circuit_opens_and_closes():
    with Host(APP) as host:
        host.recv()
        assert host.call("set_health", [False], id=1)["result"] is False
        codes = [host.call("fragile", id=f"f{i}")["error"]["code"] for i in range(3)]
        assert codes == [-32603, -32603, -32004]
        host.call("set_health", [True], id=2)
        opened = time.monotonic()
        deadline = opened + 5
        while time.monotonic() < deadline:  # the cool-down is 0.3 s of real time
            reply = host.call("fragile", id="probe")
            if "result" in reply:
                break
            assert reply["error"]["code"] == -32004
            time.sleep(0.05)
        assert reply == {"jsonrpc": "2.0", "id": "probe", "result": "up"}
        assert time.monotonic() - opened >= 0.25


def test_single_flight_and_invalidation(tmp_path):
    with Host(APP, env={"BRIDGE_CACHE_DIR": str(tmp_path)}) as host:
        host.recv()
        host.send(*[{"jsonrpc": "2.0", "id": i, "method": "lookup", "params": {"key": "k"}} for i in range(20)])
        assert {host.recv()["result"]["count"] for _ in range(20)} == {1}  # twenty callers, one run
        assert host.call("change", id="c")["result"] is True  # declared: invalidates the "lookups" tag
        assert host.call("lookup", {"key": "k"}, id="a")["result"] == {"count": 2}
        assert host.call("lookup", {"key": "k"}, id="b")["result"] == {"count": 2}
        assert host.call("forget", {"key": "k"}, id="f")["result"] is True  # app.invalidate by method
        assert host.call("lookup", {"key": "k"}, id="d")["result"] == {"count": 3}
