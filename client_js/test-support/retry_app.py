"""An app for client_js's retry tests: methods that refuse a set number of tries, as a rate
limit, an open circuit or a full queue would, then answer; and a real per-method rate limit."""

from __future__ import annotations

from bridge import Bridge, BridgeError, RateLimit

app = Bridge("retry-test")
tries: dict[str, int] = {}


def _refuse(key: str, times: int, code: int, retry_after: float | None) -> int:
    tries[key] = tries.get(key, 0) + 1
    if tries[key] <= times:
        data = {"method": key} if retry_after is None else {"retry_after": retry_after, "method": key}
        raise BridgeError(code, None, data)
    return tries[key]


@app.method("refuse.read", idempotent=True)
async def refuse_read(key: str, times: int, code: int = -32003, retry_after: float | None = None) -> int:
    """Refuse the first ``times`` tries for ``key`` with ``code`` (``data.retry_after`` if given);
    then answer with the number of tries so far."""
    return _refuse(key, times, code, retry_after)


@app.method("refuse.write")
async def refuse_write(key: str, times: int, code: int = -32003, retry_after: float | None = None) -> int:
    """As refuse.read, but not idempotent: a client must never try it twice."""
    return _refuse(key, times, code, retry_after)


@app.method("refuse.tries")
async def refuse_tries(key: str) -> int:
    """How many times ``key`` was tried."""
    return tries.get(key, 0)


@app.method("limited", idempotent=True, rate_limit=RateLimit(20, per=1, burst=1))
async def limited() -> str:
    """At most one call at once, then one per 50 ms: refused with -32003 and retry_after between."""
    return "ok"
