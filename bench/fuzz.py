"""Hostile input against the real host, with liveness probes between the inputs.

Usage: python bench/fuzz.py [--framing ndjson,lsp] [--minutes 1] [--max-inputs N] [--seed S]
                            [--probe-every N] [--deadline S] [--without KINDS] [--json FILE] [--log-dir DIR]

For each framing in turn, spawns ``python -m bridge serve tests.e2e_app:app`` with a
1 MiB message limit and writes a weighted mix of hostile inputs (random bytes, broken
JSON, wrong types, deep nesting, huge numbers, oversize messages, batches, junk control
notifications and ``$caller``, broken LSP headers, fuzzed calls to every method). Every
few inputs it sends a probe, ``rpc.ping`` (every third one ``system.ping`` from a caller
of its own), right after the junk, and its reply must come within ``--deadline``.

Each input is closed before a probe: NDJSON input ends in a newline; for LSP, a body a
valid header declared (at most the limit) but the input did not deliver is completed by
filler. A header the protocol refuses (no length, not digits, over the limit) is owed
nothing, so a decoder that claims bytes on its word swallows the probe and is caught.

A failure is a crash, a probe unanswered or answered with an error, input not read for
``2 * --deadline`` seconds, or output that is not a JSON message. Each one is written to
``--log-dir`` (the host's stderr tail and the last inputs, also as raw bytes for replay)
and the host is restarted. Exit code 1 if there was any.

The host runs from the tree this file is in; while others edit that tree, run a copy of it
(``git archive HEAD | tar -x -C DIR``, then ``DIR/bench/fuzz.py``) so a restart never meets a
half-written file.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from bridge.framing import FrameError, decoder, encode_lsp  # noqa: E402

APP = "tests.e2e_app:app"
LIMIT = 1 << 20  # the host's --max-message-bytes: oversize inputs stay cheap
MAX_BATCH = 1000  # the host's default --max-batch
PROBE = "probe-"
KEEP_INPUTS = 200  # inputs kept for a failure's log


def python() -> str:
    return os.environ.get("BRIDGE_PYTHON", sys.executable)


class Died(Exception):
    """The host exited (or closed its input)."""


class Stalled(Exception):
    """The host did not read its input within the deadline."""


class WontStart(Exception):
    """A (re)started host never sent ``$/ready``."""


class Host:
    """``python -m bridge serve`` over pipes: stdout decoded and stderr kept by threads, memory sampled."""

    def __init__(self, framing: str, workdir: Path) -> None:
        env = {
            **os.environ, "PYTHONUNBUFFERED": "1",
            "BRIDGE_AUDIT_DIR": str(workdir / "audit"), "BRIDGE_CACHE_DIR": str(workdir / "cache"),
        }
        self.framing = framing
        self.proc = subprocess.Popen(
            [python(), "-m", "bridge", "serve", APP, "--framing", framing, "--max-message-bytes", str(LIMIT)],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self._stdin = self.proc.stdin.fileno()  # type: ignore[union-attr]
        os.set_blocking(self._stdin, False)
        self._cond = threading.Condition()
        self.replies: dict[str, Any] = {}
        self.ready = False
        self.eof = False
        self.out_messages = 0
        self.out_bytes = 0
        self.bad_output: list[str] = []
        self.stderr_tail = bytearray()
        self.stderr_bytes = 0
        self.rss_kib = self.hwm_kib = 0
        self._threads = [
            threading.Thread(target=f, daemon=True) for f in (self._read_stdout, self._read_stderr, self._sample)
        ]
        for thread in self._threads:
            thread.start()

    def _read_stdout(self) -> None:
        dec = decoder(self.framing, 1 << 30)  # type: ignore[arg-type]
        while chunk := self.proc.stdout.read1(1 << 16):  # type: ignore[union-attr]
            self.out_bytes += len(chunk)
            for body in dec.feed(chunk):
                if isinstance(body, FrameError):
                    self.bad_output.append(repr(body))
                    continue
                try:
                    msg = orjson.loads(body)
                except orjson.JSONDecodeError:
                    self.bad_output.append(repr(body[:300]))
                    continue
                self.out_messages += 1
                if type(msg) is not dict:
                    continue
                id = msg.get("id")
                if type(id) is str and id.startswith(PROBE) or msg.get("method") == "$/ready":
                    with self._cond:
                        if id is None:
                            self.ready = True
                        else:
                            self.replies[id] = msg
                        self._cond.notify_all()
        with self._cond:
            self.eof = True
            self._cond.notify_all()

    def _read_stderr(self) -> None:
        while chunk := self.proc.stderr.read1(1 << 16):  # type: ignore[union-attr]
            self.stderr_bytes += len(chunk)
            self.stderr_tail += chunk
            if len(self.stderr_tail) > 1 << 18:
                del self.stderr_tail[: -(1 << 17)]

    def _sample(self) -> None:
        while self.proc.poll() is None:
            self.read_memory()
            time.sleep(0.2)

    def read_memory(self) -> None:
        """VmRSS now and VmHWM (the kernel's own peak) from /proc."""
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                self.rss_kib = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                self.hwm_kib = max(self.hwm_kib, int(line.split()[1]))

    def wait_ready(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.ready or self.eof, timeout) and self.ready

    def write(self, data: bytes, deadline: float) -> None:
        """Write all of ``data``; ``Stalled`` if the host reads none of it for ``deadline`` seconds."""
        view = memoryview(data)
        while view:
            _, writable, _ = select.select([], [self._stdin], [], deadline)
            if not writable:
                raise Stalled(f"{len(view)} of {len(data)} bytes unread after {deadline} s")
            try:
                view = view[os.write(self._stdin, view[: 1 << 16]) :]
            except BlockingIOError:
                continue
            except (BrokenPipeError, OSError) as exc:
                raise Died(str(exc)) from exc

    def reply(self, id: str, timeout: float) -> Any:
        """The reply to ``id``, or None if none came in ``timeout`` seconds or the host closed its output."""
        with self._cond:
            self._cond.wait_for(lambda: id in self.replies or self.eof, timeout)
            return self.replies.pop(id, None)

    def dead(self) -> bool:
        return self.proc.poll() is not None

    def stderr_text(self, last: int = 6000) -> str:
        return bytes(self.stderr_tail[-last:]).decode(errors="replace")

    def close(self, grace: float) -> int | None:
        """Close the input and wait for a clean exit; kill after ``grace`` seconds. The exit code, None if killed."""
        try:
            self.proc.stdin.close()  # type: ignore[union-attr]
        except OSError:
            pass
        try:
            code: int | None = self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            code = None
            self.kill()
        self._join()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._join()

    def _join(self) -> None:
        for thread in self._threads:
            thread.join(5)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                stream.close()  # type: ignore[union-attr]
            except OSError:
                pass


def dumps(value: Any) -> bytes:
    """JSON as a client might write it: the standard library's, which takes any int and NaN."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")


LSP_CASES = [
    "bare_lf", "mixed_line_ends", "no_length", "negative", "not_digits", "over_limit", "duplicated", "block_too_long",
    "cut_short", "length_short", "length_over", "junk_before", "odd_spelling", "other_headers", "zero", "glued",
    "header_tail", "many_frames", "split_name", "hostile_body",
]


class Hostile:
    """The inputs: ``next()`` gives (kind, bytes, owed).

    ``owed`` is the body bytes a header valid by the protocol declared and the input left out.
    """

    def __init__(self, rng: random.Random, framing: str, without: frozenset[str] = frozenset()) -> None:
        self.rng = rng
        self.framing = framing
        self.ids = 0
        self.last_id: Any = None
        self.label = ""  # which way a framing input is broken
        self.paced: deque[Any] = deque()  # ids of paced streams that may be waiting for credit
        self.kinds: list[tuple[str, Any, float]] = [
            ("valid_call", self.valid_call, 15), ("notification", self.notification, 4),
            ("wrong_types", self.wrong_types, 10), ("garbled_json", self.garbled_json, 10),
            ("random_bytes", self.random_bytes, 8), ("batch", self.batch, 6),
            ("unknown_method", self.unknown_method, 5), ("cancel_junk", self.cancel_junk, 5),
            ("credit_junk", self.credit_junk, 5), ("caller_junk", self.caller_junk, 6),
            ("deep_nesting", self.deep_nesting, 4), ("huge_numbers", self.huge_numbers, 5),
            ("encoding", self.encoding, 4), ("oversize", self.oversize, 1.5),
        ]
        if framing == "lsp":
            self.kinds.append(("lsp_header", self.lsp_header, 14))
        else:
            self.kinds.append(("ndjson_lines", self.ndjson_lines, 8))
        self.kinds = [k for k in self.kinds if k[0] not in without]
        self._names = [k[0] for k in self.kinds]
        self._weights = [k[2] for k in self.kinds]
        self._by_name = {k[0]: k[1] for k in self.kinds}

    def next(self) -> tuple[str, bytes, int]:
        if len(self.paced) > 8:  # streams nobody credits hold call slots: cancel the oldest
            cancel = self.request("$/cancelRequest", {"id": self.paced.popleft()}, notify=True)
            return "cancel_junk", self.frame(cancel), 0
        kind = self.rng.choices(self._names, self._weights)[0]
        out = self._by_name[kind]()
        if isinstance(out, tuple):
            return f"{kind}/{self.label}", out[0], out[1]
        return kind, self.frame(out), 0

    def frame(self, body: bytes) -> bytes:
        return encode_lsp(body) if self.framing == "lsp" else body + b"\n"

    # ---- values ---------------------------------------------------------

    def new_id(self) -> Any:
        self.ids += 1
        r = self.rng.random()
        if r < 0.5:
            return self.ids
        if r < 0.8:
            return f"f-{self.ids}"
        if r < 0.9:
            return self.ids - self.rng.randrange(1, 50)  # maybe a duplicate of one in flight
        return self.rng.choice([0, -1, 1.5, 2**53 + 1, 2**63 - 1, "", " ", "é" * 3, f"f-{self.ids}" * 200])

    def text(self, max_len: int = 40) -> str:
        alphabet = self.rng.choice([
            "abcxyz", "0123456789", " \t\r\n\"\\/{}[],:", "éü中文😀\u0000\u2028\u2029\ufeff", "\\u0041\\ud800",
        ])
        return "".join(self.rng.choice(alphabet) for _ in range(self.rng.randrange(max_len + 1)))

    def junk_value(self, depth: int = 0) -> Any:
        r = self.rng.randrange(12 if depth < 3 else 9)
        return [
            lambda: None, lambda: self.rng.random() < 0.5, lambda: self.rng.randint(-5, 5),
            lambda: self.rng.choice([2**31, 2**53, 2**63 - 1, -(2**63), 2**64, 10**30, -(10**30)]),
            lambda: self.rng.choice([0.0, -0.0, 1.5, 1e-320, 1.7976931348623157e308, 5e-324, -1e308]),
            self.text, lambda: "x" * self.rng.choice([0, 1, 1000, 65536]), lambda: [], lambda: {},
            lambda: [self.junk_value(depth + 1) for _ in range(self.rng.randrange(5))],
            lambda: {self.text(8): self.junk_value(depth + 1) for _ in range(self.rng.randrange(5))},
            lambda: {"$meta": self.junk_value(depth + 1)},
        ][r]()

    def no_number(self) -> Any:
        """A wrong value for a numeric param that lax validation cannot turn into a big number."""
        return self.rng.choice([None, "abc", "", [], {}, [1], {"seconds": 1}, "1.5.5", "-", "0x10"])

    # ---- messages -------------------------------------------------------

    def request(self, method: Any, params: Any = None, *, notify: bool = False, **extra: Any) -> bytes:
        msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if not notify:
            msg["id"] = self.last_id = self.new_id()
        if params is not None:
            msg["params"] = params
        msg.update(extra)
        return dumps(msg)

    def params_for(self, method: str) -> Any:
        """Params for a method of tests/e2e_app.py: mostly plausible, sometimes of the wrong type or shape.

        Numbers that size work (sleeps, blocking, stream lengths) stay small: a handler asked
        to sleep a day or block the loop is the app's choice, not the host's fault.
        """
        rng = self.rng
        good = rng.random() < 0.7
        if method in ("hog", "slow"):
            limit = 0.01 if method == "hog" else 0.5
            value = rng.uniform(0, limit) if good else self.no_number()
            return rng.choice([{"seconds": value}, [value]])
        if method in ("cached_pid", "lookup", "forget"):
            value = self.text(rng.choice([10, 200, 5000])) if good else self.junk_value()
            return rng.choice([{"key": value}, [value], {"key": value, "extra": 1}, {}])
        if method == "square":
            if good:
                values = [rng.randint(-(2**31), 2**31) for _ in range(rng.choice([0, 1, 10, 1000]))]
            else:
                values = rng.choice([[1.5], ["a"], [None], [[1]], [2**64], [10**30], "1,2", {}, [True]])
            return rng.choice([{"values": values}, [values]])
        if method == "export":
            n, width = (rng.randrange(200), rng.randrange(200)) if good else (self.no_number(), rng.randrange(10))
            params: dict[str, Any] = {"n": n, "width": width}
            if rng.random() < 0.3:
                pacing = rng.choice([{"window": rng.randint(1, 4)}, {}, {"window": 0}, {"window": -1}, "x", None])
                params["$meta"] = {"stream": pacing}
            return params
        if method == "set_health":
            return {"up": rng.random() < 0.8} if good else {"up": self.junk_value()}
        return rng.choice([None, {}, [], [1], {"unexpected": self.junk_value()}]) if not good else None

    def call(self, method: str, params: Any, *, notify: bool = False, **extra: Any) -> bytes:
        body = self.request(method, params, notify=notify, **extra)
        if method == "export" and type(params) is dict and type(params.get("$meta")) is dict and not notify:
            self.paced.append(self.last_id)
        return body

    METHODS = [
        "system.ping", "hog", "slow", "cached_pid", "lookup", "change", "forget", "scarce", "square",
        "batch_count", "export", "fragile", "set_health", "rpc.discover", "rpc.metrics", "rpc.ping",
    ]

    def method(self, *, in_batch: bool = False) -> str:
        """A method to call; ``in_batch``: not ``hog`` (which blocks the loop) nor ``polluter``."""
        if not in_batch and self.rng.random() < 0.002:
            return "polluter"  # spawns a child process: rare
        methods = self.METHODS if not in_batch else [m for m in self.METHODS if m != "hog"]
        return self.rng.choice(methods)

    def valid_call(self) -> bytes:
        method = self.method()
        return self.call(method, self.params_for(method))

    def notification(self) -> bytes:
        method = self.method()
        return self.call(method, self.params_for(method), notify=True)

    def wrong_types(self) -> bytes:
        rng = self.rng
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": self.new_id(), "method": "system.ping"}
        field = rng.choice(["jsonrpc", "id", "method", "params", "extra", "whole"])
        if field == "jsonrpc":
            choice = rng.choice([None, "1.0", 2.0, 2, "2.0 ", ["2.0"], {}, "", "missing"])
            if choice == "missing":
                del msg["jsonrpc"]
            else:
                msg["jsonrpc"] = choice
        elif field == "id":
            msg["id"] = rng.choice([{}, {"a": 1}, [], [1], True, False, 1.5, None, "", "i" * 10000, -0.0, 2**64])
        elif field == "method":
            msg["method"] = rng.choice([1, None, {}, [], True, "", " ", "m" * 100000, "rpc.", "$/", "\u0000", 1.5])
        elif field == "params":
            msg["method"] = self.method(in_batch=True)
            msg["params"] = rng.choice(["str", 1, True, None, 1.5, "", [[[]]], {"$meta": self.junk_value()}])
        elif field == "extra":
            msg.update(rng.choice([
                {"result": 1}, {"error": {"code": 1, "message": "x"}}, {"error": "x"},
                {"method": None, "result": None}, {"jsonrpc": "2.0", "id": 1, "result": 1, "method": None},
            ]))
            if rng.random() < 0.5:
                msg.pop("method", None)
        else:
            return dumps(rng.choice([1, "str", None, True, {}, 1.5, {"jsonrpc": "2.0"}, {"id": 1}]))
        return dumps(msg)

    def garbled_json(self) -> bytes:
        rng = self.rng
        method = self.method(in_batch=True)  # not hog: "0.004" cut to "4" seconds blocks the loop
        body = bytearray(self.call(method, self.params_for(method)))
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(7)
            at = rng.randrange(len(body) + 1)
            if op == 0:
                del body[at:]
            elif op == 1 and body:
                body[min(at, len(body) - 1)] = rng.randrange(256)
            elif op == 2:
                body[at:at] = rng.choice([b'"', b"{", b"}", b"[", b"]", b",", b":", b"\\", b"\x00", b"\xff"])
            elif op == 3:
                del body[at : at + rng.randint(1, 10)]
            elif op == 4:
                body += rng.choice([b"}}}", b"]", b",", b" trailing", b'{"jsonrpc":"2.0"}'])
            elif op == 5:
                body[at:at] = body[: rng.randint(1, 30)]
            else:
                body = body.replace(b'"', b"'", 1)
        return bytes(body).replace(b"\n", b" ") if self.framing == "ndjson" and rng.random() < 0.5 else bytes(body)

    def random_bytes(self) -> bytes:
        return self.rng.randbytes(self.rng.choice([1, 2, 16, 100, 1000, 4096, 30000]))

    def deep_nesting(self) -> bytes:
        rng = self.rng
        depth = rng.choice([10, 100, 500, 1000, 1023, 1024, 1025, 5000, 100000, 400000])
        nest = b"[" * depth + b"]" * depth
        objects = b'{"a":' * min(depth, 50000) + b"1" + b"}" * min(depth, 50000)
        where = rng.randrange(7)
        head = b'{"jsonrpc":"2.0","id":%d,' % self.ids
        return [
            nest, objects,
            head + b'"method":"square","params":{"values":' + nest + b"}}",
            head + b'"method":"system.ping","$caller":' + objects + b"}",
            head + b'"method":"cached_pid","params":{"key":"k","$meta":' + objects + b"}}",
            head + b'"method":"lookup","params":[' + nest + b"]}",
            b"[" * min(depth, 2000) + head + b'"method":"rpc.ping"}' + b"]" * min(depth, 2000),
        ][where]

    def huge_numbers(self) -> bytes:
        rng = self.rng
        big = rng.choice([
            b"1" * 30, b"9" * 400, b"-" + b"9" * 400, b"1e999", b"-1e999", b"1e-999", b"0.%s1" % (b"0" * 1000),
            b"18446744073709551616", b"-9223372036854775809", b"1" * 100000, b"1E+308", b"-0", b"NaN",
            b"Infinity", b"1.7976931348623159e308",
        ])
        where = rng.randrange(5)
        if where == 0:
            return b'{"jsonrpc":"2.0","id":' + big + b',"method":"rpc.ping"}'
        if where == 1:
            return b'{"jsonrpc":"2.0","id":%d,"method":"square","params":{"values":[' % self.ids + big + b"]}}"
        if where == 2:
            return b'{"jsonrpc":"2.0","method":"$/stream/credit","params":{"id":1,"credit":' + big + b"}}"
        if where == 3:
            return b'{"jsonrpc":"2.0","id":%d,"method":"export","params":{"n":1,"width":' % self.ids + big + b"}}"
        return big

    def oversize(self) -> bytes:
        rng = self.rng
        size = rng.choice([
            LIMIT - 1, LIMIT, LIMIT + 1, LIMIT - rng.randrange(1, 1000), LIMIT + rng.randrange(1, 1000),
            2 * LIMIT, 3 * LIMIT + 7,
        ])
        head = b'{"jsonrpc":"2.0","id":%d,"method":"cached_pid","params":{"key":"' % self.ids
        tail = b'"}}'
        return head + b"x" * max(0, size - len(head) - len(tail)) + tail

    def batch(self) -> bytes:
        rng = self.rng
        kind = rng.randrange(8)
        if kind == 0:
            return rng.choice([b"[]", b"[ ]", b"[[]]", b"[1,2,3]", b"[null]", b'["x"]', b"[{}]", b"[[{}]]"])
        if kind == 1:  # more entries than --max-batch
            count = rng.choice([MAX_BATCH + 1, 2 * MAX_BATCH, 10000])
            return b"[" + b",".join(b'{"jsonrpc":"2.0","method":"rpc.ping"}' for _ in range(count)) + b"]"
        if kind == 2:
            methods = [self.method(in_batch=True) for _ in range(rng.choice([1, 2, 10, 100, MAX_BATCH]))]
            entries = [self.request(m, self.params_for(m)) for m in methods]
        elif kind == 3:
            entries = [
                dumps(self.junk_value()) if rng.random() < 0.5 else self.wrong_types()
                for _ in range(rng.randint(1, 50))
            ]
        elif kind == 4:  # notifications only: nothing to answer
            methods = [self.method(in_batch=True) for _ in range(rng.randint(1, 50))]
            entries = [self.request(m, self.params_for(m), notify=True) for m in methods]
        elif kind == 5:  # duplicate ids, and cancels of the batch's own ids
            id = self.new_id()
            entries = [dumps({"jsonrpc": "2.0", "id": id, "method": "slow", "params": {"seconds": 0.05}})] * 5
            entries.append(dumps({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": id}}))
        elif kind == 6:
            kinds = ("valid_call", "cancel_junk", "credit_junk", "unknown_method", "garbled_json")
            entries = [self._by_name.get(k, self.valid_call)() for k in kinds]
        else:
            return b"[" + self.batch() + b"]"
        return b"[" + b",".join(entries) + b"]"

    def unknown_method(self) -> bytes:
        rng = self.rng
        name = rng.choice([
            "rpc.nope", "$/nope", "system.", "slow.x", "__class__", "__init__", "constructor", "toString",
            "hasOwnProperty", "../etc/passwd", "SLOW", " slow", "slow ", "rpc.ping.", "$/ready", "$/progress",
            "$/cancelRequest ", self.text(30),
        ])
        return self.request(name, rng.choice([None, {}, [1], {"x": self.junk_value()}]), notify=rng.random() < 0.3)

    def cancel_junk(self) -> bytes:
        rng = self.rng
        junk = [None, self.ids, f"f-{self.ids}", {}, [], 1.5, "x" * 1000, self.junk_value()]
        target = self.paced.popleft() if self.paced and rng.random() < 0.3 else rng.choice(junk)
        params = rng.choice([{"id": target}] * 4 + [None, "str", [], [target], {}, 1, {"id": target, "extra": 1}])
        return self.request("$/cancelRequest", params, notify=rng.random() < 0.85)

    def credit_junk(self) -> bytes:
        rng = self.rng
        junk = [None, self.ids, f"f-{self.ids}", {}, [], self.junk_value()]
        target = self.paced[0] if self.paced and rng.random() < 0.3 else rng.choice(junk)
        credit = rng.choice([1, 2, 16, 0, -1, 2**30, 2**62, 2**64, 1.5, "5", True, None, 1e308, [], {}])
        params = rng.choice([{"id": target, "credit": credit}] * 4 + [None, "s", [], {"credit": 5}, {"id": target}, 7])
        return self.request("$/stream/credit", params, notify=rng.random() < 0.85)

    def caller_junk(self) -> bytes:
        rng = self.rng
        caller = rng.choice([
            None, "", "x" * 100000, 1, 1.5, True, [], {}, {"window": self.junk_value()},
            {"participant": self.junk_value()}, {"window": 1e308}, "connection:1", "window:1", self.text(50),
            self.junk_value(), {"window": 1, "participant": "p"},
        ])
        method = rng.choice(["system.ping", "slow", "scarce", "lookup", "export", "fragile"])
        params = self.params_for(method)
        if rng.random() < 0.5:
            return self.call(method, params, **{"$caller": caller})
        params = params if type(params) is dict else {}
        meta = rng.choice([{"caller": caller}, caller, {"caller": caller, "info": caller}])
        return self.call(method, {**params, "$meta": meta})

    def encoding(self) -> bytes:
        return self.rng.choice([
            b'{"jsonrpc":"2.0","id":1,"method":"\xff\xfe"}', b'{"jsonrpc":"2.0","id":1,"method":"\\ud800"}',
            b'{"jsonrpc":"2.0","id":"\\udfff\\ud800","method":"rpc.ping"}',
            b'{"jsonrpc":"2.0","id":1,"method":"rpc.ping\\u0000"}', b'{"jsonrpc":"2.0","id":1,"method":"\xc0\xaf"}',
            b'\xef\xbb\xbf{"jsonrpc":"2.0","id":1,"method":"rpc.ping"}',
            '{"jsonrpc":"2.0","id":1,"method":"rpc.ping"}'.encode("utf-16"),
            b'{"jsonrpc":"2.0","id":1,"method":"rpc.ping"}\x00',
            b'{"jsonrpc":"2.0","id":1,"method":"lookup","params":{"key":"\xed\xa0\x80"}}', b"\x00" * 100,
            b'{"jsonrpc":"2.0","id":1,"method":"rpc.ping","id":2}', b'{"jsonrpc":"2.0","id":1,"method":"rpc.ping",}',
        ])

    # ---- framing --------------------------------------------------------

    def small_body(self) -> bytes:
        return self.rng.choice([self.valid_call, self.wrong_types, self.garbled_json, self.unknown_method])()

    def ndjson_lines(self) -> tuple[bytes, int]:
        body = self.valid_call()
        self.label, data = self.rng.choice([
            ("blank", b"\n"), ("blank", b"   \n"), ("blank", b"\r\n"), ("blank", b"\t\t\n"), ("blank", b"\n" * 1000),
            ("crlf", body + b"\r\n"), ("two_on_a_line", body + self.valid_call() + b"\n"),
            ("inner_cr", body.replace(b",", b",\r", 1) + b"\n"), ("bom", b"\xef\xbb\xbf" + body + b"\n"),
            ("many_lines", b"1\n" * 1000), ("lsp_frame", encode_lsp(body) + b"\n"),
            ("leading_cr", b"\r" + body + b"\n"), ("cr_cr_lf", body + b"\r\r\n"),
        ])
        return data, 0

    def lsp_header(self) -> tuple[bytes, int]:
        """A header broken one way; owed is what a header valid by the protocol declared and the input left out."""
        rng = self.rng
        body = self.small_body()
        n = len(body)
        case = rng.randrange(len(LSP_CASES))
        self.label = LSP_CASES[case]
        if case == 0:  # bare LF line ends
            return b"Content-Length: %d\n\n" % n + body, 0
        if case == 1:
            return rng.choice([b"Content-Length: %d\r\n\n", b"Content-Length: %d\n\r\n"]) % n + body, 0
        if case == 2:  # no length
            head = rng.choice([
                b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n", b"\r\n\r\n", b"X: 1\n\n",
            ])
            return head + body, 0
        if case == 3:
            return b"Content-Length: -%d\r\n\r\n" % n + body, 0
        if case == 4:  # not digits
            value = rng.choice([
                b"abc", b"1e3", b"0x10", b"12abc", b"", b" ", b"+5", b"5.0", "١٢".encode(), b"1\x002", b"NaN", b"1 2",
                b"--1",
            ])
            return b"Content-Length: " + value + b"\r\n\r\n" + body, 0
        if case == 5:  # over the limit: refused, never waited for
            value = rng.choice([99999999999999, LIMIT + 1, 2**64, 10**100, 10 * LIMIT, 2**31, 2**63])
            return b"Content-Length: %d\r\n\r\n" % value + body[: rng.randrange(n + 1)], 0
        if case == 6:  # duplicated, maybe disagreeing
            a, b = n, rng.choice([n, n + 5, max(0, n - 5), 99999999999999])
            a, b = (a, b) if rng.random() < 0.5 else (b, a)
            declared = max((v for v in (a, b) if v <= LIMIT), default=0)
            return b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n" % (a, b) + body, max(0, declared - n)
        if case == 7:  # a header block over MAX_HEADER_BYTES
            pad = b"a" * rng.choice([8000, 8200, 20000])
            return rng.choice([b"X-Pad: " + pad + b"\r\n", pad]) + b"Content-Length: %d\r\n\r\n" % n + body, 0
        if case == 8:  # the header is cut short: the filler will end it
            return rng.choice([b"Content-Length: %d", b"Content-Length: %d\r\n", b"Content-Length: %d\r\n\r"]) % n, n
        if case == 9:  # the length is short of the body: the rest is junk
            return b"Content-Length: %d\r\n\r\n" % rng.randrange(n or 1) + body, 0
        if case == 10:  # the length is over the body: the rest is owed
            extra = rng.choice([1, 10, 1000, 100000])
            return b"Content-Length: %d\r\n\r\n" % (n + extra) + body, extra
        if case == 11:  # junk in front of a valid frame
            return self.rng.randbytes(rng.choice([1, 10, 100])) + encode_lsp(body), 0
        if case == 12:  # spellings the protocol allows, or nearly
            head = rng.choice([
                b"content-length:%d\r\n\r\n", b"CONTENT-LENGTH :  %d  \r\n\r\n", b"Content-Length:\t%d\r\n\r\n",
                b"Content-Length: 0000%d\r\n\r\n",
            ])
            return head % n + body, 0
        if case == 13:  # other headers around it
            return b"Content-Type: x\r\nContent-Length: %d\r\nX-Other: y\r\n\r\n" % n + body, 0
        if case == 14:
            return rng.choice([b"Content-Length: 0\r\n\r\n", b"Content-Length: 000\r\n\r\n"]), 0
        if case == 15:  # a header glued to the end of the previous body
            return encode_lsp(body)[:-1] + encode_lsp(self.valid_call()), 0
        if case == 16:  # only the end of a header
            return rng.choice([b"\r\n\r\n", b"\n\n", b"\r\n", b": 12\r\n\r\n", b"Length: 5\r\n\r\n"]) + body, 0
        if case == 17:  # many frames in one write
            return b"".join(encode_lsp(self.small_body()) for _ in range(rng.choice([10, 100]))), 0
        if case == 18:  # a header split in lines of junk
            return b"Content-\r\nLength: %d\r\n\r\n" % n + body, 0
        return b"Content-Length: %d\r\n\r\n" % n + body, 0  # a valid frame around a hostile body


class Run:
    """One framing's run: the host, the inputs, the probes and every figure."""

    def __init__(
        self, framing: str, args: argparse.Namespace, rng: random.Random, workdir: Path, log_dir: Path,
    ) -> None:
        self.framing = framing
        self.args = args
        self.rng = rng
        self.workdir = workdir
        self.log_dir = log_dir
        self.hostile = Hostile(rng, framing, frozenset(filter(None, args.without.split(","))))
        self.recent: deque[tuple[str, bytes]] = deque(maxlen=KEEP_INPUTS)
        self.kinds: Counter[str] = Counter()
        self.inputs = self.bytes = 0
        self.probes = self.answered = 0
        self.latencies: list[float] = []
        self.failures: list[dict[str, Any]] = []
        self.hosts = 0
        self.peak_kib = 0
        self.rss_start_kib = 0
        self.timeline: list[tuple[float, int]] = []
        self.out_messages = self.out_bytes = self.stderr_bytes = 0
        self.owed = 0
        self.stopped = False  # a restart failed: the run ends there
        try:
            self.host = self.start()
        except WontStart as exc:
            raise SystemExit(f"fuzz: the host did not start:\n{exc}") from None

    def start(self) -> Host:
        self.hosts += 1
        host = Host(self.framing, self.workdir)
        if not host.wait_ready(30):
            host.kill()
            raise WontStart(host.stderr_text())
        host.read_memory()
        if not self.rss_start_kib:
            self.rss_start_kib = host.rss_kib
        self.owed = 0
        return host

    def retire(self, host: Host) -> None:
        self.peak_kib = max(self.peak_kib, host.hwm_kib)
        self.out_messages += host.out_messages
        self.out_bytes += host.out_bytes
        self.stderr_bytes += host.stderr_bytes

    def fail(self, kind: str, detail: str) -> None:
        """Record a failure with the host's stderr and the last inputs, and start a fresh host."""
        host = self.host
        if host.dead():
            time.sleep(0.2)  # let the stderr thread take the last words
        n = len(self.failures) + 1
        stem = self.log_dir / f"{self.framing}-{n}-{kind}"
        record = {
            "kind": kind, "detail": detail, "at_input": self.inputs, "seconds": round(time.monotonic() - self.t0, 1),
            "exit": host.proc.poll(), "signature": signature(host.stderr_text(1 << 17)) if kind == "crash" else "",
            "stderr_tail": host.stderr_text(), "log": str(stem) + ".txt",
        }
        self.failures.append(record)
        lines = [
            f"{kind}: {detail}", f"after input {self.inputs}, {record['seconds']} s; host exit code {record['exit']}",
            f"signature: {record['signature']}", "", "--- stderr (tail) ---", record["stderr_tail"], "",
            f"--- the last {len(self.recent)} inputs, oldest first ---",
        ]
        for i, (k, data) in enumerate(self.recent):
            shown = data if len(data) <= 600 else data[:400] + b" ... " + data[-150:]
            lines.append(f"[{i}] {k} ({len(data)} bytes): {shown!r}")
        stem.with_suffix(".txt").write_text("\n".join(lines))
        raw = b"".join(data for _, data in self.recent)  # the exact bytes, for replay
        stem.with_suffix(".bin").write_bytes(raw[-(16 << 20) :])
        print(f"  {self.framing}: FAILURE {kind}: {detail} (log {stem}.txt)", file=sys.stderr)
        host.kill()
        self.retire(host)
        self.recent.clear()
        try:
            self.host = self.start()
        except WontStart as exc:  # say, the code under test was edited into a broken state mid-run
            detail = "a restarted host never became ready"
            self.failures.append({"kind": "startup", "detail": detail, "stderr_tail": str(exc)})
            self.stopped = True

    def send(self, data: bytes) -> bool:
        """Write ``data`` in a few pieces; False (failure recorded) if the host died or stalled."""
        pieces = [data]
        if len(data) > 1 and self.rng.random() < 0.3:
            cuts = sorted(self.rng.sample(range(1, len(data)), min(3, len(data) - 1)))
            pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]
        try:
            for piece in pieces:
                self.host.write(piece, 2 * self.args.deadline)
        except Stalled as exc:
            self.fail("stall", str(exc))
            return False
        except Died as exc:
            try:
                self.host.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
            self.fail("crash", f"input closed ({exc}); exit code {self.host.proc.poll()}")
            return False
        self.bytes += len(data)
        return True

    def probe(self) -> None:
        """Close the junk, send a probe and wait for its reply."""
        self.probes += 1
        id = f"{PROBE}{self.probes}"
        if self.probes % 3:
            msg, want = {"jsonrpc": "2.0", "id": id, "method": "rpc.ping"}, "pong"
        else:  # through admission, as a caller of its own (as another window would be)
            msg, want = {"jsonrpc": "2.0", "id": id, "method": "system.ping", "$caller": "fuzz-probe"}, "pong"
        closer = b""
        if self.framing == "lsp":
            owed = min(self.owed, LIMIT)
            closer = b"\r\n\r\n" + (b" " * owed + b"\r\n\r\n" if owed else b"")
        self.owed = 0
        body = orjson.dumps(msg)
        framed = encode_lsp(body) if self.framing == "lsp" else body + b"\n"
        since = [k for k, _ in self.recent]
        since = since[len(since) - since[::-1].index("probe") :] if "probe" in since else since
        self.recent.append(("probe", closer + framed))
        sent = time.monotonic()
        if not self.send(closer + framed):
            return
        reply = self.host.reply(id, self.args.deadline)
        if reply is None:
            if self.host.eof:  # the host closed its output: it is exiting
                try:
                    self.host.proc.wait(5)
                except subprocess.TimeoutExpired:
                    pass
            if self.host.dead():
                self.fail("crash", f"exit code {self.host.proc.poll()} (seen at probe {id})")
            else:
                self.fail("unanswered", f"{msg['method']} probe {id} not answered within {self.args.deadline} s;"
                                        f" sent after {', '.join(since)}")
        elif reply.get("result") != want:
            self.fail("probe_error", f"probe {id} answered {reply!r}")
        else:
            self.answered += 1
            self.latencies.append(time.monotonic() - sent)

    def run(self) -> dict[str, Any]:
        args = self.args
        self.t0 = time.monotonic()
        end = self.t0 + args.minutes * 60
        next_probe = self.rng.randint(1, 2 * args.probe_every)
        next_sample = self.t0
        while not self.stopped and time.monotonic() < end and self.inputs < args.max_inputs:
            kind, data, owed = self.hostile.next()
            self.recent.append((kind, data))
            self.inputs += 1
            self.kinds[kind] += 1
            self.owed += owed
            if not self.send(data):
                continue
            if self.host.dead():
                self.fail("crash", f"exit code {self.host.proc.poll()}")
                continue
            next_probe -= 1
            if next_probe <= 0:
                self.probe()
                next_probe = self.rng.randint(1, 2 * args.probe_every)
            if time.monotonic() >= next_sample:
                self.timeline.append((round(time.monotonic() - self.t0, 1), self.host.rss_kib))
                next_sample += 10
        host = self.host
        code = rss_end = None
        if not self.stopped:
            self.probe()  # the last junk too must leave the host answering
            host = self.host
            host.read_memory()
            rss_end = host.rss_kib
            code = host.close(grace=15)
            if code != 0:
                detail = f"exit code {code} after stdin closed"
                self.failures.append({"kind": "exit", "detail": detail, "stderr_tail": host.stderr_text()})
            self.retire(host)
        duration = time.monotonic() - self.t0
        bad_output = host.bad_output
        if bad_output:
            detail = f"{len(bad_output)} bodies that are not JSON"
            self.failures.append({"kind": "bad_output", "detail": detail, "examples": bad_output[:5]})
        lat = sorted(self.latencies)
        count = Counter(f["kind"] for f in self.failures)
        return {
            "framing": self.framing, "inputs": self.inputs, "bytes": self.bytes,
            "kinds": dict(sorted(self.kinds.items())),
            "probes": self.probes, "answered": self.answered, "unanswered": count["unanswered"],
            "probe_errors": count["probe_error"], "crashes": count["crash"], "stalls": count["stall"],
            "failures": self.failures, "hosts": self.hosts,
            "probe_ms": {
                "p50": round(1e3 * statistics.median(lat), 2), "p99": round(1e3 * lat[int(0.99 * (len(lat) - 1))], 2),
                "max": round(1e3 * lat[-1], 2),
            } if lat else None,
            "peak_rss_mib": round(self.peak_kib / 1024, 1), "rss_start_mib": round(self.rss_start_kib / 1024, 1),
            "rss_end_mib": round(rss_end / 1024, 1) if rss_end is not None else None, "rss_timeline": self.timeline,
            "replies": self.out_messages, "reply_bytes": self.out_bytes, "stderr_bytes": self.stderr_bytes,
            "exit_code": code, "seconds": round(duration, 1),
        }


_FILE = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')
_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d ", re.M)
_EXCEPTION = re.compile(r"^[\s|]*((?:\w+\.)*\w*(?:Error|Exception|Exit|Interrupt)\b.*)$", re.M)


def signature(stderr: str) -> str:
    """What a failure's stderr says went wrong: the exception that stopped the host and the line of bridge it came from.

    A handler's exception logged as an error reply is not it: the host's own fatal error
    (a transport's, or a task group's) is preferred, else the last traceback.
    """
    for anchor in ("Fatal error", "Exception Group Traceback", "Traceback (most recent call last)"):
        start = stderr.rfind(anchor)
        if start >= 0:
            break
    else:
        return "no traceback in stderr"
    end = _LOG_LINE.search(stderr, start + 1)
    region = stderr[start : end.start() if end else len(stderr)]
    errors = list(_EXCEPTION.finditer(region))
    if not errors:
        return region.splitlines()[0][:200]
    last = errors[-1]
    frames = [m for m in _FILE.finditer(region, 0, last.start()) if re.search(r"/(bridge|handlers)/", m.group(1))]
    where = ""
    if frames:
        path, line, func = frames[-1].groups()
        where = f" at {os.path.relpath(path, ROOT)}:{line} in {func}"
    return last.group(1).strip() + where


def table(results: list[dict[str, Any]]) -> str:
    head = ["framing", "inputs", "MiB in", "probes", "answered", "unanswered", "crashes", "stalls",
            "probe p50/p99/max ms", "RSS start/peak/end MiB", "stderr KiB", "exit", "s"]
    rows = [head]
    for r in results:
        p = r["probe_ms"] or {"p50": "-", "p99": "-", "max": "-"}
        rows.append([
            r["framing"], f"{r['inputs']:,}", f"{r['bytes'] / (1 << 20):.0f}", str(r["probes"]), str(r["answered"]),
            str(r["unanswered"]), str(r["crashes"]), str(r["stalls"]), f"{p['p50']}/{p['p99']}/{p['max']}",
            f"{r['rss_start_mib']}/{r['peak_rss_mib']}/{r['rss_end_mib']}", f"{r['stderr_bytes'] / 1024:.0f}",
            str(r["exit_code"]), f"{r['seconds']:.0f}",
        ])
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(row, widths)) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--framing", default="ndjson,lsp", help="comma-separated, one after the other (default both)")
    parser.add_argument("--minutes", type=float, default=1.0, help="per framing (default 1)")
    parser.add_argument("--max-inputs", type=int, default=2_000_000, help="per framing (default 2,000,000)")
    parser.add_argument("--probe-every", type=int, default=20, help="mean hostile inputs between probes (default 20)")
    parser.add_argument("--deadline", type=float, default=5.0, help="seconds a probe's reply may take (default 5)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    parser.add_argument("--without", default="", help="comma-separated input kinds to leave out (past a known crash)")
    parser.add_argument("--json", help="also write every figure to this file")
    parser.add_argument("--log-dir", help="where failures are logged (default: a new temporary directory)")
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    log_dir = Path(args.log_dir or tempfile.mkdtemp(prefix="bridge-fuzz-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    print(f"fuzz: seed {seed}, {args.minutes} min per framing, {python()}, failures in {log_dir}", file=sys.stderr)
    results = []
    for i, framing in enumerate(args.framing.split(",")):
        workdir = Path(tempfile.mkdtemp(prefix=f"bridge-fuzz-{framing}-"))
        try:
            results.append(Run(framing, args, random.Random(seed + i), workdir, log_dir).run())
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        r = results[-1]
        print(f"  {framing}: {r['inputs']:,} inputs, {r['answered']}/{r['probes']} probes answered,"
              f" {r['crashes']} crashes", file=sys.stderr)
        if args.json:  # after each framing, so a long run keeps what it measured
            document = {"seed": seed, "python": python(), "cpus": os.cpu_count(), "results": results}
            Path(args.json).write_text(json.dumps(document, indent=2))
    print(table(results))
    bad = [f for r in results for f in r["failures"]]
    causes = Counter((f["kind"], f.get("signature", "")) for f in bad)
    for (kind, sig), count in causes.most_common():
        first = next(f for f in bad if (f["kind"], f.get("signature", "")) == (kind, sig))
        where = f" (first: {first['log']})" if "log" in first else ""
        print(f"FAILURE x{count} {kind}: {sig or first['detail']}{where}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
