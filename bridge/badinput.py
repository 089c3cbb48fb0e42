"""Bad input is answered every time but logged within bounds.

A client (or an attacker) that sends junk must not fill the log: the first few
occurrences of each kind are logged in full, later ones only counted, and a
summary of what was suppressed is logged at most once per interval.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger("bridge")


class BadInput:
    """Counts bad input by kind and decides which occurrences are worth a log line."""

    __slots__ = ("counts", "_limit", "_interval", "_suppressed", "_last_summary")

    def __init__(self, limit: int = 5, interval: float = 60.0) -> None:
        self.counts: dict[str, int] = {}
        self._limit = limit
        self._interval = interval
        self._suppressed: dict[str, int] = {}
        self._last_summary = time.monotonic()

    def report(self, kind: str, detail: str) -> None:
        """One bad input of ``kind`` (``parse``, ``frame``, ``too_large``, ``request``, ``batch``, ``busy``)."""
        n = self.counts.get(kind, 0) + 1
        self.counts[kind] = n
        if n <= self._limit:
            suffix = " (further ones are summarised)" if n == self._limit else ""
            log.warning("bad input (%s): %s%s", kind, detail, suffix)
            return
        self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
        if time.monotonic() - self._last_summary >= self._interval:
            self.summarise()

    def summarise(self) -> None:
        """Log what was counted but not logged since the last summary."""
        self._last_summary = time.monotonic()
        if self._suppressed:
            parts = ", ".join(f"{n} {kind}" for kind, n in sorted(self._suppressed.items()))
            log.warning("bad input not logged since the last summary: %s (totals in rpc.metrics)", parts)
            self._suppressed.clear()
