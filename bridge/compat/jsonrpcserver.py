"""Serve handlers written for jsonrpcserver 5 (``@method`` returning ``Success``/``Error``).

jsonrpcserver stays off bridge's hot path and out of its start-up: it is imported
only by an app that calls ``include_jsonrpcserver``. Each handler becomes an
ordinary bridge method, so it gets bridge's validation, concurrency and
cancellation; its ``Success(x)`` becomes a result and ``Error(code, message,
data)`` an error reply.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from ..app import Bridge
from ..errors import INTERNAL_ERROR, BridgeError


def include_jsonrpcserver(app: Bridge, methods: Mapping[str, Callable[..., Any]] | None = None, *, prefix: str = "") -> None:
    """Register jsonrpcserver handlers on ``app`` (default: everything its ``@method`` collected)."""
    from jsonrpcserver.methods import global_methods

    for name, func in (global_methods if methods is None else methods).items():
        app.add_method(_adapt(func), prefix + name)


def unwrap(result: Any) -> Any:
    """The value of a jsonrpcserver ``Result``; raises BridgeError for an ``Error``."""
    from jsonrpcserver.result import ErrorResult, SuccessResult
    from jsonrpcserver.sentinels import NODATA
    from oslash.either import Left, Right

    if isinstance(result, Right) and isinstance(result._value, SuccessResult):
        return result._value.result
    if isinstance(result, Left) and isinstance(result._error, ErrorResult):
        error = result._error
        raise BridgeError(error.code, error.message, None if error.data is NODATA else error.data)
    raise BridgeError(INTERNAL_ERROR, "handler did not return a jsonrpcserver Result")


def _adapt(func: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_handler(*args: Any, **kwargs: Any) -> Any:
            return unwrap(await func(*args, **kwargs))

        handler: Callable[..., Any] = async_handler
    else:

        @functools.wraps(func)
        def handler(*args: Any, **kwargs: Any) -> Any:
            return unwrap(func(*args, **kwargs))

    handler.__annotations__ = {k: v for k, v in getattr(func, "__annotations__", {}).items() if k != "return"}
    return handler
