"""stdin/stdout as the protocol's private pipes, and the inputs that feed a connection.

``take_stdio`` moves the protocol's file descriptors aside, points fd 0 at
/dev/null and fd 1 at stderr, so neither a stray ``print()`` nor a child
process can read the protocol's input or corrupt its output.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .connection import Connection, Reader

log = logging.getLogger("bridge")

READ_CHUNK = 1 << 18
PIPE_BYTES = 1 << 20


def take_stdio() -> tuple[int, int]:
    """Return private (input, output) descriptors for the protocol and repoint fds 0 and 1."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    proto_in = os.dup(0)
    proto_out = os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    try:
        os.dup2(2, 1)
    except OSError:  # no stderr at all
        os.dup2(devnull, 1)
    os.close(devnull)
    sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115 - lives as long as the process
    sys.stdout = sys.stderr
    return proto_in, proto_out


class PipeInput(asyncio.Protocol):
    """A pipe read by asyncio's transport, handing each chunk straight to ``conn.feed``:
    no reader task, no intermediate buffer."""

    def __init__(self) -> None:
        self._conn: Connection | None = None
        self._transport: asyncio.ReadTransport | None = None
        self._early: list[bytes] = []  # what arrived before a connection was attached
        self._early_eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def attach(self, conn: Connection) -> None:
        self._conn = conn
        if not self._early_eof:
            self.resume()  # first: feeding what came early may pause again
        for data in self._early:
            conn.feed(data)
        self._early.clear()
        if self._early_eof:
            conn.eof()

    def pause(self) -> None:
        if self._transport is not None and self._transport.is_reading():
            self._transport.pause_reading()

    def resume(self) -> None:
        if self._transport is not None and not self._transport.is_reading() and not self._transport.is_closing():
            self._transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self._conn is None:  # (uvloop starts reading even if connection_made paused)
            self._early.append(data)
            self.pause()
        else:
            self._conn.feed(data)

    def eof_received(self) -> bool:
        self.connection_lost(None)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self._conn is None:
            self._early_eof = True
        else:
            self._conn.eof()


class Pump:
    """Any async reader (a file, a terminal, a test's memory stream), read by a task."""

    def __init__(self, reader: Reader) -> None:
        self._reader = reader
        self._open: asyncio.Event | None = None

    def attach(self, conn: Connection) -> None:
        self._open = asyncio.Event()
        self._open.set()
        conn.start_soon(self._run(conn))

    def pause(self) -> None:
        if self._open is not None:
            self._open.clear()

    def resume(self) -> None:
        if self._open is not None:
            self._open.set()

    async def _run(self, conn: Connection) -> None:
        while True:
            await self._open.wait()  # type: ignore[union-attr]
            try:
                data = await self._reader.read(READ_CHUNK)
            except Exception as exc:  # the input is gone: as good as its end (the host must not wait on)
                log.error("reading the input failed: %r", exc)
                data = b""
            if not data:
                conn.eof()
                return
            conn.feed(data)


class _WriterProtocol(asyncio.streams.FlowControlMixin):
    """Flow control for the output pipe, told to the connection."""

    conn: Connection | None = None

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.conn is not None:
            self.conn.output_paused()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.conn is not None:
            self.conn.output_resumed()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.conn is not None:
            self.conn.output_lost()


class BlockingReader:
    """For a regular file or a terminal, where asyncio pipes don't apply: reads in a worker thread."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    async def read(self, n: int = -1) -> bytes:
        from .threads import run_sync

        return await run_sync(os.read, self._fd, n if n > 0 else READ_CHUNK, abandon_on_cancel=True)


class BlockingWriter:
    """For a regular file or a terminal: plain blocking writes."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._closed = False

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view):]
        except OSError:
            self._closed = True

    async def drain(self) -> None:
        return None

    def is_closing(self) -> bool:
        return self._closed


def _grow_pipe(fd: int) -> None:
    """Ask Linux for a 1 MiB pipe buffer (default 64 KiB): fewer wake-ups for large messages."""
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)  # type: ignore[attr-defined]
    except (ImportError, AttributeError, OSError):
        pass  # not Linux, not a pipe, or over /proc/sys/fs/pipe-max-size


def _is_pipe(fd: int) -> bool:
    mode = os.fstat(fd).st_mode
    return (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)) and sys.platform != "win32"


class Streams:
    """The protocol's input and output, opened; ``bind`` tells them which connection to inform."""

    def __init__(self, input: Any, writer: Any, writer_protocol: _WriterProtocol | None) -> None:
        self.input = input
        self.writer = writer
        self._writer_protocol = writer_protocol

    def bind(self, conn: Connection) -> None:
        if self._writer_protocol is not None:
            self._writer_protocol.conn = conn


def pipe_file(loop: asyncio.AbstractEventLoop, fd: int, mode: str) -> Any:
    """``fd`` as the file object a pipe transport of ``loop`` is given, owning it only where the
    transport closes the descriptor through it (asyncio's own). uvloop's (libuv) close the
    descriptor themselves, then close the file object too, expecting EBADF: one that owned it
    would close the number a second time, and with it whatever another thread had opened under
    it meanwhile (a host once exited 1 at shutdown: its loop's new signal socket had been closed)."""
    return os.fdopen(fd, mode, buffering=0, closefd=not type(loop).__module__.startswith("uvloop"))


async def open_streams(in_fd: int, out_fd: int) -> Streams:
    """Async input and output over the protocol's descriptors.

    Pipes and sockets get asyncio's non-blocking transports (with flow control
    both ways); files and terminals, whose O_NONBLOCK flag would leak to other
    processes, get blocking I/O instead.
    """
    loop = asyncio.get_running_loop()
    input: Any
    writer: Any
    protocol: _WriterProtocol | None = None
    if _is_pipe(in_fd):
        _grow_pipe(in_fd)
        _, input = await loop.connect_read_pipe(PipeInput, pipe_file(loop, in_fd, "rb"))
    else:
        input = BlockingReader(in_fd)
    if _is_pipe(out_fd):
        _grow_pipe(out_fd)
        transport, protocol = await loop.connect_write_pipe(_WriterProtocol, pipe_file(loop, out_fd, "wb"))
        writer = asyncio.StreamWriter(transport, protocol, None, loop)
    else:
        writer = BlockingWriter(out_fd)
    return Streams(input, writer, protocol)
