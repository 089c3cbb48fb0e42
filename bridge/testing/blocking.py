"""``TestClient``: ``AsyncTestClient`` for plain (sync) tests, its host on an event loop in a
background thread (an anyio blocking portal)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from functools import partial
from typing import TYPE_CHECKING, Any

from anyio.from_thread import BlockingPortal, start_blocking_portal

from ..connection import Connection
from ..settings import Settings

if TYPE_CHECKING:
    from ..app import Bridge

from .client import _END, _UNSET, AsyncStream, AsyncTestClient, Event, Params, PendingCall, T, _outcome


class TestClient:
    """``AsyncTestClient`` for plain (sync) tests: the host runs on an event loop in a background
    thread (an anyio blocking portal; uvloop where the real host would use it) and each method
    waits for it. Takes the same arguments; sync handlers still run in worker threads.

    >>> with TestClient(app) as client:                   # doctest: +SKIP
    ...     assert client.call("math.add", [1, 2]) == 3
    """

    __test__ = False  # not a pytest test class, despite its name

    def __init__(self, app: Bridge, *, caller: Any = None, timeout: float = 5.0, **settings: Any) -> None:
        self._client = AsyncTestClient(app, caller=caller, timeout=timeout, **settings)
        self._portal_cm: AbstractContextManager[BlockingPortal] | None = None
        self._client_cm: AbstractContextManager[AsyncTestClient] | None = None
        #: The portal to the host's loop while open: ``client.portal.call(coroutine_function, ...)``.
        self.portal: BlockingPortal | None = None

    def __enter__(self) -> TestClient:
        if self.portal is not None:
            raise RuntimeError("this client is already open")
        from ..server import _loop_factory

        factory = _loop_factory(Settings(loop=self._client.overrides.get("loop", "auto")))  # as the real host's
        portal_cm = start_blocking_portal("asyncio", {"use_uvloop": True} if factory is not None else {})
        portal = portal_cm.__enter__()
        try:
            client_cm = portal.wrap_async_context_manager(self._client)
            client_cm.__enter__()
        except BaseException:
            portal_cm.__exit__(*sys.exc_info())
            raise
        self._portal_cm, self._client_cm, self.portal = portal_cm, client_cm, portal
        return self

    def __exit__(self, *exc_info: Any) -> bool | None:
        portal_cm, client_cm = self._portal_cm, self._client_cm
        self._portal_cm = self._client_cm = self.portal = None
        if portal_cm is None or client_cm is None:
            return None
        try:
            return client_cm.__exit__(*exc_info)
        finally:
            portal_cm.__exit__(None, None, None)

    @property
    def app(self) -> Bridge:
        return self._client.app

    @property
    def events(self) -> list[Event]:
        """Every notification the host sent, in order (but a consumed stream's chunks)."""
        return self._client.events

    @property
    def connection(self) -> Connection | None:
        return self._client.connection

    def _run(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self.portal is None:
            raise RuntimeError("the client is not open: use it inside `with TestClient(app) as client:`")
        return self.portal.call(partial(func, *args, **kwargs))

    def _make(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``func``'s return value in the host's loop, as it is (the portal would await an awaitable one)."""
        return self._run(lambda: (func(*args, **kwargs),))[0]

    def call(self, method: str, params: Params = None, *, caller: Any = _UNSET,
             meta: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
        """The result of calling ``method`` with ``params`` (a dict by name, a list by position);
        ``BridgeError`` (code, message, data) for an error reply."""
        return self._run(self._client.call, method, params, caller=caller, meta=meta, timeout=timeout)

    def start(self, method: str, params: Params = None, *, caller: Any = _UNSET,
              meta: dict[str, Any] | None = None) -> BlockingCall:
        """Send a call and return at once: ``result()`` waits for it, ``progress`` fills as the
        host reports, ``cancel()`` cancels it."""
        return BlockingCall(self, self._make(self._client.start, method, params, caller=caller, meta=meta))

    def stream(self, method: str, params: Params = None, *, caller: Any = _UNSET, window: int | None = None,
               meta: dict[str, Any] | None = None) -> BlockingStream:
        """``for item in client.stream(...)``: see ``AsyncTestClient.stream``."""
        return BlockingStream(self, self._make(self._client.stream, method, params, caller=caller, window=window,
                                              meta=meta))

    def notify(self, method: str, params: Params = None, *, caller: Any = _UNSET) -> None:
        """Send a notification (a call without an id: no reply comes)."""
        self._run(self._client.notify, method, params, caller=caller)

    def metrics(self, *, timeout: float | None = None) -> dict[str, Any]:
        """What ``rpc.metrics`` answers."""
        return self._run(self._client.metrics, timeout=timeout)  # type: ignore[no-any-return]

    def wait_until(self, condition: Callable[[], T], *, timeout: float | None = None) -> T:
        """``condition()``'s value once truthy, tried now and after each message the host sends
        (on the host's loop: keep it to reading ``events``, ``progress`` and the like)."""
        return self._run(self._client.wait_until, condition, timeout=timeout)  # type: ignore[no-any-return]

    def wait_for_event(self, method: str, where: Callable[[Any], bool] | None = None, *,
                       timeout: float | None = None) -> Any:
        """The params of the first event named ``method`` (and satisfying ``where``), sent already or yet to come."""
        return self._run(self._client.wait_for_event, method, where, timeout=timeout)


def _read(inner: str, name: str, doc: str) -> Any:
    """A read-only attribute that reads the async object's own (``self.<inner>.<name>``)."""
    return property(lambda self: getattr(getattr(self, inner), name), doc=doc)


class BlockingCall:
    """``TestClient.start``'s handle: ``result()`` waits for the reply; ``progress``, ``cancel()``."""

    def __init__(self, client: TestClient, call: PendingCall) -> None:
        self._client = client
        self._call = call

    id = _read("_call", "id", "The request id.")
    method = _read("_call", "method", "The method called.")
    progress = _read("_call", "progress", "The ``$/progress`` values reported for this call so far.")
    reply = _read("_call", "reply", "The reply as sent, once it came (also after the client closed).")
    meta = _read("_call", "meta", "The reply's ``$meta`` (``cached``, ``handlerMs``), when the call asked with ``$meta.info``.")
    done = _read("_call", "done", "Whether the reply came.")

    def result(self, timeout: float | None = None) -> Any:
        """The result, or ``BridgeError`` for an error reply (``TimeoutError`` past ``timeout``)."""
        if self._call.done:  # also once the client has closed
            return _outcome(self._call.reply)  # type: ignore[arg-type]
        return self._client._run(self._call.result, timeout)

    def cancel(self) -> None:
        """Ask the host to cancel the call: ``result()`` then raises ``BridgeError`` -32800."""
        self._client._run(self._call.cancel)

    def __repr__(self) -> str:
        return f"BlockingCall({self.method!r}, id={self.id}, done={self.done})"


class BlockingStream:
    """``TestClient.stream``'s items: ``for item in stream``; ``result`` once read to the end.
    Leaving ``with`` (or ``close()``) cancels a stream not read to its end."""

    def __init__(self, client: TestClient, stream: AsyncStream) -> None:
        self._client = client
        self._stream = stream
        #: The call itself: ``progress``, ``cancel()``, ``reply``.
        self.call = BlockingCall(client, stream.call)

    chunk = _read("_stream", "chunk", "The last chunk taken: ``{id, seq, done, total?}`` (its items left out).")
    result = _read("_stream", "result", "The reply ``{items, chunks}``, once read to the end.")
    buffered = _read("_stream", "buffered", "Chunks received and not yet taken.")

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        item = self._client._run(self._stream._next)
        if item is _END:
            raise StopIteration
        return item

    def close(self) -> None:
        """Stop reading: a stream still running is cancelled (the client's exit cancelled it already)."""
        if self._client.portal is not None:
            self._client._run(self._stream.aclose)

    def __enter__(self) -> BlockingStream:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
