"""A program on a POSIX pseudo-terminal (stdlib ``os.openpty``), read off the event loop's readers.

The program leads its own session with the pty as its controlling terminal; on Linux it dies
with the host (``PR_SET_PDEATHSIG``, the services plugin's helper). Every process group of its
session is found through /proc, so ``kill`` and the hang-up after exit reach background jobs too.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import functools
import os
import signal
import struct
import sys
import termios
from collections.abc import Callable

from bridge.builtins.services.supervisor import _pdeathsig

#: One read at most: it is fed to the screen model on the event loop, so keep each step short.
READ_SIZE = 16384

_DEATH: Callable[[], None] | None = None


def set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _preexec(slave: int) -> None:
    """In the child: lead a new session with the pty as its controlling terminal, and on Linux
    die with the host. asyncio has called setsid already; uvloop calls this before it does (and
    before its dup2s), hence the slave's own fd."""
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


class PosixPty:
    """The pty of one program: ``on_data(bytes)`` for each read while reading is wanted,
    ``on_eof()`` once every slave end is closed."""

    def __init__(self, on_data: Callable[[bytes], None], on_eof: Callable[[], None], read_size: int) -> None:
        self._on_data, self._on_eof = on_data, on_eof
        self._read_size = min(READ_SIZE, read_size)
        self._loop = asyncio.get_running_loop()
        self._proc: asyncio.subprocess.Process | None = None
        self.fd = -1
        self.pid = 0
        self.reading = False

    async def spawn(self, argv: list[str], cwd: str, env: dict[str, str], rows: int, cols: int) -> int:
        global _DEATH
        if _DEATH is None:
            _DEATH = _pdeathsig() or (lambda: None)
        master, slave = os.openpty()
        try:
            set_size(slave, rows, cols)
            self._proc = await asyncio.create_subprocess_exec(
                *argv, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env,
                start_new_session=True, preexec_fn=functools.partial(_preexec, slave))
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        self.fd, self.pid = master, self._proc.pid
        return self.pid

    def set_reading(self, want: bool) -> None:
        """Read the pty (on the loop) or leave it unread, so the program blocks on its writes."""
        want = want and self.fd >= 0
        if want and not self.reading:
            self._loop.add_reader(self.fd, self._readable)
        elif not want and self.reading:
            self._loop.remove_reader(self.fd)
        self.reading = want

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, self._read_size)
        except BlockingIOError:
            return
        except OSError as exc:  # EIO: every slave end is closed
            if exc.errno not in (errno.EIO, errno.EBADF):
                raise
            data = b""
        if not data:
            self.set_reading(False)
            self._on_eof()
            return
        self._on_data(data)

    async def write(self, data: bytes) -> int:
        """Write all of ``data``, waiting while the pty's input buffer is full; bytes written."""
        view = memoryview(data)
        written = 0
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
            written += n
            view = view[n:]
        return written

    def resize(self, rows: int, cols: int) -> None:
        set_size(self.fd, rows, cols)  # the kernel sends SIGWINCH to the foreground group

    def send_signal(self, sig: int) -> None:
        """``sig`` to the foreground process group (as the keyboard would), else the program's."""
        try:
            group = os.tcgetpgrp(self.fd)
        except OSError:
            group = self.pid
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL every process group of the program's session."""
        if self.pid:
            signal_session(self.pid, signal.SIGKILL)

    def hang_up(self) -> None:
        """After the program exited: SIGHUP to the rest of its session, as a closed terminal sends."""
        signal_session(self.pid, signal.SIGHUP)

    async def wait(self) -> tuple[int | None, str | None]:
        """``(exit_code, None)``, or ``(None, signal name)`` for a program a signal ended."""
        assert self._proc is not None
        code = await self._proc.wait()
        if code >= 0:
            return code, None
        try:
            return None, signal.Signals(-code).name
        except ValueError:
            return None, f"SIG{-code}"

    def close(self) -> None:
        """Stop reading and close the pty (after the program is gone)."""
        self.set_reading(False)
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
