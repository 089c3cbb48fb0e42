"""handlers/services: no command runs unless the app configured it; refusals and every start,
stop and state change are in the audit log. Through a real host."""

from __future__ import annotations

import os
import sys
import time

from harness import Host, gone
from test_services import SLEEPER, definition

APP = """
from bridge import Bridge
from bridge.builtins.services.plugin import plugin
from bridge.builtins.system import plugin as system

app = Bridge("services-trust-test")
app.include(system)
app.include(plugin, settings={settings!r})
"""


def host(tmp_path, **settings) -> Host:
    (tmp_path / "trust_app.py").write_text(APP.format(settings=settings))
    h = Host("trust_app:app", env={"PYTHONPATH": str(tmp_path), "BRIDGE_AUDIT_DIR": str(tmp_path / "audit")})
    h.recv()  # $/ready
    return h


def audit(h: Host, event: str | None = None) -> list[dict]:
    entries = h.call("system.audit", {"limit": 1000}, id="audit")["result"]
    return [e for e in entries if event is None or e["event"] == event]


def writer(path) -> dict:
    """A service that, if it ever ran, would leave a file behind."""
    return definition("writer", f"open({str(path)!r}, 'w').write('ran')")


def test_register_is_off_unless_the_app_turns_it_on(tmp_path):
    witness = tmp_path / "ran"
    with host(tmp_path) as h:
        refused = h.call("services.register", {"definition": writer(witness)})["error"]
        assert refused["code"] == 4403 and refused["data"] == {"name": "writer", "reason": "register_off"}
        assert "allow_register" in refused["message"]
        assert h.call("services.list", id=2)["result"] == []
        [entry] = audit(h, "services.refused")
        assert entry["participant"] == "connection:1" and entry["reason"] == "register_off"
        assert entry["command"] == [sys.executable, "-c", f"open({str(witness)!r}, 'w').write('ran')"]
        assert audit(h, "services.started") == []
    assert not witness.exists()


def test_register_runs_only_allowlisted_executables_by_resolved_path(tmp_path):
    witness = tmp_path / "ran"
    script = f"#!/bin/sh\ntouch {witness}\n"
    lookalike = tmp_path / "bin" / os.path.basename(sys.executable)  # same name, another file
    inside = tmp_path / sys.executable.lstrip("/")  # the allowed path as a substring of its path
    for fake in (lookalike, inside):
        fake.parent.mkdir(parents=True, exist_ok=True)
        fake.write_text(script)
        fake.chmod(0o755)
    link = tmp_path / "python-link"
    link.symlink_to(sys.executable)  # another name for the allowed executable: allowed
    with host(tmp_path, allow_register=True, register_executables=[sys.executable], register_env=["GREETING"],
              max_registered=2) as h:
        for n, command in enumerate([str(lookalike), str(inside), "sh", "/bin/sh"]):
            error = h.call("services.register", {"definition": {"name": f"x{n}", "command": command}}, id=n)["error"]
            assert error["code"] == 4403 and error["data"]["reason"] == "executable", command
        health = {"kind": "command", "interval": 0.05, "command": ["/bin/sh", "-c", f"touch {witness}"]}
        error = h.call("services.register", {"definition": definition("h", SLEEPER, health=health)}, id="h")["error"]
        assert error["code"] == 4403 and error["data"]["reason"] == "health_executable"
        preload = definition("e", SLEEPER, env={"LD_PRELOAD": "/tmp/evil.so", "GREETING": "hi"})
        error = h.call("services.register", {"definition": preload}, id="e")["error"]
        assert error["code"] == 4403 and error["data"] == {"name": "e", "reason": "env", "env": ["LD_PRELOAD"]}
        assert h.call("services.list", id="l")["result"] == []
        refused = audit(h, "services.refused")
        assert [e["reason"] for e in refused] == ["executable"] * 4 + ["health_executable", "env"]

        ok = {"name": "ok", "command": str(link), "args": ["-c", SLEEPER], "env": {"GREETING": "hi"},
              "health": {"kind": "command", "interval": 0.05, "command": [sys.executable, "-c", "pass"]}}
        started = h.call("services.register", {"definition": ok}, id="ok")["result"]
        assert started["command"][0] == str(link)  # the name it was given runs: a venv's python stays one
        deadline = time.monotonic() + 5
        while (status := h.call("services.status", {"name": "ok"}, id="s")["result"])["state"] != "running":
            assert time.monotonic() < deadline, status
            time.sleep(0.02)
        pid = status["pid"]
        again = h.call("services.register", {"definition": {**ok, "name": "ok2"}}, id="ok2")["result"]
        assert again["name"] == "ok2"
        error = h.call("services.register", {"definition": {**ok, "name": "ok3"}}, id="ok3")["error"]
        assert error["code"] == 4403 and error["data"]["reason"] == "too_many"
        h.call("services.stop", {"name": "ok"}, id="stop")
        assert gone(pid)

        [registered, _] = audit(h, "services.registered")
        assert registered["participant"] == "connection:1" and registered["env"] == ["GREETING"]
        started = [e for e in audit(h, "services.started") if e["name"] == "ok"]
        assert started[0]["pid"] == pid and started[0]["command"][0] == str(link)
        [control] = audit(h, "services.control")
        assert control["action"] == "stop" and control["name"] == "ok" and control["participant"] == "connection:1"
        states = [e["state"] for e in audit(h, "services.state") if e["name"] == "ok"]
        assert states == ["starting", "running", "stopped"]
    assert not witness.exists()


def test_the_apps_own_services_and_health_checks_run_without_any_allowlist(tmp_path):
    witness = tmp_path / "checked"
    health = {"kind": "command", "interval": 0.05, "command": ["/bin/sh", "-c", f"touch {witness}"]}
    # declared in code by the app here; a config file's [[plugins.services.services]] is the same
    with host(tmp_path, services=[definition("app", SLEEPER, health=health)]) as h:
        deadline = time.monotonic() + 5
        while h.call("services.status", {"name": "app"})["result"]["state"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert witness.exists()
        assert [e["name"] for e in audit(h, "services.started")] == ["app"]
