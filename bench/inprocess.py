"""One ``Connection`` fed pipelined calls in process: no pipe, no driver, only the host's work.

Each round feeds one read of ``--chunk`` calls (as the input would) and runs the loop until
every reply has been written; the writer checks each reply against the call's. Used alone it
prints the best of ``--reps`` timings in CPU microseconds a call; bench/instructions.py runs it
under callgrind, where the count of instructions does not depend on what else the machine runs.

    .venv/bin/python bench/inprocess.py [--app bench.echo_app:app] [--method echo]
        [--params '{"value": 1}'] [--framing ndjson|lsp] [--chunk 128] [--rounds 2000] [--reps 5]

``--reps 0`` runs the warm-up and ``--rounds`` once, untimed (what callgrind counts).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import time
from typing import Any

import orjson
import uvloop

from bridge.connection import Connection
from bridge.settings import Settings

WARM_UP = 200  # rounds before any is counted: every method prepared, every ring grown


class _Input:
    """What the connection pauses and resumes; the bytes come from ``feed``."""

    def __init__(self) -> None:
        self.attached = asyncio.Event()  # the connection serves from then on

    def attach(self, conn: Connection) -> None:
        self.attached.set()

    def pause(self) -> None:
        pass

    def resume(self) -> None:
        pass


class _Output:
    """Counts the replies of a round, checking each, and says when they are all in."""

    def __init__(self, framing: str, expected: Any) -> None:
        self.lsp = framing == "lsp"
        self.expected = expected
        self.result = b'"result":' + orjson.dumps(expected)
        self.seen = 0
        self.want = 0
        self.done: asyncio.Future[None] | None = None

    def write(self, data: bytes) -> None:
        """Count the replies; check the first of each write whole (checking all would be a tenth
        of what is measured) and that each carries the expected result."""
        if self.lsp:
            replies = data.count(b"Content-Length: ")
            first = data[data.index(b"\r\n\r\n") + 4:].split(b"Content-Length: ", 1)[0]
        else:
            replies = data.count(b"\n")
            first = data[:data.index(b"\n")]
        reply = orjson.loads(first)
        if reply.get("result") != self.expected or data.count(self.result) != replies:
            if self.done is not None and not self.done.done():
                self.done.set_exception(AssertionError(f"unexpected reply {reply!r}"))
        self.seen += replies
        if self.done is not None and self.seen >= self.want and not self.done.done():
            self.done.set_result(None)

    async def drain(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0


def chunk(method: str, params: Any, first_id: int, count: int, framing: str) -> bytes:
    """``count`` calls, as one read of the input."""
    bodies = [orjson.dumps({"jsonrpc": "2.0", "id": first_id + i, "method": method, "params": params})
              for i in range(count)]
    if framing == "lsp":
        return b"".join(b"Content-Length: %d\r\n\r\n%s" % (len(body), body) for body in bodies)
    return b"\n".join(bodies) + b"\n"


async def drive(app: Any, method: str, params: Any, expected: Any, framing: str, size: int, rounds: int,
                reps: int) -> float | None:
    """The best CPU microseconds a call over ``reps`` runs of ``rounds`` (None if ``reps`` is 0)."""
    output = _Output(framing, expected)
    source = _Input()
    conn = Connection(app, Settings(ready=False, framing=framing), source, output)
    serving = asyncio.ensure_future(conn.run())
    await source.attached.wait()
    loop = asyncio.get_running_loop()
    reads = [chunk(method, params, r * size, size, framing) for r in range(64)]  # ids vary; parsing is the same

    async def feed(count: int) -> None:
        for r in range(count):
            output.want = output.seen + size
            output.done = loop.create_future()
            conn.feed(reads[r % len(reads)])
            await output.done

    await feed(WARM_UP)
    best = None
    for _ in range(max(reps, 1)):
        cpu = time.process_time()
        await feed(rounds)
        us = (time.process_time() - cpu) / (rounds * size) * 1e6
        best = us if best is None else min(best, us)
    conn.eof()
    await serving
    return best if reps else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--app", default="bench.echo_app:app")
    parser.add_argument("--method", default="echo")
    parser.add_argument("--params", default='{"value": 1}', help="the params of every call, as JSON")
    parser.add_argument("--result", default="1", help="the result every reply must have, as JSON")
    parser.add_argument("--framing", choices=("ndjson", "lsp"), default="ndjson")
    parser.add_argument("--chunk", type=int, default=128, help="calls a read (bridge's default max in flight)")
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    module, _, name = args.app.partition(":")
    app = getattr(importlib.import_module(module), name)
    best = uvloop.run(drive(app, args.method, orjson.loads(args.params), orjson.loads(args.result),
                            args.framing, args.chunk, args.rounds, args.reps))
    if best is not None:
        print(f"{best:.3f} us of CPU a call ({args.app} {args.method}, {args.framing})")


if __name__ == "__main__":
    main()
