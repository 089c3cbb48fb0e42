"""state and collab through the real host: several participants at once, a lock, conflicts,
a subscriber catching up, a kill -9 in a burst of patches, a database that cannot be opened."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest

from bridge.builtins.state.patches import apply
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


def test_kill_9_between_patches_sent_one_at_a_time_loses_no_acknowledged_patch(tmp_path: Path) -> None:
    """One patch at a time is committed on the event loop (no thread hop): acknowledged only
    once committed, so a kill -9 just after an acknowledgement, or with a patch in flight, loses none."""
    acked: list[int] = []
    with host(tmp_path, BRIDGE_STATE_SYNCHRONOUS="normal") as h:
        for i in range(1, 401):
            ops = [{"op": "add", "path": f"/k{i}", "value": i}, {"op": "add", "path": f"/m{i}", "value": i}]
            h.send({"jsonrpc": "2.0", "id": i, "method": "state.patch", "params": {"doc": "d", "ops": ops}})
            if i == 400:  # the last one in flight
                break
            reply = h.recv()
            assert reply.get("result", {}).get("version") == i, reply
            acked.append(i)
        os.kill(h.proc.pid, signal.SIGKILL)
        h.proc.wait(10)
    with host(tmp_path) as h:
        value = h.call("state.get", {"doc": "d"})["result"]
        present = {int(k[1:]) for k in value["value"] if k.startswith("k")}
        assert set(acked) <= present <= set(acked) | {400}
        assert present == {int(k[1:]) for k in value["value"] if k.startswith("m")}  # none half-applied
        assert value["version"] == len(present)


def test_eof_in_a_burst_stops_collab_then_writes_and_closes_the_store_and_exits(tmp_path: Path) -> None:
    """Stdin closes with patches in flight and a session's sweeper running: the host exits 0 in a
    bounded time, collab stops before the store is closed, and every acknowledged patch is there."""
    with host(tmp_path) as h:
        alice = Caller(h, "alice", [])
        alice.ok("collab.create_session", id="s", docs=["d"])
        h.send(*({"jsonrpc": "2.0", "id": f"p{i}", "method": "state.patch",
                  "params": {"doc": "d", "ops": [{"op": "add", "path": f"/k{i}", "value": i}],
                             "$meta": {"caller": {"participant": "alice"}}}} for i in range(2000)))
        h.close_stdin()
        assert h.wait(10) == 0
        acked = set()
        with pytest.raises(EOFError):
            while True:  # every reply, up to the end of the output
                reply = h.recv()
                if str(reply.get("id", "")).startswith("p") and "result" in reply:
                    acked.add(int(reply["id"][1:]))
        h.wait_stderr(b"the store is closed")
        log = h.stderr.decode()
        assert log.index("collab: stopped") < log.index("state: every acknowledged patch is written")
    assert acked, "no patch was acknowledged before the host stopped"
    with host(tmp_path) as h:
        alice = Caller(h, "alice", [])
        alice.ok("collab.join", session="s")
        value = alice.ok("state.get", doc="d")["value"]
        assert acked <= {int(k[1:]) for k in value}


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


# ---- damaged history: refused, never served silently older (issue 12, item 15) ----------------

def patches(h: Host, doc: str, start: int, count: int) -> list[int]:
    """Send ``count`` patches at once (ids from ``start``); the versions they got, once all are acknowledged."""
    h.send(*({"jsonrpc": "2.0", "id": start + i, "method": "state.patch",
              "params": {"doc": doc, "ops": [{"op": "add", "path": f"/k{start + i}", "value": i}]}}
             for i in range(count)))
    return [h.reply(start + i)["result"]["version"] for i in range(count)]


def stop(h: Host) -> None:
    """A normal shutdown: EOF, then the host folds the WAL in and exits."""
    h.close_stdin()
    assert h.wait() == 0


def refused(h: Host) -> str:
    """The reason the state plugin refused to start, as its methods answer it."""
    reply = h.call("state.get", {"doc": "d"}, id="probe")
    assert reply.get("error", {}).get("message") == "plugin state failed to start", reply
    return reply["error"]["data"]["error"]


@pytest.mark.parametrize("snapshot_every", [100, 200])
def test_a_snapshot_whose_version_was_changed_is_never_taken_for_a_newer_one(tmp_path: Path,
                                                                            snapshot_every: int) -> None:
    settings = {"BRIDGE_STATE_SNAPSHOT_EVERY": str(snapshot_every), "BRIDGE_STATE_HISTORY": "10"}
    with host(tmp_path, **settings) as h:
        assert patches(h, "d", 1, 230)[-1] == 230
        expected = h.call("state.get", {"doc": "d"}, id="get")["result"]["value"]
        stop(h)
    db = sqlite3.connect(tmp_path / "state.sqlite3")
    db.execute("UPDATE snapshots SET version = 230 WHERE version = 200")  # in front of the newest snapshot
    db.commit()
    db.close()
    with host(tmp_path, **settings) as h:
        if snapshot_every == 100:  # the older snapshot and the log still rebuild every version: nothing lost
            assert h.call("state.get", {"doc": "d"}, id="get")["result"] == {"doc": "d", "version": 230,
                                                                            "value": expected}
            h.wait_stderr(b"the snapshot(s) at version(s) 230 fail their checksum")
        else:  # the log was pruned up to 190-200: those versions were only in that snapshot
            reason = refused(h)
            assert str(tmp_path / "state.sqlite3") in reason and "snapshot at version 230 fails its checksum" in reason
            assert re.search(r"no valid snapshot covers versions 1-(19\d|200)\b", reason), reason
            assert "restore the database" in reason


def test_an_emptied_database_is_refused_then_opened_only_when_the_loss_is_accepted(tmp_path: Path) -> None:
    with host(tmp_path) as h:
        patches(h, "d", 1, 20)
        stop(h)
    (tmp_path / "state.sqlite3").write_bytes(b"")
    with host(tmp_path) as h:
        reason = refused(h)
        assert str(tmp_path / "state.sqlite3") in reason
        assert "says version 20 of 'd' had been acknowledged, but the database holds nothing" in reason
        assert "accept_loss" in reason
    with host(tmp_path, BRIDGE_STATE_ACCEPT_LOSS="1") as h:
        assert h.call("state.get", {"doc": "d"}, id="get")["result"]["version"] == 0
        h.wait_stderr(b"opened as it is (accept_loss)")
        patches(h, "d", 1, 3)
        stop(h)
    with host(tmp_path) as h:  # the loss was accepted once: from then on the database is the reference
        assert h.call("state.get", {"doc": "d"}, id="get")["result"]["version"] == 3


@pytest.mark.parametrize("wal", ["intact", "deleted", "truncated", "damaged"])
def test_kill_9_then_a_lost_or_damaged_wal_is_refused_not_served_older(tmp_path: Path, wal: str) -> None:
    burst = [{"jsonrpc": "2.0", "id": i, "method": "state.patch",
              "params": {"doc": "d", "ops": [{"op": "add", "path": f"/k{i}", "value": i}]}} for i in range(1, 301)]
    with host(tmp_path) as h:
        patches(h, "d", 10_000, 500)
        # folded into the database file: what follows is only in the WAL (too few pages for SQLite
        # to fold it in by itself), so losing the WAL loses acknowledged patches for certain
        assert h.call("state.checkpoint", id="cp")["result"] == {"docs": {"d": 500}}
        h.send(*burst)
        acked = [h.recv() for _ in range(200)]
        assert all("result" in a for a in acked), acked
        os.kill(h.proc.pid, signal.SIGKILL)
        h.wait()
    log = tmp_path / "state.sqlite3-wal"
    size = log.stat().st_size
    assert size > 32 + 4096 * 4
    if wal == "deleted":
        log.unlink()
        (tmp_path / "state.sqlite3-shm").unlink(missing_ok=True)
    elif wal == "truncated":  # cut in the second frame: at most the first commit, if one page, is left
        frame = 24 + 4096
        os.truncate(log, 32 + frame + frame // 2)
    elif wal == "damaged":
        with open(log, "r+b") as file:  # the first frame's page: its checksum fails, and SQLite ignores
            file.seek(32 + 24 + 512)    # that frame and every one after it
            file.write(b"\xff" * 64)
    with host(tmp_path) as h:
        if wal == "intact":  # a normal restart after kill -9 loses nothing and refuses nothing
            got = h.call("state.get", {"doc": "d"}, id="get")["result"]
            assert {f"k{a['id']}" for a in acked} <= set(got["value"]) and got["version"] >= 700
            return
        reason = refused(h)
        said = re.search(r"says version (\d+) of 'd' had been acknowledged, but the database has that document "
                         r"only up to version (\d+)", reason)
        assert said and str(tmp_path / "state.sqlite3") in reason and "accept_loss" in reason, reason
        expected, found = int(said[1]), int(said[2])
        assert expected >= max(a["result"]["version"] for a in acked) and found < expected
    if wal == "deleted":  # accepted explicitly: opened as it is, and the loss is on record
        with host(tmp_path, BRIDGE_STATE_ACCEPT_LOSS="1", BRIDGE_AUDIT_DIR=str(tmp_path / "audit")) as h:
            assert h.call("state.get", {"doc": "d"}, id="get")["result"]["version"] == 500
            h.wait_stderr(b"opened as it is (accept_loss) although the marker")
            stop(h)
        audit = [orjson.loads(line) for line in (tmp_path / "audit" / "audit.jsonl").read_bytes().splitlines()]
        [entry] = [e for e in audit if e["event"] == "state.recovered"]
        assert entry["database"] == str(tmp_path / "state.sqlite3") and entry["accepted_loss"] is True
        assert (entry["expected_doc"], entry["expected_version"], entry["found_version"]) == ("d", expected, 500)
        with host(tmp_path) as h:  # and from then on it is the reference: a normal start
            assert h.call("state.get", {"doc": "d"}, id="get")["result"]["version"] == 500
