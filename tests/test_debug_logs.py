"""Debug mode (``--debug``): a ``bridge.debug`` log line for each batch, stream, cache decision,
rate-limit refusal or wait and circuit decision, with its timing; none without debug mode."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import anyio
import pytest

from bridge import Bridge, BridgeError, Cache, CircuitBreaker, RateLimit
from bridge.middleware.batch import Batch
from bridge.middleware.stream import Stream
from bridge.testing import TestClient

MS = r"\d+\.\d{3} m?s"


def app_of_everything() -> Bridge:
    app = Bridge()
    state = {"fail": True}

    @app.method(batch=Batch(max_size=2, max_delay=5))
    async def double(items: list[int]) -> list[int]:
        return [2 * i for i in items]

    @app.method(stream=Stream(chunk_size=2))
    async def count(n: int):
        for i in range(n):
            yield i

    @app.method(cache=Cache(tags=["squares"]))
    async def square(x: int) -> int:
        return x * x

    @app.method(invalidates=["squares"])
    async def reset() -> None: ...

    @app.method(rate_limit=RateLimit(1, per=60))
    async def scarce() -> int:
        return 1

    @app.method(circuit=CircuitBreaker(failures=1, reset_after=0.05))
    async def flaky() -> int:
        if state["fail"]:
            raise RuntimeError("down")
        return 1

    app.state_for_tests = state  # type: ignore[attr-defined]
    return app


def exercise(client: TestClient, app: Bridge) -> None:
    a, b = client.start("double", {"items": 1}), client.start("double", {"items": 2})
    assert (a.result(), b.result()) == (2, 4)
    assert list(client.stream("count", {"n": 5})) == [0, 1, 2, 3, 4]
    assert client.call("square", {"x": 3}) == 9  # miss
    assert client.call("square", {"x": 3}) == 9  # hit
    client.call("reset")  # invalidates square
    assert client.call("scarce") == 1
    with pytest.raises(BridgeError):
        client.call("scarce")  # refused
    with pytest.raises(BridgeError):
        client.call("flaky")  # fails: the circuit opens
    with pytest.raises(BridgeError):
        client.call("flaky")  # refused while open
    app.state_for_tests["fail"] = False  # type: ignore[attr-defined]
    breaker = app.methods["flaky"].part(CircuitBreaker)
    assert breaker is not None
    deadline = time.monotonic() + 5
    while breaker.state("flaky") != "half-open":  # its reset_after (50 ms) passing on the clock
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert client.call("flaky") == 1  # the trial passes: closed


def debug_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "bridge.debug"]


def test_debug_mode_logs_each_decision_with_its_timing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="bridge.debug")
    app = app_of_everything()
    with TestClient(app, debug=True) as client:
        exercise(client, app)
    lines = debug_lines(caplog)
    expected = [
        rf"batch double: 2 items ok, waited {MS}, ran {MS}",
        rf"stream count id=\d+ done: 3 chunks, 5 items, \d+ bytes, {MS}",
        rf"cache square id=\d+: miss, stored \d+ bytes, {MS}",
        rf"cache square id=\d+: hit, \d+ bytes, {MS}",
        rf"cache square: invalidated by reset id=\d+, {MS}",
        r"rate limit scarce id=\d+ key='scarce': refused, retry after \d+\.\d{3} s",
        r"circuit flaky id=\d+: opened after 1 failure\(s\) in a row, for 0\.050 s",
        r"circuit flaky id=\d+: open, refused, retry after \d+\.\d{3} s",
        r"circuit flaky id=\d+: half-open, this call is the trial \(open \d+\.\d{3} s\)",
        r"circuit flaky id=\d+: closed after \d+\.\d{3} s open",
    ]
    for pattern in expected:
        assert any(re.fullmatch(pattern, line) for line in lines), (pattern, lines)


def test_without_debug_mode_nothing_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="bridge.debug")
    app = app_of_everything()
    with TestClient(app) as client:
        exercise(client, app)
    assert debug_lines(caplog) == []


def test_concurrent_identical_misses_log_one_miss_and_the_rest_shared(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="bridge.debug")
    app = Bridge()
    go = anyio.Event()

    @app.method(cache=Cache())
    async def slow(x: int) -> int:
        await go.wait()
        return x

    with TestClient(app, debug=True) as client:
        calls = [client.start("slow", {"x": 1}) for _ in range(3)]
        client.wait_until(lambda: client.connection is not None and client.connection.inflight == 3)
        client.portal.call(go.set)  # type: ignore[union-attr]
        assert [c.result() for c in calls] == [1, 1, 1]
    lines = debug_lines(caplog)
    assert sum(line.startswith("cache slow") and ": miss, stored" in line for line in lines) == 1
    assert sum(bool(re.search(rf": shared, \d+ bytes, waited {MS}$", line)) for line in lines) == 2


def test_a_queued_rate_limited_call_logs_its_wait(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="bridge.debug")
    app = Bridge()

    @app.method(rate_limit=RateLimit(1000, per=1, burst=1, queue=True))
    async def paced() -> int:
        return 1

    with TestClient(app, debug=True) as client:
        assert [client.call("paced") for _ in range(3)] == [1, 1, 1]
    assert any(re.fullmatch(r"rate limit paced id=\d+ key='paced': queued for \d+\.\d{3} s", line)
               for line in debug_lines(caplog))


def test_the_real_host_writes_the_lines_to_stderr(tmp_path: Any) -> None:
    """``bridge serve --debug`` end to end: the lines reach stderr through the host's own logging."""
    import subprocess

    import orjson
    from harness import ROOT, python

    (tmp_path / "dbg_app.py").write_text(
        "from bridge import Bridge, Stream\n"
        "app = Bridge()\n"
        "@app.method(stream=Stream(chunk_size=2))\n"
        "async def count(n: int):\n"
        "    for i in range(n):\n"
        "        yield i\n"
    )
    request = orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "count", "params": {"n": 3}}) + b"\n"
    done = subprocess.run(
        [python(), "-m", "bridge", "serve", "dbg_app:app", "--debug", "--no-ready"],
        input=request, capture_output=True, cwd=tmp_path, timeout=60,
        env={**__import__("os").environ, "PYTHONPATH": f"{tmp_path}:{ROOT}"},
    )
    assert done.returncode == 0, done.stderr.decode()
    assert re.search(rf"bridge\.debug: stream count id=1 done: 2 chunks, 3 items, \d+ bytes, {MS}",
                     done.stderr.decode()), done.stderr.decode()
