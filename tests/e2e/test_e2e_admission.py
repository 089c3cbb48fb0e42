"""Through the real host: control messages are read however busy it is; callers share the slots.

Each of these wedged the host before input was always read (issue: trust, item 1).
"""

from __future__ import annotations

import time

from harness import ROOT, Host

APP = "tests.e2e_app:app"


def _call(id: int, method: str, params: dict | list | None = None, caller: str | None = None) -> dict:
    message: dict = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        message["params"] = params
    if caller is not None:
        message["$caller"] = caller
    return message


def _replies(host: Host, ids: set, timeout: float) -> dict:
    """Collect the replies to ``ids`` (by id), failing if they do not all come within ``timeout``."""
    got: dict = {}
    deadline = time.monotonic() + timeout
    while ids - got.keys():
        left = deadline - time.monotonic()
        assert left > 0, f"{len(ids - got.keys())} replies missing after {timeout}s"
        message = host.recv(left)
        if isinstance(message, dict) and message.get("id") in ids and "method" not in message:
            got[message["id"]] = message
    return got


def test_cancels_and_ping_are_read_while_every_slot_is_taken() -> None:
    with Host(APP) as host:
        host.send(*[_call(i, "slow", {"seconds": 30}) for i in range(300)])
        host.send(*[{"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": i}} for i in range(300)])
        started = time.monotonic()
        host.send(_call(1000, "rpc.ping"))
        replies = _replies(host, set(range(300)) | {1000}, timeout=5)
        assert replies[1000]["result"] == "pong"
        assert time.monotonic() - started < 1.0 + 1.0  # the ping within a second (plus the cancels' replies)
        assert {replies[i]["error"]["code"] for i in range(300)} == {-32800}


def test_ping_is_answered_at_the_limit_without_cancels() -> None:
    with Host(APP) as host:
        host.send(*[_call(i, "slow", {"seconds": 30}) for i in range(300)])
        started = time.monotonic()
        assert host.call("rpc.ping", id=1000)["result"] == "pong"
        assert time.monotonic() - started < 1.0


def test_one_caller_cannot_hold_every_slot() -> None:
    with Host(APP, "--max-inflight", "8") as host:
        host.send(*[_call(i, "slow", {"seconds": 30}, caller="greedy") for i in range(100)])
        for n in range(20):  # another caller keeps being served, one call after another
            host.send(_call(1000 + n, "slow", {"seconds": 0}, caller="polite"))
            assert host.reply(1000 + n, timeout=2)["result"] == "done"


def test_a_stream_waiting_for_credit_does_not_hold_its_credit_back() -> None:
    """129 streams with window 1 and no reader used to deadlock the host: credit went unread."""
    env = {"PYTHONPATH": str(ROOT / "client_js" / "test-support")}
    with Host("stream_app:app", "--max-inflight", "8", env=env) as host:
        host.send(*[  # 3 chunks each, 1 granted: every stream waits for credit, most of them queued
            _call(i, "data.rows", {"n": 300, "$meta": {"stream": {"window": 1}}}) for i in range(20)
        ])
        host.send(*[{"jsonrpc": "2.0", "method": "$/stream/credit", "params": {"id": i, "credit": 2}} for i in range(20)])
        replies = _replies(host, set(range(20)), timeout=10)
        assert all(r["result"] == {"items": 300, "chunks": 3} for r in replies.values())


def test_eof_at_the_limit_starts_the_normal_shutdown() -> None:
    with Host(APP, "--max-inflight", "4", "--shutdown-grace", "0.5") as host:
        host.send(*[_call(i, "slow", {"seconds": 30}) for i in range(10)])
        host.close_stdin()
        started = time.monotonic()
        assert host.wait(timeout=5) == 0
        assert time.monotonic() - started < 4
        replies = _replies(host, set(range(10)), timeout=2)
        assert {r["error"]["code"] for r in replies.values()} == {-32802}


def test_a_full_queue_answers_busy_and_the_host_keeps_serving() -> None:
    with Host(APP, "--max-inflight", "2", "--max-queued", "10") as host:
        host.send(*[_call(i, "slow", {"seconds": 30}, caller="flood") for i in range(20)])
        # 1 runs (its share of 2), 5 wait (half the queue), the other 14 are refused at once
        replies = _replies(host, set(range(6, 20)), timeout=5)
        assert {r["error"]["code"] for r in replies.values()} == {-32005}
        assert host.call("slow", {"seconds": 0}, id=99)["result"] == "done"


def test_control_messages_with_unhashable_ids_are_refused_and_the_host_serves_on() -> None:
    """Found by bench/fuzz.py: ``$/cancelRequest {id: {}}`` raised in the input callback and the
    host shut down (exit 0 mid-session)."""
    with Host(APP) as host:
        for method in ("$/cancelRequest", "$/stream/credit"):
            for bad in ({}, [], {"a": [1]}):
                host.send({"jsonrpc": "2.0", "method": method, "params": {"id": bad, "credit": 1}})
        assert host.call("rpc.ping", id=1)["result"] == "pong"
        assert host.call("slow", {"seconds": 0}, id=2)["result"] == "done"
        assert host.call("rpc.metrics", id=3)["result"]["badInput"]["request"] == 6
