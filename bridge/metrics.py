"""Counters kept by the connection for every call: cheap enough to leave on.

Per method: calls, errors, in flight, latency percentiles over the last 1,024 calls with the
mean and maximum over all of them, errors by code (rate-limited and circuit-open calls among
them); and for the host: totals across methods, messages received and sent, messages per
second now and at peak, uptime. Recording is a few adds; everything derived is computed on read.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from . import errors as E

if TYPE_CHECKING:
    from .methods import Method

RING: Final = 1024  # a power of two: the ring index wraps with a mask
RING_MASK: Final = RING - 1
#: A method's ring starts this long and doubles as its calls come, up to ``RING`` entries: an app
#: of 10,000 methods each called a few times holds 64 bytes a method, not 4 KiB (40 MB in all).
FIRST_RING: Final = 16


class MethodStats:
    """One method's counters and its recent latencies (seconds).

    The connection counts ``inflight`` and ``notifications`` (calls that came without an id: no
    reply) itself and hands every call's time to ``record``, so recording costs a few attribute
    writes; errors go through ``error``.
    """

    __slots__ = ("calls", "errors", "inflight", "codes", "ring", "total", "max", "notifications")

    def __init__(self) -> None:
        self.calls = 0
        self.errors = 0
        self.inflight = 0
        self.notifications = 0
        self.total = 0.0  # seconds over every call: the mean
        self.max = 0.0  # the slowest call's seconds
        self.codes: dict[int, int] = {}
        self.ring = array("f", bytes(4 * FIRST_RING))  # float32 (microsecond-exact to minutes), 4 KiB at most

    def record(self, elapsed: float) -> None:
        """One call that took ``elapsed`` seconds."""
        calls = self.calls
        try:
            self.ring[calls & RING_MASK] = elapsed
        except IndexError:  # the ring's next slot is past its end: it grows
            self.grow()
            self.ring[calls & RING_MASK] = elapsed
        self.calls = calls + 1
        self.total += elapsed
        if elapsed > self.max:
            self.max = elapsed

    def grow(self) -> None:
        """Double the ring: written in order until it is full, it grows only while shorter than
        ``RING``, and both are powers of two."""
        self.ring.frombytes(bytes(4 * len(self.ring)))

    def error(self, code: int) -> None:
        self.errors += 1
        self.codes[code] = self.codes.get(code, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        recent = sorted(self.ring[: min(self.calls, RING)])
        latency = {
            f"p{q}": round(recent[min(len(recent) - 1, int(len(recent) * q / 100))] * 1e3, 3) if recent else None
            for q in (50, 95, 99)
        }
        latency["mean"] = round(self.total / self.calls * 1e3, 3) if self.calls else None
        latency["max"] = round(self.max * 1e3, 3) if self.calls else None
        return {
            "calls": self.calls,
            "errors": self.errors,
            "inflight": self.inflight,
            "latencyMs": latency,
            "rateLimited": self.codes.get(E.RATE_LIMITED, 0),
            "circuitOpen": self.codes.get(E.CIRCUIT_OPEN, 0),
            "errorsByCode": {str(code): n for code, n in sorted(self.codes.items())},
        }


_NEVER_CALLED = MethodStats()


class Metrics:
    """The host's metrics: a ``MethodStats`` per method and the message rate."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.methods: dict[str, MethodStats] = {}
        self.messages = 0
        self._second = int(self.started)
        self._this_second = 0
        self._last_rate = 0
        self.peak_rate = 0

    def totals(self, sent: int = 0, notifications_sent: int = 0) -> dict[str, Any]:
        """Host-wide figures summed over the methods (on read): requests (calls with an id),
        notifications received by methods, errors and the error rate; messages received and,
        given the connection's counts, sent (a batch's reply array is one message)."""
        calls = errors = notifications = 0
        for stats in self.methods.values():
            calls += stats.calls
            errors += stats.errors
            notifications += stats.notifications
        return {
            "requests": calls - notifications,
            "notifications": notifications,
            "responses": sent - notifications_sent,
            "errors": errors,
            "errorRate": round(errors / calls, 4) if calls else None,
            "messagesReceived": self.messages,
            "messagesSent": sent,
            "notificationsSent": notifications_sent,
        }

    def stats(self, method: str) -> MethodStats:
        stats = self.methods.get(method)
        if stats is None:
            stats = self.methods[method] = MethodStats()
        return stats

    def received(self, count: int) -> None:
        """``count`` messages arrived (called once per chunk read)."""
        self.messages += count
        second = int(time.monotonic())
        if second != self._second:
            self._roll(second)
        self._this_second += count

    def _roll(self, second: int) -> None:
        self._last_rate = self._this_second if second == self._second + 1 else 0
        self.peak_rate = max(self.peak_rate, self._this_second)
        self._second = second
        self._this_second = 0

    def snapshot(self, methods: Mapping[str, Method] | None = None, sent: int = 0,
                 notifications_sent: int = 0) -> dict[str, Any]:
        """The counters; each of ``methods``' middleware adds its own figures to its entry
        (``metrics(name)``: a cache its hit rate, a stream its chunks). ``sent`` and
        ``notifications_sent``: the messages the connection wrote, for the totals."""
        second = int(time.monotonic())
        if second != self._second:
            self._roll(second)
        entries = {name: stats.snapshot() for name, stats in self.methods.items()}
        for name, method in (methods or {}).items():
            entry = entries.get(name)
            if entry is None:  # not called yet: its counters are made on its first call
                entry = entries[name] = _NEVER_CALLED.snapshot()
            for part in method.parts:
                report = getattr(part, "metrics", None)
                if report is not None:
                    entry.update(report(name))
        entries = dict(sorted(entries.items()))
        return {
            "uptimeSeconds": round(time.monotonic() - self.started, 3),
            "totals": self.totals(sent, notifications_sent),
            "messages": self.messages,
            "messagesPerSecond": self._last_rate,
            "peakMessagesPerSecond": max(self.peak_rate, self._this_second),
            "methods": entries,
        }
