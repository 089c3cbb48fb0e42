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
