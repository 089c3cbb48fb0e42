"""One JSON-RPC 2.0 connection: bytes in, calls dispatched concurrently, replies out.

This is the per-message hot path. Input is always read, so cancels, stream credit
and EOF are seen however busy the host is; back-pressure applies to starting calls.
At most ``max_inflight`` calls run, each caller (participant) at most its share of
them; later calls wait in a per-caller queue, served round robin, and a caller whose
queue is full gets -32005 at once. Outgoing frames are queued whole and flushed once
per event-loop turn, so messages never interleave and a burst of replies costs one
system call; while the output pipe is full, input is paused.

Calls run in asyncio tasks owned by the connection (cancelled and awaited before ``run``
returns), but not a task each: a worker task runs the calls that are ready one after
another for as long as each finishes without waiting, which most do; the first that waits
keeps the worker as its own task to the end, and the calls after it get tasks of their own,
made at once and in order (calls always start in the order they were read). Each call
still runs in its own context copy and, from its first step, in a task that is its own
from the moment it waits, so cancellation, anyio's cancel scopes and ``current_task()``
behave as with a task per call (a task per call was a quarter of the CPU a call cost).
A method whose call waited once (``Method.waits``) gets a task per call from then on, as
does a call that came alone in its read: workers would start such calls a loop turn apart.
"""

from __future__ import annotations

import asyncio
import contextvars
from contextvars import copy_context
import inspect
import itertools
import logging
import threading
import time
from time import perf_counter
import traceback
from collections import deque
from collections.abc import Callable
from importlib.machinery import EXTENSION_SUFFIXES
from typing import TYPE_CHECKING, Any, Final, Protocol

import orjson

from . import errors as E
from .badinput import BadInput
from .codec import DUMPS_OPTIONS, dumps, serialisable, to_jsonable
from .framing import ENCODERS, FrameError, decoder, encode_ndjson
from .host import Host
from .identity import participant_id
from .methods import Method
from .rpc_methods import discover_method, metrics_method, ping_method
from .metrics import Metrics
from .middleware import build as build_pipeline
from .middleware import needs_cache
from .middleware import run as run_call
from .middleware.stream import Credits, Stream
from .stdio import Pump
from .watchdog import LoopWatchdog

if TYPE_CHECKING:
    from .app import Bridge
    from .cache import CacheStore
    from .settings import Settings

log = logging.getLogger("bridge")

# Final: compiled, the hot path reads these from C statics rather than the module's dict.
_dumps: Final = orjson.dumps
_loads: Final = orjson.loads
#: NDJSON's newline appended by orjson (no copy of the body to add it).
_LINE_OPTIONS: Final = DUMPS_OPTIONS | orjson.OPT_APPEND_NEWLINE
#: A loop turn's output goes out in one write, or every this many messages: a client that
#: pipelines calls gets the first replies and sends more while the rest are worked on (bench/
#: README.md: pipelined calls/s +10% over NDJSON, +25% over LSP).
FLUSH_EVERY: Final = 64


class _Exited(BaseException):
    """Raised by ``$/exit`` to end ``feed``'s loop (past the per-message ``except Exception``)."""


#: This module runs compiled (``BRIDGE_COMPILE=1`` wheels, hatch_build.py), as ``$/ready`` says.
COMPILED = __file__.endswith(tuple(EXTENSION_SUFFIXES))
_SERIALS = itertools.count(1)  # connections' numbers in this process
_NO_ID: Final = object()  # the id slot of a reply that must carry id null
_ID_TYPES: Final = (str, int, float, type(None))
_DONE: Final = object()  # what stepping a call's coroutine gives once it has returned

Reply = dict[str, Any]


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
    """One call, queued or running: its task, its caller, and why it was cancelled, if it was."""

    __slots__ = ("args", "caller", "cancel_code", "credit", "info", "own_task", "size", "started", "task", "timer", "who")

    def __init__(self, caller: Any = None) -> None:
        self.task: asyncio.Task[None] | None = None  # None while it waits in the queue
        self.own_task = False  # a task made for it alone (else a worker's, shared until it waits)
        self.cancel_code: int | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.started = False
        #: The caller's identity: the transport's ``$caller``, else the params' ``$meta.caller``.
        self.caller = caller
        self.who: str | None = None  # the participant whose share it counts against
        self.args: tuple[Any, ...] | None = None  # what starts it, while queued
        self.size = 0  # bytes of the frame it came in, while queued
        self.credit = 0  # stream credit that came before its stream began
        self.info: dict[str, Any] | None = None  # what middleware tells a caller that asked ($meta.info)

    def cancel(self, code: int) -> None:
        """Cancel with ``code``; a call whose task has not started yet cancels itself when it does."""
        if self.cancel_code is None:
            self.cancel_code = code
            if self.started and self.task is not None:
                self.task.cancel()


class Waiting:
    """One caller's calls that were read while it had no free slot, oldest first."""

    __slots__ = ("calls", "bytes")

    def __init__(self) -> None:
        self.calls: deque[Call] = deque()
        self.bytes = 0


class Connection:
    """Serves ``app`` on one reader/writer pair until EOF or ``stop()``."""

    def __init__(self, app: Bridge, settings: Settings, reader: Reader | Input, writer: Writer) -> None:
        self.app = app
        #: This connection's number in the process; callers that declare no identity are
        #: the participant ``connection:<serial>``.
        self.serial = next(_SERIALS)
        self.settings = settings
        self._input: Input = reader if hasattr(reader, "attach") else Pump(reader)  # type: ignore[assignment,arg-type]
        self._writer = writer
        self._decoder = decoder(settings.framing, settings.max_message_bytes, settings.max_header_bytes)
        self._encode: Callable[[bytes], bytes] | None = (
            ENCODERS[self._decoder.framing] if self._decoder.framing else None
        )
        self._methods = dict(app.methods)
        self._methods["rpc.discover"] = discover_method(app)
        self.metrics = Metrics()
        self.host = Host(self)  # what handlers see of this connection (ctx.host)
        self._methods["rpc.metrics"] = metrics_method(self)
        self._ping = self._methods["rpc.ping"] = ping_method()
        self.streams = Credits()  # running streams' credit by request id
        self.exit_code = 0  # the host's exit status: what stop(..., exit_code) asked for
        self.cache: CacheStore | None = None
        if needs_cache(app):
            from .cache import CacheStore, default_directory

            self.cache = CacheStore(settings.cache_dir or default_directory(app.name), settings.cache_size)
        for method in app.methods.values():
            method.pipeline = build_pipeline(app, method, self.cache)
        # Each method's counters, made on its first call (an app of 10,000 methods holds
        # 10,000 latency rings only once each was called); rpc.metrics lists the rest as zero.
        self._stats = {"rpc.ping": self.metrics.stats("rpc.ping")}
        self._max_inflight = settings.max_inflight
        self._share = settings.caller_share
        self._max_queued = settings.max_queued
        self._max_queued_bytes = settings.max_queued_bytes
        self._own = f"connection:{self.serial}"  # the participant of calls that declare no caller
        self._running: dict[str, int] = {}  # calls running per participant
        self._waiting: dict[str, Waiting] = {}  # insertion order is the round-robin order
        self._queued = 0
        self._queued_bytes = 0
        self.bad_input = BadInput(settings.bad_input_log_limit, settings.bad_input_summary)
        self.watchdog = LoopWatchdog(settings.loop_block_warning, self._methods) \
            if settings.loop_block_warning else None
        self._debug = settings.debug
        self._log_calls = log.isEnabledFor(logging.DEBUG)
        self._inflight = 0
        self._room: asyncio.Event | None = None
        self._by_id: dict[Any, Call] = {}
        self._calls: set[Call] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._ready: deque[tuple[Call, Any, Method]] = deque()  # (call, coroutine, method) for the worker to start, in order
        self._worker: asyncio.Task[None] | None = None  # the task that starts them, while there is one
        self._lone = False  # the frame being handled came alone in its read
        self._out: list[bytes] = []
        self._sent = 0  # messages written (rpc.metrics totals)
        self._notified = 0  # of them, notifications
        self._flush_pending = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._input_paused = False
        self._output_blocked = False
        self._eof = False
        self._input_done = asyncio.Event()
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
        if self.watchdog is not None:
            self.watchdog.start(self._loop)
        self.app.connection = self  # app.notify, app.invalidate: while this connection serves
        if self.cache is not None:
            self.start_soon(self.cache.maintain(self.app.name, self.settings.cache_redis))
        try:
            if self._encode is not None:
                self._send_ready()
            threading.Thread(
                target=_prepare_all, args=(list(self._methods.values()), self.cache), name="bridge-warm", daemon=True
            ).start()
            if self.settings.metrics_interval:
                self.start_soon(self._push_metrics(self.settings.metrics_interval))
            self._input.attach(self)
            await self._input_done.wait()
            self.stopping = True
            await self._finish_calls()
        finally:
            self.app.connection = None
            for task in self._tasks:  # an input pump still blocked in read, the metrics, what is stuck writing
                task.cancel()
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=1.0)
            while self._ready:  # never started (only if the loop is being torn down)
                self._ready.popleft()[1].close()
            self._flush()
            if self.watchdog is not None:
                self.watchdog.stop()
            if self.cache is not None:
                self.cache.close()

    def stop(self, reason: str | None = None, exit_code: int = 0) -> None:
        """Stop reading input; in-flight calls get the grace period to finish, queued ones are refused.
        ``reason`` is logged; a non-zero ``exit_code`` becomes the host's exit status."""
        if exit_code and not self.exit_code:
            self.exit_code = exit_code
        if reason:
            log.error("stopping: %s", reason)
        if self.stopping:
            return
        self.stopping = True
        self._input.pause()
        self._refuse_queued()
        self._input_done.set()

    def hurry(self) -> None:
        """Cancel every running call now (each replies SERVER_CANCELLED) and stop."""
        self.stop()
        for call in list(self._calls):
            call.cancel(E.SERVER_CANCELLED)

    async def _finish_calls(self) -> None:
        await self._until_done(self.settings.shutdown_grace, queued=True)
        self._refuse_queued()
        self.bad_input.summarise()
        if self._inflight:
            log.warning("cancelling %d call(s) still running after %.1fs", self._inflight, self.settings.shutdown_grace)
            for call in list(self._calls):
                call.cancel(E.SERVER_CANCELLED)
            await self._until_done(1.0, queued=False)

    async def _until_done(self, seconds: float, queued: bool) -> None:
        """Wait up to ``seconds`` for the running calls (and the queued ones) to end."""
        try:
            async with asyncio.timeout(seconds):
                while self._inflight or (queued and self._queued):
                    room = self._room
                    if room is None:
                        room = self._room = asyncio.Event()
                    await room.wait()
        except TimeoutError:
            pass

    @property
    def inflight(self) -> int:
        """Calls (and batches) running now."""
        return self._inflight

    def metrics_snapshot(self) -> dict[str, Any]:
        """The document ``rpc.metrics`` returns."""
        snapshot = self.metrics.snapshot(self.app.methods, self._sent, self._notified)
        snapshot["buffers"] = {
            "inflight": self._inflight, "maxInflight": self._max_inflight,
            "inflightUtilisation": round(self._inflight / self._max_inflight, 4),
            "outputQueueBytes": sum(map(len, self._out)) + _buffered(self._writer),
            "openStreams": len(self.streams), "streamCredit": self.streams.credit(),
        }
        if self.cache is not None:
            snapshot["cache"] = self.cache.stats()
        snapshot["admission"] = {
            "inflight": self._inflight, "maxInflight": self._max_inflight, "callerShare": self._share,
            "queued": self._queued, "queuedBytes": self._queued_bytes, "maxQueued": self._max_queued,
            "callers": {who: {"running": self._running.get(who, 0),
                              "queued": len(self._waiting[who].calls) if who in self._waiting else 0}
                        for who in {*self._running, *self._waiting}},
        }
        snapshot["badInput"] = dict(self.bad_input.counts)
        if self.watchdog is not None:
            snapshot["loop"] = self.watchdog.stats()
        if self.app.plugin_metrics:
            snapshot["plugins"] = self._plugin_metrics()
        return snapshot

    def _plugin_metrics(self) -> dict[str, Any]:
        found = {}
        for name, read in self.app.plugin_metrics.items():
            try:
                value = read()
            except Exception:  # a plugin's bug must not cost the host its metrics
                log.exception("plugin %s: its metrics failed", name)
                continue
            if value is not None:
                found[name] = value
        return found

    async def _push_metrics(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            self.notify("$/metrics", self.metrics_snapshot())

    # ---- input ----------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Bytes from the client. Runs in the input's callback and never waits: every frame
        is parsed now, so control messages act at once; calls start or join their caller's queue."""
        if self.stopping:
            return
        frames = self._decoder.feed(data)
        self.metrics.received(len(frames))
        self._lone = len(frames) == 1
        if self._encode is None and self._decoder.framing is not None:  # "auto" has picked
            self._encode = ENCODERS[self._decoder.framing]
            self._decoder = getattr(self._decoder, "inner", None) or self._decoder  # its own from now on
            self._send_ready()
        dispatch, emit = self._dispatch, self._emit
        try:
            for frame in frames:
                try:
                    if isinstance(frame, FrameError):
                        self._frame_error(frame)
                        continue
                    try:
                        message = _loads(frame)
                    except orjson.JSONDecodeError as exc:
                        self.bad_input.report("parse", str(exc))
                        emit(self._error(None, E.PARSE_ERROR, None, {"reason": str(exc)}))
                        continue
                    if type(message) is dict:  # one request: most messages
                        reply = dispatch(message, emit, None, len(frame))
                        if reply is not None:
                            emit(reply)
                    else:
                        self._not_an_object(message, len(frame))
                except Exception as exc:  # a defect must cost one message, never the input
                    log.error("internal error handling a message: %s", exc, exc_info=exc)
                    self._emit(self._error(None, E.INTERNAL_ERROR, None, {"exception": type(exc).__name__}))
        except _Exited:  # $/exit: nothing after it is read
            pass

    def eof(self) -> None:
        """The client closed its end of the input: the normal shutdown begins."""
        if not self._eof:
            self._eof = True
            log.info("input closed; finishing %d call(s)", self._inflight + self._queued)
            self._input_done.set()

    def _on_exit(self) -> None:
        """``$/exit``: what closing stdin does, for a client that cannot close it (Tauri's shell
        plugin can only kill): nothing after it is read; the calls read before it finish."""
        log.info("$/exit; finishing %d call(s)", self._inflight + self._queued)
        self._eof = self.stopping = True
        self._update_input()
        self._input_done.set()
        raise _Exited

    def output_paused(self) -> None:
        """The output pipe is full: read nothing more until the client catches up."""
        self._output_blocked = True
        self._update_input()

    def output_resumed(self) -> None:
        self._output_blocked = False
        self._update_input()

    def _update_input(self) -> None:
        paused = self._output_blocked or self.stopping
        if paused != self._input_paused:
            self._input_paused = paused
            (self._input.pause if paused else self._input.resume)()

    # ---- admission: slots, shares, queues ---------------------------------

    def _admit(self, call: Call, who: str, size: int, args: tuple[Any, ...]) -> Reply | None:
        """Start ``call`` if a slot and its caller's share allow, else queue it (or refuse: busy)."""
        call.who = who
        if self._inflight < self._max_inflight and self._running.get(who, 0) < self._share and who not in self._waiting:
            self._start(call, args)
            return None
        waiting = self._waiting.get(who)
        mine = len(waiting.calls) if waiting is not None else 0
        mine_bytes = waiting.bytes if waiting is not None else 0
        if (self._queued >= self._max_queued or self._queued_bytes + size > self._max_queued_bytes
                or 2 * mine >= self._max_queued or 2 * (mine_bytes + size) > self._max_queued_bytes):
            self.bad_input.report("busy", f"{who} has {mine} call(s) queued; refused one")
            id = args[1] if args[0] is not None else None
            if args[0] is not None and not args[2]:
                return None  # a notification: nobody to tell
            return self._error(id, E.SERVER_BUSY, None, {
                "reason": "too many calls waiting", "queued": mine,
                "maxQueued": self._max_queued, "maxQueuedBytes": self._max_queued_bytes,
            })
        if waiting is None:
            waiting = self._waiting[who] = Waiting()
        call.args = args
        call.size = size
        waiting.calls.append(call)
        waiting.bytes += size
        self._queued += 1
        self._queued_bytes += size
        return None

    def _start(self, call: Call, args: tuple[Any, ...]) -> None:
        """Run a call (``args``: method, id, has_id, params) or a batch (``args``: None, items)."""
        self._inflight += 1
        who = call.who
        if who is not None:
            self._running[who] = self._running.get(who, 0) + 1
        self._calls.add(call)
        if args[0] is None:
            call.task = self._spawn(self._run_batch(call, args[1]))
        else:
            method, id, has_id, params = args
            self._run_soon(call, method, self._call(call, method, id, has_id, params, self._emit))

    def _unqueue(self, call: Call) -> None:
        """Take a call out of its caller's queue (it was cancelled before it began)."""
        waiting = self._waiting[call.who]  # type: ignore[index]
        waiting.calls.remove(call)
        waiting.bytes -= call.size
        self._queued -= 1
        self._queued_bytes -= call.size
        if not waiting.calls:
            del self._waiting[call.who]  # type: ignore[arg-type]

    def _take_queue(self) -> None:
        """Slots came free: start queued calls, round robin over callers under their share."""
        waiting_by = self._waiting
        running = self._running
        share = self._share
        while waiting_by and self._inflight < self._max_inflight:
            for who in waiting_by:
                if running.get(who, 0) < share:
                    break
            else:
                return  # every caller that waits is at its share
            waiting = waiting_by.pop(who)
            call = waiting.calls.popleft()
            waiting.bytes -= call.size
            if waiting.calls:
                waiting_by[who] = waiting  # to the back of the round
            self._queued -= 1
            self._queued_bytes -= call.size
            args, call.args = call.args, None
            self._start(call, args)  # type: ignore[arg-type]

    def _refuse_queued(self) -> None:
        """Answer every call that was read but will never run (the host is stopping)."""
        for waiting in self._waiting.values():
            for call in waiting.calls:
                args = call.args
                if args is None:
                    continue
                if args[0] is None:  # a batch
                    replies = [
                        self._error(msg["id"], E.SERVER_CANCELLED)
                        for msg in args[1]
                        if type(msg) is dict and "method" in msg and type(msg.get("id", [])) in _ID_TYPES
                    ]
                    if replies:
                        self._write(replies)
                elif args[2]:
                    if self._by_id.get(args[1]) is call:
                        del self._by_id[args[1]]
                    self._write(self._error(args[1], E.SERVER_CANCELLED))
        self._waiting.clear()
        self._queued = self._queued_bytes = 0

    def _frame_error(self, frame: FrameError) -> None:
        if frame.too_large:
            self.bad_input.report("too_large", frame.reason)
            self._emit(self._error(None, E.MESSAGE_TOO_LARGE, None, {"limit": self.settings.max_message_bytes}))
        else:
            self.bad_input.report("frame", frame.reason)
            self._emit(self._error(None, E.PARSE_ERROR, None, {"reason": frame.reason}))

    def _not_an_object(self, message: Any, size: int) -> None:
        """A message that is not one request: a batch, or not a request at all."""
        if type(message) is list and message:
            if len(message) > self.settings.max_batch:
                self.bad_input.report("batch", f"batch of {len(message)} entries")
                self._emit(self._error(
                    None, E.INVALID_REQUEST, None,
                    {"reason": f"batch larger than {self.settings.max_batch} entries", "limit": self.settings.max_batch},
                ))
                return
            first = next((item for item in message if type(item) is dict), None)
            caller = _caller_of(first) if first is not None else None
            reply = self._admit(Call(caller), self._participant(caller), size, (None, message))
            if reply is not None:
                self._emit(reply)
        else:
            self.bad_input.report("request", f"a JSON {type(message).__name__} is not a request")
            self._emit(self._error(None, E.INVALID_REQUEST, None, {"reason": "not a request object"}))

    def _participant(self, caller: Any) -> str:
        return self._own if caller is None else participant_id(caller, self.serial)

    def _dispatch(
        self, msg: dict[str, Any], emit: Callable[[Reply], None],
        started: list[asyncio.Task[None]] | None = None, size: int = 0,
    ) -> Reply | None:
        """Start (or queue) the call ``msg`` asks for; return an immediate reply if there is one.

        ``started`` collects the tasks of a batch's entries, which run under the batch's slot."""
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
        params = msg.get("params")  # absent, or null as pygls's client sends it: no params
        if params is not None and type(params) is not dict and type(params) is not list:
            return self._invalid("params must be an object or an array", id)
        target = self._methods.get(method)
        if target is None:
            if not has_id:
                if method == "$/cancelRequest":
                    self._on_cancel_request(params)
                elif method == "$/stream/credit":
                    self._on_credit(params)
                elif method == "$/exit" and started is None:
                    self._on_exit()
                elif not method.startswith("$/"):
                    log.debug("notification for unknown method %s", method)
                return None
            return self._error(id, E.METHOD_NOT_FOUND, None, {"method": method})
        if target is self._ping:  # liveness: answered however busy the host is
            self._stats["rpc.ping"].calls += 1
            return {"jsonrpc": "2.0", "id": id, "result": "pong"} if has_id else None
        if "$caller" in msg:
            caller = msg["$caller"]
        elif type(params) is dict and "$meta" in params:
            meta = params["$meta"]
            caller = meta.get("caller") if type(meta) is dict else None
        else:
            caller = None
        call = Call(caller)
        if has_id:
            self._by_id[id] = call
        if started is not None:  # an entry of a batch, which holds the slot (and awaits its task)
            self._inflight += 1
            self._calls.add(call)
            started.append(self._own_task(call, self._call(call, target, id, has_id, params, emit)))
            return None
        who = self._own if caller is None else participant_id(caller, self.serial)
        running = self._running.get(who, 0)
        if self._inflight < self._max_inflight and running < self._share and who not in self._waiting:
            self._inflight += 1  # the usual case, inline: what _admit and _start do
            self._running[who] = running + 1
            call.who = who
            self._calls.add(call)
            self._run_soon(call, target, self._call(call, target, id, has_id, params, emit), self._lone)
            return None
        return self._admit(call, who, size, (target, id, has_id, params))

    def cache_store(self) -> CacheStore:
        """The host's cache store, opened on first use when no method caches replies (the
        key/value API, ``ctx.cache``); its sweep of expired entries starts with it."""
        if self.cache is None:
            from .cache import CacheStore, default_directory

            self.cache = CacheStore(self.settings.cache_dir or default_directory(self.app.name), self.settings.cache_size)
            if self._loop is not None:
                self._loop.call_soon_threadsafe(self.start_soon, self.cache.maintain())  # key/value: local
        return self.cache

    def start_soon(self, coro: Any) -> None:
        """A task this connection owns (cancelled and awaited when ``run`` ends), that leaves by itself."""
        self._spawn(coro).add_done_callback(self._tasks.discard)

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task = self._loop.create_task(coro)  # type: ignore[union-attr]
        self._tasks.add(task)  # the task removes itself as it ends
        return task

    def _run_soon(self, call: Call, method: Method, coro: Any, lone: bool = False) -> None:
        """Start a call's coroutine, after every call let in before it: in the worker (made if
        there is none), or in a task of its own if the method's calls wait (a worker would start
        them a loop turn apart) or it came alone in its read (a task costs less than a worker)."""
        if not self._ready and (method.waits or (lone and self._worker is None)):
            self._own_task(call, coro)
            return
        self._ready.append((call, coro, method))
        if self._worker is None:
            self._worker = self._spawn(self._work())

    def _own_task(self, call: Call, coro: Any) -> asyncio.Task[None]:
        """Run a call's coroutine in a task made for it alone (it leaves ``_tasks`` as it ends)."""
        call.task = self._spawn(coro)
        call.own_task = True
        return call.task

    async def _work(self) -> None:
        """Start the ready calls one after another; the first that waits makes this task its own."""
        me = asyncio.current_task()
        ready = self._ready
        try:
            while ready:
                for _ in range(len(ready)):
                    call, coro, method = ready.popleft()
                    call.task = me
                    context = copy_context()
                    try:  # next() of its __await__: a call that ends here raises no StopIteration (~90 ns)
                        waiting = context.run(next, coro.__await__(), _DONE)
                        if waiting is _DONE:
                            continue
                    except (KeyboardInterrupt, SystemExit):
                        raise
                    except BaseException as exc:  # what a task would have ended with; the call has answered
                        if not isinstance(exc, asyncio.CancelledError):
                            log.error("a call's task failed: %r", exc, exc_info=exc)
                        continue
                    # This call waits: the task is its own from now on. The calls after it start in
                    # tasks of their own, made now and in order (a worker would start them a loop
                    # turn apart and after calls let in later); so do the method's next calls.
                    method.waits = True
                    self._worker = None
                    while ready:
                        later, later_coro, _ = ready.popleft()
                        self._own_task(later, later_coro)
                    await _Resume(coro, waiting, context)
                    return
                if ready:  # calls let in meanwhile (from the queues) wait a loop turn, so the replies
                    await asyncio.sleep(0)  # so far are written and the pipe's back-pressure is heard
        finally:
            if self._worker is me:
                self._worker = None
            self._tasks.discard(me)  # type: ignore[arg-type]

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
        stats = self._stats.get(method.name)
        if stats is None:
            stats = self._stats[method.name] = self.metrics.stats(method.name)
        stats.inflight += 1
        call.started = True
        reply: Reply | None
        try:
            try:
                if call.cancel_code is not None:  # cancelled before it began
                    raise asyncio.CancelledError
                if method.effective_timeout is not None:
                    call.timer = self._loop.call_later(  # type: ignore[union-attr]
                        method.effective_timeout, call.cancel, E.REQUEST_TIMEOUT
                    )
                result = await run_call(method, self, call, id if has_id else None, params)
                if self._debug:  # a result its annotation does not describe: say so, once per method
                    method.check_result(result)
                reply = {"jsonrpc": "2.0", "id": id, "result": result}
            except E.BridgeError as exc:
                reply = {"jsonrpc": "2.0", "id": id, "error": exc.to_dict()}
            except Exception as exc:
                log.error("%s raised %s", method.name, type(exc).__name__, exc_info=exc)
                reply = self._internal_error(id, exc)
            except asyncio.CancelledError as exc:
                if call.cancel_code is None:
                    if call.task is not None and call.task.cancelling():
                        raise  # the task itself is being cancelled (the host is going away)
                    # The handler let out a CancelledError nobody asked for (an inner task's, say):
                    # the caller must still get an answer.
                    log.error("%s raised CancelledError without being cancelled", method.name)
                    reply = self._internal_error(id, exc)
                else:
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
            stats.record(elapsed)
            error = reply.get("error")
            if error is not None:
                stats.error(error["code"])
            if type(params) is dict and "$meta" in params:
                meta = params["$meta"]
                if type(meta) is dict and meta.get("info"):  # the caller asked how its reply came about
                    reply["$meta"] = {"handlerMs": round(elapsed * 1e3, 3), **(call.info or {})}
            if self._log_calls:
                outcome = "ok" if error is None else f"error {error['code']}"
                log.debug("%s id=%r %.3f ms %s", method.name, id, elapsed * 1e3, outcome)
            if has_id:
                if self._inflight == 1 and not self._out and emit is self._emit:
                    self._send_now(self._frame(reply))  # nothing to coalesce with: spare a loop turn
                else:
                    emit(reply)
            else:
                stats.notifications += 1
        finally:
            if call.own_task:
                self._tasks.discard(call.task)  # type: ignore[arg-type]
            call.started = False  # its task may go on to run other calls: a late cancel must not reach them
            self._release(call)

    def _release(self, call: Call) -> None:
        """One call (or batch) is done: start what waits, wake whoever waits for a slot."""
        self._inflight -= 1
        who = call.who
        if who is not None:
            left = self._running[who] - 1
            if left:
                self._running[who] = left
            else:
                del self._running[who]
        if self._waiting:
            self._take_queue()
        if self._room is not None:
            self._room.set()
            self._room = None

    async def _run_batch(self, call: Call, items: list[Any]) -> None:
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
            self._calls.discard(call)
            self._release(call)

    def _on_credit(self, params: Any) -> None:
        if type(params) is not dict:
            return
        credit = params.get("credit")
        if type(credit) is not int or credit <= 0:
            return
        id = params.get("id")
        if type(id) not in _ID_TYPES:  # an object or array id names no call (and cannot be a key)
            self.bad_input.report("request", "$/stream/credit with an id that is not a string or number")
            return
        if self.streams.grant(id, credit):
            return
        if (call := self._by_id.get(id)) is not None:  # its stream has not begun: keep the credit for it
            call.credit = min(call.credit + credit, 1 << 30)

    def _on_cancel_request(self, params: Any) -> None:
        id = params.get("id") if type(params) is dict else None
        if type(id) not in _ID_TYPES:
            self.bad_input.report("request", "$/cancelRequest with an id that is not a string or number")
            return
        call = self._by_id.get(id)
        if call is None:
            log.debug("$/cancelRequest for %r, which is not running", id)
        elif call.task is None and call.args is not None:  # queued: it never starts
            self._unqueue(call)
            call.args = None
            del self._by_id[id]
            self._emit(self._error(id, E.REQUEST_CANCELLED))
        else:
            call.cancel(E.REQUEST_CANCELLED)

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
        self._notified += 1
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
        from ._version import __version__

        s = self.settings
        self.notify("$/ready", {
            "name": self.app.name,
            "version": __version__,
            "appVersion": self.app.version,
            "pid": _pid(),
            "framing": self._decoder.framing,
            "compiled": COMPILED,
            "capabilities": {
                "batch": True,
                "cancel": "$/cancelRequest",
                "progress": "$/progress",
                "discover": "rpc.discover",
                "exit": "$/exit",
            },
            "limits": {"maxMessageBytes": s.max_message_bytes, "maxInflight": s.max_inflight, "maxBatch": s.max_batch,
                       "maxInflightPerCaller": s.caller_share, "maxQueued": s.max_queued,
                       "maxQueuedBytes": s.max_queued_bytes},
            "idempotent": sorted(name for name, m in self._methods.items() if m.idempotent),
            "streams": sorted(name for name, m in self._methods.items() if isinstance(m.kind, Stream)),
        })

    def _write(self, message: Any) -> None:
        """Queue one message; it goes out with the rest of this loop turn's output, or with the
        ``FLUSH_EVERY`` messages it completes."""
        self._queue(self._frame(message))

    def _frame(self, message: Any) -> bytes:
        self._sent += 1  # every message written is framed here once
        encode = self._encode or encode_ndjson
        line = encode is encode_ndjson
        try:  # codec.dumps, inline
            body = _dumps(message, default=to_jsonable, option=_LINE_OPTIONS if line else DUMPS_OPTIONS)
        except (TypeError, orjson.JSONEncodeError) as exc:
            body = self._unserialisable(message, exc)
            return encode(body)
        return body if line else encode(body)

    def _queue(self, frame: bytes) -> None:
        if self.closed:
            return
        out = self._out
        out.append(frame)
        if len(out) >= FLUSH_EVERY:  # the client gets these now and can send more meanwhile
            self._write_out()
        elif not self._flush_pending:
            self._flush_pending = True
            if self._loop is None:
                self._flush()
            else:
                self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        if self._out:
            self._write_out()

    def _write_out(self) -> None:
        """Write what is queued, in one go."""
        out = self._out
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
            result = message["result"]
            if inspect.isawaitable(result):  # an async call's result returned, not awaited
                getattr(result, "close", lambda: None)()
                why = f"the handler returned {type(result).__name__} {getattr(result, '__qualname__', '')}() " \
                      "unawaited: did you forget `await`?"
                log.error("%s", why)
                return dumps(self._error(message.get("id"), E.INTERNAL_ERROR, f"Result is not JSON-serialisable: {why}"))
            return dumps(self._error(message.get("id"), E.INTERNAL_ERROR, f"Result is not JSON-serialisable: {exc}"))
        if isinstance(message, list):
            return dumps([
                r if serialisable(r) else self._error(r.get("id"), E.INTERNAL_ERROR, "Result is not JSON-serialisable")
                for r in message
            ])
        raise exc

    # ---- error replies --------------------------------------------------

    @staticmethod
    def _error(id: Any, code: int, message: str | None = None, data: Any = None) -> Reply:
        return {"jsonrpc": "2.0", "id": None if id is _NO_ID else id, "error": E.error_object(code, message, data)}

    def _invalid(self, why: str, id: Any) -> Reply:
        self.bad_input.report("request", why)
        return self._error(id, E.INVALID_REQUEST, None, {"reason": why})

    def _internal_error(self, id: Any, exc: BaseException) -> Reply:
        data: dict[str, Any] = {"exception": type(exc).__name__}
        message = "Internal error"
        if self._debug:
            message = f"Internal error: {type(exc).__name__}: {exc}"
            data["traceback"] = traceback.format_exception(exc)
        return self._error(id, E.INTERNAL_ERROR, message, data)


class _Resume:
    """Awaiting it goes on with a coroutine that was stepped by hand and is waiting for
    ``waiting``: what a task would do with it, from inside the worker task that stepped it."""

    __slots__ = ("context", "coro", "waiting")

    def __init__(self, coro: Any, waiting: Any, context: contextvars.Context) -> None:
        self.coro = coro
        self.waiting = waiting
        self.context = context

    def __await__(self) -> Any:
        coro, run = self.coro, self.context.run
        waiting = self.waiting
        while True:
            try:
                value = yield waiting
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # noqa: BLE001 - thrown in by the task (cancellation): passed on
                step, arg = coro.throw, exc
            else:
                step, arg = coro.send, value
            try:
                waiting = run(step, arg)
            except StopIteration as stop:
                return stop.value


def _prepare_all(methods: list[Method], cache: CacheStore | None) -> None:
    """Build the params models calls will need (and open the cache) off the loop, right after
    ``$/ready``: the first calls find them ready. A method whose params are plain JSON values
    (``Method.needs_model``) builds its model on first use instead (a conversion or an error
    message), so an app of many plain methods is not held up building them all. The thread
    gives up the interpreter between models, so calls keep flowing meanwhile."""
    if cache is not None:
        cache.open()
    for method in methods:
        if not method.needs_model:
            continue
        try:
            method.prepare()
        except Exception as exc:  # the call itself will report it
            log.warning("%s: cannot build its params model: %s", method.name, exc)
        time.sleep(0)  # let the loop's thread have the interpreter


def _caller_of(msg: dict[str, Any]) -> Any:
    """A message's caller: the transport's ``$caller``, else its params' ``$meta.caller``."""
    caller = msg.get("$caller", _NO_ID)
    if caller is not _NO_ID:
        return caller
    params = msg.get("params")
    meta = params.get("$meta") if type(params) is dict else None
    return meta.get("caller") if type(meta) is dict else None


def _buffered(writer: Writer) -> int:
    """Bytes the writer holds that the pipe has not taken yet (0 when it cannot say)."""
    size = getattr(writer, "transport", None)
    size = getattr(size, "get_write_buffer_size", None) or getattr(writer, "get_write_buffer_size", None)
    try:
        return int(size()) if size is not None else 0
    except Exception:
        return 0


def _pid() -> int:
    import os

    return os.getpid()
