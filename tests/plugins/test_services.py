"""handlers/services: supervising real child processes (restarts, stop, logs, a killed host),
and the plugin through a real host."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import pytest

from bridge.builtins.services.policy import RestartPolicy
from bridge.builtins.services.supervisor import HealthCheck, Service, ServiceManager
from harness import ROOT, gone

pytestmark = pytest.mark.anyio

SLEEPER = "import time; print('up', flush=True); time.sleep(60)"


def py(code: str, **fields) -> Service:
    return Service(name=fields.pop("name", "svc"), command=sys.executable, args=["-c", code], **fields)


async def until(predicate, timeout: float = 5.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.01)
    return value


async def test_a_service_killed_again_and_again_restarts_with_growing_delays_then_fails():
    states: list[tuple[str, str]] = []
    restarts: list[tuple[int, float]] = []
    critical: list[str] = []
    policy = RestartPolicy(kind="backoff", initial=0.05, factor=2, max=1, jitter=0, cap=3, window=60)
    async with ServiceManager(on_state=lambda n, s, info: states.append((n, s)),
                              on_restart=lambda n, attempt, delay: restarts.append((attempt, delay)),
                              on_critical=critical.append) as manager:
        manager.add(py(SLEEPER, restart=policy, critical=True))
        manager.start("svc")
        pids = []
        for kill in range(3):
            pid = await until(lambda: manager.status("svc")["pid"], what="running")
            await until(lambda: any(e["line"] == "up" for e in manager.logs("svc")) or None)
            pids.append(pid)
            killed = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            await until(lambda old=pid: (manager.status("svc")["pid"] or old) != old, what=f"restart {kill + 1}")
            assert time.monotonic() - killed >= restarts[-1][1]
        assert restarts == [(1, 0.05), (2, 0.1), (3, 0.2)]
        assert manager.status("svc")["restarts"] == 3
        os.kill(manager.status("svc")["pid"], signal.SIGKILL)  # a fourth time: the cap is spent
        await until(lambda: manager.status("svc")["state"] == "failed", what="failed")
        status = manager.status("svc")
        assert status["exitCode"] == -signal.SIGKILL and "3 times within 60s" in status["error"]
        assert len(restarts) == 3 and critical == ["svc"]
        assert [s for _, s in states] == ["starting", "running"] + ["restarting", "starting", "running"] * 3 + ["failed"]


async def test_stop_escalates_to_sigkill_when_sigterm_is_ignored():
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"
    async with ServiceManager() as manager:
        manager.add(py(stubborn, name="stubborn", shutdown_timeout=0.3))
        manager.add(py(SLEEPER, name="polite", shutdown_timeout=5))
        manager.start("stubborn")
        manager.start("polite")
        for name in ("stubborn", "polite"):
            await until(lambda name=name: manager.logs(name), what=f"{name} ready")
        began = time.monotonic()
        await manager.stop("stubborn")
        assert 0.3 <= time.monotonic() - began < 3
        assert manager.status("stubborn")["state"] == "stopped"
        assert manager.status("stubborn")["exitCode"] == -signal.SIGKILL
        began = time.monotonic()
        await manager.stop("polite")
        assert time.monotonic() - began < 1
        assert manager.status("polite")["state"] == "stopped"
        assert manager.status("polite")["exitCode"] == -signal.SIGTERM


async def test_stop_reaches_the_whole_process_group():
    spawner = ("import subprocess, sys, time; "
               "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
               "print(p.pid, flush=True); time.sleep(60)")
    async with ServiceManager() as manager:
        manager.add(py(spawner, shutdown_timeout=2))
        manager.start("svc")
        grandchild = int((await until(lambda: manager.logs("svc")))[0]["line"])
        await manager.stop("svc")
        deadline = time.monotonic() + 5
        while not gone(grandchild):
            assert time.monotonic() < deadline, "the grandchild outlived stop"
            await asyncio.sleep(0.02)


async def test_the_log_ring_buffer_is_bounded_and_followable():
    chatty = "import sys\nfor i in range(20): print(f'out {i}', flush=True)\nprint('oops', file=sys.stderr, flush=True)"
    async with ServiceManager() as manager:
        manager.add(py(chatty, log_lines=5, restart=RestartPolicy(kind="never")))
        manager.start("svc")
        await until(lambda: manager.status("svc")["state"] == "stopped", what="exited")
        logs = manager.logs("svc", tail=100)
        assert len(logs) == 5  # stdout and stderr are read apart: their order between them is not kept
        assert [e["line"] for e in logs if e["stream"] == "stdout"] == ["out 16", "out 17", "out 18", "out 19"]
        assert [e["line"] for e in logs if e["stream"] == "stderr"] == ["oops"]
        assert len(manager.logs("svc", tail=2)) == 2 and manager.logs("svc", tail=0) == []

        manager.add(py("import time\nfor i in range(3): print(i, flush=True); time.sleep(0.05)",
                       name="ticker", restart=RestartPolicy(kind="never")))
        manager.start("ticker")
        seen = []
        async for entry in manager.follow("ticker", tail=0):
            seen.append(entry["line"])
            if len(seen) == 3:
                break
        assert seen == ["0", "1", "2"]


async def test_a_failing_command_never_policy_and_a_tcp_health_check():
    async with ServiceManager() as manager:
        manager.add(Service(name="missing", command="/no/such/binary", restart=RestartPolicy(kind="never")))
        manager.start("missing")
        await until(lambda: manager.status("missing")["state"] == "failed", what="failed")
        assert "FileNotFoundError" in manager.status("missing")["error"]

        import socket

        with socket.socket() as probe:  # a free port, for the service to listen on after 0.3 s
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = (f"import socket, time; time.sleep(0.3); s = socket.socket(); s.bind(('127.0.0.1', {port})); "
                  "s.listen(); time.sleep(60)")
        with pytest.raises(ValueError, match="needs a port"):
            HealthCheck(kind="tcp")
        states = []
        manager.on_state = lambda n, s, info: states.append(s) if n == "web" else None
        manager.add(py(server, name="web", health=HealthCheck(kind="tcp", port=port, interval=0.05)))
        manager.start("web")
        await asyncio.sleep(0.15)
        assert manager.status("web")["state"] == "starting"  # not listening yet
        await until(lambda: manager.status("web")["state"] == "running", what="healthy")
        assert states[:2] == ["starting", "running"]


async def test_a_command_health_check_marks_the_service_unhealthy_and_healthy_again(tmp_path):
    flag = tmp_path / "ok"
    flag.touch()
    check = [sys.executable, "-c", f"import os, sys; sys.exit(0 if os.path.exists({str(flag)!r}) else 1)"]
    async with ServiceManager() as manager:
        manager.add(py(SLEEPER, health=HealthCheck(kind="command", command=check, interval=0.05)))
        manager.start("svc")
        await until(lambda: manager.status("svc")["state"] == "running", what="healthy")
        flag.unlink()
        await until(lambda: manager.status("svc")["state"] == "unhealthy", what="unhealthy")
        assert manager.status("svc")["pid"] is not None  # reported, not restarted
        flag.touch()
        await until(lambda: manager.status("svc")["state"] == "running", what="healthy again")


HOST_SCRIPT = """
import asyncio, sys
sys.path.insert(0, {root!r})
from bridge.builtins.services.supervisor import Service, ServiceManager

async def main():
    async with ServiceManager() as manager:
        manager.add(Service(name="child", command=sys.executable, args=["-c", "import time; time.sleep(60)"]))
        manager.start("child")
        while manager.status("child")["pid"] is None:
            await asyncio.sleep(0.01)
        print(manager.status("child")["pid"], flush=True)
        await asyncio.sleep(60)

asyncio.run(main())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_kill_9_of_the_host_leaves_no_child(tmp_path):
    script = tmp_path / "host.py"
    root = str(ROOT)
    script.write_text(HOST_SCRIPT.format(root=root))
    host = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE)
    try:
        child = int(host.stdout.readline())  # type: ignore[union-attr]
        assert not gone(child)
        host.kill()
        host.wait(5)
        deadline = time.monotonic() + 5
        while not gone(child):
            assert time.monotonic() < deadline, f"child {child} outlived its killed host"
            time.sleep(0.02)
    finally:
        if host.poll() is None:
            host.kill()
        host.wait(5)


# -- the plugin, through a real host ------------------------------------------------------------

APP = """
from bridge import Bridge
from bridge.builtins.services.plugin import plugin

app = Bridge("services-test")
app.include(plugin, settings={settings!r})
"""


def services_host(tmp_path, services, **settings):
    """A real host with the plugin; its audit log in tmp_path/audit."""
    from harness import Host

    (tmp_path / "services_app.py").write_text(APP.format(settings={"services": services, **settings}))
    return Host("services_app:app", env={"PYTHONPATH": str(tmp_path), "BRIDGE_AUDIT_DIR": str(tmp_path / "audit")})


#: Settings that let a caller register services running this Python.
REGISTER_PYTHON = {"allow_register": True, "register_executables": [sys.executable]}


def definition(name, code, **fields):
    return {"name": name, "command": sys.executable, "args": ["-c", code], **fields}


def test_the_plugin_lists_stops_registers_restarts_and_streams_logs(tmp_path):
    ticker = "import time, itertools\nfor i in itertools.count(): print(f'tick {i}', flush=True); time.sleep(0.02)"
    with services_host(tmp_path, [definition("ticker", ticker), definition("sleeper", SLEEPER)],
                       **REGISTER_PYTHON) as host:
        host.recv()  # $/ready
        deadline = time.monotonic() + 5
        while {s["state"] for s in host.call("services.list", id="l")["result"]} != {"running"}:
            assert time.monotonic() < deadline
            time.sleep(0.02)

        host.send({"jsonrpc": "2.0", "id": "logs", "method": "services.logs", "params": {"name": "ticker", "tail": 2}})
        lines: list[str] = []
        while len(lines) < 6:
            chunk, _ = host.recv_until(lambda m: m.get("method") == "$/stream" and m["params"].get("id") == "logs")
            lines += [item["line"] for item in chunk["params"]["items"]]
        numbers = [int(line.split()[1]) for line in lines]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # the tail, then following, no gap
        host.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": "logs"}})
        assert host.reply("logs")["error"]["code"] == -32800  # cancelled: the follower is gone

        stopped = host.call("services.stop", {"name": "sleeper"}, id="s")["result"]
        assert stopped["state"] == "stopped" and stopped["exitCode"] == -signal.SIGTERM
        assert host.call("services.status", {"name": "sleeper"}, id="st")["result"]["pid"] is None

        flaky = definition("flaky", SLEEPER, restart={"kind": "fixed", "delay": 0.05, "cap": 3})
        assert host.call("services.register", {"definition": flaky}, id="r")["result"]["state"] == "starting"
        event, _ = host.recv_until(lambda m: m.get("method") == "services.state_changed"
                                   and m["params"]["name"] == "flaky" and m["params"]["state"] == "running")
        os.kill(event["params"]["pid"], signal.SIGKILL)
        restarted, _ = host.recv_until(lambda m: m.get("method") == "services.restarted")
        assert restarted["params"] == {"name": "flaky", "attempt": 1, "delay": 0.05}
        host.recv_until(lambda m: m.get("method") == "services.state_changed"
                        and m["params"]["name"] == "flaky" and m["params"]["state"] == "running")

        again = host.call("services.register", {"definition": flaky}, id="dup")["error"]
        assert again["code"] == 4402
        missing = host.call("services.start", {"name": "nope"}, id="n")["error"]
        assert missing["code"] == 4401 and missing["data"]["name"] == "nope"
        bad = host.call("services.register", {"definition": {"name": "x"}}, id="b")["error"]
        assert bad["code"] == -32602 and "command" in str(bad)

        pids = [s["pid"] for s in host.call("services.list", id="l2")["result"] if s["pid"]]
        assert len(pids) == 2
        host.close_stdin()
        assert host.wait() == 0
        for pid in pids:  # the shutdown hook stopped them
            assert gone(pid)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_kill_9_of_the_real_host_leaves_no_service(tmp_path):
    with services_host(tmp_path, [definition("a", SLEEPER), definition("b", SLEEPER)]) as host:
        host.recv()
        deadline = time.monotonic() + 5
        while len(pids := [s["pid"] for s in host.call("services.list", id="l")["result"] if s["pid"]]) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        host.proc.kill()
        host.wait()
        deadline = time.monotonic() + 5
        while not all(gone(pid) for pid in pids):
            assert time.monotonic() < deadline, "a service outlived its killed host"
            time.sleep(0.02)


def test_a_critical_service_that_fails_stops_the_host(tmp_path):
    crasher = definition("db", "import sys; sys.exit(3)", critical=True, restart={"kind": "never"})
    with services_host(tmp_path, [crasher, definition("sleeper", SLEEPER)]) as host:
        host.recv()
        assert host.wait(10) == 3  # not 0: the app's supervisor (a Supervisor, Tauri, Electron) sees it failed
        assert b"stopping: critical service db failed for good" in host.stderr


def test_a_critical_service_registered_at_run_time_stops_the_host_when_it_fails(tmp_path):
    with services_host(tmp_path, [], **REGISTER_PYTHON) as host:
        host.recv()
        crasher = definition("db", "import sys; sys.exit(3)", critical=True, restart={"kind": "fixed", "delay": 0.01,
                                                                                      "cap": 2})
        host.call("services.register", {"definition": crasher})
        event, _ = host.recv_until(lambda m: m.get("method") == "services.state_changed"
                                   and m["params"]["state"] == "failed")
        assert event["params"]["exitCode"] == 3 and event["params"]["restarts"] == 2
        assert host.wait(10) == 3


def test_two_services_with_one_name_fail_the_plugin_alone(tmp_path):
    witness = tmp_path / "ran"
    twice = [definition("a", f"open({str(witness)!r}, 'w')"), definition("a", SLEEPER)]
    with services_host(tmp_path, twice) as host:
        error = host.call("services.list", id="l")["error"]
        assert error["code"] == -32603
        assert error["data"] == {"plugin": "services", "error": "ValueError: a service named 'a' already exists"}
        assert host.call("rpc.ping", id="p")["result"] is not None  # the host serves the rest
        host.close_stdin()
        assert host.wait() == 0
    assert not witness.exists()


async def test_restart_after_stops_a_service_that_stays_unhealthy_and_its_policy_restarts_it():
    """``health.restart_after``: N failed checks in a row, then as a crash (here: one restart, then failed)."""
    import socket

    with socket.socket() as probe:  # a port nothing listens on: every tcp check fails
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    states: list[str] = []
    health = HealthCheck(kind="tcp", port=port, interval=0.02, timeout=0.5, restart_after=2)
    policy = RestartPolicy(kind="fixed", delay=0.01, cap=1, window=60)
    async with ServiceManager(on_state=lambda n, s, info: states.append(s)) as manager:
        manager.add(py(SLEEPER, health=health, restart=policy))
        manager.start("svc")
        await until(lambda: manager.status("svc")["state"] == "failed", timeout=20, what="failed")
        status = manager.status("svc")
    assert states[:4] == ["starting", "restarting", "starting", "failed"]  # never healthy, so never "running"
    assert status["exitCode"] == -signal.SIGTERM and status["restarts"] == 1
    assert "restarted 1 times" in status["error"]


async def test_only_unhealthy_reported_without_restart_after():
    with pytest.raises(ValueError):
        HealthCheck(kind="tcp", port=1, restart_after=0)
    assert HealthCheck(kind="tcp", port=1).restart_after is None


async def test_max_running_caps_the_services_running_at_once():
    from bridge.builtins.services.supervisor import TooMany

    async with ServiceManager(max_running=1) as manager:
        manager.add(py(SLEEPER, name="a"))
        manager.add(py(SLEEPER, name="b"))
        manager.add(py(SLEEPER, name="c", autostart=False))
        manager.start_all()  # a starts; b would be the second: left stopped, logged
        assert [manager.status(n)["state"] for n in "abc"] == ["starting", "stopped", "stopped"]
        with pytest.raises(TooMany, match="1 services run already"):
            manager.start("c")
        manager.start("a")  # already running: nothing, not a refusal
        await manager.stop("a")
        manager.start("b")  # a slot came free
        assert manager.status("b")["state"] == "starting"


def test_services_start_past_max_concurrent_services_is_4404(tmp_path):
    services = [definition("a", SLEEPER), definition("b", SLEEPER, autostart=False)]
    with services_host(tmp_path, services, max_concurrent_services=1) as host:
        host.recv()
        error = host.call("services.start", {"name": "b"})["error"]
        assert error["code"] == 4404 and error["data"] == {"limit": 1} and "max_concurrent_services" in error["message"]
        assert host.call("services.stop", {"name": "a"}, id=2)["result"]["state"] == "stopped"
        assert host.call("services.start", {"name": "b"}, id=3)["result"]["state"] == "starting"
