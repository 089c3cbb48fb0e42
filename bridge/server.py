"""Runs an app on stdin/stdout: hooks, signals, graceful shutdown, exit code."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio

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
        return anyio.run(serve, app, settings, in_fd, out_fd, backend="asyncio", backend_options=_loop_options(settings))
    except KeyboardInterrupt:
        return 0


def _loop_options(settings: Settings) -> dict[str, bool]:
    """uvloop where it is installed (it cuts round-trip latency about 3x here), else asyncio's loop."""
    if settings.loop == "asyncio":
        return {}
    try:
        import uvloop  # noqa: F401
    except ImportError:
        if settings.loop == "uvloop":
            raise SystemExit("bridge: --loop uvloop, but uvloop is not installed") from None
        return {}
    return {"use_uvloop": True}


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
    anyio.to_thread.current_default_thread_limiter().total_tokens = settings.max_threads
    configure_audit(app.audit, settings, app.name)
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
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch_signals, conn, tg.cancel_scope)
            await conn.run()
            tg.cancel_scope.cancel()
    finally:  # the shutdown hooks run after this, as app_lifetime is left
        with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
            try:
                await writer.drain()
            except ConnectionError:
                pass
    log.info("stopped")
    return conn.exit_code


async def _watch_signals(conn: Connection, scope: anyio.CancelScope) -> None:
    """SIGTERM/SIGINT: stop reading and let calls finish. While already stopping (a second
    signal, or one after stdin closed): cancel the calls, which reply -32802. A third: stop now."""
    try:
        receiver = anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT)
    except NotImplementedError:  # Windows: EOF on stdin is the way to stop
        return
    with receiver as signals:
        hurried = False
        async for signum in signals:
            name = signal.Signals(signum).name
            if hurried:
                log.warning("%s again: stopping now", name)
                scope.cancel()
                return
            if conn.stopping:
                log.warning("%s while stopping: cancelling in-flight calls", name)
                conn.hurry()
                hurried = True
            else:
                log.info("%s: finishing in-flight calls", name)
                conn.stop()
