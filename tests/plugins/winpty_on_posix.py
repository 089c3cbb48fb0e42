"""pywinpty's ``winpty.PTY`` API (3.x: winpty/winpty.pyi) over a real POSIX pty, so that
``pty_windows.WindowsPty`` (its reader thread, pacing, writes, resize, exit) runs against a real
program here. Only the native module is replaced: the pseudo-console is a Linux pty, not ConPTY.
"""

from __future__ import annotations

import fcntl
import os
import select
import shlex
import struct
import subprocess
import termios


class WinptyError(Exception):
    pass


class PTY:
    def __init__(self, cols: int, rows: int, backend: int | None = None) -> None:
        self._size = (cols, rows)
        self._proc: subprocess.Popen[bytes] | None = None
        self._master = -1
        self._eof = False
        self._cancelled = False

    def spawn(self, appname: str, cmdline: str | None = None, cwd: str | None = None, env: str | None = None) -> bool:
        master, slave = os.openpty()
        self.set_size(*self._size, fd=slave)
        environ = dict(item.split("=", 1) for item in (env or "").split("\0") if item)
        # list2cmdline's quoting read back; POSIX shlex agrees with it for what the tests pass
        argv = [appname, *shlex.split(cmdline or "")]
        self._proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=environ,
                                      start_new_session=True,
                                      preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        os.close(slave)
        self._master = master
        return True

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def set_size(self, cols: int, rows: int, fd: int | None = None) -> None:
        fcntl.ioctl(self._master if fd is None else fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def read(self, blocking: bool = False) -> str:
        while not self._cancelled:
            ready, _, _ = select.select([self._master], [], [], 0.05 if blocking else 0)
            if ready:
                try:
                    data = os.read(self._master, 4096)
                except OSError:
                    data = b""
                if not data:
                    self._eof = True
                    raise WinptyError("EOF")
                return data.decode("utf-8", "replace")
            if not blocking:
                return ""
        raise WinptyError("cancelled")

    def write(self, to_write: str) -> int:
        return os.write(self._master, to_write.encode())

    def isalive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def get_exitstatus(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def iseof(self) -> bool:
        return self._eof

    def cancel_io(self) -> bool:
        self._cancelled = True
        return True
