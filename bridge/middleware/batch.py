"""``Batch``: calls that arrive close together are served by one invocation of the handler."""

from __future__ import annotations

import asyncio
import functools
import inspect
import operator
import types
import typing
from typing import TYPE_CHECKING, Any

from ..errors import INTERNAL_ERROR, BridgeError
from ..methods import Param
from . import Request

if TYPE_CHECKING:
    from ..host import Host
    from ..methods import Method


class Batch:
    """Collect calls for up to ``max_delay`` seconds or ``max_size`` calls, then run the
    handler once with the list of their items; each caller gets its own result.

    The handler takes ``items: list[T]`` and returns a list of the same length; an item may
    be an exception (a ``BridgeError`` or any other), which fails only that caller. A
    handler exception fails every caller in that batch. One instance per method.
    """

    def __init__(self, max_size: int = 20, max_delay: float = 0.01) -> None:
        if max_size < 1 or max_delay < 0:
            raise ValueError("max_size must be at least 1 and max_delay not negative")
        self.max_size = max_size
        self.max_delay = max_delay
        self.batches = 0
        self.items = 0
        self._pending: list[tuple[Any, asyncio.Future[Any]]] = []
        self._timer: asyncio.TimerHandle | None = None

    def metrics(self, method: str) -> dict[str, Any]:
        """Batches run and their mean size, for rpc.metrics."""
        return {"batch": {"batches": self.batches,
                          "meanSize": round(self.items / self.batches, 2) if self.batches else None}}

    def describe(self) -> dict[str, Any]:
        """For rpc.discover: each call sends one item; the handler gets a list of them."""
        return {"x-batch": {"maxSize": self.max_size, "maxDelay": self.max_delay}}

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
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if len(self._pending) >= self.max_size:
            self._flush(method, request.connection.host)
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(
                self.max_delay, self._flush, method, request.connection.host)
        return await future  # cancelling this call drops only its own result

    def _flush(self, method: Method, host: Host) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._pending:
            taken, self._pending = self._pending[: self.max_size], self._pending[self.max_size :]
            host.start_soon(self._run(method, taken))  # owned by the connection: ended with it

    async def _run(self, method: Method, taken: list[tuple[Any, asyncio.Future[Any]]]) -> None:
        self.batches += 1
        self.items += len(taken)
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
            return
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


def _without_exceptions(annotation: Any) -> Any:
    """``R | BridgeError`` -> ``R``: an item that is an exception fails its caller instead."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        kept = [a for a in typing.get_args(annotation) if not (isinstance(a, type) and issubclass(a, BaseException))]
        return functools.reduce(operator.or_, kept) if kept else Any
    return annotation


def _describe(results: Any) -> str:
    return f"{len(results)} results" if isinstance(results, list) else f"a {type(results).__name__}"
