"""``Bridge``: the application object handlers are registered on."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any

from .audit import AuditLog
from .methods import Method, MethodOptions
from .routing import Hook, Lifespan, Router

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .connection import Connection
    from .middleware import Middleware
    from .middleware.circuit import CircuitBreaker
    from .middleware.ratelimit import RateLimit
    from .plugins import Plugin, PluginStatus
    from .settings import Settings


class Bridge(Router):
    """A set of JSON-RPC methods with start-up and shutdown hooks.

    >>> app = Bridge()
    >>> @app.method("math.add")
    ... async def add(a: int, b: int) -> int:
    ...     return a + b
    """

    def __init__(
        self,
        name: str = "bridge-app",
        version: str = "0.0.0",
        *,
        description: str | None = None,
        timeout: float | None = None,
        rate_limit: RateLimit | None = None,
        circuit: CircuitBreaker | None = None,
        lifespan: Lifespan | None = None,
    ) -> None:
        """``timeout``, ``rate_limit`` and ``circuit`` are defaults for every method.
        ``lifespan(app)`` is entered at start-up (after the startup hooks) and left at shutdown;
        what it yields is ``app.state`` meanwhile."""
        super().__init__(lifespan)
        self.name = name
        self.version = version
        self.description = description
        self.timeout = timeout
        #: Built-in middleware every method gets unless it names its own (or False).
        self.defaults: dict[str, Any] = {key: part for key, part in (("circuit", circuit), ("rate_limit", rate_limit))
                                         if part is not None}
        self.middleware: list[Middleware] = []
        self.plugins: dict[str, PluginStatus] = {}
        #: Mounted plugins' ``metrics`` callables by prefix: ``rpc.metrics`` reports them under ``plugins``.
        self.plugin_metrics: dict[str, Callable[[], dict[str, Any] | None]] = {}
        self.method_owners: dict[str, str] = {}  # method name -> the plugin that mounted it
        self.lifespans: list[tuple[Router, PluginStatus | None]] = [(self, None)]  # entered in order
        self.methods: dict[str, Method] = {}
        self.connection: Connection | None = None
        #: The audit log (``app.audit.record(event, participant=..., **fields)``): a no-op
        #: until the host opens it from the settings at start.
        self.audit = AuditLog()

    def add_method(self, func: Callable[..., Any], name: str | None = None, **options: Unpack[MethodOptions]) -> Method:
        """Register ``func`` under ``name`` (default: the function's name)."""
        name = name or func.__name__
        if name.startswith(("rpc.", "$/")):
            raise ValueError(f"method names starting with 'rpc.' or '$/' are reserved: {name!r}")
        if name in self.methods:
            other = self.methods[name].func
            raise ValueError(
                f"method {name!r} is registered twice: {_where(other)} and {_where(func)}"
            )
        method = Method(func, name, **options)
        self.methods[name] = method
        return method

    def include(self, plugin: Plugin, *, prefix: str | None = None, settings: Any = None) -> PluginStatus:
        """Mount ``plugin``: its methods become ``<prefix>.<name>`` (prefix: the plugin's name),
        its hooks join the app's. ``settings`` (a dict or the plugin's model) fills its settings."""
        from .plugins import include

        return include(self, plugin, prefix, settings)

    def add_middleware(self, middleware: Middleware) -> Middleware:
        """Run ``middleware`` (``async (request, call_next)``) around every method's calls.

        Middleware added first runs outermost. Usable as a decorator.
        """
        self.middleware.append(middleware)
        return middleware

    def notify(self, method: str, params: Any = None) -> None:
        """Send the connected client a notification (an event); safe from any thread."""
        if self.connection is None:
            raise RuntimeError("the app is not serving a connection")
        self.connection.notify(method, params)

    def invalidate(self, *targets: str) -> Invalidation:
        """Drop cached replies of these methods, or of every method with these cache tags, now.
        With a cache shared by several hosts (``cache_redis``), ``await`` what it returns to wait
        until every host has dropped them too (from an async handler; not awaiting is fine)."""
        cache = self.connection.cache if self.connection is not None else None
        if cache is None:
            return Invalidation([])
        from .middleware.cache import methods_for

        pending = [cache.invalidate(method) for method in methods_for(self, targets)]
        return Invalidation([p for p in pending if p is not None])

    def serve(self, settings: Settings | None = None, **overrides: Any) -> int:
        """Serve this app on stdin/stdout until EOF or a signal; returns the exit code."""
        from .server import run
        from .settings import Settings

        return run(self, settings or Settings.from_env(**overrides))


class Invalidation:
    """What ``Bridge.invalidate`` returns: awaiting it waits for the hosts sharing the cache."""

    __slots__ = ("_pending",)

    def __init__(self, pending: list[Awaitable[None]]) -> None:
        self._pending = pending

    def __await__(self) -> Generator[Any, None, None]:
        for step in self._pending:
            yield from step.__await__()


async def run_hooks(hooks: list[Hook]) -> None:
    """Call each hook in order, awaiting the async ones."""
    for hook in hooks:
        result = hook()
        if inspect.isawaitable(result):
            await result


def _where(func: Callable[..., Any]) -> str:
    code = getattr(func, "__code__", None)
    location = f"{code.co_filename}:{code.co_firstlineno}" if code else "?"
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', func)} ({location})"
