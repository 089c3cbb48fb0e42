"""The JSON floor: the leanest Python loop doing an echo server's work, for CPU per call.

Usage: python bench/floor_json.py --framing ndjson|lsp [--each]

Unlike ``floor.py`` (bytes back, nothing parsed) this does what a JSON-RPC host must do for
``echo(value)``: parse each request with orjson, check it names ``echo``, build the reply
object and serialise it with orjson. Like bridge, it reads what the pipe holds and answers
everything it read with one write, so the two pay the same system calls per call. No
concurrency, no validation, no errors beyond -32601: the cost of the work itself.
``--each`` writes each reply on its own instead, as ``floor.py`` does and as the floor
the performance issue's targets were first set against did (a system call per message).
"""

from __future__ import annotations

import functools
import os
import sys

import orjson

READY = b'{"jsonrpc":"2.0","method":"$/ready","params":{}}'
CHUNK = 1 << 20


def reply(body: bytes) -> bytes:
    """The reply's JSON, or b"" for a notification (no id: no reply)."""
    msg = orjson.loads(body)
    if "id" not in msg:
        return b""
    if msg.get("method") == "echo":
        answer = {"jsonrpc": "2.0", "id": msg["id"], "result": msg["params"]["value"]}
    else:
        answer = {"jsonrpc": "2.0", "id": msg.get("id"), "error": {"code": -32601, "message": "Method not found"}}
    return orjson.dumps(answer)


def serve_ndjson(read, write, each: bool) -> None:
    write(READY + b"\n")
    buf = bytearray()
    while chunk := read(CHUNK):
        if buf or not chunk.endswith(b"\n"):  # a message split across reads: gather it
            buf += chunk
            end = buf.rfind(b"\n")
            if end < 0:
                continue
            chunk, buf = bytes(buf[:end + 1]), buf[end + 1:]
        lines = chunk.split(b"\n")
        lines.pop()
        if each:
            for line in lines:
                if line.strip() and (body := reply(line)):
                    write(body + b"\n")
        else:
            out = b"".join([body + b"\n" for line in lines if line.strip() and (body := reply(line))])
            if out:
                write(out)


def serve_lsp(read, write, each: bool) -> None:
    write(b"Content-Length: %d\r\n\r\n" % len(READY) + READY)
    buf = bytearray()
    need = 0  # bytes the message being gathered still needs before it is worth parsing
    while chunk := read(CHUNK):
        buf += chunk
        if len(buf) < need:
            continue
        need = 0
        out = []
        at = 0
        while (end := buf.find(b"\r\n\r\n", at)) >= 0:
            length = 0
            for line in bytes(buf[at:end]).split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if end + 4 + length > len(buf):
                need = end + 4 + length - at
                break
            body = reply(bytes(buf[end + 4:end + 4 + length]))
            at = end + 4 + length
            if not body:
                continue
            frame = b"Content-Length: %d\r\n\r\n" % len(body) + body
            if each:
                write(frame)
            else:
                out.append(frame)
        del buf[:at]
        if out:
            write(b"".join(out))


def write_all(data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(1, view):]


def main() -> None:
    args = sys.argv[1:]
    framing = args[args.index("--framing") + 1] if "--framing" in args else "ndjson"
    read = functools.partial(os.read, 0)
    each = "--each" in args
    if framing == "ndjson":
        serve_ndjson(read, write_all, each)
    elif framing == "lsp":
        serve_lsp(read, write_all, each)
    else:
        sys.exit(f"floor_json.py: unknown framing {framing!r}")


if __name__ == "__main__":
    try:
        main()
    except (BrokenPipeError, KeyboardInterrupt):
        pass
