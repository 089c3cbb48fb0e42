"""One JSON-RPC 2.0 connection: bytes in, calls dispatched concurrently, replies out.

This is the per-message hot path. Reading stops while ``max_inflight`` calls run,
so input waits in the pipe rather than in memory. Outgoing frames are queued
whole and flushed once per event-loop turn, so messages never interleave and
a burst of replies costs one system call.

Each call runs in its own asyncio task, owned by the connection: cancelled
and awaited before ``run`` returns. (anyio's ``start_soon`` costs ~11 us a
task on this machine against ~2 us for ``create_task``; handlers still use
anyio freely, since anyio honours native cancellation.)
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
from time import perf_counter
import traceback
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import orjson

from . import errors as E
from .context import Context
from .discovery import discover_method
from .framing import ENCODERS, FrameError, decoder
from .methods import Method
from .metrics import RING, Metrics
from .middleware import Request, needs_cache
from .middleware import build as build_pipeline
from .stdio import Pump

if TYPE_CHECKING:
    from .app import Bridge
    from .cache import CacheStore
    from .middleware.stream import Credit
    from .settings import Settings

log = logging.getLogger("bridge")

_DUMPS_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
_NO_ID = object()  # the id slot of a reply that must carry id null
_ID_TYPES = (str, int, float, type(None))

Reply = dict[str, Any]
RING_MASK = RING - 1


class Reader(Protocol):
    """Anything with an async ``read``; the connection pumps it (files, terminals, tests)."""

    async def read(self, n: int = -1, /) -> bytes: ...


class Input(Protocol):
    """A source that pushes bytes into ``conn.feed`` and ends with ``conn.eof()`` (pipes)."""

    def attach(self, conn: Connection) -> None: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...


class Writer(Protocol):
    def write(self, data: bytes, /) -> None: ...
    async def drain(self) -> None: ...
    def is_closing(self) -> bool: ...


class Call:
    """One running call: its task, and why it was cancelled, if it was."""

    __slots__ = ("cancel_code", "started", "task", "timer")

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None
        self.cancel_code: int | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.started = False

    def cancel(self, code: int) -> None:
        """Cancel with ``code``; a call whose task has not started yet cancels itself when it does."""
        if self.cancel_code is None:
            self.cancel_code = code
            if self.started:
                self.task.cancel()  # type: ignore[union-attr]


def to_jsonable(obj: Any) -> Any:
    """orjson's fallback: pydantic models, and whatever else pydantic can serialise."""
    from pydantic_core import to_jsonable_python

    return to_jsonable_python(obj)


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, default=to_jsonable, option=_DUMPS_OPTIONS)


class Connection:
    """Serves ``app`` on one reader/writer pair until EOF or ``stop()``."""

    _serials = itertools.count(1)

    def __init__(self, app: Bridge, settings: Settings, reader: Reader | Input, writer: Writer) -> None:
        self.app = app
        #: This connection's number in the process; callers that declare no identity are
        #: the participant ``connection:<serial>``.
        self.serial = next(Connection._serials)
        self.settings = settings
        self._input: Input = reader if hasattr(reader, "attach") else Pump(reader)  # type: ignore[assignment,arg-type]
        self._writer = writer
        self._decoder = decoder(settings.framing, settings.max_message_bytes)
        self._encode: Callable[[bytes], bytes] | None = (
            ENCODERS[self._decoder.framing] if self._decoder.framing else None
        )
        self._methods = dict(app.methods)
        self._methods["rpc.discover"] = discover_method(app)
        self.metrics = Metrics()
        self._methods["rpc.metrics"] = Method(self._metrics_snapshot, "rpc.metrics")
        self._methods["rpc.ping"] = Method(_pong, "rpc.ping", idempotent=True)
        self.streams: dict[Any, Credit] = {}  # running streams by request id
        self.cache: CacheStore | None = None
        if needs_cache(app):
            from .cache import CacheStore, default_directory

            self.cache = CacheStore(settings.cache_dir or default_directory(app.name), settings.cache_size)
        for method in app.methods.values():
            method.pipeline = build_pipeline(app, method, self.cache)
        self._stats = {name: self.metrics.stats(name) for name in self._methods}
        self._max_inflight = settings.max_inflight
        self._debug = settings.debug
        self._log_calls = log.isEnabledFor(logging.DEBUG)
        self._inflight = 0
        self._room: anyio.Event | None = None
        self._by_id: dict[Any, Call] = {}
        self._calls: set[Call] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._out: list[bytes] = []
        self._flush_pending = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._backlog: deque[bytes | FrameError] = deque()  # frames read while no call slot was free
        self._input_paused = False
        self._output_blocked = False
        self._eof = False
        self._input_done = anyio.Event()
        self._ready_sent = not settings.ready
        self.loop_thread = threading.get_ident()
        self.closed = False
        self.stopping = False
        self._emit: Callable[[Reply], None] = self._write

    # ---- lifetime -------------------------------------------------------

    async def run(self) -> None:
        """Serve until input ends or ``stop()``; then let calls finish within the grace period."""
        self.loop_thread = threading.get_ident()
        self._loop = asyncio.get_running_loop()
        try:
            async with anyio.create_task_group() as tg:
                self.task_group = tg
                if self._encode is not None:
                    self._send_ready()
                threading.Thread(
                    target=_prepare_all, args=(list(self._methods.values()), self.cache), name="bridge-warm", daemon=True
                ).start()
                if self.settings.metrics_interval:
                    tg.start_soon(self._push_metrics, self.settings.metrics_interval)
                self._input.attach(self)
                await self._input_done.wait()
                self.stopping = True
                await self._finish_calls()
                tg.cancel_scope.cancel()  # an input pump still blocked in read
        finally:
            for task in self._tasks:  # only what is stuck writing to a reader that went away
                task.cancel()
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=1.0)
            self._flush()
            if self.cache is not None:
                self.cache.close()

    def stop(self) -> None:
        """Stop reading input; in-flight calls get the grace period to finish."""
        if self.stopping:
            return
        self.stopping = True
        self._input.pause()
        for frame in self._backlog:  # read but never started: say so
            self._refuse(frame)
        self._backlog.clear()
        self._input_done.set()

    def hurry(self) -> None:
        """Cancel every running call now (each replies SERVER_CANCELLED) and stop."""
        self.stop()
        for call in list(self._calls):
            call.cancel(E.SERVER_CANCELLED)

    async def _finish_calls(self) -> None:
        with anyio.move_on_after(self.settings.shutdown_grace):
            while self._inflight:
                await self._wait_for_room()
        if self._inflight:
            log.warning("cancelling %d call(s) still running after %.1fs", self._inflight, self.settings.shutdown_grace)
            for call in list(self._calls):
                call.cancel(E.SERVER_CANCELLED)
            with anyio.move_on_after(1.0):
                while self._inflight:
                    await self._wait_for_room()

    async def _wait_for_room(self) -> None:
        room = self._room
        if room is None:
            room = self._room = anyio.Event()
        await room.wait()

    async def _metrics_snapshot(self) -> dict[str, Any]:
        """Calls, errors, latency percentiles and more, per method; message rates; uptime."""
        return self.metrics_snapshot()

    @property
    def inflight(self) -> int:
        """Calls (and batches) running now."""
        return self._inflight

    def metrics_snapshot(self) -> dict[str, Any]:
        """The document ``rpc.metrics`` returns."""
        snapshot = self.metrics.snapshot()
        for name, method in self.app.methods.items():
            entry = snapshot["methods"].get(name)
            if entry is None:
                continue
            if method.cache is not None:
                hits, misses = method.cache.hits.get(name, 0), method.cache.misses.get(name, 0)
                entry["cache"] = {"hits": hits, "misses": misses,
                                  "hitRate": round(hits / (hits + misses), 4) if hits + misses else None}
            if method.stream is not None:
                entry["stream"] = dict(method.stream.counts.get(name, {"streams": 0, "chunks": 0, "bytes": 0, "failed": 0}))
            if method.batch is not None:
                batches = method.batch.batches
                entry["batch"] = {"batches": batches,
                                  "meanSize": round(method.batch.items / batches, 2) if batches else None}
        return snapshot

    async def _push_metrics(self, interval: float) -> None:
        while True:
            await anyio.sleep(interval)
            self.notify("$/metrics", self.metrics_snapshot())

    # ---- input ----------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Bytes from the client. Runs in the input's callback and never waits: when every
        call slot is taken, frames wait in the backlog and the input is paused."""
        if self.stopping:
            return
        frames = self._decoder.feed(data)
        self.metrics.received(len(frames))
        if self._encode is None and self._decoder.framing is not None:
            self._encode = ENCODERS[self._decoder.framing]
            self._send_ready()
        if self._backlog:
            self._backlog.extend(frames)
            return
        handle = self._handle_frame
        limit = self._max_inflight
        for i, frame in enumerate(frames):
            if self._inflight >= limit:
                self._backlog.extend(frames[i:])
                self._update_input()
                return
            handle(frame)

    def eof(self) -> None:
        """The client closed its end of the input."""
        if not self._eof:
            self._eof = True
            log.info("input closed; finishing %d call(s)", self._inflight + len(self._backlog))
            if not self._backlog:
                self._input_done.set()

    def output_paused(self) -> None:
        """The output pipe is full: read nothing more until the client catches up."""
        self._output_blocked = True
        self._update_input()

    def output_resumed(self) -> None:
        self._output_blocked = False
        self._update_input()

    def _update_input(self) -> None:
        paused = bool(self._backlog) or self._output_blocked or self.stopping
        if paused != self._input_paused:
            self._input_paused = paused
            (self._input.pause if paused else self._input.resume)()

    def _take_backlog(self) -> None:
        """A call slot came free: start what waits in the backlog, then read on."""
        backlog = self._backlog
        handle = self._handle_frame
        while backlog and self._inflight < self._max_inflight:
            handle(backlog.popleft())
        if not backlog:
            if self._eof:
                self._input_done.set()
            self._update_input()

    def _refuse(self, frame: bytes | FrameError) -> None:
        """Answer a request that was read but will never run (the host is stopping)."""
        try:
            message = orjson.loads(frame) if isinstance(frame, bytes) else None
        except orjson.JSONDecodeError:
            return
        batch = message if type(message) is list else [message]
        replies = [
            self._error(msg["id"], E.SERVER_CANCELLED)
            for msg in batch
            if type(msg) is dict and "method" in msg and type(msg.get("id", [])) in _ID_TYPES
        ]
        if replies:
            self._write(replies if type(message) is list else replies[0])

    def _handle_frame(self, frame: bytes | FrameError) -> None:
        if isinstance(frame, FrameError):
            log.warning("bad input: %s", frame.reason)
            if frame.too_large:
                self._emit(self._error(None, E.MESSAGE_TOO_LARGE, None, {"limit": self.settings.max_message_bytes}))
            else:
                self._emit(self._error(None, E.PARSE_ERROR, None, {"reason": frame.reason}))
            return
        try:
            message = orjson.loads(frame)
        except orjson.JSONDecodeError as exc:
            log.warning("bad input: %s", exc)
            self._emit(self._error(None, E.PARSE_ERROR, None, {"reason": str(exc)}))
            return
        if type(message) is dict:
            reply = self._dispatch(message, self._emit)
            if reply is not None:
                self._emit(reply)
        elif type(message) is list and message:
            if len(message) > self.settings.max_batch:
                log.warning("bad input: batch of %d entries", len(message))
                self._emit(self._error(
                    None, E.INVALID_REQUEST, None,
                    {"reason": f"batch larger than {self.settings.max_batch} entries", "limit": self.settings.max_batch},
                ))
                return
            self._inflight += 1
            self._spawn(self._run_batch(message))
        else:
            log.warning("bad input: a JSON %s is not a request", type(message).__name__)
            self._emit(self._error(None, E.INVALID_REQUEST, None, {"reason": "not a request object"}))

    def _dispatch(
        self, msg: dict[str, Any], emit: Callable[[Reply], None], started: list[asyncio.Task[None]] | None = None
    ) -> Reply | None:
        """Start the call ``msg`` asks for; return an immediate reply if there is one."""
        method = msg.get("method")
        id = msg.get("id", _NO_ID)
        has_id = id is not _NO_ID
        if has_id and type(id) not in _ID_TYPES:
            return self._invalid("id must be a string, a number or null", _NO_ID)
        if type(method) is not str or msg.get("jsonrpc") != "2.0":
            if method is None and ("result" in msg or "error" in msg) and msg.get("jsonrpc") == "2.0":
                log.debug("ignoring a response from the client: %r", id)
                return None
            return self._invalid("not a JSON-RPC 2.0 request", id)
        params = msg.get("params", _NO_ID)
        if params is _NO_ID:
            params = None
        elif type(params) is not dict and type(params) is not list:
            return self._invalid("params must be an object or an array", id)
        target = self._methods.get(method)
        if target is None:
            if not has_id:
                if method == "$/cancelRequest":
                    self._on_cancel_request(params)
                elif method == "$/stream/credit":
                    self._on_credit(params)
                elif not method.startswith("$/"):
                    log.debug("notification for unknown method %s", method)
                return None
            return self._error(id, E.METHOD_NOT_FOUND, None, {"method": method})
        self._inflight += 1
        call = Call()
        if has_id:
            self._by_id[id] = call
        self._calls.add(call)
        call.task = self._spawn(self._call(call, target, id, has_id, params, emit))
        if started is not None:
            started.append(call.task)
        return None

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task = self._loop.create_task(coro)  # type: ignore[union-attr]
        self._tasks.add(task)  # the task removes itself as it ends
        return task

    # ---- calls ----------------------------------------------------------

    async def _call(
        self,
        call: Call,
        method: Method,
        id: Any,
        has_id: bool,
        params: dict[str, Any] | list[Any] | None,
        emit: Callable[[Reply], None],
    ) -> None:
        start = perf_counter()
        stats = self._stats[method.name]
        stats.inflight += 1
        call.started = True
        reply: Reply | None
        request: Request | None = None
        try:
            try:
                if call.cancel_code is not None:  # cancelled before it began
                    raise asyncio.CancelledError
                if method.effective_timeout is not None:
                    call.timer = self._loop.call_later(  # type: ignore[union-attr]
                        method.effective_timeout, call.cancel, E.REQUEST_TIMEOUT
                    )
                if method.pipeline is not None:
                    request = Request(method, id if has_id else None, params, self, call)
                    result = await method.pipeline(request)
                else:  # no middleware: the same steps, inline
                    kwargs = method.bind(params)
                    if method.context_param is not None:
                        meta = params.get("$meta") if type(params) is dict else None
                        if type(meta) is not dict:
                            meta = {}
                        kwargs[method.context_param] = Context(
                            self, method.name, id if has_id else None, call, meta.get("progressToken"), meta.get("caller")
                        )
                    result = await (method.func(**kwargs) if method.is_async else method.invoke(kwargs))
                    if method.shapes_result:
                        result = method.shape(result)
                reply = {"jsonrpc": "2.0", "id": id, "result": result}
            except E.BridgeError as exc:
                reply = {"jsonrpc": "2.0", "id": id, "error": exc.to_dict()}
            except Exception as exc:
                log.error("%s raised %s", method.name, type(exc).__name__, exc_info=exc)
                reply = self._internal_error(id, exc)
            except asyncio.CancelledError:
                if call.cancel_code is None:
                    raise
                if call.task.cancelling():  # type: ignore[union-attr]
                    call.task.uncancel()  # type: ignore[union-attr]
                data = {"timeout": method.effective_timeout} if call.cancel_code == E.REQUEST_TIMEOUT else None
                reply = self._error(id, call.cancel_code, None, data)
            finally:
                if call.timer is not None:
                    call.timer.cancel()
                if has_id and self._by_id.get(id) is call:
                    del self._by_id[id]
                self._calls.discard(call)
            elapsed = perf_counter() - start
            stats.inflight -= 1
            stats.calls += 1
            stats.ring[stats.next] = elapsed
            stats.next = (stats.next + 1) & RING_MASK
            error = reply.get("error")
            if error is not None:
                stats.error(error["code"])
            if type(params) is dict and "$meta" in params:
                meta = params["$meta"]
                if type(meta) is dict and meta.get("info"):  # the caller asked how its reply came about
                    reply["$meta"] = {"handlerMs": round(elapsed * 1e3, 3), **((request and request.info) or {})}
            if self._log_calls:
                outcome = "ok" if error is None else f"error {error['code']}"
                log.debug("%s id=%r %.3f ms %s", method.name, id, elapsed * 1e3, outcome)
            if has_id:
                if self._inflight == 1 and not self._out and emit is self._emit:
                    self._send_now(self._frame(reply))  # nothing to coalesce with: spare a loop turn
                else:
                    emit(reply)
        finally:
            self._tasks.discard(call.task)  # type: ignore[arg-type]
            self._release()

    def _release(self) -> None:
        """One call (or batch) is done: wake whoever waits for a slot."""
        self._inflight -= 1
        if self._backlog:
            self._take_backlog()
        if self._room is not None:
            self._room.set()
            self._room = None

    async def _run_batch(self, items: list[Any]) -> None:
        replies: list[Reply] = []
        emit = replies.append
        running: list[asyncio.Task[None]] = []
        try:
            for item in items:
                if type(item) is not dict:
                    emit(self._error(None, E.INVALID_REQUEST, None, {"reason": "not a request object"}))
                    continue
                if len(running) >= self._max_inflight:
                    _, pending = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    running = list(pending)
                reply = self._dispatch(item, emit, running)
                if reply is not None:
                    emit(reply)
            if running:
                await asyncio.wait(running)
            if replies:
                self._write(replies)
        finally:
            self._tasks.discard(asyncio.current_task())  # type: ignore[arg-type]
            self._release()

    def _on_credit(self, params: Any) -> None:
        stream = self.streams.get(params.get("id")) if type(params) is dict else None
        credit = params.get("credit") if type(params) is dict else None
        if stream is not None and type(credit) is int and credit > 0:
            stream.grant(credit)

    def _on_cancel_request(self, params: Any) -> None:
        id = params.get("id") if type(params) is dict else None
        call = self._by_id.get(id)
        if call is not None:
            call.cancel(E.REQUEST_CANCELLED)
        else:
            log.debug("$/cancelRequest for %r, which is not running", id)

    # ---- output ---------------------------------------------------------

    async def drain(self) -> None:
        """Send what is queued and wait while the output pipe is full (for streams)."""
        if self._out:
            self._flush()
        try:
            await self._writer.drain()
        except ConnectionError:
            self.output_lost()

    def output_lost(self) -> None:
        """The client stopped reading our output: nothing more can be delivered."""
        if not self.closed:
            self.closed = True
            log.warning("output closed by the client; stopping")
            self.stop()

    def notify(self, method: str, params: Any = None) -> int:
        """Send the client a notification; safe from any thread, in order per thread.
        Returns the size of the frame sent."""
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        frame = self._frame(message)  # in a worker thread, serialised there: its params may change after
        if self._loop is None or threading.get_ident() == self.loop_thread:
            self._queue(frame)
        else:
            try:
                self._loop.call_soon_threadsafe(self._queue, frame)
            except RuntimeError:  # the loop has closed: the host is gone
                pass
        return len(frame)

    def _send_ready(self) -> None:
        if self._ready_sent:
            return
        self._ready_sent = True
        from . import __version__

        s = self.settings
        self.notify("$/ready", {
            "name": self.app.name,
            "version": __version__,
            "appVersion": self.app.version,
            "pid": _pid(),
            "framing": self._decoder.framing,
            "capabilities": {
                "batch": True,
                "cancel": "$/cancelRequest",
                "progress": "$/progress",
                "discover": "rpc.discover",
            },
            "limits": {"maxMessageBytes": s.max_message_bytes, "maxInflight": s.max_inflight, "maxBatch": s.max_batch},
            "idempotent": sorted(name for name, m in self._methods.items() if m.idempotent),
        })

    def _write(self, message: Any) -> None:
        """Queue one message; it goes out with the rest of this loop turn's output."""
        self._queue(self._frame(message))

    def _frame(self, message: Any) -> bytes:
        try:
            body = dumps(message)
        except (TypeError, orjson.JSONEncodeError) as exc:
            body = self._unserialisable(message, exc)
        return (self._encode or ENCODERS["ndjson"])(body)

    def _queue(self, frame: bytes) -> None:
        if self.closed:
            return
        self._out.append(frame)
        if not self._flush_pending:
            self._flush_pending = True
            if self._loop is None:
                self._flush()
            else:
                self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        out = self._out
        if out:
            data = out[0] if len(out) == 1 else b"".join(out)
            out.clear()
            self._send_now(data)

    def _send_now(self, data: bytes) -> None:
        if self.closed:
            return
        if self._writer.is_closing():
            self.output_lost()
            return
        self._writer.write(data)

    def _unserialisable(self, message: Any, exc: Exception) -> bytes:
        """Replace a reply whose result cannot be JSON with an internal error naming why."""
        log.error("reply is not JSON-serialisable: %s", exc)
        if isinstance(message, dict) and "result" in message:
            return dumps(self._error(message.get("id"), E.INTERNAL_ERROR, f"Result is not JSON-serialisable: {exc}"))
        if isinstance(message, list):
            return dumps([
                r if _serialisable(r) else self._error(r.get("id"), E.INTERNAL_ERROR, "Result is not JSON-serialisable")
                for r in message
            ])
        raise exc

    # ---- error replies --------------------------------------------------

    @staticmethod
    def _error(id: Any, code: int, message: str | None = None, data: Any = None) -> Reply:
        return {"jsonrpc": "2.0", "id": None if id is _NO_ID else id, "error": E.error_object(code, message, data)}

    def _invalid(self, why: str, id: Any) -> Reply:
        log.warning("bad input: %s", why)
        return self._error(id, E.INVALID_REQUEST, None, {"reason": why})

    def _internal_error(self, id: Any, exc: Exception) -> Reply:
        data: dict[str, Any] = {"exception": type(exc).__name__}
        message = "Internal error"
        if self._debug:
            message = f"Internal error: {type(exc).__name__}: {exc}"
            data["traceback"] = traceback.format_exception(exc)
        return self._error(id, E.INTERNAL_ERROR, message, data)


async def _pong() -> str:
    """Answer "pong": every host has it, for health checks."""
    return "pong"


def _prepare_all(methods: list[Method], cache: CacheStore | None) -> None:
    """Build every params model (and open the cache) off the loop, right after ``$/ready``:
    the first calls find them ready."""
    if cache is not None:
        cache.open()
    for method in methods:
        try:
            method.prepare()
        except Exception as exc:  # the call itself will report it
            log.warning("%s: cannot build its params model: %s", method.name, exc)


def _serialisable(message: Any) -> bool:
    try:
        dumps(message)
    except (TypeError, orjson.JSONEncodeError):
        return False
    return True


def _pid() -> int:
    import os

    return os.getpid()
