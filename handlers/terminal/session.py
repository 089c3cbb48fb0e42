"""One program on a real pseudo-terminal (POSIX): spawned as the leader of its own session with
the pty as its controlling terminal; its output read off the event loop's readers, decoded
incrementally, fed to the screen model and to each watcher.

Reading is paced by the watchers: while a watcher of a ``block`` terminal holds ``chunk_bytes``
unread (its stream has no credit), or while the terminal is paused, the pty's fd is taken off
the loop's readers, so the program blocks on its own writes and the host's memory stays flat.
A ``drop`` terminal keeps reading: a watcher that falls behind loses its oldest unread output
(up to four chunks are held), and its next item says how many bytes went.
"""

from __future__ import annotations

import asyncio
import codecs
import errno
import functools
import os
import signal
import struct
import sys
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

from bridge.builtins.services.supervisor import _pdeathsig

if os.name == "posix":
    import fcntl
    import termios

from .screen import Model, ParseBudget

Overflow = Literal["block", "drop"]
READ_SIZE = 16384  # one read is fed to pyte (~1 MB/s) on the event loop: keep each step short


def set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


_DEATH: Callable[[], None] | None = None


def _preexec(slave: int) -> None:
    """In the child: lead a new session with the pty as its controlling terminal, and on Linux
    die with the host (PR_SET_PDEATHSIG, the services plugin's). asyncio has called setsid
    already; uvloop calls this before it does (and before its dup2s), hence the slave's own fd."""
    try:
        os.setsid()
    except OSError:
        pass  # a session leader already
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    if _DEATH is not None:
        _DEATH()


def session_groups(sid: int) -> set[int]:
    """The process groups of session ``sid`` (Linux: every process in /proc; elsewhere the leader's)."""
    groups = {sid}
    if not sys.platform.startswith("linux"):
        return groups
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # fields after the name: state, ppid, pgrp, session
            groups.add(int(fields[2]))
    return groups


def signal_session(sid: int, sig: int) -> None:
    for group in session_groups(sid):
        try:
            os.killpg(group, sig)
        except (ProcessLookupError, PermissionError):
            pass


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
        self.proc: asyncio.subprocess.Process | None = None
        self.fd = -1
        self.pid = 0
        self.exit_code: int | None = None
        self.signal: str | None = None
        self.bytes_in = self.bytes_out = self.dropped = 0
        self.paused = False
        self.watchers: set[Watcher] = set()
        self.reading = False
        self.eof = asyncio.Event()
        self.exited = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._loop = asyncio.get_running_loop()

    # -- life --------------------------------------------------------------------------------

    async def spawn(self, env: dict[str, str]) -> None:
        global _DEATH
        if _DEATH is None:
            _DEATH = _pdeathsig() or (lambda: None)
        master, slave = os.openpty()
        try:
            set_size(slave, self.rows, self.cols)
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv, stdin=slave, stdout=slave, stderr=slave, cwd=self.cwd, env=env,
                start_new_session=True, preexec_fn=functools.partial(_preexec, slave))
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        self.fd, self.pid = master, self.proc.pid
        self.update_reading()

    @property
    def running(self) -> bool:
        return not self.exited.is_set()

    async def watch_exit(self) -> None:
        """Wait for the program; then hang up the rest of its session (SIGHUP, as a closed
        terminal does; SIGKILL if its output has not ended 2 s later), and say it exited."""
        assert self.proc is not None
        code = await self.proc.wait()
        if code < 0:
            try:
                self.signal = signal.Signals(-code).name
            except ValueError:
                self.signal = f"SIG{-code}"
        else:
            self.exit_code = code
        self.exited.set()
        signal_session(self.pid, signal.SIGHUP)
        self.on_exit(self)
        self._wake_all()
        if self.paused:  # what is left is read out, so that the watchers' streams end
            self.paused = False
            self.update_reading()
        try:
            await asyncio.wait_for(self.eof.wait(), 2)
        except asyncio.TimeoutError:
            signal_session(self.pid, signal.SIGKILL)
        await self.eof.wait()  # a block watcher without credit holds it (detaching lets it go)
        self.close()

    def kill(self) -> None:
        """SIGKILL every process group of the terminal's session."""
        if self.pid:
            signal_session(self.pid, signal.SIGKILL)

    def close(self) -> None:
        """Stop reading and close the pty (after the program is gone)."""
        if self.reading:
            self._loop.remove_reader(self.fd)
            self.reading = False
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.eof.set()
        self._wake_all()

    # -- output ------------------------------------------------------------------------------

    def update_reading(self) -> None:
        """Read the pty unless paused, ended, or a block watcher holds a chunk unread."""
        want = (self.fd >= 0 and not self.eof.is_set() and not self.paused
                and not (self.overflow == "block" and any(w.pending >= self.chunk_bytes for w in self.watchers)))
        if want and not self.reading:
            self._loop.add_reader(self.fd, self._readable)
        elif not want and self.reading:
            self._loop.remove_reader(self.fd)
        self.reading = want

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, min(READ_SIZE, self.chunk_bytes))
        except BlockingIOError:
            return
        except OSError as exc:  # EIO: every slave end is closed
            if exc.errno not in (errno.EIO, errno.EBADF):
                raise
            data = b""
        if not data:
            tail = self.decoder.decode(b"", final=True)
            if tail:
                self._deliver(b"", tail)
            self._loop.remove_reader(self.fd)
            self.reading = False
            self.eof.set()
            self._wake_all()
            return
        self.bytes_out += len(data)
        self._deliver(data, self.decoder.decode(data))
        self.update_reading()

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
                if self.eof.is_set() and (self.exited.is_set() or self.fd < 0):
                    return
                watcher.wake.clear()
                await watcher.wake.wait()
        finally:
            self.watchers.discard(watcher)
            if self.fd >= 0:
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
            view = memoryview(data)
            while view:
                try:
                    n = os.write(self.fd, view)
                except BlockingIOError:
                    writable = self._loop.create_future()
                    self._loop.add_writer(self.fd, lambda: writable.done() or writable.set_result(None))
                    try:
                        await writable
                    finally:
                        self._loop.remove_writer(self.fd)
                    continue
                self.bytes_in += n
                view = view[n:]

    def resize(self, rows: int, cols: int) -> None:
        set_size(self.fd, rows, cols)  # the kernel sends SIGWINCH to the foreground group
        self.rows, self.cols = rows, cols
        self.model.resize(rows, cols)

    def send_signal(self, sig: int) -> None:
        """``sig`` to the terminal's foreground process group (as the keyboard would), or to the
        program's group when that cannot be told."""
        try:
            group = os.tcgetpgrp(self.fd)
        except OSError:
            group = self.pid
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            pass

    def info(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "pid": self.pid, "command": self.argv[0], "args": self.argv[1:],
                "cwd": self.cwd, "rows": self.rows, "cols": self.cols,
                "state": "running" if self.running else "exited", "exit_code": self.exit_code,
                "signal": self.signal, "bytes_in": self.bytes_in, "bytes_out": self.bytes_out,
                "paused": self.paused, "dropped": self.dropped, "watchers": len(self.watchers),
                "overflow": self.overflow}
