"""Test helpers: run a Connection in-process over memory, or spawn the real host."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import anyio
import orjson

from bridge import Bridge, Settings
from bridge.connection import Connection

ROOT = Path(__file__).resolve().parent.parent
#: What ``spawn`` and ``Host`` serve when their arguments name no app (``bridge serve`` requires one).
DEMO_APP = "bridge.builtins.demo:app"


class MemoryReader:
    """Feeds chunks to a connection; EOF once closed (at once unless ``keep_open``)."""

    def __init__(self, chunks: Iterable[bytes] = (), *, keep_open: bool = False) -> None:
        self._send, self._receive = anyio.create_memory_object_stream[bytes](1 << 30)
        for chunk in chunks:
            self._send.send_nowait(chunk)
        if not keep_open:
            self._send.close()

    def feed(self, chunk: bytes) -> None:
        self._send.send_nowait(chunk)

    def close(self) -> None:
        self._send.close()

    def pending(self) -> int:
        return self._receive.statistics().current_buffer_used

    async def read(self, n: int = -1) -> bytes:
        try:
            return await self._receive.receive()
        except anyio.EndOfStream:
            return b""


class MemoryWriter:
    def __init__(self) -> None:
        self.data = bytearray()
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.data += data
        self.chunks.append(data)

    async def drain(self) -> None:
        return None

    def is_closing(self) -> bool:
        return False


async def exchange(app: Bridge, *chunks: bytes, **settings: Any) -> list[Any]:
    """Run ``app`` over ``chunks`` until EOF; return every message it wrote, parsed."""
    settings.setdefault("ready", False)
    settings.setdefault("framing", "ndjson")
    writer = MemoryWriter()
    conn = Connection(app, Settings(**settings), MemoryReader(chunks), writer)
    with anyio.fail_after(10):
        await conn.run()
    return [orjson.loads(line) for line in bytes(writer.data).splitlines() if line]


def lines(*messages: Any) -> bytes:
    return b"".join(orjson.dumps(m) + b"\n" for m in messages)


def python() -> str:
    return os.environ.get("BRIDGE_PYTHON", sys.executable)


def spawn(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start the real host: ``python -m bridge serve ARGS`` in the repository root. ARGS are an app
    then flags, or only flags, which serve ``DEMO_APP``."""
    if not args or args[0].startswith("-"):
        args = (DEMO_APP, *args)
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.Popen(
        [python(), "-m", "bridge", "serve", *args],
        cwd=ROOT, env=full_env,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


class Host:
    """The real ``python -m bridge serve`` over pipes, read by a thread so every wait has a timeout."""

    def __init__(
        self, *args: str, env: dict[str, str] | None = None, framing: str = "ndjson", read: bool = True,
        keep_raw: bool = True,
    ) -> None:
        import queue
        import threading

        self.framing = framing
        self.keep_raw = keep_raw
        self.proc = spawn(*args, "--framing", framing, env=env) if framing != "auto" else spawn(*args, env=env)
        self.messages: queue.Queue[Any] = queue.Queue()
        self.raw = bytearray()
        self.stderr = bytearray()
        self._threads = [
            threading.Thread(target=self._pump_stdout, daemon=True),
            threading.Thread(target=self._pump_stderr, daemon=True),
        ]
        self._threads[1].start()
        if read:
            self.start_reading()

    def start_reading(self) -> None:
        """Begin reading the host's stdout (a test of backpressure starts late)."""
        self._threads[0].start()

    def _pump_stdout(self) -> None:
        from bridge.framing import decoder

        dec = decoder("auto", 1 << 30)
        while chunk := self.proc.stdout.read1(1 << 16):  # type: ignore[union-attr]
            if self.keep_raw:
                self.raw += chunk
            for body in dec.feed(chunk):
                self.messages.put(orjson.loads(body))
        self.messages.put(EOFError())

    def _pump_stderr(self) -> None:
        while chunk := self.proc.stderr.read1(1 << 16):  # type: ignore[union-attr]
            self.stderr += chunk

    def send_raw(self, data: bytes) -> None:
        self.proc.stdin.write(data)  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]

    def send(self, *messages: Any) -> None:
        from bridge.framing import ENCODERS

        encode = ENCODERS["lsp" if self.framing == "lsp" else "ndjson"]
        self.send_raw(b"".join(encode(orjson.dumps(m)) for m in messages))

    def recv(self, timeout: float = 10.0) -> Any:
        message = self.messages.get(timeout=timeout)
        if isinstance(message, EOFError):
            raise EOFError(f"host closed its output; stderr:\n{self.stderr.decode(errors='replace')}")
        return message

    def recv_until(self, predicate, timeout: float = 10.0) -> tuple[Any, list[Any]]:
        """The first message matching ``predicate`` and the ones seen before it."""
        seen = []
        while True:
            message = self.recv(timeout)
            if predicate(message):
                return message, seen
            seen.append(message)

    def reply(self, id: Any, timeout: float = 10.0) -> Any:
        return self.recv_until(lambda m: isinstance(m, dict) and m.get("id") == id and "method" not in m, timeout)[0]

    def call(self, method: str, params: Any = None, id: Any = 1) -> Any:
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(message)
        return self.reply(id)

    def wait_stderr(self, text: bytes, timeout: float = 10.0) -> None:
        """Wait until the host has logged ``text`` (the only window into its state)."""
        import time

        deadline = time.monotonic() + timeout
        while text not in self.stderr:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{text!r} not in stderr:\n{self.stderr.decode(errors='replace')}")
            time.sleep(0.005)

    def close_stdin(self) -> None:
        self.proc.stdin.close()  # type: ignore[union-attr]

    def wait(self, timeout: float = 10.0) -> int:
        return self.proc.wait(timeout)

    def __enter__(self) -> Host:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        for thread in self._threads:
            if thread.is_alive():
                thread.join(5)
        if exc and exc[0] is not None and self.stderr:  # a failing test shows what the host said (pytest prints it)
            sys.stderr.write(f"the host's stderr:\n{self.stderr.decode(errors='replace')}\n")
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                stream.close()  # type: ignore[union-attr]
            except OSError:
                pass


def gone(pid: int) -> bool:
    """The process has exited (a zombie waiting to be reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False


class Notifications:
    """Stands in for a Connection where only notifications matter: records what is sent."""

    closed = False

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    def notify(self, method: str, params: Any = None) -> None:
        self.sent.append((method, params))

    def events(self, name: str) -> list[Any]:
        return [p for m, p in self.sent if m == name]
