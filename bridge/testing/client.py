"""``AsyncTestClient``: an app served in-process through the real ``Connection``, over an
in-memory pipe; ``PendingCall`` and ``AsyncStream``, what its calls and streams return."""

from __future__ import annotations

import itertools
import logging
import tempfile
from collections import deque
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import anyio
import orjson

from ..connection import Connection
from ..errors import BridgeError
from ..framing import ENCODERS, FrameError, decoder
from ..settings import Settings

if TYPE_CHECKING:
    from anyio.abc import TaskStatus

    from ..app import Bridge

log = logging.getLogger("bridge.testing")

T = TypeVar("T")
Params = dict[str, Any] | list[Any] | None
_UNSET: Any = object()  # "not given": a caller of None means the call declares none
_END: Any = object()  # what a stream's next step returns at its end (StopAsyncIteration cannot cross a portal)


class Event(NamedTuple):
    """A notification the host sent: ``ctx.notify``, ``app.notify``, ``$/progress`` and the like."""

    method: str
    params: Any


# ---- the client: an app served over memory ---------------------------------------------


class AsyncTestClient:
    """Serve ``app`` in this event loop, as the real host would, and call it.

    ``caller`` is every call's ``$caller`` (the identity a trusted transport asserts, which
    the host takes for ``ctx.participant``) unless a call names its own; ``timeout`` bounds
    every wait; other keywords are ``Settings`` fields (``max_inflight=4``,
    ``shutdown_grace=0.5``, ...). Unless given, replies are cached and the audit log kept in a
    temporary directory removed on leaving, and no ``$/ready`` is sent. The app's own plugins
    (``app.include``) are served; installed ones are not mounted, as ``--no-plugins``.
    One client serves an app at a time (``app.notify`` goes to the one serving it).
    """

    def __init__(self, app: Bridge, *, caller: Any = None, timeout: float = 5.0, **settings: Any) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        Settings(**settings)  # a wrong name or value fails here, not on entering
        self.app = app
        self.caller = caller
        self.timeout = timeout
        self.overrides = settings
        #: Every notification the host sent, in order (but a consumed stream's ``$/stream`` chunks).
        self.events: list[Event] = []
        #: The connection while the client is open (its metrics, streams, settings).
        self.connection: Connection | None = None
        self._wire: _Wire | None = None
        self._stack: AsyncExitStack | None = None
        self._ids = itertools.count(1)
        self._pending: dict[Any, PendingCall] = {}
        self._by_token: dict[Any, PendingCall] = {}
        self._streams: dict[Any, AsyncStream] = {}
        self._changed: anyio.Event = None  # type: ignore[assignment]  # made on entering, in the loop

    # ---- lifetime ---------------------------------------------------------------------

    async def __aenter__(self) -> AsyncTestClient:
        if self._stack is not None:
            raise RuntimeError("this client is already open")
        self.events = []
        self._pending, self._by_token, self._streams = {}, {}, {}
        self._changed = anyio.Event()
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bridge-test-")))
            settings = Settings(**{"framing": "ndjson", "ready": False, "cache_dir": str(scratch / "cache"),
                                   "audit_dir": str(scratch / "audit"), **self.overrides})
            self._wire = _Wire(self._receive, settings.framing)
            self.connection = Connection(self.app, settings, self._wire, self._wire)
            tasks = await stack.enter_async_context(anyio.create_task_group())
            with anyio.fail_after(self.timeout):
                await tasks.start(self._serve, self.connection)
        except BaseException:
            self._wire = None
            await stack.aclose()  # the start-up's error goes up as it is, not in a group
            raise
        self._stack = stack
        return self

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        stack, self._stack = self._stack, None
        wire, conn = self._wire, self.connection
        if stack is None or wire is None or conn is None:
            return None
        for stream in list(self._streams.values()):  # nobody reads them now: they could only wait for credit
            stream.call.cancel()
        if exc_info[0] is not None:
            conn.hurry()  # the test failed already: cancel its calls rather than wait for them
        wire.close()  # EOF: the host finishes its calls (within the grace period), then stops
        try:
            if exc_info[1] is None or isinstance(exc_info[1], anyio.get_cancelled_exc_class()):
                return await stack.__aexit__(*exc_info)
            await stack.__aexit__(None, None, None)  # the test's own error goes up as it is, not in a group
            return None
        finally:
            self._wire = None

    async def _serve(self, conn: Connection, *, task_status: TaskStatus[None]) -> None:
        """The host's life in one task: ``app_lifetime`` (hooks, lifespans) around the connection."""
        from ..server import app_lifetime

        try:
            async with app_lifetime(self.app, conn.settings):
                if conn.cache is not None:  # opened before a test could end: never after its directory is gone
                    await anyio.to_thread.run_sync(conn.cache.open)
                task_status.started()
                await conn.run()
        finally:
            self.app.audit.close()

    # ---- calls --------------------------------------------------------------------------

    async def call(self, method: str, params: Params = None, *, caller: Any = _UNSET,
                   meta: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
        """The result of calling ``method`` with ``params`` (a dict by name, a list by position);
        ``BridgeError`` (code, message, data) for an error reply."""
        return await self.start(method, params, caller=caller, meta=meta).result(timeout)

    def start(self, method: str, params: Params = None, *, caller: Any = _UNSET,
              meta: dict[str, Any] | None = None) -> PendingCall:
        """Send a call and return at once: await the handle for its result, read its
        ``progress``, ``cancel()`` it. ``meta`` joins the params' ``$meta`` (``{"info": True}``)."""
        params = _with_meta(params, meta)
        id = next(self._ids)
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": _checked_method(method)}
        if params is not None:
            message["params"] = params
        caller = self.caller if caller is _UNSET else caller
        if caller is not None:
            message["$caller"] = caller
        pending = PendingCall(self, id, method, _progress_token(params, id))
        self._pending[id] = pending
        self._by_token[pending.token] = pending
        self._send(message)
        return pending

    def stream(self, method: str, params: Params = None, *, caller: Any = _UNSET, window: int | None = None,
               meta: dict[str, Any] | None = None) -> AsyncStream:
        """Call a streaming method: ``async for item in client.stream(...)`` yields its items as
        the chunks come. Named params are paced as the JS client paces them (``window`` chunks,
        default the host's ``stream_window``, then one credit per chunk taken); positional
        params cannot carry ``$meta`` and are not paced. Leaving ``async with`` (or ``aclose``)
        cancels a stream not read to its end."""
        if window is not None and (type(window) is not int or window < 1):
            raise ValueError("window must be a positive integer")
        paced = type(params) is not list
        if paced:
            given = params.get("$meta") if type(params) is dict else None
            opted = given.get("stream") if type(given) is dict else None
            stream_meta = {**(opted if type(opted) is dict else {}), **((meta or {}).get("stream") or {})}
            if window is not None:
                stream_meta["window"] = window
            meta = {**(meta or {}), "stream": stream_meta}
        pending = self.start(method, params, caller=caller, meta=meta)
        stream = self._streams[pending.id] = AsyncStream(self, pending, paced)
        return stream

    def notify(self, method: str, params: Params = None, *, caller: Any = _UNSET) -> None:
        """Send a notification (a call without an id: no reply comes)."""
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": _checked_method(method)}
        params = _with_meta(params, None)
        if params is not None:
            message["params"] = params
        caller = self.caller if caller is _UNSET else caller
        if caller is not None:
            message["$caller"] = caller
        self._send(message)

    async def metrics(self, *, timeout: float | None = None) -> dict[str, Any]:
        """What ``rpc.metrics`` answers: per-method calls, errors, latencies, cache hits, ..."""
        return await self.call("rpc.metrics", timeout=timeout)  # type: ignore[no-any-return]

    # ---- waiting ----------------------------------------------------------------------

    async def wait_until(self, condition: Callable[[], T], *, timeout: float | None = None) -> T:
        """``condition()``'s value once it is truthy: tried now and after each message the host
        sends (so it should depend on what the host sends: ``events``, a call's ``progress``)."""
        return await self._wait(condition, timeout, lambda: f"the condition never held; the host sent {self._names()}")

    async def wait_for_event(self, method: str, where: Callable[[Any], bool] | None = None, *,
                             timeout: float | None = None) -> Any:
        """The params of the first event named ``method`` (and satisfying ``where``), sent
        already or yet to come; ``client.events.clear()`` first to wait for a new one."""

        def found() -> Event | None:
            return next((e for e in self.events if e.method == method and (where is None or where(e.params))), None)

        event = await self._wait(found, timeout, lambda: f"no {method} event; the host sent {self._names()}")
        return event.params

    async def _wait(self, condition: Callable[[], T], timeout: float | None, why: Callable[[], str]) -> T:
        timeout = self.timeout if timeout is None else timeout
        with anyio.move_on_after(timeout):
            while not (value := condition()):
                if self._wire is None:
                    raise RuntimeError("the client is closed: nothing more will come from the host")
                await self._changed.wait()  # set (and replaced) by each message the host sends
            return value
        raise TimeoutError(f"{why()} within {timeout}s")

    def _names(self) -> str:
        names = [e.method for e in self.events]
        return ", ".join(names[-10:]) if names else "no events"

    # ---- the wire ---------------------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> None:
        if self._wire is None:
            raise RuntimeError("the client is not open: use it inside `async with` (or `with` for TestClient)")
        self._wire.send(orjson.dumps(message))

    def _receive(self, message: Any) -> None:
        """One message the host wrote: a reply settles its call, a chunk goes to its stream,
        anything else is an event (``$/progress`` also to its call)."""
        if type(message) is list:  # a batch's replies
            for item in message:
                self._receive(item)
            return
        method = message.get("method")
        if method is None:
            pending = self._pending.pop(message.get("id"), None)
            if pending is None:
                log.warning("a reply to no call of this client: %r", message)
            else:
                pending.reply = message
                if self._by_token.get(pending.token) is pending:
                    del self._by_token[pending.token]
                self._streams.pop(pending.id, None)
        else:
            params = message.get("params")
            stream = self._streams.get(params.get("id")) if method == "$/stream" and type(params) is dict else None
            if stream is not None:
                stream._chunks.append(params)
            else:
                if method == "$/progress" and type(params) is dict:
                    pending = self._by_token.get(params.get("token"))
                    if pending is not None:
                        pending.progress.append(params.get("value"))
                self.events.append(Event(method, params))
        changed, self._changed = self._changed, anyio.Event()
        changed.set()


class PendingCall:
    """A call sent: ``await`` it (or ``result()``) for its result; ``progress`` holds the
    ``$/progress`` values reported for it so far; ``cancel()`` sends ``$/cancelRequest``."""

    def __init__(self, client: AsyncTestClient, id: int, method: str, token: Any) -> None:
        self.id = id
        self.method = method
        self.token = token
        self.progress: list[Any] = []
        #: The reply as sent, once it came (``$meta`` included when ``meta={"info": True}``).
        self.reply: dict[str, Any] | None = None
        self._client = client

    @property
    def done(self) -> bool:
        return self.reply is not None

    @property
    def meta(self) -> dict[str, Any] | None:
        """The reply's ``$meta`` (``cached``, ``handlerMs``), when the call asked with ``$meta.info``."""
        return self.reply.get("$meta") if self.reply is not None else None

    async def result(self, timeout: float | None = None) -> Any:
        """The result, or ``BridgeError`` for an error reply; ``TimeoutError`` (after cancelling
        the call) if no reply comes within ``timeout``."""
        try:
            await self._client._wait(lambda: self.done, timeout, lambda: f"no reply to {self.method} (id {self.id})")
        except TimeoutError:
            self.cancel()
            raise
        return _outcome(self.reply)  # type: ignore[arg-type]

    def __await__(self) -> Any:
        return self.result().__await__()

    def cancel(self) -> None:
        """Ask the host to cancel the call: it answers -32800 (``REQUEST_CANCELLED``)."""
        if not self.done and self._client._wire is not None:
            self._client._send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": self.id}})

    def __repr__(self) -> str:
        return f"PendingCall({self.method!r}, id={self.id}, done={self.done})"


class AsyncStream:
    """A streaming call's items as they come (``async for``); its final reply ``{items, chunks}``
    is ``result`` once read to the end. A host error raises ``BridgeError`` after the items
    sent before it."""

    def __init__(self, client: AsyncTestClient, call: PendingCall, paced: bool) -> None:
        #: The call itself: ``progress``, ``cancel()``, ``reply``.
        self.call = call
        #: The last chunk taken: ``{id, seq, done, total?}`` (its items left out).
        self.chunk: dict[str, Any] | None = None
        self.result: dict[str, Any] | None = None
        self._client = client
        self._paced = paced
        self._chunks: deque[dict[str, Any]] = deque()
        self._items: deque[Any] = deque()
        self._closed = False

    @property
    def buffered(self) -> int:
        """Chunks received and not yet taken (a paced stream sends no more than its credit)."""
        return len(self._chunks)

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> Any:
        item = await self._next()
        if item is _END:
            raise StopAsyncIteration
        return item

    async def _next(self, timeout: float | None = None) -> Any:
        while not self._items:
            if self._closed:
                return _END
            if self._chunks:
                self._take(self._chunks.popleft())
                continue
            if self.call.done:
                self._closed = True
                self.result = _outcome(self.call.reply)  # type: ignore[arg-type]
                return _END
            await self._client._wait(lambda: self._chunks or self.call.done, timeout,
                                     lambda: f"no chunk nor reply from stream {self.call.method} (id {self.call.id})")
        return self._items.popleft()

    def _take(self, chunk: dict[str, Any]) -> None:
        if self._paced and not self.call.done:  # one credit per chunk taken, as the JS client grants
            credit = {"id": self.call.id, "credit": 1}
            self._client._send({"jsonrpc": "2.0", "method": "$/stream/credit", "params": credit})
        items = chunk.get("items") or []
        self._items.extend(items)
        self.chunk = {k: v for k, v in chunk.items() if k != "items"}

    async def aclose(self) -> None:
        """Stop reading: a stream still running is cancelled and its reply awaited."""
        if self._closed:
            return
        self._closed = True
        self._items.clear()
        self._chunks.clear()
        if not self.call.done:
            self.call.cancel()
            try:
                await self.call.result()
            except BridgeError:
                pass

    async def __aenter__(self) -> AsyncStream:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncStream({self.call.method!r}, id={self.call.id})"


class _Wire:
    """Both ends of the in-memory pipe: the connection's input (what the client sends goes to
    ``conn.feed`` as a pipe's bytes do, held while the connection pauses its input) and its
    writer (each message the host writes is parsed and handed to the client at once)."""

    def __init__(self, receive: Callable[[Any], None], framing: str) -> None:
        self._receive = receive
        self._encode = ENCODERS["lsp" if framing == "lsp" else "ndjson"]
        self._decoder = decoder("auto", 1 << 40)
        self._conn: Connection | None = None
        self._held: list[bytes] = []
        self._paused = False
        self._eof = False

    # Input: what the connection reads
    def attach(self, conn: Connection) -> None:
        self._conn = conn
        self.resume()

    def pause(self) -> None:
        self._paused = True

    def resume(self) -> None:
        self._paused = False
        held, self._held = self._held, []
        for data in held:
            self.send(data, encoded=True)
        if self._eof and self._conn is not None:
            self._conn.eof()

    def send(self, body: bytes, *, encoded: bool = False) -> None:
        data = body if encoded else self._encode(body)
        if self._conn is None or self._paused:
            self._held.append(data)
        else:
            self._conn.feed(data)

    def close(self) -> None:
        self._eof = True
        if self._conn is not None and not self._paused:  # else after what is held, on resuming
            self._conn.eof()

    # Writer: what the connection writes
    def write(self, data: bytes) -> None:
        for body in self._decoder.feed(data):
            if isinstance(body, FrameError):  # never, from this host: said rather than dropped
                log.error("the host wrote something that is not a message: %s", body.reason)
            else:
                self._receive(orjson.loads(body))

    async def drain(self) -> None:
        return None

    def is_closing(self) -> bool:
        return False


# ---- the same, blocking: the host on an event loop in a background thread ----------------


def _checked_method(method: Any) -> str:
    if type(method) is not str or not method:
        raise TypeError(f"method must be a non-empty string, not {method!r}")
    return method


def _with_meta(params: Any, meta: dict[str, Any] | None) -> Params:
    if params is not None and type(params) is not dict and type(params) is not list:
        raise TypeError(f"params must be a dict (by name), a list (by position) or None, not {type(params).__name__}")
    if not meta:
        return params  # type: ignore[no-any-return]
    if type(params) is list:
        raise TypeError("meta needs params by name (a dict): positional params cannot carry $meta")
    params = dict(params or {})
    given = params.get("$meta")
    params["$meta"] = {**(given if type(given) is dict else {}), **meta}
    return params


def _progress_token(params: Params, id: int) -> Any:
    meta = params.get("$meta") if type(params) is dict else None
    token = meta.get("progressToken") if type(meta) is dict else None
    return id if token is None else token


def _outcome(reply: dict[str, Any]) -> Any:
    error = reply.get("error")
    if error is not None:
        raise BridgeError(error["code"], error.get("message"), error.get("data"))
    return reply.get("result")
