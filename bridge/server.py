"""Runs an app on stdin/stdout: hooks, signals, graceful shutdown, exit code.

The host's own lifetime is plain asyncio: anyio's event-loop backend, about a fifth of the
host's start-up, loads only once something uses anyio (hooks and lifespans, which get its
cancel scopes, plugins, handlers, worker threads), not before the first call of an app that
needs none of it.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any

from . import threads
from .app import run_hooks
from .audit import configure as configure_audit
from .connection import Connection
from .plugins import enter_lifespans
from .stdio import open_streams, take_stdio

if TYPE_CHECKING:
    from .app import Bridge
    from .settings import Settings

log = logging.getLogger("bridge")


def configure_logging(settings: Settings) -> None:
    """Logs go to stderr, one line each; stdout belongs to the protocol."""
    level = logging.DEBUG if settings.debug else getattr(logging, settings.log_level.upper())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def run(app: Bridge, settings: Settings) -> int:
    """Serve ``app`` until stdin ends or SIGTERM/SIGINT; 0 on a clean exit."""
    configure_logging(settings)
    in_fd, out_fd = take_stdio()
    try:
        with asyncio.Runner(loop_factory=_loop_factory(settings)) as runner:
            return runner.run(serve(app, settings, in_fd, out_fd))
    except KeyboardInterrupt:
        return 0


def _loop_factory(settings: Settings) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (it cuts round-trip latency about 3x here), else asyncio's loop."""
    if settings.loop == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if settings.loop == "uvloop":
            raise SystemExit("bridge: --loop uvloop, but uvloop is not installed") from None
        return None
    return uvloop.new_event_loop  # type: ignore[no-any-return]


async def serve(app: Bridge, settings: Settings, in_fd: int, out_fd: int) -> int:
    """The host's whole lifetime as one task group: signals beside the connection."""
    streams = await open_streams(in_fd, out_fd)
    writer = streams.writer
    conn = Connection(app, settings, streams.input, writer)
    streams.bind(conn)
    async with AsyncExitStack() as stack:
        try:
            await stack.enter_async_context(app_lifetime(app, settings))
        except Exception:
            log.exception("the app failed to start; exiting")
            return 1
        return await _serve(app, settings, conn, writer)


@asynccontextmanager
async def app_lifetime(app: Bridge, settings: Settings) -> AsyncIterator[None]:
    """What the host does around serving, whatever the transport (``bridge.testing`` too):
    worker threads and the audit log set from ``settings``, the startup hooks run, then the
    lifespans entered; on leaving, the shutdown hooks, then the lifespans left in reverse,
    each given the grace period. A start-up failure raises from entering."""
    threads.configure(settings.max_threads)
    configure_audit(app.audit, settings, app.name)
    if not (app.startup_hooks or app.shutdown_hooks or any(owner.lifespan for owner, _ in app.lifespans)):
        yield  # nothing runs around serving: no cancel scope to keep (nor anyio's backend to load)
        return
    import anyio

    threads.size()  # anyio loads here anyway: plugins' own worker threads share the limit from the start
    with anyio.CancelScope() as lifetime:
        async with AsyncExitStack() as lifespans:  # left last, in reverse, after the shutdown hooks
            await run_hooks(app.startup_hooks)
            await enter_lifespans(app, lifespans)
            try:
                yield
            finally:
                with anyio.CancelScope(shield=True), anyio.move_on_after(settings.shutdown_grace):
                    try:
                        await run_hooks(app.shutdown_hooks)
                    except Exception:
                        log.exception("a shutdown hook failed")
                # the lifespans get the grace period to stop; one still stopping is cancelled
                lifetime.deadline = anyio.current_time() + settings.shutdown_grace
    if lifetime.cancelled_caught:
        log.warning("plugins still stopping after %.1fs were cancelled", settings.shutdown_grace)


async def _serve(app: Bridge, settings: Settings, conn: Connection, writer: Any) -> int:
    log.info("serving %s (%d methods, framing %s)", app.name, len(app.methods), settings.framing)
    signals = _Signals(conn, asyncio.current_task())  # type: ignore[arg-type]
    try:
        await conn.run()
    except asyncio.CancelledError:
        if not signals.stopped_now:
            raise
        asyncio.current_task().uncancel()  # type: ignore[union-attr]
    finally:  # the shutdown hooks run after this, as app_lifetime is left
        signals.close()
        try:
            async with asyncio.timeout(1.0):
                await writer.drain()
        except (ConnectionError, TimeoutError):
            pass
    log.info("stopped")
    return conn.exit_code


class _Signals:
    """SIGTERM/SIGINT: stop reading and let calls finish. While already stopping (a second
    signal, or one after stdin closed): cancel the calls, which reply -32802. A third: stop now
    (``task``, the one serving, is cancelled)."""

    def __init__(self, conn: Connection, task: asyncio.Task[Any]) -> None:
        self._conn = conn
        self._task = task
        self._hurried = False
        self.stopped_now = False
        self._loop = asyncio.get_running_loop()
        self._signals: list[int] = []
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                self._loop.add_signal_handler(signum, self._received, signum)
            except (NotImplementedError, RuntimeError, ValueError):  # Windows, or not the main thread: EOF stops
                break
            self._signals.append(signum)

    def _received(self, signum: int) -> None:
        name = signal.Signals(signum).name
        conn = self._conn
        if self._hurried:
            if not self.stopped_now:
                log.warning("%s again: stopping now", name)
                self.stopped_now = True
                self._task.cancel()
            return
        if conn.stopping:
            log.warning("%s while stopping: cancelling in-flight calls", name)
            conn.hurry()
            self._hurried = True
        else:
            log.info("%s: finishing in-flight calls", name)
            conn.stop()

    def close(self) -> None:
        for signum in self._signals:
            self._loop.remove_signal_handler(signum)
        self._signals.clear()
