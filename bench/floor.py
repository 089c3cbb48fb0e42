"""The floor: the leanest Python echo over stdin/stdout, one message in, same bytes out.

Usage: python bench/floor.py --framing ndjson|lsp

No JSON is parsed; each message is written back with one flush, so this is the
cost of Python plus the pipes, which no JSON-RPC host can beat per message.
"""

import io
import sys

READY = b'{"jsonrpc":"2.0","method":"$/ready","params":{}}'
BUFFER = 1 << 16


def serve_ndjson(readline, write, flush) -> None:
    write(READY + b"\n")
    flush()
    while True:
        line = readline()
        if not line:
            return
        write(line)
        flush()


def serve_lsp(readline, read, write, flush) -> None:
    write(b"Content-Length: %d\r\n\r\n" % len(READY) + READY)
    flush()
    while True:
        header = b""
        length = 0
        while True:
            line = readline()
            if not line:
                return
            if line == b"\r\n":
                break
            header += line
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        body = read(length)
        if len(body) < length:
            return
        write(header + b"\r\n")
        write(body)
        flush()


def main() -> None:
    args = sys.argv[1:]
    framing = args[args.index("--framing") + 1] if "--framing" in args else "ndjson"
    stdin = io.open(sys.stdin.fileno(), "rb", buffering=BUFFER, closefd=False)
    stdout = io.open(sys.stdout.fileno(), "wb", buffering=BUFFER, closefd=False)
    if framing == "ndjson":
        serve_ndjson(stdin.readline, stdout.write, stdout.flush)
    elif framing == "lsp":
        serve_lsp(stdin.readline, stdin.read, stdout.write, stdout.flush)
    else:
        sys.exit(f"floor.py: unknown framing {framing!r}")


if __name__ == "__main__":
    try:
        main()
    except (BrokenPipeError, KeyboardInterrupt):
        pass
