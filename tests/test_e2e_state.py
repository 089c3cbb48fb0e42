"""state and collab through the real host: several participants at once, a lock, conflicts,
a subscriber catching up, a kill -9 in a burst of patches, a database that cannot be opened."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from handlers.state.patches import apply
from harness import Host


def host(tmp_path: Path, **env: str) -> Host:
    return Host("--plugin", "state", "--plugin", "collab", "--no-ready",
                env={"BRIDGE_STATE_PATH": str(tmp_path / "state.sqlite3"), **env})


class Caller:
    """One participant's calls over the shared host (as windows share the Electron main process).
    Notifications that arrive while waiting for a reply are kept in ``events``, shared by all."""

    ids = iter(range(1, 1 << 30))

    def __init__(self, h: Host, name: str, events: list[Any]) -> None:
        self.h, self.name, self.events = h, name, events

    def __call__(self, method: str, **params: Any) -> Any:
        id = next(self.ids)
        self.h.send({"jsonrpc": "2.0", "id": id, "method": method,
                     "params": {**params, "$meta": {"caller": {"participant": self.name}}}})
        reply, seen = self.h.recv_until(lambda m: m.get("id") == id and "method" not in m)
        self.events.extend(seen)
        return reply

    def ok(self, method: str, **params: Any) -> Any:
        reply = self(method, **params)
        assert "result" in reply, reply
        return reply["result"]


def test_two_writers_a_viewer_a_lock_and_conflicts_resolved_each_way(tmp_path: Path) -> None:
    with host(tmp_path) as h:
        events: list[Any] = []
        alice, bob, carol = (Caller(h, name, events) for name in ("alice", "bob", "carol"))
        alice.ok("collab.create_session", id="doc-1", docs=["notes"],
                 permissions={"bob": ["edit"], "carol": ["view"]})
        assert bob.ok("collab.join", session="doc-1")["permissions"] == ["edit", "view"]
        carol.ok("collab.join", session="doc-1")
        v = alice.ok("state.set", doc="notes", value={"title": "t", "body": "b", "meta": {"a": 1}})["version"]
        assert carol.ok("state.get", doc="notes")["value"]["title"] == "t"
        refused = carol("state.patch", doc="notes", ops=[{"op": "replace", "path": "/title", "value": "c"}])
        assert refused["error"]["code"] == 4602 and "carol may not edit" in refused["error"]["message"]

        # a lock blocks the other writer's edit of that part, names the holder, and is released
        alice.ok("collab.acquire_lock", session="doc-1", resource="notes#/body", ttl=30)
        locked = bob("state.patch", doc="notes", ops=[{"op": "replace", "path": "/body", "value": "x"}])
        assert locked["error"]["code"] == 4603 and locked["error"]["data"]["holder"] == "alice"
        assert bob.ok("state.patch", doc="notes", ops=[{"op": "replace", "path": "/meta/a", "value": 2}])
        assert alice.ok("collab.release_lock", session="doc-1", resource="notes#/body") is True

        # a conflict for each strategy: both write /title from the same base
        for strategy, value, expected in (("mine", None, "bob"), ("theirs", None, "alice"),
                                          ("manual", "agreed", "agreed")):
            base = alice.ok("state.get", doc="notes")["version"]
            alice.ok("state.patch", doc="notes", base_version=base,
                     ops=[{"op": "replace", "path": "/title", "value": "alice"}])
            conflict = bob("state.patch", doc="notes", base_version=base,
                           ops=[{"op": "replace", "path": "/title", "value": "bob"}])["error"]
            assert conflict["code"] == 4501 and conflict["data"]["paths"] == ["/title"]
            assert conflict["data"]["current_version"] == base + 1
            listed = carol.ok("collab.conflicts", session="doc-1")
            assert [c["conflict_id"] for c in listed] == [conflict["data"]["conflict_id"]]
            done = bob.ok("collab.resolve", conflict_id=conflict["data"]["conflict_id"], strategy=strategy, value=value)
            assert alice.ok("state.get", doc="notes")["value"]["title"] == expected
            assert done["strategy"] == strategy
        # a merge of objects, key by key
        base = alice.ok("state.get", doc="notes")["version"]
        alice.ok("state.patch", doc="notes", base_version=base, ops=[{"op": "add", "path": "/meta/x", "value": 1}])
        conflict = bob("state.patch", doc="notes", base_version=base,
                       ops=[{"op": "replace", "path": "/meta", "value": {"a": 2, "y": 2}}])["error"]
        bob.ok("collab.resolve", conflict_id=conflict["data"]["conflict_id"], strategy="merge")
        assert alice.ok("state.get", doc="notes")["value"]["meta"] == {"a": 2, "x": 1, "y": 2}
        assert v == 1
        # everyone involved heard: the notifications name their recipients
        events = [m for m in events if m.get("method", "").startswith("collab.")]
        resolved = [e["params"] for e in events if e["method"] == "collab.conflict_resolved"]
        assert len(resolved) == 4 and all(set(p["$meta"]["to"]) == {"alice", "bob"} for p in resolved)
        assert any(e["method"] == "collab.lock_acquired" and set(e["params"]["$meta"]["to"]) == {"alice", "bob", "carol"}
                   for e in events)


def test_a_subscriber_that_reconnects_from_an_old_version_catches_up_exactly(tmp_path: Path) -> None:
    with host(tmp_path) as h:
        events: list[Any] = []
        writer, reader = Caller(h, "writer", events), Caller(h, "reader", events)
        writer.ok("state.set", doc="d", value={"items": []})
        first = reader.ok("state.subscribe", doc="d")
        assert first["full"] is True
        mine, version = first["value"], first["to"]
        for i in range(30):
            writer.ok("state.patch", doc="d", ops=[{"op": "add", "path": "/items/-", "value": i}])
        changes = [m["params"] for m in events if m.get("method") == "state.changed"]
        assert len(changes) == 30
        for change in changes:  # the live changes, in order
            assert change["from"] == version
            mine, version = apply(mine, change["ops"])[0], change["to"]
        assert reader.ok("state.unsubscribe", subscription=first["subscription"]) is True
        for i in range(30, 50):
            writer.ok("state.patch", doc="d", ops=[{"op": "add", "path": "/items/0", "value": i}])
    with host(tmp_path) as h:  # the host restarted: the history came back from disk
        reader = Caller(h, "reader", [])
        again = reader.ok("state.subscribe", doc="d", since_version=version)
        assert again["full"] is False and again["from"] == version and again["to"] == 51
        assert apply(mine, again["ops"])[0] == reader.ok("state.get", doc="d")["value"]


def test_kill_9_in_a_burst_of_10000_patches_loses_no_acknowledged_patch(tmp_path: Path) -> None:
    burst = b"".join(orjson.dumps({"jsonrpc": "2.0", "id": i, "method": "state.patch", "params": {
        "doc": "burst", "ops": [{"op": "add", "path": f"/k{i}", "value": i}, {"op": "add", "path": f"/m{i}", "value": i}],
    }}) + b"\n" for i in range(10_000))
    acked: set[int] = set()
    with host(tmp_path) as h:
        def send() -> None:
            try:
                h.send_raw(burst)
            except (BrokenPipeError, ValueError, OSError):
                pass  # the host was killed mid-burst

        sender = threading.Thread(target=send)
        sender.start()
        while len(acked) < 4000:
            reply = h.recv()
            assert "result" in reply, reply
            acked.add(reply["id"])
        os.kill(h.proc.pid, signal.SIGKILL)
        h.proc.wait(10)
        sender.join(10)
    with host(tmp_path) as h:
        value = h.call("state.get", {"doc": "burst"})["result"]
        doc = value["value"]
        present = {int(k[1:]) for k in doc if k.startswith("k")}
        assert acked <= present  # every acknowledged patch is there
        assert present == {int(k[1:]) for k in doc if k.startswith("m")}  # no patch half-applied
        assert value["version"] == len(present)


@pytest.mark.parametrize("fallback", [False, True])
def test_a_database_that_cannot_be_opened_is_a_clear_error_or_memory_when_allowed(tmp_path: Path, fallback: bool) -> None:
    (tmp_path / "state.sqlite3").write_bytes(b"not a database at all " * 64)
    env = {"BRIDGE_STATE_MEMORY_IF_UNAVAILABLE": "1"} if fallback else {}
    with host(tmp_path, **env) as h:
        reply = h.call("state.get", {"doc": "d"})
        if fallback:
            assert reply["result"] == {"doc": "d", "version": 0, "value": {}}
            h.wait_stderr(b"running in memory only")
        else:
            assert reply["error"]["message"] == "plugin state failed to start"
            assert "state database" in reply["error"]["data"]["error"]
            h.wait_stderr(b"plugin state failed to start")
