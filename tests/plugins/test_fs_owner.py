"""handlers/fs through a real host: a watch belongs to its watcher, its events go to it alone."""

from __future__ import annotations

import json

from harness import Host


def test_events_name_the_watcher_and_only_the_watcher_can_unwatch(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    config = tmp_path / "bridge.toml"
    config.write_text(f"[plugins.fs]\nroots = [{json.dumps(str(root))}]\n")

    def as_(who: str, params: dict) -> dict:
        return {**params, "$meta": {"caller": who}}

    with Host("--plugin", "fs", "--config", str(config)) as host:
        host.recv()
        sub = host.call("fs.watch", as_("alice", {"paths": [str(root)], "debounce_ms": 20}), id="w")["result"]
        (root / "one.txt").write_text("x")
        event, _ = host.recv_until(lambda m: m.get("method") == "fs.changed")
        assert event["params"]["subscription"] == sub
        assert event["params"]["$meta"] == {"to": ["alice"]}

        stolen = host.call("fs.unwatch", as_("bob", {"subscription": sub}), id="bob")["error"]
        unknown = host.call("fs.unwatch", as_("bob", {"subscription": "w999"}), id="nope")["error"]
        assert stolen["code"] == unknown["code"] == 4303
        assert stolen["message"].replace(sub, "ID") == unknown["message"].replace("w999", "ID")
        assert stolen["data"] == {"subscription": sub} and unknown["data"] == {"subscription": "w999"}

        (root / "two.txt").write_text("x")  # bob's attempt left alice's watch running
        event, _ = host.recv_until(lambda m: m.get("method") == "fs.changed")
        assert event["params"]["subscription"] == sub and event["params"]["$meta"] == {"to": ["alice"]}
        assert host.call("fs.unwatch", as_("alice", {"subscription": sub}), id="alice")["result"] is True
        again = host.call("fs.unwatch", as_("alice", {"subscription": sub}), id="again")["error"]
        assert again["code"] == 4303


def test_a_caller_that_declares_nothing_is_its_connection(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    config = tmp_path / "bridge.toml"
    config.write_text(f"[plugins.fs]\nroots = [{json.dumps(str(root))}]\n")
    with Host("--plugin", "fs", "--config", str(config)) as host:
        host.recv()
        sub = host.call("fs.watch", {"paths": [str(root)], "debounce_ms": 20}, id="w")["result"]
        (root / "one.txt").write_text("x")
        event, _ = host.recv_until(lambda m: m.get("method") == "fs.changed")
        assert event["params"]["$meta"] == {"to": ["connection:1"]}
        error = host.call("fs.unwatch", {"subscription": sub, "$meta": {"caller": "mallory"}}, id="m")["error"]
        assert error["code"] == 4303
        assert host.call("fs.unwatch", {"subscription": sub}, id="u")["result"] is True
