"""One program on a pseudo-terminal: its output decoded incrementally, fed to the screen model
and to each watcher. The OS's side is a ``Pty``: ``pty_posix.PosixPty`` (stdlib ``openpty``,
read off the event loop's readers) or, on Windows, ``pty_windows.WindowsPty`` (pywinpty; untested
here).

Reading is paced by the watchers: while a watcher of a ``block`` terminal holds ``chunk_bytes``
unread (its stream has no credit), or while the terminal is paused, the pty is left unread, so
the program blocks on its own writes and the host's memory stays flat. A ``drop`` terminal keeps
reading: a watcher that falls behind loses its oldest unread output (up to four chunks are
held), and its next item says how many bytes went.
"""

from __future__ import annotations

import asyncio
import codecs
import os
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal, Protocol

from .screen import Model, ParseBudget

Overflow = Literal["block", "drop"]


class Pty(Protocol):
    """A program on a pseudo-terminal, as ``Terminal`` drives it (see pty_posix.PosixPty)."""

    pid: int
    reading: bool

    async def spawn(self, argv: list[str], cwd: str, env: dict[str, str], rows: int, cols: int) -> int: ...
    def set_reading(self, want: bool) -> None: ...
    async def write(self, data: bytes) -> int: ...
    def resize(self, rows: int, cols: int) -> None: ...
    def send_signal(self, sig: int) -> None: ...
    def kill(self) -> None: ...
    def hang_up(self) -> None: ...
    async def wait(self) -> tuple[int | None, str | None]: ...
    def close(self) -> None: ...


def new_pty(on_data: Callable[[bytes], None], on_eof: Callable[[], None], read_size: int) -> Pty:
    """This OS's pty: POSIX, or Windows through pywinpty."""
    if os.name == "nt":
        from .pty_windows import WindowsPty

        return WindowsPty(on_data, on_eof, read_size)
    from .pty_posix import PosixPty

    return PosixPty(on_data, on_eof, read_size)


#: Output smaller than this is sent at once, never held to coalesce (a keystroke's echo, a prompt).
_SMALL = 1024


class Watcher:
    """One attached stream's unread output: text (or bytes, raw) pieces and their size in bytes."""

    def __init__(self, raw: bool) -> None:
        self.raw = raw
        self.pieces: deque[tuple[Any, int]] = deque()
        self.pending = 0
        self.dropped = 0
        self.wake = asyncio.Event()
        self.sent_at = float("-inf")  # when its last output item went out (loop time)

    def push(self, piece: Any, size: int, limit: int | None) -> None:
        self.pieces.append((piece, size))
        self.pending += size
        if limit is not None:
            while self.pending > limit and len(self.pieces) > 1:
                _, gone = self.pieces.popleft()
                self.pending -= gone
                self.dropped += gone
        self.wake.set()

    def take(self, most: int) -> Any:
        """Up to ``most`` bytes of pieces (at least one), joined."""
        taken: list[Any] = []
        size = 0
        while self.pieces and (not taken or size + self.pieces[0][1] <= most):
            piece, n = self.pieces.popleft()
            taken.append(piece)
            size += n
        self.pending -= size
        return (b"" if self.raw else "").join(taken)


class Terminal:
    """A program on a pty: its state, counters, screen model and watchers."""

    def __init__(self, id: str, name: str, argv: list[str], cwd: str, rows: int, cols: int, overflow: Overflow,
                 *, scrollback_bytes: int, coalesce_ms: float, chunk_bytes: int,
                 on_exit: Callable[[Terminal], None], budget: ParseBudget | None = None) -> None:
        self.id, self.name, self.argv, self.cwd = id, name, argv, cwd
        self.rows, self.cols, self.overflow = rows, cols, overflow
        self.coalesce = coalesce_ms / 1000
        self.chunk_bytes = chunk_bytes
        self.model = Model(rows, cols, scrollback_bytes, budget)
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.on_exit = on_exit
        self.pty = new_pty(self._read, self._ended, chunk_bytes)
        self.owner = ""  # the participant that created it; with ``shared``, who may use it
        self.shared: frozenset[str] = frozenset()  # other participants allowed ("*": every caller)
        self.closed = False
        self.pid = 0
        self.exit_code: int | None = None
        self.signal: str | None = None
        self.bytes_in = self.bytes_out = self.dropped = 0
        self.paused = False
        self.watchers: set[Watcher] = set()
        self.eof = asyncio.Event()
        self.exited = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._loop = asyncio.get_running_loop()

    # -- life --------------------------------------------------------------------------------

    async def spawn(self, env: dict[str, str]) -> None:
        self.pid = await self.pty.spawn(self.argv, self.cwd, env, self.rows, self.cols)
        self.update_reading()

    @property
    def running(self) -> bool:
        return not self.exited.is_set()

    @property
    def reading(self) -> bool:
        return self.pty.reading

    async def watch_exit(self) -> None:
        """Wait for the program; then hang up the rest of its session (SIGHUP, as a closed
        terminal does; SIGKILL if its output has not ended 2 s later), and say it exited."""
        self.exit_code, self.signal = await self.pty.wait()
        self.exited.set()
        self.pty.hang_up()
        self.on_exit(self)
        self._wake_all()
        if self.paused:  # what is left is read out, so that the watchers' streams end
            self.paused = False
            self.update_reading()
        try:
            await asyncio.wait_for(self.eof.wait(), 2)
        except asyncio.TimeoutError:
            self.pty.kill()
        await self.eof.wait()  # a block watcher without credit holds it (detaching lets it go)
        self.close()

    def kill(self) -> None:
        """End the program and everything else in its session (POSIX: SIGKILL to every group)."""
        if self.pid:
            self.pty.kill()

    def close(self) -> None:
        """Stop reading and close the pty (after the program is gone)."""
        self.closed = True
        self.pty.close()
        self.eof.set()
        self._wake_all()

    # -- output ------------------------------------------------------------------------------

    def update_reading(self) -> None:
        """Read the pty unless paused, ended, or a block watcher holds a chunk unread."""
        self.pty.set_reading(not self.closed and not self.eof.is_set() and not self.paused
                             and not (self.overflow == "block"
                                      and any(w.pending >= self.chunk_bytes for w in self.watchers)))

    def _read(self, data: bytes) -> None:
        """The pty's output: counted, decoded (a split character waits for its end), delivered."""
        self.bytes_out += len(data)
        self._deliver(data, self.decoder.decode(data))
        self.update_reading()

    def _ended(self) -> None:
        """The pty's output has ended (every slave end closed)."""
        tail = self.decoder.decode(b"", final=True)
        if tail:
            self._deliver(b"", tail)
        self.eof.set()
        self._wake_all()

    def _deliver(self, data: bytes, text: str) -> None:
        if text:
            self.model.feed(text, self._loop.time())
        limit = 4 * self.chunk_bytes if self.overflow == "drop" else None
        for w in self.watchers:
            before = w.dropped
            if w.raw:
                if data:
                    w.push(data, len(data), limit)
            elif text:
                w.push(text, len(text.encode("utf-8", "surrogatepass")), limit)
            self.dropped += w.dropped - before

    def _wake_all(self) -> None:
        for w in self.watchers:
            w.wake.set()

    async def attach(self, raw: bool) -> AsyncIterator[dict[str, Any]]:
        """The restore, then live output items until the output ends."""
        watcher = Watcher(raw)
        restore = self.model.restore()
        self.watchers.add(watcher)
        try:
            yield {"restore": restore}
            while True:
                if watcher.dropped:
                    dropped, watcher.dropped = watcher.dropped, 0
                    yield {"dropped": dropped}
                    continue
                if watcher.pieces:
                    # A chatty program (output went out within the window, and more than an echo's
                    # worth waits): coalesce. A keystroke's echo, or output after a pause: at once.
                    busy = self._loop.time() - watcher.sent_at < self.coalesce and watcher.pending >= _SMALL
                    if busy and watcher.pending < self.chunk_bytes and not self.eof.is_set():
                        await self._gather(watcher)
                    data = watcher.take(self.chunk_bytes)
                    watcher.sent_at = self._loop.time()
                    self.update_reading()
                    if raw:
                        import base64

                        yield {"data_base64": base64.b64encode(data).decode("ascii")}
                    else:
                        yield {"data": data}
                    continue
                if self.eof.is_set() and (self.exited.is_set() or self.closed):
                    return
                watcher.wake.clear()
                await watcher.wake.wait()
        finally:
            self.watchers.discard(watcher)
            if not self.closed:
                self.update_reading()

    async def _gather(self, watcher: Watcher) -> None:
        """Coalesce: wait up to ``coalesce_ms`` for more output, or a full chunk, or the end."""
        deadline = self._loop.time() + self.coalesce
        while watcher.pending < self.chunk_bytes and not self.eof.is_set():
            left = deadline - self._loop.time()
            if left <= 0:
                return
            watcher.wake.clear()
            try:
                await asyncio.wait_for(watcher.wake.wait(), left)
            except asyncio.TimeoutError:
                return

    # -- input and control -------------------------------------------------------------------

    async def write(self, data: bytes) -> None:
        """Write ``data`` to the pty, waiting while its input buffer is full."""
        async with self._write_lock:
            self.bytes_in += await self.pty.write(data)

    def resize(self, rows: int, cols: int) -> None:
        self.pty.resize(rows, cols)  # the program gets SIGWINCH (POSIX)
        self.rows, self.cols = rows, cols
        self.model.resize(rows, cols)

    def send_signal(self, sig: int) -> None:
        """``sig`` to the terminal's foreground process group, as the keyboard would."""
        self.pty.send_signal(sig)

    def info(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "pid": self.pid, "command": self.argv[0], "args": self.argv[1:],
                "cwd": self.cwd, "rows": self.rows, "cols": self.cols,
                "state": "running" if self.running else "exited", "exit_code": self.exit_code,
                "signal": self.signal, "bytes_in": self.bytes_in, "bytes_out": self.bytes_out,
                "paused": self.paused, "dropped": self.dropped, "watchers": len(self.watchers),
                "overflow": self.overflow, "owner": self.owner, "shared": sorted(self.shared)}

    def allows(self, participant: str) -> bool:
        """Whether ``participant`` may see and use this terminal."""
        return participant == self.owner or participant in self.shared or "*" in self.shared

    def audience(self) -> list[str] | None:
        """Whom its events are for (None: every caller)."""
        return None if "*" in self.shared else [self.owner, *sorted(self.shared)]
