"""A program on a Windows pseudo-console (ConPTY) through pywinpty's ``winpty.PTY``.

UNTESTED HERE: the project's machines and CI are Linux; this follows pywinpty 3's API and its
own ``PtyProcess`` recipe (a thread doing blocking reads, ``iseof()`` for the end) and is kept
behind the same interface as ``pty_posix.PosixPty`` so the rest of the plugin is shared.

``pip install pywinpty``. Differences from POSIX: output arrives as text (ConPTY's UTF-8),
passed on re-encoded, so ``raw`` streams carry that; there are no process groups or signals:
``interrupt`` types Ctrl-C (ConPTY raises CTRL_C_EVENT in the console's processes),
``terminate``/``kill`` end the program (TerminateProcess) and closing the pseudo-console ends
what else is attached to it; the program does not die with a host killed by force (no
``PR_SET_PDEATHSIG``; a Job object would be needed).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
from collections.abc import Callable
from typing import Any


class WindowsPty:
    """The pseudo-console of one program: ``on_data(bytes)`` for each read while reading is
    wanted, ``on_eof()`` once the program's output has ended."""

    def __init__(self, on_data: Callable[[bytes], None], on_eof: Callable[[], None], read_size: int) -> None:
        self._on_data, self._on_eof = on_data, on_eof
        self._loop = asyncio.get_running_loop()
        self._pty: Any = None
        self._want = threading.Event()  # the reader thread reads only while this is set
        self._closing = False
        self._ended = asyncio.Event()
        self.pid = 0
        self.reading = False

    async def spawn(self, argv: list[str], cwd: str, env: dict[str, str], rows: int, cols: int) -> int:
        from winpty import PTY  # pywinpty

        self._pty = PTY(cols, rows)
        cmdline = " " + subprocess.list2cmdline(argv[1:]) if argv[1:] else None
        block = "\0".join(f"{k}={v}" for k, v in env.items()) + "\0"
        if not await asyncio.to_thread(self._pty.spawn, argv[0], cmdline, cwd, block):
            raise OSError(f"could not start {argv[0]!r} on a pseudo-console")
        self.pid = self._pty.pid or 0
        threading.Thread(target=self._read, name=f"bridge-terminal-{self.pid}", daemon=True).start()
        return self.pid

    def _read(self) -> None:
        """The reader thread: blocking reads handed to the loop, paced by ``_want``."""
        try:
            while not self._closing:
                self._want.wait()
                if self._closing:
                    break
                text = self._pty.read(blocking=True)
                if text:
                    self._loop.call_soon_threadsafe(self._on_data, text.encode("utf-8", "surrogatepass"))
                if self._pty.iseof():
                    break
        except Exception:  # pywinpty raises once the pseudo-console is gone: the end of output
            pass
        finally:
            self._loop.call_soon_threadsafe(self._end)

    def _end(self) -> None:
        self.reading = False
        self._ended.set()
        self._on_eof()

    def set_reading(self, want: bool) -> None:
        """Let the reader thread read, or hold it (ConPTY's buffer fills and the program blocks)."""
        want = want and not self._ended.is_set() and self._pty is not None
        if want:
            self._want.set()
        else:
            self._want.clear()
        self.reading = want

    async def write(self, data: bytes) -> int:
        text = data.decode("utf-8", "surrogateescape")
        await asyncio.to_thread(self._pty.write, text)
        return len(data)

    def resize(self, rows: int, cols: int) -> None:
        self._pty.set_size(cols, rows)

    def send_signal(self, sig: int) -> None:
        if sig == signal.SIGINT:
            self._pty.write("\x03")
        elif self.pid:
            self.kill()

    def kill(self) -> None:
        if self.pid and self._pty.isalive():
            try:
                os.kill(self.pid, signal.SIGTERM)  # TerminateProcess on Windows
            except OSError:
                pass

    def hang_up(self) -> None:
        """Nothing: the pseudo-console is closed with the terminal (``close``)."""

    async def wait(self) -> tuple[int | None, str | None]:
        """The exit code once the process is gone. pywinpty has no wait: polled, as its own
        ``PtyProcess.wait`` does (every 0.1 s), whether or not the output is being read."""
        while self._pty.isalive():
            await asyncio.sleep(0.1)
        return self._pty.get_exitstatus(), None

    def close(self) -> None:
        self._closing = True
        self._want.set()  # let the reader thread see it
        if self._pty is not None:
            try:
                self._pty.cancel_io()  # ends a blocking read in the reader thread
            except Exception:
                pass
