"""bridge/server.py: the process lifetime (EOF, signals, the grace period, start-up failure, a
dead parent), through the real ``python -m bridge serve``; and the loop and logging choices."""

from __future__ import annotations

import logging
import signal
import subprocess
import time

import pytest
from harness import Host

from bridge import Settings
from bridge.server import _loop_factory, configure_logging

APP = "tests.e2e_app:app"


def test_eof_lets_in_flight_calls_finish_then_exits_0():
    with Host(APP) as host:
        host.recv()
        host.send({"jsonrpc": "2.0", "id": 1, "method": "slow", "params": {"seconds": 0.3}})
        host.close_stdin()
        assert host.reply(1)["result"] == "done"
        assert host.wait() == 0
        assert b"shutdown hook ran" in host.stderr


@pytest.mark.parametrize("framing", ["ndjson", "lsp"])
def test_exit_notification_ends_like_eof_with_stdin_still_open(framing):
    """``$/exit`` is EOF for a client that cannot close stdin (Tauri's shell plugin can only kill):
    the call read before it finishes, what follows it in the same read is not, hooks run, exit 0."""
    with Host(APP, "--framing", framing) as host:
        assert host.recv()["params"]["capabilities"]["exit"] == "$/exit"
        host.send(
            {"jsonrpc": "2.0", "id": 1, "method": "slow", "params": {"seconds": 0.3}},
            {"jsonrpc": "2.0", "method": "$/exit"},
            {"jsonrpc": "2.0", "id": 2, "method": "system.ping"},
        )
        assert host.reply(1)["result"] == "done"
        assert host.wait() == 0
        rest = []
        with pytest.raises(EOFError):
            while True:
                rest.append(host.recv(timeout=5))
        assert [m for m in rest if isinstance(m, dict) and m.get("id") == 2] == []
        assert b"shutdown hook ran" in host.stderr


def test_exit_inside_a_batch_or_with_an_id_does_not_end_the_host():
    with Host(APP) as host:
        host.recv()
        host.send([{"jsonrpc": "2.0", "method": "$/exit"}, {"jsonrpc": "2.0", "id": 1, "method": "system.ping"}])
        assert host.recv() == [{"jsonrpc": "2.0", "id": 1, "result": "pong"}]
        assert host.call("$/exit", id=2)["error"]["code"] == -32601
        assert host.call("system.ping", id=3)["result"] == "pong"


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_finishes_in_flight_work_and_exits_0(signum, loop):
    with Host(APP, "--loop", loop) as host:
        host.recv()
        host.send({"jsonrpc": "2.0", "id": 1, "method": "slow", "params": {"seconds": 0.3}})
        assert host.call("system.ping", id="p")["result"] == "pong"
        host.proc.send_signal(signum)
        assert host.reply(1)["result"] == "done"
        assert host.wait() == 0


def test_calls_outliving_the_grace_period_are_cancelled():
    with Host(APP, env={"BRIDGE_SHUTDOWN_GRACE": "0.2"}) as host:
        host.recv()
        host.send({"jsonrpc": "2.0", "id": 1, "method": "slow", "params": {"seconds": 60}})
        assert host.call("system.ping", id="p")["result"] == "pong"
        host.proc.send_signal(signal.SIGTERM)
        assert host.reply(1)["error"]["code"] == -32802
        assert host.wait() == 0


def test_failing_startup_hook_exits_nonzero():
    with Host(APP, env={"E2E_FAIL_STARTUP": "1"}) as host:
        assert host.wait() == 1
        with pytest.raises(EOFError):
            host.recv(timeout=5)
    assert b"startup failed on purpose" in host.stderr


def test_signal_after_eof_cancels_in_flight_calls_at_once():
    with Host(APP) as host:
        host.recv()
        host.send({"jsonrpc": "2.0", "id": 1, "method": "slow", "params": {"seconds": 60}})
        assert host.call("system.ping", id="p")["result"] == "pong"
        host.close_stdin()
        host.wait_stderr(b"input closed")
        started = time.monotonic()
        host.proc.send_signal(signal.SIGTERM)
        assert host.reply(1)["error"]["code"] == -32802
        assert host.wait() == 0
        assert time.monotonic() - started < 3  # well inside the 5 s grace period


STUBBORN_APP = '''
import asyncio

from bridge import Bridge

app = Bridge()


@app.method
async def stubborn() -> str:
    """Cancelled, it takes a minute to clean up."""
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        await asyncio.sleep(60)
        raise
    return "done"
'''


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_a_third_signal_stops_the_host_whatever_its_calls_do(tmp_path, loop: str) -> None:
    """The first signal waits for the call (the grace period is long), the second cancels it
    (it goes on cleaning up), the third stops the host now: it exits at once, not in a minute."""
    app = tmp_path / "stubborn_app.py"
    app.write_text(STUBBORN_APP)
    with Host(str(app), "--no-plugins", "--no-audit", "--loop", loop, env={"BRIDGE_SHUTDOWN_GRACE": "30"}) as host:
        host.recv()
        host.send({"jsonrpc": "2.0", "id": 1, "method": "stubborn"})
        assert host.call("rpc.ping", id="p")["result"] == "pong"
        host.proc.send_signal(signal.SIGTERM)
        host.wait_stderr(b"finishing in-flight calls")
        host.proc.send_signal(signal.SIGTERM)
        host.wait_stderr(b"cancelling in-flight calls")
        started = time.monotonic()
        host.proc.send_signal(signal.SIGINT)
        assert host.wait() == 0
        assert time.monotonic() - started < 5
        assert b"SIGINT again: stopping now" in host.stderr


def test_host_exits_when_its_parent_is_killed():
    """The parent dies without closing anything: the pipe's EOF must end the host."""
    import os
    import sys

    from harness import ROOT, python

    parent_code = (
        "import subprocess, sys\n"
        f"p = subprocess.Popen([{python()!r}, '-m', 'bridge', 'serve', 'tests.e2e_app:app', '--framing', 'ndjson'],"
        " stdin=subprocess.PIPE, stdout=subprocess.PIPE)\n"
        "p.stdin.write(b'{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"slow\",\"params\":{\"seconds\":60}}\\n'); p.stdin.flush()\n"
        "sys.stdout.write(str(p.pid) + '\\n'); sys.stdout.flush()\n"
        "p.stdout.readline()\n"  # $/ready: the host is serving
        "sys.stdout.write('ready\\n'); sys.stdout.flush()\n"
        "import time; time.sleep(600)\n"
    )
    env = {**os.environ, "BRIDGE_SHUTDOWN_GRACE": "0.5"}
    parent = subprocess.Popen([sys.executable, "-c", parent_code], cwd=ROOT, stdout=subprocess.PIPE, text=True, env=env)
    try:
        host_pid = int(parent.stdout.readline())
        assert parent.stdout.readline().strip() == "ready"
        parent.kill()  # SIGKILL: no cleanup runs in the parent
        parent.wait(5)
        deadline = time.monotonic() + 10  # the grace period is 0.5 s, then the 60 s call is cancelled
        while time.monotonic() < deadline:
            try:
                os.kill(host_pid, 0)
            except ProcessLookupError:
                return
            try:  # reap it if it became our child (it does not: init adopts it)
                os.waitpid(host_pid, os.WNOHANG)
            except ChildProcessError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"host {host_pid} outlived its parent")
    finally:
        parent.kill()


def test_uvloop_unless_asyncio_is_asked_for() -> None:
    uvloop = pytest.importorskip("uvloop")
    assert _loop_factory(Settings(loop="auto")) is uvloop.new_event_loop
    assert _loop_factory(Settings(loop="uvloop")) is uvloop.new_event_loop
    assert _loop_factory(Settings(loop="asyncio")) is None


def test_asking_for_uvloop_where_it_is_missing_is_a_clear_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop -> ImportError
    assert _loop_factory(Settings(loop="auto")) is None
    with pytest.raises(SystemExit, match="uvloop is not installed"):
        _loop_factory(Settings(loop="uvloop"))


def test_logs_go_to_stderr_at_the_chosen_level(capfd: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging(Settings(log_level="warning"))
        logging.getLogger("bridge.test").info("not shown")
        logging.getLogger("bridge.test").warning("shown")
        configure_logging(Settings(debug=True))
        assert root.level == logging.DEBUG
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    out, err = capfd.readouterr()
    assert out == "" and "WARNING bridge.test: shown" in err and "not shown" not in err


@pytest.mark.parametrize("loop_name", ["uvloop", "asyncio"])
def test_a_pipe_is_closed_once_by_whichever_transport_owns_it(loop_name: str) -> None:
    """uvloop's transports close the descriptor themselves and then the file object they were
    given: that one must not own it, or its number is closed twice (and whatever reused it in
    between with it). asyncio's close it through the file object, which must own it. Either way
    the descriptor is closed once the transport is, and not before."""
    import asyncio
    import os

    import uvloop

    from bridge.stdio import pipe_file

    async def check() -> None:
        loop = asyncio.get_running_loop()
        r, w = os.pipe()
        transport, _ = await loop.connect_read_pipe(asyncio.Protocol, pipe_file(loop, r, "rb"))
        assert transport.get_extra_info("pipe").closefd is (loop_name == "asyncio")
        os.fstat(r)  # open while the transport is
        transport.close()
        for _ in range(3):
            await asyncio.sleep(0)
        with pytest.raises(OSError):
            os.fstat(r)
        os.close(w)

    if loop_name == "uvloop":
        uvloop.run(check())
    else:
        asyncio.run(check())
