"""bridge/middleware/circuit.py: a caller's errors neither open nor close a method's circuit."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

from bridge import Bridge, BridgeError
from bridge.middleware.circuit import CircuitBreaker
from bridge.middleware.ratelimit import RateLimit
from bridge.testing import AsyncTestClient
from harness import Host, exchange, lines


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()  # the circuit's own clock (CircuitBreaker(clock=...)): the event loop keeps the real one


def failing_app(breaker: CircuitBreaker) -> tuple[Bridge, dict[str, Any]]:
    """``down(n)`` raises while ``state["healthy"]`` is false; ``n`` < 0 is the caller's error 4000."""
    app = Bridge()
    state: dict[str, Any] = {"healthy": False, "ran": 0}

    @app.method(circuit=breaker, rate_limit=RateLimit(1000, per=3600, key="caller"))
    async def down(n: int) -> str:
        state["ran"] += 1
        if n < 0:
            raise BridgeError(4000, "n must not be negative")
        if not state["healthy"]:
            raise RuntimeError("down")
        return "up"

    return app, state


def call(id: Any, params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id, "method": "down", "params": params}


async def codes(app: Bridge, *messages: Any) -> list[int | None]:
    out = []
    for message in messages:  # one at a time, in order
        [reply] = await exchange(app, lines(message))
        out.append(reply.get("error", {}).get("code"))
    return out


@pytest.mark.anyio
@pytest.mark.parametrize("bad", [{"n": "x"}, [1, 2], {"n": -1}], ids=["invalid-params", "too-many", "app-code"])
async def test_caller_errors_between_failures_do_not_keep_the_circuit_closed(clock, bad) -> None:
    breaker = CircuitBreaker(failures=3, reset_after=10, clock=clock)
    app, _ = failing_app(breaker)
    got = await codes(app, call(1, [1]), call(2, bad), call(3, [1]), call(4, bad), call(5, [1]), call(6, [1]))
    assert got[::2] == [-32603, -32603, -32603]  # three failures in a row, the caller's errors between
    assert breaker.state("down") == "open" and got[-1] == -32004


@pytest.mark.anyio
async def test_rate_limited_calls_are_not_successes(clock) -> None:
    breaker = CircuitBreaker(failures=2, reset_after=10, clock=clock)
    app = Bridge()

    @app.method(circuit=breaker, rate_limit=RateLimit(2, per=3600))
    async def scarce() -> None:
        raise RuntimeError("down")

    message = {"jsonrpc": "2.0", "id": 1, "method": "scarce"}
    assert await codes(app, message, message, message) == [-32603, -32603, -32004]
    clock.now += 10
    assert await codes(app, message) == [-32003]  # the half-open trial was rate limited: neither
    assert breaker.state("scarce") == "half-open"


@pytest.mark.anyio
@pytest.mark.parametrize(("bad", "code"), [({"n": "x"}, -32602), ({"n": -1}, 4000)], ids=["invalid-params", "app-code"])
async def test_a_caller_error_neither_closes_a_half_open_circuit_nor_keeps_its_trial(clock, bad, code) -> None:
    breaker = CircuitBreaker(failures=1, reset_after=10, clock=clock)
    app, state = failing_app(breaker)
    assert await codes(app, call(1, [1])) == [-32603]
    clock.now += 10
    assert breaker.state("down") == "half-open"
    assert await codes(app, call(2, bad), call(3, bad)) == [code, code]
    assert breaker.state("down") == "half-open"  # not closed by a bad call, and the trial is free again
    ran = state["ran"]
    assert await codes(app, call(4, [1])) == [-32603]  # the next call is the trial, and it fails
    assert state["ran"] == ran + 1 and breaker.state("down") == "open"
    clock.now += 10
    state["healthy"] = True
    assert await codes(app, call(5, bad), call(6, [1]), call(7, [1])) == [code, None, None]
    assert breaker.state("down") == "closed"


@pytest.mark.anyio
async def test_timeouts_count_as_failures(clock) -> None:
    breaker = CircuitBreaker(failures=2, reset_after=10, clock=clock)
    app = Bridge()

    @app.method(circuit=breaker, timeout=0.01)
    async def hangs() -> None:
        await anyio.sleep_forever()

    message = {"jsonrpc": "2.0", "id": 1, "method": "hangs"}
    assert await codes(app, message, message, message) == [-32001, -32001, -32004]


@pytest.mark.anyio
async def test_a_cancelled_trial_leaves_the_circuit_half_open(clock) -> None:
    breaker = CircuitBreaker(failures=1, reset_after=10, clock=clock)
    app = Bridge()
    started = anyio.Event()

    @app.method(circuit=breaker)
    async def wait(fail: bool = False) -> None:
        if fail:
            raise RuntimeError("down")
        started.set()
        await anyio.sleep_forever()

    async with AsyncTestClient(app) as client:
        with pytest.raises(BridgeError) as opened:
            await client.call("wait", [True])
        assert opened.value.code == -32603
        clock.now += 10
        trial = client.start("wait")
        with anyio.fail_after(5):
            await started.wait()
        trial.cancel()
        with pytest.raises(BridgeError) as cancelled:
            await trial
        assert cancelled.value.code == -32800
        assert breaker.state("wait") == "half-open"  # not reopened as by a failure...
        with pytest.raises(BridgeError) as failed:
            await client.call("wait", [True])
        assert failed.value.code == -32603  # ...and the next call was let through as the trial


def test_end_to_end_caller_errors_are_neither_failures_nor_successes():
    """tests/e2e_app.py's ``fragile``: failures=2, reset_after=0.3 s; it takes no params, so
    ``{"x": 1}`` is the caller's error (-32602)."""
    with Host("tests.e2e_app:app") as host:
        host.recv()
        host.call("set_health", [False], id="h")
        got = [host.call("fragile", params, id=f"f{i}")["error"]["code"]
               for i, params in enumerate([None, {"x": 1}, None, None])]
        assert got == [-32603, -32602, -32603, -32004]  # the bad call did not reset the count
        deadline = time.monotonic() + 5
        while True:  # the cool-down is 0.3 s of real time
            code = host.call("fragile", {"x": 1}, id="probe")["error"]["code"]
            if code != -32004:
                break
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert code == -32602  # a bad call was let through as the half-open trial...
        host.send(*[{"jsonrpc": "2.0", "id": f"t{i}", "method": "fragile"} for i in range(2)])
        replies = sorted(host.recv()["error"]["code"] for _ in range(2))
        assert replies == [-32603, -32004]  # ...and left it half-open: one of the next calls was the trial
