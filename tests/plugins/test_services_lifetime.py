"""handlers/services: no process a service or a health check started outlives a killed host."""

from __future__ import annotations

import os
import signal
import sys
import time

import pytest

from harness import gone
from test_services import definition, services_host

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG, /proc: Linux only")

# Each writes "role pid" lines: itself, a child in its group, and (the service) one that left
# the group with setsid.
SERVICE = """
import os, subprocess, sys, time
sleep = [sys.executable, "-c", "import time; time.sleep(300)"]
child = subprocess.Popen(sleep)
escaped = subprocess.Popen(sleep, start_new_session=True)
with open({pids!r}, "a") as f:
    f.write(f"service {{os.getpid()}}\\nchild {{child.pid}}\\nescaped {{escaped.pid}}\\n")
time.sleep(300)
"""
HEALTH = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
with open({pids!r}, "a") as f:
    f.write(f"health {{os.getpid()}}\\nhealth-child {{child.pid}}\\n")
time.sleep(300)
"""
ROLES = {"service", "child", "escaped", "health", "health-child"}


def read_pids(path) -> dict[str, int]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    return {role: int(pid) for role, pid in (line.split() for line in text.splitlines() if line.count(" ") == 1)}


def test_kill_9_of_the_host_leaves_no_process_of_a_service_or_a_health_check(tmp_path):
    pids_file = tmp_path / "pids"
    service = definition("tree", SERVICE.format(pids=str(pids_file)),
                         health={"kind": "command", "interval": 0.05, "timeout": 60,
                                 "command": [sys.executable, "-c", HEALTH.format(pids=str(pids_file))]})
    pids: dict[str, int] = {}
    try:
        with services_host(tmp_path, [service]) as host:
            host.recv()  # $/ready
            deadline = time.monotonic() + 8
            while set(pids := read_pids(pids_file)) != ROLES:
                assert time.monotonic() < deadline, f"the tree did not start: {pids}"
                time.sleep(0.02)
            assert not any(gone(pid) for pid in pids.values())
            host.proc.kill()
            host.wait()
            deadline = time.monotonic() + 5
            while left := {role: pid for role, pid in pids.items() if not gone(pid)}:
                assert time.monotonic() < deadline, f"outlived the killed host: {left}"
                time.sleep(0.02)
    finally:
        for pid in pids.values():
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.anyio
async def test_stop_and_a_timed_out_health_check_leave_nothing_behind_even_outside_the_group(tmp_path):
    from bridge.builtins.services.supervisor import HealthCheck, ServiceManager
    from test_services import py, until

    pids_file = tmp_path / "pids"
    health = HealthCheck(kind="command", interval=0.05, timeout=0.3,
                         command=[sys.executable, "-c", HEALTH.format(pids=str(pids_file))])
    try:
        async with ServiceManager() as manager:
            manager.add(py(SERVICE.format(pids=str(pids_file)), name="tree", health=health))
            manager.start("tree")
            pids = await until(lambda: (p := read_pids(pids_file)) and set(p) == ROLES and p, what="the tree")
            health_pids = [pids["health"], pids["health-child"]]
            await until(lambda: all(gone(pid) for pid in health_pids), what="the timed-out check and its child gone")
            assert not gone(pids["escaped"])
            await manager.stop("tree")
            await until(lambda: all(gone(pid) for pid in pids.values()), what="the service's whole tree gone")
    finally:  # every pid ever written (each health run appends its own)
        for pid in {int(line.split()[1]) for line in pids_file.read_text().splitlines()}:
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)


# -- the plugin's lifespan owns every task it starts ------------------------------------------

#: Says goodbye on SIGTERM (exit 0), once it has said it is ready and written its pid.
GRACEFUL = """
import os, signal, sys, time
def bye(*_):
    print("bye", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, bye)
print("ready", flush=True)
with open({pids!r}, "a") as f:
    f.write(f"graceful {{os.getpid()}}\\n")
while True:
    time.sleep(1)
"""


def busy_services(pids_file) -> list[dict]:
    """A service tree whose health check is running, one waiting 60 s to restart, one that says
    goodbye on SIGTERM: each writes its pids to ``pids_file`` (ROLES and "graceful")."""
    tree = definition("tree", SERVICE.format(pids=str(pids_file)),
                      health={"kind": "command", "interval": 0.05, "timeout": 60,
                              "command": [sys.executable, "-c", HEALTH.format(pids=str(pids_file))]})
    crashing = definition("crashing", "import sys; sys.exit(3)", restart={"kind": "fixed", "delay": 60})
    return [tree, crashing, definition("graceful", GRACEFUL.format(pids=str(pids_file)))]


def kill_left(pids_file) -> None:
    """Clean up after a failed test: every pid ever written."""
    for line in pids_file.read_text().splitlines() if pids_file.exists() else ():
        if not gone(pid := int(line.split()[1])):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.anyio
async def test_stop_returns_with_the_last_output_read_and_no_task_of_the_service_left(tmp_path):
    import asyncio

    from bridge.builtins.services.supervisor import ServiceManager
    from test_services import py, until

    before = asyncio.all_tasks()
    manager = ServiceManager()
    manager.add(py(GRACEFUL.format(pids=str(tmp_path / "pids")), name="graceful"))
    try:
        with pytest.raises(RuntimeError, match="async with"):  # no task without an owner
            manager.start("graceful")
        assert manager.status("graceful")["state"] == "stopped" and asyncio.all_tasks() == before
        async with manager:
            manager.start("graceful")
            await until(lambda: read_pids(tmp_path / "pids"), what="ready")
            await manager.stop("graceful")
            assert [e["line"] for e in manager.logs("graceful")] == ["ready", "bye"]  # read before stop returned
            assert asyncio.all_tasks() == before  # the loop and its readers ended with the stop
        assert asyncio.all_tasks() == before
    finally:
        kill_left(tmp_path / "pids")


@pytest.mark.anyio
async def test_leaving_the_lifespan_stops_every_service_and_ends_every_task(tmp_path, monkeypatch):
    import asyncio

    from bridge.builtins.services.plugin import Services, ServicesSettings, plugin
    from test_services import until

    pids_file = tmp_path / "pids"
    monkeypatch.setattr(plugin, "settings", ServicesSettings(services=busy_services(pids_file)))
    before = asyncio.all_tasks()
    try:
        async with plugin.lifespan(plugin) as state:
            assert isinstance(state, Services)
            manager = state.manager
            pids = await until(lambda: (p := read_pids(pids_file)) and set(p) == ROLES | {"graceful"} and p,
                               what="the services")
            await until(lambda: manager.status("crashing")["state"] == "restarting", what="waiting to restart")
            assert asyncio.all_tasks() - before  # the services' tasks run meanwhile
            left = time.monotonic()
        assert time.monotonic() - left < 5  # no wait for the restart delay, nor the health check's timeout
        assert asyncio.all_tasks() == before
        assert {s["name"]: s["state"] for s in manager.statuses()} == {"tree": "stopped", "crashing": "stopped",
                                                                       "graceful": "stopped"}
        assert [e["line"] for e in manager.logs("graceful")] == ["ready", "bye"]
        await until(lambda: all(gone(pid) for pid in pids.values()), what="every process gone")
    finally:
        kill_left(pids_file)


def test_at_eof_the_host_stops_every_service_and_exits_0(tmp_path):
    import json

    pids_file = tmp_path / "pids"
    try:
        with services_host(tmp_path, busy_services(pids_file)) as host:
            host.recv()  # $/ready
            deadline = time.monotonic() + 8
            while (set(pids := read_pids(pids_file)) != ROLES | {"graceful"}
                   or host.call("services.status", {"name": "crashing"}, id="s")["result"]["state"] != "restarting"):
                assert time.monotonic() < deadline, "the services did not start"
                time.sleep(0.02)
            host.close_stdin()
            assert host.wait(5) == 0  # neither the restart delay nor the running health check holds it
        deadline = time.monotonic() + 5  # a SIGKILL sent is not yet a process gone
        while left := [role for role, pid in pids.items() if not gone(pid)]:
            assert time.monotonic() < deadline, f"outlived the host: {left}"
            time.sleep(0.02)
        audit = [json.loads(line) for line in (tmp_path / "audit" / "audit.jsonl").read_text().splitlines()]
        last = {e["name"]: (e["state"], e["exitCode"]) for e in audit if e["event"] == "services.state"}
        # SIGTERM reached each: graceful said goodbye (exit 0); crashing was waiting to restart
        assert last == {"tree": ("stopped", -signal.SIGTERM), "crashing": ("stopped", 3), "graceful": ("stopped", 0)}
    finally:
        kill_left(pids_file)
