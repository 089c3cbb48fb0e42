"""bridge/audit.py: the append-only JSON-lines audit log, and system.audit through a real host."""

from __future__ import annotations

import logging
import re
import stat
import sys
import threading

import orjson

from bridge import Bridge, Settings
from bridge.audit import AuditLog, configure
from harness import Host


def lines(path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_an_entry_is_one_json_line_with_time_event_participant_and_fields(tmp_path):
    audit = Bridge().audit
    assert not audit.enabled and audit.recent() == []
    audit.record("services.refused", participant="window:2", reason="register_off")  # off: nothing, no error
    audit.open(tmp_path / "a")
    audit.record("services.refused", participant="window:2", reason="register_off", ts="forged", command=["sh"])
    audit.record("state.checkpoint", doc="notes", version=3)
    [first, second] = lines(tmp_path / "a" / "audit.jsonl")
    assert list(first) == ["ts", "event", "participant", "reason", "command"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["ts"])
    assert first | {"ts": 0} == {"ts": 0, "event": "services.refused", "participant": "window:2",
                                 "reason": "register_off", "command": ["sh"]}
    assert second["participant"] is None and second["version"] == 3
    assert audit.recent(1) == [second] and audit.recent() == [first, second]
    assert stat.S_IMODE((tmp_path / "a" / "audit.jsonl").stat().st_mode) == 0o600
    audit.close()
    audit.record("after.close")
    assert len(lines(tmp_path / "a" / "audit.jsonl")) == 2


def test_rotation_by_size_keeps_the_newest_files_and_recent_reads_across_them(tmp_path):
    audit = AuditLog()
    audit.open(tmp_path, max_bytes=1000, backups=2)
    for i in range(100):
        audit.record("test.event", n=i)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]
    kept = [e["n"] for name in reversed(names) for e in lines(tmp_path / name)]
    assert kept == list(range(100 - len(kept), 100))  # oldest first, none lost in between
    assert all((tmp_path / name).stat().st_size <= 1000 for name in names)
    assert [e["n"] for e in audit.recent(len(kept))] == kept
    assert [e["n"] for e in audit.recent(5)] == [95, 96, 97, 98, 99]


def test_record_is_thread_safe_across_rotations(tmp_path):
    audit = AuditLog()
    audit.open(tmp_path, max_bytes=4096, backups=1000)

    def write(t: int) -> None:
        for i in range(200):
            audit.record("test.event", participant=f"t{t}", i=i, pad="x" * 50)

    threads = [threading.Thread(target=write, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seen = [(e["participant"], e["i"]) for path in tmp_path.iterdir() for e in lines(path)]
    assert sorted(seen) == sorted((f"t{t}", i) for t in range(8) for i in range(200))


def test_record_never_raises(tmp_path, caplog):
    audit = AuditLog()
    audit.open(tmp_path, max_entry_bytes=1024)
    audit.record("odd.fields", thing=object(), keys={1: "int key"})
    audit.record("big.field", participant="p", small="kept", blob="x" * 100_000)
    odd, big = lines(tmp_path / "audit.jsonl")
    assert odd["thing"].startswith("<object object") and odd["keys"] == {"1": "int key"}
    assert big["small"] == "kept" and big["blob"] == {"truncated": 100_002}
    assert len((tmp_path / "audit.jsonl").read_bytes().splitlines()[1]) <= 1024

    broken = AuditLog()
    broken.open(tmp_path / "b")
    (tmp_path / "b" / "audit.jsonl").mkdir()  # the file cannot be opened
    with caplog.at_level(logging.WARNING, "bridge.audit"):
        broken.record("x.y")
        broken.record("x.z")
    assert len([r for r in caplog.records if "cannot be written" in r.message]) == 1


def test_settings_choose_the_directory_limits_or_turn_it_off(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    audit = AuditLog()
    configure(audit, Settings(), "my-app")
    assert audit.enabled and audit.path is None  # opened on first use: start-up resolves nothing
    audit.record("x.first")
    if sys.platform.startswith("linux"):  # XDG_DATA_HOME is where platformdirs looks on Linux
        assert audit.path == tmp_path / "data" / "my-app" / "audit.jsonl"
        assert len(lines(audit.path)) == 1
    configure(audit, Settings(audit_dir=str(tmp_path / "elsewhere"), audit_max_bytes=5000, audit_backups=1), "my-app")
    assert audit.recent() == [] and audit.path == tmp_path / "elsewhere" / "audit.jsonl"
    configure(audit, Settings(audit=False), "my-app")
    assert not audit.enabled
    audit.record("x.off")
    assert not (tmp_path / "elsewhere" / "audit.jsonl").exists()


def test_a_directory_that_cannot_be_made_is_one_warning_at_first_use(tmp_path, caplog):
    (tmp_path / "a-file").write_text("")
    audit = AuditLog()
    configure(audit, Settings(audit_dir=str(tmp_path / "a-file" / "below")), "my-app")
    with caplog.at_level(logging.WARNING, logger="bridge.audit"):
        audit.record("x.one")
        audit.record("x.two")
        assert audit.recent() == []
    assert len([r for r in caplog.records if "cannot be opened" in r.message]) == 1
    assert not audit.enabled
    env = Settings.from_env({"BRIDGE_AUDIT": "0", "BRIDGE_AUDIT_MAX_BYTES": "5000"})
    assert (env.audit, env.audit_max_bytes) == (False, 5000)


SERVICES_APP = """
from bridge import Bridge
from bridge.builtins.services.plugin import plugin
from bridge.builtins.system import plugin as system

app = Bridge("audit-test")
app.include(system)
app.include(plugin)
"""


def test_system_audit_through_a_real_host_and_the_setting_that_turns_it_off(tmp_path):
    (tmp_path / "audit_app.py").write_text(SERVICES_APP)
    refused = {"definition": {"name": "x", "command": "sh"}}
    env = {"PYTHONPATH": str(tmp_path), "BRIDGE_AUDIT_DIR": str(tmp_path / "on")}
    with Host("audit_app:app", env=env) as host:
        host.recv()
        assert host.call("system.audit")["result"] == []
        for n in range(3):
            assert host.call("services.register", refused, id=n)["error"]["code"] == 4403
        entries = host.call("system.audit", {"limit": 2}, id="a")["result"]
        assert [e["event"] for e in entries] == ["services.refused"] * 2
        for bad in (0, 1001, "lots"):
            assert host.call("system.audit", {"limit": bad}, id="b")["error"]["code"] == -32602
    assert len(lines(tmp_path / "on" / "audit.jsonl")) == 3

    with Host("audit_app:app", env={**env, "BRIDGE_AUDIT_DIR": str(tmp_path / "off"), "BRIDGE_AUDIT": "0"}) as host:
        host.recv()
        assert host.call("services.register", refused)["error"]["code"] == 4403
        assert host.call("system.audit", id="a")["result"] == []
    assert not (tmp_path / "off").exists()
