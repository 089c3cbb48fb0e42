"""bridge/middleware/ratelimit.py: per-key buckets are bounded and dropped least recently used."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge import Bridge, BridgeError
from bridge.middleware.ratelimit import RateLimit
from bridge.testing import AsyncTestClient, PendingCall


@pytest.mark.anyio
async def test_ten_thousand_junk_callers_do_not_reset_an_active_callers_spent_bucket() -> None:
    app = Bridge()
    limit = RateLimit(2, per=3600, key="caller")  # the default bound: 10,000 buckets

    @app.method(rate_limit=limit)
    async def f() -> int:
        return 1

    async with AsyncTestClient(app, max_inflight=20_000) as client:
        victim = [client.start("f", caller="victim") for _ in range(3)]
        for i in range(10_000):
            client.start("f", caller=f"junk{i}")
            if i % 100 == 99:  # the victim keeps calling through the flood
                victim.append(client.start("f", caller="victim"))
        victim.append(client.start("f", caller="victim"))
        allowed = [await allowed_call(call) for call in victim]
    assert len(allowed) == 104 and allowed[:2] == [True, True]
    assert not any(allowed[2:]), [i for i, ok in enumerate(allowed) if ok]
    assert len(limit._buckets) == limit.max_keys == 10_000


async def allowed_call(call: PendingCall) -> bool:
    try:
        await call
    except BridgeError as exc:
        assert exc.code == -32003
        return False
    return True


def requests_of_method_m() -> Any:
    """``make(key)``: a real Request of a method ``m`` whose params are ``{"key": key}``."""
    from harness import MemoryReader, MemoryWriter

    from bridge import Settings
    from bridge.connection import Call, Connection
    from bridge.methods import Method
    from bridge.middleware import Request

    async def m(key: int) -> None: ...

    method = Method(m, "m")
    conn = Connection(Bridge(), Settings(), MemoryReader(), MemoryWriter())
    return lambda key: Request(method, 1, {"key": key}, conn, Call())


@given(st.integers(1, 6), st.lists(st.integers(0, 12), max_size=120))
def test_buckets_kept_are_the_most_recently_used(max_keys, keys) -> None:
    """Each key has one token (that does not come back during the test): a call is allowed
    exactly when its key is not among the ``max_keys`` most recently used."""
    limit = RateLimit(1, per=3600, key=lambda request: request.params["key"], max_keys=max_keys)
    request = requests_of_method_m()
    recent: list[int] = []  # the model: distinct keys, least recently used first
    for key in keys:
        try:
            limit.before(request(key))
            allowed = True
        except BridgeError as exc:
            assert exc.code == -32003
            allowed = False
        assert allowed == (key not in recent)
        if key in recent:
            recent.remove(key)
        recent = [*recent, key][-max_keys:]
        assert list(limit._buckets) == [("m", k) for k in recent]


def test_the_bound_is_checked() -> None:
    with pytest.raises(ValueError, match="max_keys"):
        RateLimit(1, max_keys=0)
