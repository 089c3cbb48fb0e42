"""The floor for bench/terminal.mjs: the least a host can do to carry a pty to a pipe. It runs
the program given on a pty, copies the pty's output to stdout and stdin to the pty, nothing else.

Usage: python bench/pty_floor.py PROGRAM [ARGS...]
"""

from __future__ import annotations

import os
import pty
import selectors
import sys

pid, master = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
sel = selectors.DefaultSelector()
sel.register(master, selectors.EVENT_READ)
sel.register(0, selectors.EVENT_READ)
while True:
    for key, _ in sel.select():
        if key.fd == 0:
            data = os.read(0, 65536)
            if not data:
                sel.unregister(0)
                continue
            os.write(master, data)
        else:
            try:
                data = os.read(master, 65536)
            except OSError:
                data = b""
            if not data:
                sys.exit(0)
            view = memoryview(data)
            while view:
                view = view[os.write(1, view):]
