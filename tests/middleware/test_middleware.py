"""bridge/middleware: the chain, app middleware, custom validation, rate limits, circuits."""

from __future__ import annotations

from typing import Any

import anyio
import orjson
import pytest

from bridge import Bridge, BridgeError, Settings
from bridge.connection import Connection
from bridge.middleware import Request
from bridge.middleware.circuit import CircuitBreaker
from bridge.middleware.ratelimit import RateLimit
from harness import MemoryReader, MemoryWriter, exchange, lines

pytestmark = pytest.mark.anyio


def calls(method: str, n: int, params: Any = None, start: int = 0) -> bytes:
    return lines(*[
        {"jsonrpc": "2.0", "id": i, "method": method, **({"params": params} if params is not None else {})}
        for i in range(start, start + n)
    ])


async def call_once(app: Bridge, method: str, id: int) -> dict[str, Any]:
    """One call of ``method`` (no params) through a fresh connection to ``app``: its reply."""
    [reply] = await exchange(app, calls(method, 1, start=id))
    return reply


async def test_a_method_without_options_skips_the_chain() -> None:
    app = Bridge()

    @app.method
    async def bare() -> int:
        return 1

    @app.method(rate_limit=RateLimit(10))
    async def limited() -> int:
        return 2

    Connection(app, Settings(), MemoryReader(), MemoryWriter())
    assert app.methods["bare"].pipeline is None
    assert app.methods["limited"].pipeline is not None


async def test_app_middleware_wraps_every_call_in_order() -> None:
    app = Bridge()
    seen: list[str] = []

    @app.add_middleware
    async def outer(request: Request, call_next) -> Any:
        seen.append(f"outer>{request.name}")
        result = await call_next(request)
        seen.append("outer<")
        return {"wrapped": result}

    @app.add_middleware
    async def auth(request: Request, call_next) -> Any:
        seen.append(f"auth:{request.caller}")
        if request.caller != "trusted":
            raise BridgeError(4030, "not allowed", {"caller": request.caller})
        return await call_next(request)

    @app.method
    async def secret(x: int) -> int:
        return x * 2

    out = await exchange(app, lines(
        {"jsonrpc": "2.0", "id": 1, "method": "secret", "params": {"x": 2, "$meta": {"caller": "trusted"}}},
    ))
    assert out == [{"jsonrpc": "2.0", "id": 1, "result": {"wrapped": 4}}]
    assert seen == ["outer>secret", "auth:trusted", "outer<"]
    [refused] = await exchange(app, lines({"jsonrpc": "2.0", "id": 2, "method": "secret", "params": {"x": 2}}))
    assert refused["error"] == {"code": 4030, "message": "not allowed", "data": {"caller": None}}


async def test_custom_validator_refuses_and_normalises() -> None:
    app = Bridge()

    def ordered(kwargs: dict[str, Any]) -> dict[str, Any]:
        if kwargs["low"] > kwargs["high"]:
            raise ValueError("low must not exceed high")
        return {**kwargs, "low": max(kwargs["low"], 0)}

    @app.method(validator=ordered)
    async def span(low: int, high: int) -> list[int]:
        return [low, high]

    out = {r["id"]: r for r in await exchange(app, lines(
        {"jsonrpc": "2.0", "id": 1, "method": "span", "params": [-5, 3]},
        {"jsonrpc": "2.0", "id": 2, "method": "span", "params": [5, 3]},
        {"jsonrpc": "2.0", "id": 3, "method": "span", "params": ["x", 3]},
    ))}
    assert out[1]["result"] == [0, 3]
    assert out[2]["error"]["code"] == -32602 and "low must not exceed high" in out[2]["error"]["message"]
    assert out[3]["error"]["data"]["errors"][0]["loc"] == ["low"]  # pydantic ran first


async def test_rate_limit_holds_under_thousands_of_concurrent_calls() -> None:
    app = Bridge()
    ran = 0

    @app.method(rate_limit=RateLimit(100, per=3600))  # refills too slowly to matter here
    async def scarce() -> int:
        nonlocal ran
        ran += 1
        await anyio.sleep(0)
        return 1

    out = await exchange(app, calls("scarce", 3000), max_inflight=3000)
    ok = [r for r in out if "result" in r]
    limited = [r for r in out if "error" in r]
    assert len(ok) == ran == 100
    assert len(limited) == 2900
    assert all(r["error"]["code"] == -32003 and r["error"]["data"]["retry_after"] > 0 for r in limited)


async def test_rate_limit_per_caller() -> None:
    app = Bridge()

    @app.method(rate_limit=RateLimit(2, per=3600, key="caller"))
    async def f() -> int:
        return 1

    def by(caller: str, id: int) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": id, "method": "f", "params": {"$meta": {"caller": caller}}}

    out = {r["id"]: r for r in await exchange(app, lines(*[by("a", i) for i in range(3)], *[by("b", i) for i in range(3, 6)]))}
    assert ["result" in out[i] for i in range(6)] == [True, True, False, True, True, False]


async def test_queued_rate_limit_waits_its_turn() -> None:
    app = Bridge()

    @app.method(rate_limit=RateLimit(50, per=1, burst=1, queue=True))
    async def paced() -> float:
        return anyio.current_time()

    out = await exchange(app, calls("paced", 6))
    times = sorted(r["result"] for r in out)
    assert len(times) == 6
    assert times[-1] - times[0] >= 5 / 50 * 0.9  # five waits of 20 ms


async def test_app_wide_defaults_and_opting_out() -> None:
    app = Bridge(rate_limit=RateLimit(1, per=3600))

    @app.method
    async def a() -> int:
        return 1

    @app.method(rate_limit=False)
    async def b() -> int:
        return 2

    out = await exchange(app, calls("a", 2) + calls("b", 2, start=10))
    codes = {r["id"]: r.get("error", {}).get("code") for r in out}
    assert codes == {0: None, 1: -32003, 10: None, 11: None}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_circuit_opens_fails_fast_then_half_opens_and_closes() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=3, reset_after=10, clock=clock)
    app = Bridge()
    healthy = False
    invoked = 0

    @app.method(circuit=breaker)
    async def flaky() -> str:
        nonlocal invoked
        invoked += 1
        if not healthy:
            raise RuntimeError("down")
        return "up"

    def one(id: int) -> Any:
        return call_once(app, "flaky", id)

    for i in range(3):
        assert (await one(i))["error"]["code"] == -32603
    assert breaker.state("flaky") == "open"
    fast = await one(3)
    assert fast["error"]["code"] == -32004 and fast["error"]["data"]["retry_after"] == 10
    assert invoked == 3  # failed fast, the handler was not called
    clock.now += 10
    assert breaker.state("flaky") == "half-open"
    assert (await one(4))["error"]["code"] == -32603  # the trial fails: open again
    assert breaker.state("flaky") == "open"
    clock.now += 10
    healthy = True
    assert (await one(5))["result"] == "up"
    assert breaker.state("flaky") == "closed"


async def test_a_success_threshold_needs_that_many_trials_in_a_row_to_close() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=1, reset_after=10, success_threshold=3, clock=clock)
    app = Bridge()
    healthy = False

    @app.method(circuit=breaker)
    async def flaky() -> str:
        if not healthy:
            raise RuntimeError("down")
        return "up"

    def one(id: int) -> Any:
        return call_once(app, "flaky", id)

    assert (await one(0))["error"]["code"] == -32603 and breaker.state("flaky") == "open"
    clock.now += 10
    healthy = True
    for i in (1, 2):
        assert (await one(i))["result"] == "up"
        assert breaker.state("flaky") == "half-open"  # a trial passed; not yet enough
    healthy = False
    assert (await one(3))["error"]["code"] == -32603 and breaker.state("flaky") == "open"  # the run starts over
    clock.now += 10
    healthy = True
    for i in (4, 5, 6):
        assert (await one(i))["result"] == "up"
    assert breaker.state("flaky") == "closed"
    with pytest.raises(ValueError):
        CircuitBreaker(success_threshold=0)


async def test_caller_errors_do_not_open_the_circuit() -> None:
    breaker = CircuitBreaker(failures=1, reset_after=10)
    app = Bridge()

    @app.method(circuit=breaker)
    async def strict(n: int) -> int:
        raise BridgeError(4000, "bad n")

    out = await exchange(app, calls("strict", 3, {"n": "x"}) + calls("strict", 2, {"n": 1}, start=10))
    assert {r["error"]["code"] for r in out} == {-32602, 4000}
    assert breaker.state("strict") == "closed"


async def test_metrics_count_calls_errors_and_latency() -> None:
    app = Bridge()

    @app.method(rate_limit=RateLimit(2, per=3600))
    async def work(fail: bool = False) -> int:
        if fail:
            raise BridgeError(4000, "no")
        return 1

    out = await exchange(app, calls("work", 3) + calls("work", 1, {"fail": True}, start=3)
                         + lines({"jsonrpc": "2.0", "id": "m", "method": "rpc.metrics"}))
    snapshot = next(r for r in out if r["id"] == "m")["result"]
    work_stats = snapshot["methods"]["work"]
    assert work_stats["calls"] == 4 and work_stats["errors"] == 2
    assert work_stats["rateLimited"] == 2  # the third call and the failing one were over the limit
    assert work_stats["inflight"] == 0
    assert work_stats["latencyMs"]["p50"] is not None and work_stats["latencyMs"]["p99"] >= work_stats["latencyMs"]["p50"]
    assert snapshot["messages"] == 5 and snapshot["uptimeSeconds"] >= 0


async def test_metrics_are_pushed_when_enabled() -> None:
    app = Bridge()
    writer = MemoryWriter()
    reader = MemoryReader(keep_open=True)
    conn = Connection(app, Settings(ready=False, framing="ndjson", metrics_interval=0.01), reader, writer)
    async with anyio.create_task_group() as tg:
        tg.start_soon(conn.run)
        with anyio.fail_after(5):
            while b"$/metrics" not in writer.data:
                await anyio.sleep(0.005)
        reader.close()
    pushed = [orjson.loads(x) for x in bytes(writer.data).splitlines()]
    assert pushed[0]["method"] == "$/metrics" and "uptimeSeconds" in pushed[0]["params"]


async def test_async_validators_and_steps_as_plain_middleware() -> None:
    from bridge.middleware.validation import Validate

    app = Bridge()

    async def positive(kwargs: dict[str, Any]) -> None:
        await anyio.sleep(0)
        if kwargs["n"] <= 0:
            raise ValueError("n must be positive")

    seen: list[str] = []

    @app.add_middleware
    async def log(request: Request, call_next) -> Any:  # an app middleware between built-in steps
        seen.append(request.name)
        return await call_next(request)

    @app.method(validator=positive, middleware=[Validate()])
    async def f(n: int) -> int:
        return n

    out = {r["id"]: r for r in await exchange(app, lines(
        {"jsonrpc": "2.0", "id": 1, "method": "f", "params": [2]},
        {"jsonrpc": "2.0", "id": 2, "method": "f", "params": [-1]},
    ))}
    assert out[1]["result"] == 2
    assert out[2]["error"]["code"] == -32602 and "n must be positive" in out[2]["error"]["message"]
    assert seen == ["f", "f"]


async def test_a_middleware_reports_its_own_metrics_and_discovery_fields() -> None:
    """The protocol the built-ins use: ``metrics(name)`` joins rpc.metrics, ``describe()`` rpc.discover."""
    from bridge.discovery import openrpc

    class Counting:
        def __init__(self) -> None:
            self.seen = 0

        async def __call__(self, request: Request, call_next: Any) -> Any:
            self.seen += 1
            return await call_next(request)

        def metrics(self, method: str) -> dict[str, Any]:
            return {"counting": {"seen": self.seen}}

        def describe(self) -> dict[str, Any]:
            return {"x-counting": True}

    app = Bridge()

    @app.method(middleware=[Counting()])
    async def ping() -> str:
        return "pong"

    out = await exchange(app, lines(*[{"jsonrpc": "2.0", "id": i, "method": "ping"} for i in range(3)],
                                    {"jsonrpc": "2.0", "id": "m", "method": "rpc.metrics"}))
    metrics = next(r for r in out if r["id"] == "m")["result"]
    assert metrics["methods"]["ping"]["counting"] == {"seen": 3}
    assert next(m for m in openrpc(app)["methods"] if m["name"] == "ping")["x-counting"] is True


async def test_a_middleware_is_told_when_its_chain_is_built_and_may_leave_it(tmp_path: Any) -> None:
    """``on_build(Build)``: the hook the cache uses to find the host's store, open to any middleware;
    a built-in given in the method's own list (not by keyword) is set up the same way."""
    from bridge.middleware import Build
    from bridge.middleware.cache import Cache

    builds: list[Build] = []

    class Absent:
        def on_build(self, build: Build) -> None:
            builds.append(build)
            return None  # not wanted here: the method's chain goes without it

        async def __call__(self, request: Request, call_next: Any) -> Any:
            raise AssertionError("left the chain, never called")

    app = Bridge()
    runs = 0

    @app.method(middleware=[Absent(), Cache()])
    async def slow(n: int) -> int:
        nonlocal runs
        runs += 1
        return n

    @app.method(middleware=[Absent()])
    async def bare() -> int:
        return 1

    out = await exchange(app, lines(*[{"jsonrpc": "2.0", "id": i, "method": "slow", "params": [7]} for i in range(3)],
                                    {"jsonrpc": "2.0", "id": "b", "method": "bare"}),
                         cache_dir=str(tmp_path))
    assert sorted(r["result"] for r in out) == [1, 7, 7, 7]
    assert runs == 1  # the Cache in the list found the host's store
    assert [b.method.name for b in builds] == ["slow", "bare"] and builds[0].cache is not None
    assert app.methods["slow"].part(Cache) is not None and app.methods["bare"].part(Cache) is None


async def test_keyword_built_ins_join_after_the_methods_own_in_a_fixed_order() -> None:
    """circuit, rate_limit, validator, invalidates, cache: the documented order, whatever the keyword order."""
    from bridge.middleware.cache import Cache, Invalidate
    from bridge.middleware.validation import Validate

    app = Bridge(rate_limit=RateLimit(100))

    async def own(request: Request, call_next: Any) -> Any:
        return await call_next(request)

    @app.method(cache=Cache(), validator=lambda kw: None, invalidates=["x"], circuit=CircuitBreaker(), middleware=[own])
    async def f() -> int:
        return 1

    @app.method(rate_limit=False)
    async def g() -> int:
        return 1

    method = app.methods["f"]
    assert [type(p).__name__ for p in method.parts] == ["function", "CircuitBreaker", "Validate", "Invalidate", "Cache"]
    assert isinstance(method.options["validator"], Validate) and isinstance(method.options["invalidates"], Invalidate)
    Connection(app, Settings(), MemoryReader(), MemoryWriter())
    assert app.methods["g"].pipeline is None  # False turned the app's rate limit off


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_validator_may_answer_true_false_a_message_or_the_arguments(kind: str) -> None:
    """The designs' validators return False (refuse), a string (refuse with it), True/None (pass)."""
    def verdict(kwargs: dict[str, Any]) -> Any:
        return {"pass": True, "none": None, "no": False, "why": "n must be even", "fix": {"mode": "fix", "n": 2}}[kwargs["mode"]]

    async def async_verdict(kwargs: dict[str, Any]) -> Any:
        return verdict(kwargs)

    app = Bridge()

    @app.method(validator=verdict if kind == "sync" else async_verdict)
    async def f(mode: str, n: int = 1) -> int:
        return n

    out = {r["id"]: r for r in await exchange(app, lines(*[
        {"jsonrpc": "2.0", "id": mode, "method": "f", "params": {"mode": mode}}
        for mode in ("pass", "none", "no", "why", "fix")]))}
    assert out["pass"]["result"] == 1 and out["none"]["result"] == 1 and out["fix"]["result"] == 2
    assert out["no"]["error"]["code"] == -32602 and "the validator refused these params" in out["no"]["error"]["message"]
    assert out["why"]["error"]["code"] == -32602 and out["why"]["error"]["message"].endswith("n must be even")
    assert out["why"]["error"]["data"]["errors"][0]["msg"] == "n must be even"


@pytest.mark.parametrize("with_after", [False, True])
@pytest.mark.parametrize("waiting", [0, 1, 2])
async def test_steps_in_one_layer_run_once_each_in_order_whichever_waits(waiting: int, with_after: bool) -> None:
    """Steps fused into one layer: the befores run in order, each once, when one of them waits
    (the rest run after it), then the handler; afters in reverse order."""
    from bridge.middleware import Step

    seen: list[str] = []

    class Mark(Step):
        def __init__(self, name: str, waits: bool) -> None:
            self.name, self.waits = name, waits

        def before(self, request: Request) -> Any:
            seen.append(f"before {self.name}")
            return anyio.sleep(0) if self.waits else None

    class Watch(Mark):
        def after(self, request: Request, error: BaseException | None) -> None:
            seen.append(f"after {self.name}")

    kind = Watch if with_after else Mark
    app = Bridge()

    @app.method(middleware=[kind(str(i), i == waiting) for i in range(3)])
    async def handler() -> str:
        seen.append("handler")
        return "ok"

    assert (await call_once(app, "handler", 1))["result"] == "ok"
    assert seen == ["before 0", "before 1", "before 2", "handler",
                    *(["after 2", "after 1", "after 0"] if with_after else [])]
