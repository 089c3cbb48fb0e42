"""``Batch``: calls that arrive close together are served by one invocation of the handler."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import operator
import types
import typing
from time import perf_counter
from typing import TYPE_CHECKING, Any

from ..errors import INTERNAL_ERROR, BridgeError
from ..methods import Param
from . import Request

if TYPE_CHECKING:
    from ..host import Host
    from ..methods import Method

debug = logging.getLogger("bridge.debug")  # with --debug: a line per batch


class Batch:
    """Collect calls for up to ``max_delay`` seconds or ``max_size`` calls, then run the
    handler once with the list of their items; each caller gets its own result.

    The handler takes ``items: list[T]`` and returns a list of the same length; an item may
    be an exception (a ``BridgeError`` or any other), which fails only that caller. A
    handler exception fails every caller in that batch. One instance per method.

    ``min_size``: a batch smaller than this waits on for more calls until ``max_delay``.
    ``min_delay`` (below ``max_delay``) makes the wait adaptive: it is how long the calls,
    arriving at their recent rate, take to fill the batch, within ``min_delay``..``max_delay``;
    when they come further apart than ``max_delay`` nobody is worth waiting for, and it is
    ``min_delay``. The defaults (``min_size=1``, ``min_delay=max_delay``) wait ``max_delay``.
    """

    def __init__(self, max_size: int = 20, max_delay: float = 0.01, *,
                 min_size: int = 1, min_delay: float | None = None) -> None:
        if max_size < 1 or max_delay < 0:
            raise ValueError("max_size must be at least 1 and max_delay not negative")
        if not 1 <= min_size <= max_size:
            raise ValueError(f"min_size must be between 1 and max_size ({max_size}), not {min_size}")
        if min_delay is not None and not 0 <= min_delay <= max_delay:
            raise ValueError(f"min_delay must be between 0 and max_delay ({max_delay}), not {min_delay}")
        self.max_size = max_size
        self.max_delay = max_delay
        self.min_size = min_size
        self.min_delay = max_delay if min_delay is None else min_delay
        self.gap: float | None = None  # the recent time between arrivals (moving average), seconds
        self.flushes = {"full": 0, "timer": 0}  # why batches were let go
        self.waited = 0.0  # seconds batches waited, in all (before they were let go)
        self._last_arrival: float | None = None
        self._opened = 0.0  # when the first call of the pending batch came
        self._held = False  # its wait is over, but it is under min_size: held until max_delay
        self.batches = 0
        self.items = 0
        self.failed = 0  # batches whose handler raised (or returned the wrong number of results)
        self.ran = 0.0  # seconds the handler took, summed over the batches that ended
        self.ended = 0
        self.debug: bool | None = None  # the host's settings.debug, read on the first call
        self._pending: list[tuple[Any, asyncio.Future[Any]]] = []
        self._timer: asyncio.TimerHandle | None = None

    def metrics(self, method: str) -> dict[str, Any]:
        """Batches run, failed, their mean size and handler time (``meanRunMs``), and how they
        waited (see ``_adaptive_metrics``), for rpc.metrics."""
        return {"batch": {"batches": self.batches, "failed": self.failed,
                          "meanSize": round(self.items / self.batches, 2) if self.batches else None,
                          "meanRunMs": round(1000 * self.ran / self.ended, 3) if self.ended else None,
                          **self._adaptive_metrics()}}

    def _adaptive_metrics(self) -> dict[str, Any]:
        """Why batches went (full or on time), their mean wait, and the arrival gap the wait adapts to."""
        let_go = self.flushes["full"] + self.flushes["timer"]
        return {"flushedFull": self.flushes["full"], "flushedOnTime": self.flushes["timer"],
                "meanWaitMs": round(1000 * self.waited / let_go, 3) if let_go else None,
                "arrivalGapMs": round(1000 * self.gap, 3) if self.gap is not None else None}

    def describe(self) -> dict[str, Any]:
        """For rpc.discover: each call sends one item; the handler gets a list of them."""
        described: dict[str, Any] = {"maxSize": self.max_size, "maxDelay": self.max_delay}
        if self.min_size != 1:
            described["minSize"] = self.min_size
        if self.min_delay != self.max_delay:
            described["minDelay"] = self.min_delay
        return {"x-batch": described}

    def signature(self, method: Method, params: list[Param]) -> tuple[list[Param], Any]:
        """The handler takes ``items: list[T]`` and returns ``list[R]``: each call sends one
        ``T`` (as ``{"items": t}`` or ``[t]``) and gets one ``R``. Return that per-call view."""
        if method.context_param is not None or len(params) != 1 or typing.get_origin(params[0].annotation) is not list:
            raise TypeError(f"{method.name}: a batched handler takes exactly one parameter, a list[...] of the calls' items")
        item = params[0]
        (item_type,) = typing.get_args(item.annotation) or (Any,)
        returns = method.return_type
        result_type = (typing.get_args(returns) or (Any,))[0] if typing.get_origin(returns) is list else Any
        return [Param(item.name, item_type, inspect.Parameter.empty, item.description)], _without_exceptions(result_type)

    async def endpoint(self, request: Request) -> Any:
        """The end of the chain: this call's item joins a batch; its own result comes back."""
        method = request.method
        item = request.validate()[method.param_names[0]]
        if self.debug is None:
            self.debug = request.connection.settings.debug
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((item, future))
        now = loop.time()
        if self.min_delay != self.max_delay:
            self._arrived(now)
        if len(self._pending) >= self.max_size:
            self.flushes["full"] += 1
            if self._timer is not None:
                self.waited += now - self._opened
            else:  # it filled as it opened: no wait
                self._opened = now
            self._flush(method, request.connection.host)
        elif self._timer is None:
            self._opened = now
            self._held = False
            self._timer = loop.call_later(self.wait(), self._due, method, request.connection.host)
        elif self._held and len(self._pending) >= self.min_size:  # the wait was over: only min_size held it
            self._due(method, request.connection.host)
        return await future  # cancelling this call drops only its own result

    def wait(self) -> float:
        """How long a batch opened now waits for more calls (see the class docstring)."""
        if self.min_delay == self.max_delay or self.gap is None or self.gap >= self.max_delay:
            return self.min_delay
        return min(self.max_delay, max(self.min_delay, self.gap * (self.max_size - len(self._pending))))

    def _arrived(self, now: float) -> None:
        if self._last_arrival is not None:
            gap = now - self._last_arrival
            self.gap = gap if self.gap is None else 0.8 * self.gap + 0.2 * gap
        self._last_arrival = now

    def _due(self, method: Method, host: Host) -> None:
        """The wait is over: let the batch go, unless it is under ``min_size`` with time left."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        loop = asyncio.get_running_loop()
        left = self._opened + self.max_delay - loop.time()
        if len(self._pending) < self.min_size and left > 0:
            self._held = True
            self._timer = loop.call_later(left, self._due, method, host)
            return
        if self._pending:
            self.flushes["timer"] += 1
            self.waited += loop.time() - self._opened
        self._flush(method, host)

    def _flush(self, method: Method, host: Host) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waited = asyncio.get_running_loop().time() - self._opened if self.debug else None
        while self._pending:
            taken, self._pending = self._pending[: self.max_size], self._pending[self.max_size :]
            host.start_soon(self._run(method, taken, waited))  # owned by the connection: ended with it

    async def _run(self, method: Method, taken: list[tuple[Any, asyncio.Future[Any]]], waited: float | None = None
                   ) -> None:
        """Run one batch; in debug mode (``waited``: how long it waited) log a line for it."""
        self.batches += 1
        self.items += len(taken)
        started = perf_counter()
        outcome = "cancelled"
        try:
            outcome = await self._deliver(method, taken)
        finally:
            ran = perf_counter() - started
            self.ran += ran
            self.ended += 1
            if waited is not None:
                debug.debug("batch %s: %d items %s, waited %.3f ms, ran %.3f ms", method.name, len(taken), outcome,
                            waited * 1e3, ran * 1e3)

    async def _deliver(self, method: Method, taken: list[tuple[Any, asyncio.Future[Any]]]) -> str:
        """The handler's results to their callers: "ok", or "failed" (every caller gets its error)."""
        try:
            results = await method.invoke({method.param_names[0]: [item for item, _ in taken]})
            if not isinstance(results, list) or len(results) != len(taken):
                raise BridgeError(
                    INTERNAL_ERROR,
                    f"{method.name}: the batch handler returned {_describe(results)} for {len(taken)} items",
                )
        except BaseException as exc:
            for _, future in taken:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else asyncio.CancelledError())
            if not isinstance(exc, Exception):
                raise
            self.failed += 1
            return "failed"
        for (_, future), result in zip(taken, results):
            if future.done():  # its caller went away
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
                continue
            try:
                future.set_result(method.shape(result) if method.shapes_result else result)
            except Exception as exc:  # a result its annotation cannot describe
                future.set_exception(exc)
        return "ok"


def _without_exceptions(annotation: Any) -> Any:
    """``R | BridgeError`` -> ``R``: an item that is an exception fails its caller instead."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        kept = [a for a in typing.get_args(annotation) if not (isinstance(a, type) and issubclass(a, BaseException))]
        return functools.reduce(operator.or_, kept) if kept else Any
    return annotation


def _describe(results: Any) -> str:
    return f"{len(results)} results" if isinstance(results, list) else f"a {type(results).__name__}"
