"""``Bridge``: the application object handlers are registered on."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar, overload

from .methods import Method

if TYPE_CHECKING:
    from .connection import Connection
    from .settings import Settings

F = TypeVar("F", bound=Callable[..., Any])
Hook = Callable[[], "Awaitable[None] | None"]


class Bridge:
    """A set of JSON-RPC methods with start-up and shutdown hooks.

    >>> app = Bridge()
    >>> @app.method("math.add")
    ... async def add(a: int, b: int) -> int:
    ...     return a + b
    """

    def __init__(self, name: str = "bridge-app", version: str = "0.0.0", *, description: str | None = None) -> None:
        self.name = name
        self.version = version
        self.description = description
        self.methods: dict[str, Method] = {}
        self.startup_hooks: list[Hook] = []
        self.shutdown_hooks: list[Hook] = []
        self.connection: Connection | None = None

    @overload
    def method(self, func: F, /) -> F: ...

    @overload
    def method(
        self,
        name: str | None = None,
        /,
        *,
        timeout: float | None = None,
        idempotent: bool = False,
        description: str | None = None,
    ) -> Callable[[F], F]: ...

    def method(
        self,
        name_or_func: Any = None,
        /,
        *,
        timeout: float | None = None,
        idempotent: bool = False,
        description: str | None = None,
    ) -> Any:
        """Register a handler: ``@app.method``, ``@app.method("ns.name")``, ``@app.method(timeout=5)``.

        ``timeout`` (seconds) cancels the handler and answers with REQUEST_TIMEOUT.
        ``idempotent`` tells clients a call may be retried safely (after a crash, say);
        it is listed in ``$/ready`` and ``rpc.discover``.
        The handler's docstring is its description unless ``description`` is given.
        """
        if callable(name_or_func):
            self.add_method(name_or_func)
            return name_or_func

        def decorator(func: F) -> F:
            self.add_method(func, name_or_func, timeout=timeout, idempotent=idempotent, description=description)
            return func

        return decorator

    def add_method(
        self,
        func: Callable[..., Any],
        name: str | None = None,
        *,
        timeout: float | None = None,
        idempotent: bool = False,
        description: str | None = None,
    ) -> Method:
        """Register ``func`` under ``name`` (default: the function's name)."""
        name = name or func.__name__
        if name.startswith(("rpc.", "$/")):
            raise ValueError(f"method names starting with 'rpc.' or '$/' are reserved: {name!r}")
        if name in self.methods:
            other = self.methods[name].func
            raise ValueError(
                f"method {name!r} is registered twice: {_where(other)} and {_where(func)}"
            )
        if timeout is not None and timeout <= 0:
            raise ValueError(f"{name}: timeout must be positive")
        method = Method(func, name, timeout=timeout, idempotent=idempotent, description=description)
        self.methods[name] = method
        return method

    def on_startup(self, func: Hook) -> Hook:
        """Run ``func`` (sync or async) before the host reports ``$/ready``."""
        self.startup_hooks.append(func)
        return func

    def on_shutdown(self, func: Hook) -> Hook:
        """Run ``func`` (sync or async) after in-flight calls finish, before the host exits."""
        self.shutdown_hooks.append(func)
        return func

    def notify(self, method: str, params: Any = None) -> None:
        """Send the connected client a notification (an event); safe from any thread."""
        if self.connection is None:
            raise RuntimeError("the app is not serving a connection")
        self.connection.notify(method, params)

    def serve(self, settings: Settings | None = None, **overrides: Any) -> int:
        """Serve this app on stdin/stdout until EOF or a signal; returns the exit code."""
        from .server import run
        from .settings import Settings

        return run(self, settings or Settings.from_env(**overrides))


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
