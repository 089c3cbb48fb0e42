"""End to end: the real ``python -m bridge serve`` process, spoken to in bytes over pipes (its lifetime:
tests/test_server.py)."""

from __future__ import annotations

import re
import subprocess
import time

import orjson
import pytest
from harness import Host
from test_connection import SPEC, canonical

APP = "tests.e2e_app:app"


def canonical_text(reply) -> str:
    reply = canonical(reply)
    return repr(reply) if isinstance(reply, list) else orjson.dumps(reply, option=orjson.OPT_SORT_KEYS).decode()


def test_ready_then_the_builtin_handlers():
    with Host() as host:
        ready = host.recv()
        assert ready["method"] == "$/ready"
        assert ready["params"]["framing"] == "ndjson" and ready["params"]["pid"] == host.proc.pid
        assert host.call("demo.add", {"a": 1, "b": 2})["result"] == 3
        assert host.call("demo.add", [5, 6], id="pos")["result"] == 11
        error = host.call("demo.add", {"a": "x", "b": 1}, id=3)["error"]
        assert error["code"] == -32602 and error["data"]["errors"][0]["loc"] == ["a"]
        assert host.call("demo.fail", id=4)["error"]["code"] == 1001
        crash = host.call("demo.crash", id=5)["error"]
        assert crash == {"code": -32603, "message": "Internal error", "data": {"exception": "RuntimeError"}}
        host.close_stdin()
        assert host.wait() == 0
    # The traceback went to stderr, and only there.
    assert b"Traceback" in host.stderr and b"an unexpected failure inside a handler" in host.stderr
    assert b"Traceback" not in host.raw


def test_spec_examples_over_a_real_pipe():
    with Host("tests.e2e_app:spec_app") as host:
        host.recv()
        expected = [e for _, e in SPEC if e is not None]
        host.send_raw(b"".join(text.encode() + b"\n" for text, _ in SPEC))
        got = [host.recv() for _ in expected]
        assert sorted(map(canonical_text, got)) == sorted(map(canonical_text, expected))
        host.close_stdin()
        assert host.wait() == 0
        assert host.messages.qsize() == 1  # only the end-of-output marker: nothing extra was sent


def test_auto_framing_sends_ready_after_detecting_lsp():
    with Host(framing="auto") as host:
        host.framing = "lsp"
        host.send({"jsonrpc": "2.0", "id": 1, "method": "system.ping"})
        assert host.recv()["params"]["framing"] == "lsp"
        assert host.recv() == {"jsonrpc": "2.0", "id": 1, "result": "pong"}
        assert host.raw.startswith(b"Content-Length: ")


def test_cancel_request_stops_a_running_handler():
    with Host() as host:
        host.recv()
        host.send({"jsonrpc": "2.0", "id": "long", "method": "demo.sleep", "params": {"seconds": 60}})
        assert host.call("system.ping", id="probe")["result"] == "pong"  # the sleep is now running
        started = time.monotonic()
        host.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": "long"}})
        reply = host.reply("long")
        assert reply["error"]["code"] == -32800
        assert time.monotonic() - started < 5


def test_progress_and_events_reach_the_client():
    with Host() as host:
        host.recv()
        host.send({"jsonrpc": "2.0", "id": 7, "method": "demo.count", "params": {"n": 3, "$meta": {"progressToken": "tok"}}})
        reply, before = host.recv_until(lambda m: m.get("id") == 7)
        assert reply["result"] == 3
        assert [m["params"] for m in before] == [
            {"token": "tok", "value": {"done": i, "total": 3}} for i in (1, 2, 3)
        ]
        host.send({"jsonrpc": "2.0", "id": 8, "method": "demo.emit", "params": {"event": "files.changed", "payload": [1]}})
        event, _ = host.recv_until(lambda m: m.get("method") == "files.changed")
        assert event == {"jsonrpc": "2.0", "method": "files.changed", "params": [1]}


def test_stdout_pollution_never_reaches_the_protocol():
    with Host(APP) as host:
        host.recv()
        assert host.call("polluter")["result"] == "clean"
        host.close_stdin()
        assert host.wait() == 0
    for line in bytes(host.raw).splitlines():
        orjson.loads(line)  # every byte on stdout is protocol
    for text in (b"print() to stdout", b"sys.stdout.write", b"os.write to fd 1", b"a child process printing"):
        assert text in host.stderr
    assert b"''" in host.stderr  # the child read an empty stdin, not the protocol's input


BAD_NDJSON = [
    (b"\xff\xfe not utf-8 \xc3\x28\n", -32700),
    (b'{"jsonrpc":"2.0","id":1,"method":"\xed\xa0\x80"}\n', -32700),  # a lone surrogate
    (b"[" * 2000 + b"]" * 2000 + b"\n", -32700),
    (b'{"jsonrpc":"2.0","id":1,"method":"demo.echo","params":{"value":"' + b"x" * 5000 + b'"}}\n', -32002),
    (b"this is not json\n", -32700),
    (b"42\n", -32600),
    (b'"a string"\n', -32600),
    (b"{}\n", -32600),
]


def test_every_bad_input_gets_an_error_and_the_host_keeps_serving():
    with Host(env={"BRIDGE_MAX_MESSAGE_BYTES": "4096"}) as host:
        host.recv()
        for i, (bad, code) in enumerate(BAD_NDJSON):
            host.send_raw(bad)
            reply = host.recv()
            assert reply["error"]["code"] == code, bad[:40]
            assert reply["id"] is None
            assert host.call("system.ping", id=i)["result"] == "pong"
        host.close_stdin()
        assert host.wait() == 0
    assert host.stderr.count(b"bad input") == len(BAD_NDJSON)  # one line each


def test_lsp_bad_headers_and_lying_lengths():
    with Host(framing="lsp", env={"BRIDGE_MAX_MESSAGE_BYTES": "4096"}) as host:
        host.recv()
        ping = orjson.dumps({"jsonrpc": "2.0", "id": "after", "method": "system.ping"})
        cases = [
            b"Content-Type: nothing\r\n\r\n",  # no Content-Length
            b"Content-Length: abc\r\n\r\n",
            b"Content-Length: 999999\r\n\r\n" + b"x" * 100,  # over the limit: skipped as it streams
            b"Content-Length: 5\r\n\r\n" + b'{"jsonrpc":"2.0"}',  # lies short
        ]
        for bad in cases:
            host.send_raw(bad)
            if bad.startswith(b"Content-Length: 999999"):
                host.send_raw(b" " * (999999 - 100))
            host.send_raw(b"Content-Length: %d\r\n\r\n%b" % (len(ping), ping))
            reply, errors = host.recv_until(lambda m: m.get("id") == "after")
            assert reply["result"] == "pong"
            assert errors and all(e["error"]["code"] in (-32700, -32002) for e in errors), bad[:30]


def test_garbage_between_good_lines():
    with Host() as host:
        host.recv()
        good = lambda i: orjson.dumps({"jsonrpc": "2.0", "id": i, "method": "demo.add", "params": [i, i]}) + b"\n"
        host.send_raw(good(1) + b"}{ garbage ][\n" + good(2))
        replies = [host.recv() for _ in range(3)]
        assert {r["id"] for r in replies} == {1, 2, None}
        assert {r.get("result") for r in replies} == {2, 4, None}


def test_many_pipelined_calls_all_answered_once():
    with Host() as host:
        host.recv()
        n = 3000
        host.send_raw(b"".join(
            orjson.dumps({"jsonrpc": "2.0", "id": i, "method": "demo.echo", "params": {"value": i}}) + b"\n"
            for i in range(n)
        ))
        replies = [host.recv() for _ in range(n)]
        assert sorted(r["id"] for r in replies) == list(range(n))
        assert all(r["result"] == r["id"] for r in replies)


def test_no_ready_for_generic_clients():
    with Host(env={"BRIDGE_READY": "0"}) as host:
        assert host.call("system.ping")["result"] == "pong"
        host.close_stdin()
        assert host.wait() == 0
    assert b"$/ready" not in host.raw


def test_debug_logs_each_call_with_its_timing():
    with Host(env={"BRIDGE_DEBUG": "1"}) as host:
        host.recv()
        assert host.call("demo.add", [1, 2], id=41)["result"] == 3
        host.close_stdin()
        assert host.wait() == 0
    assert re.search(rb"demo\.add id=41 \d+\.\d+ ms ok", host.stderr)


def test_console_script_is_installed():
    import shutil
    import sys
    from pathlib import Path

    script = Path(sys.executable).parent / "bridge"
    if not script.exists():
        script = shutil.which("bridge")
    assert script, "the bridge console script is not on PATH"
    proc = subprocess.run([str(script), "--version"], check=False, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and proc.stdout.startswith("bridge ")


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_a_client_that_stops_reading_cannot_make_the_host_buffer_without_bound(loop):
    import threading

    n, value = 20000, "x" * 1024  # ~21 MiB each way, far beyond the pipes' buffers
    payload = b"".join(
        orjson.dumps({"jsonrpc": "2.0", "id": i, "method": "demo.echo", "params": {"value": value}}) + b"\n"
        for i in range(n)
    )
    with Host(read=False, env={"BRIDGE_LOOP": loop}) as host:
        baseline = _rss_kib(host.proc.pid)
        writer = threading.Thread(target=host.send_raw, args=(payload,), daemon=True)
        writer.start()
        writer.join(timeout=3)  # an observation window: nobody reads the host's output
        # The host reads on (so cancels would be seen) but holds at most its queue bound: half of
        # max_queued per caller; past it calls are refused, and once the output pipe is full it
        # stops reading until the client catches up.
        assert _rss_kib(host.proc.pid) - baseline < 64 * 1024
        host.start_reading()
        assert host.recv()["method"] == "$/ready"
        replies = [host.recv() for _ in range(n)]
        writer.join(timeout=30)
        assert {r["id"] for r in replies} == set(range(n))  # nothing lost: each answered or refused
        answered = sum(1 for r in replies if "result" in r)
        assert answered >= 10_000 and all(r["error"]["code"] == -32005 for r in replies if "result" not in r)


def test_cache_hits_across_a_host_restart(tmp_path):
    env = {"BRIDGE_CACHE_DIR": str(tmp_path)}
    pids = []
    for _ in range(2):
        with Host(APP, env=env) as host:
            host.recv()
            host.send({"jsonrpc": "2.0", "id": 1, "method": "cached_pid", "params": {"key": "k", "$meta": {"info": True}}})
            reply = host.reply(1)
            pids.append((host.proc.pid, reply["result"], reply["$meta"]["cached"]))
            host.close_stdin()
            assert host.wait() == 0
    (first_pid, first_result, first_cached), (second_pid, second_result, second_cached) = pids
    assert first_result == first_pid and first_cached is False
    assert second_result == first_pid and second_cached is True  # served from disk by the new process
    assert second_pid != first_pid
