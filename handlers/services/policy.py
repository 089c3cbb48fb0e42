"""Restart policies (pure): how long to wait before a restart, and how many restarts a window allows."""

from __future__ import annotations

import random as _random
import time
from collections import deque
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, Field

Kind = Literal["never", "always", "fixed", "backoff"]


class RestartPolicy(BaseModel):
    """When a service that exited is started again.

    ``never``: not restarted. ``always``: at once. ``fixed``: after ``delay`` seconds.
    ``backoff``: after ``initial * factor**attempt`` seconds, at most ``max``, spread by
    ``jitter`` (a fraction: 0.1 is ±10%). More than ``cap`` restarts within ``window``
    seconds and the service is ``failed``.
    """

    kind: Kind = "backoff"
    delay: float = Field(default=1.0, ge=0)
    initial: float = Field(default=0.5, ge=0)
    factor: float = Field(default=2.0, ge=1)
    max: float = Field(default=30.0, ge=0)
    jitter: float = Field(default=0.1, ge=0, le=1)
    cap: int = Field(default=5, ge=0, description="restarts allowed within window before the service fails")
    window: float = Field(default=60.0, gt=0)


def next_delay(policy: RestartPolicy, attempt: int, random: Callable[[], float] = _random.random) -> float | None:
    """Seconds to wait before restart number ``attempt`` (0 for the first), or None: do not restart.

    ``random`` returns a float in [0, 1); it is a parameter so tests can fix the jitter."""
    if policy.kind == "never":
        return None
    if policy.kind == "always":
        return 0.0
    if policy.kind == "fixed":
        return policy.delay
    base = min(policy.max, policy.initial * policy.factor ** max(attempt, 0))
    spread = base * policy.jitter * (2 * random() - 1)
    return max(0.0, min(policy.max, base + spread))


class RestartBudget:
    """At most ``cap`` restarts within any ``window`` seconds; ``clock`` is injectable for tests."""

    def __init__(self, cap: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.cap = cap
        self.window = window
        self.clock = clock
        self._times: deque[float] = deque()

    def _expire(self, now: float) -> None:
        while self._times and now - self._times[0] >= self.window:
            self._times.popleft()

    @property
    def used(self) -> int:
        """Restarts within the current window."""
        self._expire(self.clock())
        return len(self._times)

    def take(self) -> bool:
        """Spend one restart; False (and nothing spent) when the window's cap is reached."""
        now = self.clock()
        self._expire(now)
        if len(self._times) >= self.cap:
            return False
        self._times.append(now)
        return True

    def reset(self) -> None:
        """Forget past restarts (a restart asked for by hand starts afresh)."""
        self._times.clear()
