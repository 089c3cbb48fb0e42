"""``RateLimit``: a token bucket per method, optionally per caller."""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import RATE_LIMITED, BridgeError
from . import Request, Step

debug = logging.getLogger("bridge.debug")  # with --debug: a line per call refused or held back


class RateLimit(Step):
    """Allow ``rate`` calls per ``per`` seconds, with bursts up to ``burst`` (default ``rate``).

    Over the limit a call is refused with RATE_LIMITED and ``data.retry_after`` (seconds),
    or, with ``queue=True``, waits its turn (at most ``max_wait`` seconds, then refused).
    ``key`` splits the bucket: ``"caller"`` gives each caller (participant id) its own, or a
    function of the request. One instance used as an app default keeps a bucket per method.

    At most ``max_keys`` buckets are kept; past that the least recently used one is dropped.
    A dropped bucket that had refilled (idle ``burst / rate`` seconds) loses nothing; one still
    spent comes back full, but only after ``max_keys`` other keys were used since its own last
    call: a flood of new callers cannot reset one that keeps calling.
    """

    def __init__(
        self,
        rate: float,
        per: float = 1.0,
        *,
        burst: float | None = None,
        queue: bool = False,
        max_wait: float = 30.0,
        key: str | Callable[[Request], Any] | None = None,
        max_keys: int = 10_000,
    ) -> None:
        if rate <= 0 or per <= 0:
            raise ValueError("rate and per must be positive")
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.rate = rate / per  # tokens per second
        self.burst = float(burst if burst is not None else rate)
        self.queue = queue
        self.max_wait = max_wait
        self.key = key
        self.max_keys = max_keys
        self._buckets: OrderedDict[Any, _Bucket] = OrderedDict()  # LRU first
        self._last: Any = None  # the key used last (the last in _buckets), and its bucket
        self._last_bucket = _Bucket(0.0, 0.0)

    def before(self, request: Request) -> Awaitable[Any] | None:
        """Take a token from the call's bucket (reserving one if it is empty: see ``_short``)."""
        key = request.method.name if self.key is None else self._bucket_key(request)
        now = _monotonic()
        if key is self._last:  # the most recent key is last already (a method's own limit: always)
            bucket = self._last_bucket
        else:
            buckets = self._buckets
            found = buckets.get(key)
            if found is None:
                if len(buckets) >= self.max_keys:
                    buckets.popitem(last=False)
                bucket = buckets[key] = _Bucket(self.burst, now)
            else:
                bucket = found
                buckets.move_to_end(key)
            self._last = key
            self._last_bucket = bucket
        tokens = bucket.tokens + (now - bucket.refilled) * self.rate
        if tokens > self.burst:
            tokens = self.burst
        bucket.refilled = now
        bucket.tokens = tokens - 1  # may go negative: a queued caller's reservation
        if tokens >= 1:
            return None
        return self._short(request, key, max((1 - tokens) / self.rate, math.ulp(1.0)))

    def _short(self, request: Request, key: Any, wait: float) -> Awaitable[Any]:
        """No token for ``wait`` seconds: refuse (giving the reservation back), or wait (``queue``)."""
        if not self.queue or wait > self.max_wait:
            self._give_back(key)
            if _debugging(request):
                debug.debug("rate limit %s id=%r key=%r: refused, retry after %.3f s",
                            request.name, request.id, key, wait)
            raise BridgeError(RATE_LIMITED, None, {"retry_after": round(wait, 3), "method": request.name})
        import anyio

        if _debugging(request):
            debug.debug("rate limit %s id=%r key=%r: queued for %.3f s", request.name, request.id, key, wait)
        return anyio.sleep(wait)

    def _bucket_key(self, request: Request) -> Any:
        """The bucket of a limit with a ``key`` (without one, the method's name: ``before``)."""
        if self.key == "caller":
            return (request.name, request.participant)
        return (request.name, self.key(request))  # type: ignore[operator,misc]

    def _give_back(self, key: Any) -> None:
        self._buckets[key].tokens += 1


class _Bucket:
    """A key's tokens (negative: reserved by queued calls) and when they were last refilled."""

    __slots__ = ("refilled", "tokens")

    def __init__(self, tokens: float, refilled: float) -> None:
        self.tokens = tokens
        self.refilled = refilled


_monotonic = time.monotonic


def _debugging(request: Request) -> bool:
    """Debug mode (``--debug``) with the debug logger on: the decision gets a log line."""
    return debug.isEnabledFor(logging.DEBUG) and bool(request.connection.settings.debug)
