"""stdin/stdout as the protocol's private pipes.

``take_stdio`` moves the protocol's file descriptors aside, points fd 0 at
/dev/null and fd 1 at stderr, so neither a stray ``print()`` nor a child
process can read the protocol's input or corrupt its output.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from typing import Callable


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


class _WriterProtocol(asyncio.streams.FlowControlMixin):
    """Flow control for the output pipe, and a callback when the reader goes away."""

    def __init__(self, on_lost: Callable[[], None]) -> None:
        super().__init__()
        self._on_lost = on_lost

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._on_lost()


class BlockingReader:
    """For a regular file or a terminal, where asyncio pipes don't apply: reads in a worker thread."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    async def read(self, n: int = -1) -> bytes:
        from anyio import to_thread

        return await to_thread.run_sync(os.read, self._fd, n if n > 0 else 1 << 16, abandon_on_cancel=True)


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


PIPE_BYTES = 1 << 20


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


async def open_streams(
    in_fd: int, out_fd: int, on_output_lost: Callable[[], None]
) -> tuple[asyncio.StreamReader | BlockingReader, asyncio.StreamWriter | BlockingWriter]:
    """Async reader and writer over the protocol's descriptors.

    Pipes and sockets get asyncio's non-blocking transports (with flow control
    both ways); files and terminals, whose O_NONBLOCK flag would leak to other
    processes, get blocking I/O instead.
    """
    loop = asyncio.get_running_loop()
    reader: asyncio.StreamReader | BlockingReader
    writer: asyncio.StreamWriter | BlockingWriter
    if _is_pipe(in_fd):
        _grow_pipe(in_fd)
        reader = asyncio.StreamReader(limit=1 << 18)
        await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(in_fd, "rb", buffering=0)
        )
    else:
        reader = BlockingReader(in_fd)
    if _is_pipe(out_fd):
        _grow_pipe(out_fd)
        transport, protocol = await loop.connect_write_pipe(
            lambda: _WriterProtocol(on_output_lost), os.fdopen(out_fd, "wb", buffering=0)
        )
        writer = asyncio.StreamWriter(transport, protocol, None, loop)
    else:
        writer = BlockingWriter(out_fd)
    return reader, writer
