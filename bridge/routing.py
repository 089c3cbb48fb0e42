"""``Router``: handlers and hooks registered by decorator, the base ``Bridge`` and ``Plugin`` share.

The app registers a handler as a method at once; a plugin keeps it until it is mounted under
its namespace (``app.include(plugin)``), as FastAPI's ``APIRouter`` does for ``include_router``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar, overload

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .methods import MethodOptions

F = TypeVar("F", bound=Callable[..., Any])
Hook = Callable[[], "Awaitable[None] | None"]
#: ``lifespan(router)``: an async context manager entered when the host starts and left when
#: it stops; what it yields is ``router.state`` meanwhile (Starlette's lifespan, per router).
Lifespan = Callable[[Any], AbstractAsyncContextManager[Any]]


class Event(NamedTuple):
    """A notification the app (or a plugin) declares it sends, and the type of its params."""

    name: str
    payload: Any
    description: str | None = None


class Router:
    """Registration by decorator: ``@x.method``, ``@x.on_startup``, ``@x.on_shutdown``; and
    ``x.event(name, Payload)``, an event declared for rpc.discover and ``bridge types``."""

    def __init__(self, lifespan: Lifespan | None = None) -> None:
        self.startup_hooks: list[Hook] = []
        self.shutdown_hooks: list[Hook] = []
        self.lifespan = lifespan
        #: What the lifespan yielded, while the host runs (None before and after).
        self.state: Any = None
        #: Declared events by name (``event``); a plugin's are prefixed when it is mounted.
        self.events: dict[str, Event] = {}

    @overload
    def method(self, func: F, /) -> F: ...

    @overload
    def method(self, name: str | None = None, /, **options: Unpack[MethodOptions]) -> Callable[[F], F]: ...

    def method(self, name_or_func: Any = None, /, **options: Any) -> Any:
        """Register a handler: ``@x.method``, ``@x.method("ns.name")``, ``@x.method(timeout=5)``.

        Options (all optional): ``timeout`` in seconds (then REQUEST_TIMEOUT);
        ``idempotent`` (clients may retry it, listed in ``$/ready`` and ``rpc.discover``);
        ``rate_limit=RateLimit(...)``; ``circuit=CircuitBreaker(...)``; ``validator``, a
        function of the validated arguments; ``middleware``, this method's own; and
        ``description`` (default: the docstring).
        """
        if callable(name_or_func):
            self.add_method(name_or_func)
            return name_or_func

        def decorator(func: F) -> F:
            self.add_method(func, name_or_func, **options)
            return func

        return decorator

    def add_method(self, func: Callable[..., Any], name: str | None = None, **options: Any) -> Any:
        """Register ``func`` under ``name`` (default: the function's name)."""
        raise NotImplementedError

    def event(self, name: str, payload: Any = Any, *, description: str | None = None) -> None:
        """Declare an event sent with ``notify(name, params)`` and the type of its params:
        ``app.event("notes.saved", NoteSaved)``. It is listed in rpc.discover (``x-events``) and
        typed by ``bridge types``; ``notify`` itself does not check it."""
        if not isinstance(name, str) or not name or name.startswith(("rpc.", "$/")):
            raise ValueError(f"event names must be non-empty and not start with 'rpc.' or '$/': {name!r}")
        if name in self.events:
            raise ValueError(f"event {name!r} is declared twice")
        self.events[name] = Event(name, payload, description)

    def on_startup(self, func: Hook) -> Hook:
        """Run ``func`` (sync or async) before the host reports ``$/ready``."""
        self.startup_hooks.append(func)
        return func

    def on_shutdown(self, func: Hook) -> Hook:
        """Run ``func`` (sync or async) after in-flight calls finish, before the host exits."""
        self.shutdown_hooks.append(func)
        return func
