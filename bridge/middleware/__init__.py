"""The middleware chain every call with options passes through on its way to the handler.

A middleware is ``async (request, call_next) -> result``: the same shape for the built-in
concerns (rate limiting, circuit breaking, custom validation) and for an app's own
(authorisation, auditing). A method with no middleware skips the chain entirely.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..context import CallView, Context
from ..methods import PART_OPTIONS

try:
    from mypy_extensions import mypyc_attr
except ImportError:  # only compiling needs it (hatch_build.py)
    def mypyc_attr(*attrs: str, **kwattrs: object) -> Callable[[Any], Any]:  # type: ignore[misc]
        return lambda cls: cls

if TYPE_CHECKING:
    from ..app import Bridge
    from ..cache import CacheStore
    from ..connection import Call, Connection
    from ..methods import Method

Next = Callable[["Request"], Awaitable[Any]]
_NO_META: Mapping[str, Any] = MappingProxyType({})  # the meta of the calls that send none (most)
Middleware = Callable[["Request", Next], Awaitable[Any]]


class Request(CallView):
    """One call as the middleware chain sees it.

    ``params`` are as received; ``kwargs`` are the validated arguments once the
    validation step has run (None before). ``caller`` is the caller's identity: what a trusted
    transport asserted in the request's ``$caller`` (the Electron helper puts the window there),
    else what the client declared in ``$meta.caller``.
    """

    __slots__ = ("method", "id", "params", "kwargs", "_context", "_meta")

    def __init__(self, method: Method, id: Any, params: dict[str, Any] | list[Any] | None,
                 conn: Connection, call: Call) -> None:
        self.method = method
        self.id = id
        self.params = params
        self.kwargs: dict[str, Any] | None = None
        self._conn = conn
        self._call = call
        self._context: Context | None = None
        self._meta: Mapping[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.method.name

    @property
    def meta(self) -> Mapping[str, Any]:
        """The params' ``$meta`` object (empty when they have none), read on first use."""
        if self._meta is None:
            params = self.params
            meta = params.get("$meta") if type(params) is dict else None
            self._meta = meta if type(meta) is dict else _NO_META
        return self._meta

    @property
    def context(self) -> Context:
        """The call's context (created on first use)."""
        if self._context is None:
            self._context = _context(self._conn, self.method, self.id, self._call, self.meta)
        return self._context

    @property
    def info(self) -> dict[str, Any] | None:
        """What middleware told a caller that asked (``$meta.info``) about its reply."""
        return self._call.info

    def annotate(self, **info: Any) -> None:
        """Tell a caller that asked (``$meta.info``) something about its reply, e.g. ``cached``."""
        call = self._call
        if call.info is None:
            if not self.meta.get("info"):
                return
            call.info = {}
        call.info.update(info)

    def validate(self) -> dict[str, Any]:
        """Bind and validate the params once; BridgeError(INVALID_PARAMS) if they are wrong."""
        if self.kwargs is None:
            self.kwargs = self.method.bind(self.params)
        return self.kwargs

    def __repr__(self) -> str:
        return f"Request({self.method.name!r}, id={self.id!r})"


class Build:
    """What a middleware's ``on_build(build)`` hook is told when the host builds a method's
    chain; the hook returns what joins the chain (itself, another middleware, or None)."""

    __slots__ = ("app", "cache", "method")

    def __init__(self, app: Bridge, method: Method, cache: CacheStore | None) -> None:
        self.app = app
        self.method = method
        self.cache = cache


def build(app: Bridge, method: Method, cache_store: CacheStore | None) -> Next | None:
    """The chain ``method``'s calls go through, or None when there is nothing in it.

    Order: the app's middleware, the method's own, then the built-ins its keyword options
    name (``PART_OPTIONS`` order, the app's default where the method gives none); then the
    endpoint: the method's kind, or the handler. Also settles the method's timeout.
    """
    method.effective_timeout = method.timeout if method.timeout is not None else app.timeout
    if method.kind is None and not (method.middleware or method.options or app.middleware or app.defaults):
        return None  # the usual method: nothing to chain (an app of 10,000 is built in ~1 ms, not 9)
    chain: list[Middleware] = [*app.middleware, *method.middleware]
    for key in PART_OPTIONS:
        part = method.options.get(key, app.defaults.get(key))
        if part:  # False: the method turned the app's default off
            chain.append(part)
    setup = Build(app, method, cache_store)
    chain = [mw for mw in (_built(mw, setup) for mw in chain) if mw is not None]
    if method.kind is not None:
        return compose(chain, method.kind.endpoint)
    return compose(chain, _endpoint(method)) if chain else None


def _built(mw: Middleware, setup: Build) -> Middleware | None:
    on_build = getattr(mw, "on_build", None)
    return mw if on_build is None else on_build(setup)  # type: ignore[no-any-return]


def needs_cache(app: Bridge) -> bool:
    """Whether any method's middleware keeps replies in the host's cache store."""
    return any(getattr(part, "uses_cache_store", False) for m in app.methods.values() for part in m.parts)


def run(method: Method, conn: Connection, call: Call, id: Any, params: dict[str, Any] | list[Any] | None
        ) -> Awaitable[Any]:
    """Run one call: through the method's chain if it has one, else straight to its handler
    (the same steps without a ``Request``). The one place a call is run; the connection awaits it."""
    if method.pipeline is not None:
        return method.pipeline(Request(method, id, params, conn, call))
    args = method.args_given(params)
    if args is not None:  # by position: no dict to make and unpack (~0.2 us a call)
        return method.func(*args)  # type: ignore[no-any-return]
    kwargs = method.bind(params)
    if method.context_param is not None:
        meta = params.get("$meta") if type(params) is dict else None
        kwargs[method.context_param] = _context(conn, method, id, call, meta if type(meta) is dict else {})
    if method.is_async and not method.shapes_result:  # a plain async handler's own coroutine (a frame spared)
        return method.func(**kwargs)  # type: ignore[no-any-return]
    return _shaped(method, kwargs)


def _context(conn: Connection, method: Method, id: Any, call: Call, meta: Mapping[str, Any]) -> Context:
    return Context(conn, method.name, id, call, meta.get("progressToken"))


def _endpoint(method: Method) -> Next:
    """The handler itself, at the end of the chain."""
    if method.context_param is None and method.is_async and not method.shapes_result:

        def plain(request: Request) -> Awaitable[Any]:  # the usual handler: its own coroutine, as in run()
            kwargs = request.kwargs  # (func read per call: a plugin that fails to start replaces it)
            return method.func(**(kwargs if kwargs is not None else request.validate()))  # type: ignore[no-any-return]

        return plain

    def run(request: Request) -> Awaitable[Any]:
        kwargs = request.validate()
        if method.context_param is not None:
            kwargs = {**kwargs, method.context_param: request.context}
        if method.is_async and not method.shapes_result:  # as in run(): the handler's own coroutine
            return method.func(**kwargs)  # type: ignore[no-any-return]
        return _shaped(method, kwargs)

    return run


async def _shaped(method: Method, kwargs: dict[str, Any]) -> Any:
    """The handler run (a sync one in a worker thread), its result shaped as annotated."""
    result = await (method.func(**kwargs) if method.is_async else method.invoke(kwargs))
    return method.shape(result) if method.shapes_result else result


@mypyc_attr(allow_interpreted_subclasses=True)  # an app's own steps
class Step:
    """A middleware that acts only before and after the call, never replacing its result.

    Subclasses define ``before`` (which may return an awaitable to wait on) and ``after``;
    ``__call__`` makes each an ordinary middleware, and ``compose`` runs a run of them as one
    layer rather than one awaited layer each (most of a middleware's cost is the layer).
    """

    def before(self, request: Request) -> Awaitable[Any] | None:
        return None

    def after(self, request: Request, error: BaseException | None) -> None:
        return None

    async def __call__(self, request: Request, call_next: Next) -> Any:
        waiting = self.before(request)
        if waiting is not None:
            await waiting
        try:
            result = await call_next(request)
        except BaseException as exc:
            self.after(request, exc)
            raise
        self.after(request, None)
        return result


def compose(middleware: Sequence[Middleware], endpoint: Next) -> Next:
    """One callable running ``middleware`` in order around ``endpoint``."""
    layers: list[Middleware | list[Step]] = []
    for mw in middleware:
        if isinstance(mw, Step):
            if layers and isinstance(layers[-1], list):
                layers[-1].append(mw)
            else:
                layers.append([mw])
        else:
            layers.append(mw)
    handler = endpoint
    for layer in reversed(layers):
        handler = _fuse(layer, handler) if isinstance(layer, list) else _link(layer, handler)
    return handler


def _fuse(steps: list[Step], call_next: Next) -> Next:
    """Steps run as nested middleware would, in one layer: no coroutine of its own unless a
    ``before`` waits or a step has an ``after`` (the base class's no-op is skipped)."""
    afters = [step.after for step in reversed(steps) if type(step).after is not Step.after]
    befores = [step.before for step in steps]  # bound once: the layer runs on every call
    count = len(steps)

    async def finish(request: Request, waiting: Awaitable[Any], entered: int) -> Any:
        """The rest of the befores, from one that waits, then the call (no afters)."""
        await waiting
        while entered < count:
            waiting = steps[entered].before(request)  # type: ignore[assignment]
            if waiting is not None:
                await waiting
            entered += 1
        return await call_next(request)

    def run_before(request: Request) -> Awaitable[Any]:
        entered = 0
        for before in befores:
            entered += 1
            waiting = before(request)
            if waiting is not None:
                return finish(request, waiting, entered)
        return call_next(request)

    if not afters:
        return run_before

    async def run(request: Request) -> Any:
        entered = 0
        try:
            for before in befores:
                waiting = before(request)
                if waiting is not None:
                    await waiting
                entered += 1
            result = await call_next(request)
        except BaseException as exc:
            for step in reversed(steps[:entered]):
                step.after(request, exc)
            raise
        for after in afters:
            after(request, None)
        return result

    return run


def _link(mw: Middleware, call_next: Next) -> Next:
    """``mw`` with its ``call_next`` bound: its own coroutine is what the caller awaits (no
    wrapping coroutine, a frame fewer per middleware per call)."""

    def run(request: Request) -> Awaitable[Any]:
        return mw(request, call_next)

    return run
