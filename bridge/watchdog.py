"""A watchdog for the event loop: blocking code in an ``async def`` handler freezes every call.

The loop stamps a heartbeat a few times per threshold; a daemon thread checks it. When the
heartbeat is late by more than the threshold, the thread reads the loop thread's stack to
name the method (and the line) that holds the loop, logs one warning for that episode and
counts it. Nothing runs on the per-call path.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from collections.abc import Mapping
from types import CodeType, FrameType
from typing import Any

from .methods import Method

log = logging.getLogger("bridge")


class LoopWatchdog:
    """Warns when the loop is blocked longer than ``threshold`` seconds; ``stats()`` for rpc.metrics."""

    def __init__(self, threshold: float, methods: Mapping[str, Method]) -> None:
        self.threshold = threshold
        self._methods = methods  # their handlers' frames on the loop's stack name the culprit
        self._beat = time.monotonic()
        self._stop = threading.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self.blocked = 0
        self.max_blocked = 0.0
        self.by_method: dict[str, int] = {}

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self._heartbeat()
        threading.Thread(target=self._watch, name="bridge-watchdog", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.cancel()

    def stats(self) -> dict[str, Any]:
        return {"blocked": self.blocked, "maxBlockedMs": round(self.max_blocked * 1e3, 1),
                "thresholdMs": round(self.threshold * 1e3, 1), "byMethod": dict(self.by_method)}

    def _heartbeat(self) -> None:
        self._beat = time.monotonic()
        if not self._stop.is_set():
            self._timer = self._loop.call_later(self.threshold / 4, self._heartbeat)  # type: ignore[union-attr]

    def _watch(self) -> None:
        episode = 0.0  # how long the current blocking episode has lasted; 0 when none
        while not self._stop.wait(self.threshold / 4):
            late = time.monotonic() - self._beat - self.threshold / 4
            if late > self.threshold:
                if not episode:
                    self._report(late)
                episode = late
                self.max_blocked = max(self.max_blocked, late)
            elif episode:
                log.warning("event loop free again after being blocked for about %.0f ms", episode * 1e3)
                episode = 0.0

    def _report(self, late: float) -> None:
        method, where = self._culprit()
        self.blocked += 1
        self.by_method[method] = self.by_method.get(method, 0) + 1
        log.warning(
            "event loop blocked for over %.0f ms by %s%s: every call waits. Async handlers must not "
            "block; write a plain `def` and it runs in a worker thread", late * 1e3, method, where,
        )

    def _culprit(self) -> tuple[str, str]:
        """The method whose call holds the loop, and the innermost line of Python running. The
        method is the one whose handler has a frame on the stack, else the one a frame between
        the loop and it holds as ``method`` (a middleware's); the connection itself may run
        compiled, without frames."""
        frame: FrameType | None = sys._current_frames().get(self._loop_thread)
        where = f" at {frame.f_code.co_filename}:{frame.f_lineno}" if frame is not None else ""
        handlers = self._handler_codes()
        found = None
        while frame is not None:  # innermost first: the outermost match is the call being served
            name = handlers.get(frame.f_code)
            if name is None:
                method = frame.f_locals.get("method")
                name = method.name if isinstance(method, Method) else None
            found = name or found
            frame = frame.f_back
        return (found, where) if found else ("code outside any call", where)

    def _handler_codes(self) -> dict[CodeType, str]:
        """Each handler's code objects (through its decorators' ``__wrapped__``), to its method's name."""
        codes: dict[CodeType, str] = {}
        for name, method in list(self._methods.items()):
            func: Any = method.func
            while func is not None:
                code = getattr(func, "__code__", None)
                if code is not None:
                    codes.setdefault(code, name)
                func = getattr(func, "__wrapped__", None)
        return codes
