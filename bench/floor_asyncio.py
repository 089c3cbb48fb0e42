"""The asyncio floor: the leanest echo an asyncio host can be, for the cost of the event loop itself.

Usage: python bench/floor_asyncio.py --framing ndjson|lsp

A Protocol on the stdin pipe splits frames and writes each one straight back to the
stdout pipe's transport (one write per message, as the plain floor flushes per message).
No JSON is parsed, no task is made per message. (A bytearray slice is one copy, and the
transport sends it without another.)
"""

import asyncio
import os
import sys

READY = b'{"jsonrpc":"2.0","method":"$/ready","params":{}}'


class Echo(asyncio.Protocol):
    def __init__(self, out: asyncio.WriteTransport, lsp: bool, done: asyncio.Future) -> None:
        self.write = out.write
        self.lsp = lsp
        self.done = done
        self.buf = bytearray()

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        write = self.write
        if not self.lsp:
            while (nl := buf.find(b"\n", pos)) >= 0:
                write(buf[pos : nl + 1])
                pos = nl + 1
        else:
            while (end := buf.find(b"\r\n\r\n", pos)) >= 0:
                length = 0
                for line in bytes(buf[pos:end]).split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if len(buf) - (end + 4) < length:
                    break
                write(buf[pos : end + 4 + length])
                pos = end + 4 + length
        del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


async def main(lsp: bool) -> None:
    loop = asyncio.get_running_loop()
    out, _ = await loop.connect_write_pipe(asyncio.Protocol, os.fdopen(sys.stdout.fileno(), "wb", buffering=0, closefd=False))
    out.write(b"Content-Length: %d\r\n\r\n%b" % (len(READY), READY) if lsp else READY + b"\n")
    done = loop.create_future()
    await loop.connect_read_pipe(lambda: Echo(out, lsp, done), os.fdopen(sys.stdin.fileno(), "rb", buffering=0, closefd=False))
    await done
    while out.get_write_buffer_size():  # let the last replies out before the loop closes
        await asyncio.sleep(0.001)


if __name__ == "__main__":
    args = sys.argv[1:]
    framing = args[args.index("--framing") + 1] if "--framing" in args else "ndjson"
    if framing not in ("ndjson", "lsp"):
        sys.exit(f"floor_asyncio.py: unknown framing {framing!r}")
    try:
        asyncio.run(main(framing == "lsp"))
    except (BrokenPipeError, KeyboardInterrupt):
        pass
