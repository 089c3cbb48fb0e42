"""The middleware chain every call with options passes through on its way to the handler.

A middleware is ``async (request, call_next) -> result``: the same shape for the built-in
concerns (rate limiting, circuit breaking, custom validation) and for an app's own
(authorisation, auditing). A method with no middleware skips the chain entirely.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..app import Bridge
    from ..connection import Call, Connection
    from ..context import Context
    from ..methods import Method

Next = Callable[["Request"], Awaitable[Any]]
Middleware = Callable[["Request", Next], Awaitable[Any]]


class Request:
    """One call as the middleware chain sees it.

    ``params`` are as received; ``kwargs`` are the validated arguments once the
    validation step has run (None before). ``caller`` is the caller identity the client
    declared in ``$meta.caller`` (the Electron helper puts the window there).
    """

    __slots__ = ("method", "id", "params", "meta", "kwargs", "_conn", "_call", "_context")

    def __init__(self, method: Method, id: Any, params: dict[str, Any] | list[Any] | None,
                 conn: Connection, call: Call) -> None:
        self.method = method
        self.id = id
        self.params = params
        meta = params.get("$meta") if type(params) is dict else None
        self.meta: dict[str, Any] = meta if type(meta) is dict else {}
        self.kwargs: dict[str, Any] | None = None
        self._conn = conn
        self._call = call
        self._context: Context | None = None

    @property
    def name(self) -> str:
        return self.method.name

    @property
    def caller(self) -> Any:
        return self.meta.get("caller")

    @property
    def context(self) -> Context:
        """The call's context (created on first use)."""
        if self._context is None:
            from ..context import Context

            self._context = Context(self._conn, self.method.name, self.id, self._call, self.meta.get("progressToken"))
        return self._context

    def validate(self) -> dict[str, Any]:
        """Bind and validate the params once; BridgeError(INVALID_PARAMS) if they are wrong."""
        if self.kwargs is None:
            self.kwargs = self.method.bind(self.params)
        return self.kwargs

    def __repr__(self) -> str:
        return f"Request({self.method.name!r}, id={self.id!r})"


def build(app: Bridge, method: Method) -> Next | None:
    """The chain ``method``'s calls go through, or None when there is nothing in it.

    Order: the app's middleware, the method's own, the circuit breaker, the rate limit,
    the custom validator; then the handler. Also settles the method's timeout.
    """
    from .validation import Validate

    method.effective_timeout = method.timeout if method.timeout is not None else app.timeout
    chain: list[Middleware] = [*app.middleware, *method.middleware]
    for own, default in ((method.circuit, app.circuit), (method.rate_limit, app.rate_limit)):
        chosen = default if own is None else own
        if chosen:
            chain.append(chosen)
    if method.validator is not None:
        chain.append(Validate(method.validator))
    return compose(chain, _endpoint(method)) if chain else None


def _endpoint(method: Method) -> Next:
    """The handler itself, at the end of the chain."""

    async def run(request: Request) -> Any:
        kwargs = request.validate()
        if method.context_param is not None:
            kwargs = {**kwargs, method.context_param: request.context}
        result = await (method.func(**kwargs) if method.is_async else method.invoke(kwargs))
        return method.shape(result) if method.shapes_result else result

    return run


def compose(middleware: Sequence[Middleware], endpoint: Next) -> Next:
    """One callable running ``middleware`` in order around ``endpoint``."""
    handler = endpoint
    for mw in reversed(middleware):
        handler = _link(mw, handler)
    return handler


def _link(mw: Middleware, call_next: Next) -> Next:
    async def run(request: Request) -> Any:
        return await mw(request, call_next)

    return run
