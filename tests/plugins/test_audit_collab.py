"""handlers/collab and handlers/state in the audit log: permission refusals (of state calls and
of collab's own), grants and revocations, a lock ended by another participant, a conflict
resolution and a checkpoint, each with the acting participant. Through a real host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from harness import Host

SECRET = "do-not-log-this-value"


def host(tmp_path: Path) -> Host:
    return Host("--plugin", "system", "--plugin", "state", "--plugin", "collab", "--no-ready",
                env={"BRIDGE_STATE_PATH": str(tmp_path / "state.sqlite3"),
                     "BRIDGE_AUDIT_DIR": str(tmp_path / "audit")})


class Caller:
    """Calls as one participant (asserted as the transport's ``$caller``)."""

    ids = iter(range(1, 1 << 30))

    def __init__(self, h: Host, name: str) -> None:
        self.h, self.name = h, name

    def __call__(self, method: str, **params: Any) -> Any:
        id = next(self.ids)
        self.h.send({"jsonrpc": "2.0", "id": id, "method": method, "params": params, "$caller": self.name})
        return self.h.reply(id)

    def ok(self, method: str, **params: Any) -> Any:
        reply = self(method, **params)
        assert "result" in reply, reply
        return reply["result"]

    def refused(self, code: int, method: str, **params: Any) -> dict[str, Any]:
        reply = self(method, **params)
        assert reply.get("error", {}).get("code") == code, reply
        return reply["error"]


def entries(h: Host, prefix: str) -> list[dict[str, Any]]:
    found = h.call("system.audit", {"limit": 1000}, id="audit")["result"]
    return [{k: v for k, v in e.items() if k != "ts"} for e in found if e["event"].startswith(prefix)]


def test_refusals_grants_a_lock_ended_by_another_a_resolution_and_a_checkpoint_are_audited(tmp_path: Path) -> None:
    with host(tmp_path) as h:
        alice, bob, carol, dave = (Caller(h, name) for name in ("alice", "bob", "carol", "dave"))
        alice.ok("collab.create_session", id="s", docs=["notes"], permissions={"bob": ["edit"], "carol": ["view"]})
        bob.ok("collab.join", session="s")
        carol.ok("collab.join", session="s")
        alice.ok("state.set", doc="notes", value={"title": SECRET, "body": SECRET})

        # refused: joining without a permission, a state call before joining, a viewer's patch,
        # a viewer granting itself edit, taking a lock, resolving
        dave.refused(4602, "collab.join", session="s")
        dave.refused(4601, "state.get", doc="notes")
        carol.refused(4602, "state.patch", doc="notes", ops=[{"op": "replace", "path": "/title", "value": SECRET}])
        carol.refused(4602, "collab.share", session="s", participant="carol", permissions=["edit", "share"])
        carol.refused(4602, "collab.acquire_lock", session="s", resource="notes#/body")

        # a lock the holder loses when another participant takes its permissions away
        bob.ok("collab.acquire_lock", session="s", resource="notes#/body", ttl=30)
        alice.refused(4603, "collab.acquire_lock", session="s", resource="notes")  # contention: no denial
        alice.refused(4603, "state.patch", doc="notes", ops=[{"op": "replace", "path": "/body", "value": "x"}])
        alice.ok("collab.share", session="s", participant="bob", permissions=[])
        alice.ok("collab.share", session="s", participant="bob", permissions=["edit"])
        bob.ok("collab.join", session="s")

        # a conflict, refused to a viewer, resolved by bob
        base = alice.ok("state.get", doc="notes")["version"]
        alice.ok("state.patch", doc="notes", base_version=base, ops=[{"op": "replace", "path": "/title", "value": "a"}])
        conflict = bob.refused(4501, "state.patch", doc="notes", base_version=base,
                               ops=[{"op": "replace", "path": "/title", "value": SECRET}])["data"]
        carol.refused(4602, "collab.resolve", conflict_id=conflict["conflict_id"], strategy="manual", value=SECRET)
        resolved = bob.ok("collab.resolve", conflict_id=conflict["conflict_id"], strategy="mine")
        taken = carol.ok("state.checkpoint")["docs"]

        denied = entries(h, "collab.denied")
        assert denied == [
            {"event": "collab.denied", "participant": "dave", "session": "s", "reason": "forbidden", "needs": "join",
             "held": [], "method": "collab.join"},
            {"event": "collab.denied", "participant": "dave", "session": "s", "reason": "not_joined", "needs": "view",
             "held": [], "doc": "notes", "action": "read"},
            {"event": "collab.denied", "participant": "carol", "session": "s", "reason": "forbidden", "needs": "edit",
             "held": ["view"], "doc": "notes", "action": "edit"},
            {"event": "collab.denied", "participant": "carol", "session": "s", "reason": "forbidden", "needs": "share",
             "held": ["view"], "method": "collab.share", "target": "carol", "granting": ["edit", "share"]},
            {"event": "collab.denied", "participant": "carol", "session": "s", "reason": "forbidden", "needs": "edit",
             "held": ["view"], "method": "collab.acquire_lock", "resource": "notes#/body", "kind": "exclusive"},
            {"event": "collab.denied", "participant": "carol", "session": "s", "reason": "forbidden", "needs": "edit",
             "held": ["view"], "method": "collab.resolve", "conflict_id": conflict["conflict_id"],
             "strategy": "manual"},
        ]
        assert entries(h, "collab.permission") == [
            {"event": "collab.permission", "participant": "alice", "session": "s", "action": "create",
             "docs": ["notes"], "members": {"bob": ["edit", "view"], "carol": ["view"],
                                            "alice": ["edit", "view", "comment", "share"]}},
            {"event": "collab.permission", "participant": "alice", "session": "s", "action": "share",
             "target": "bob", "permissions": [], "previous": ["edit", "view"]},
            {"event": "collab.permission", "participant": "alice", "session": "s", "action": "share",
             "target": "bob", "permissions": ["edit", "view"], "previous": []},
        ]
        assert entries(h, "collab.lock") == [
            {"event": "collab.lock_released_by_other", "participant": "alice", "session": "s", "holder": "bob",
             "resource": "notes#/body", "kind": "exclusive", "reason": "removed"},
        ]
        assert entries(h, "collab.resolved") == [
            {"event": "collab.resolved", "participant": "bob", "session": "s", "conflict_id": conflict["conflict_id"],
             "doc": "notes", "path": "/title", "strategy": "mine", "base_version": base,
             "conflict_version": base + 1, "version": resolved["version"], "overridden": [],
             "mine_author": "bob", "theirs_authors": ["alice"]},
        ]
        assert taken == {"notes": resolved["version"]}
        assert entries(h, "state.") == [{"event": "state.checkpoint", "participant": "carol", "docs": taken}]
        # what an auditor needs, never the documents' values
        everything = h.call("system.audit", {"limit": 1000}, id="all")["result"]
        assert SECRET.encode() not in orjson.dumps(everything)


def test_a_broadcast_to_one_participant_reaches_only_that_one(tmp_path: Path) -> None:
    with host(tmp_path) as h:
        alice, bob, carol = Caller(h, "alice"), Caller(h, "bob"), Caller(h, "carol")
        alice.ok("collab.create_session", id="s", permissions={"bob": ["view"], "carol": ["view"]})
        for who in (alice, bob, carol):
            who.ok("collab.join", session="s")

        def broadcast(id: str, **params: Any) -> tuple[Any, list[Any]]:
            h.send({"jsonrpc": "2.0", "id": id, "method": "collab.broadcast", "$caller": "alice",
                    "params": {"session": "s", **params}})
            reply, before = h.recv_until(lambda m: m.get("id") == id)
            return reply, [m["params"] for m in before if m.get("method") == "collab.broadcast"]

        reply, told = broadcast("one", payload={"hi": 1}, to="carol")
        assert reply["result"] == 1 and [t["$meta"]["to"] for t in told] == [["carol"]]
        reply, told = broadcast("all", payload={"all": 1})
        assert reply["result"] == 2 and [sorted(t["$meta"]["to"]) for t in told] == [["bob", "carol"]]
        reply, told = broadcast("nobody", payload={}, to="dave")
        assert reply["error"]["code"] == -32602 and reply["error"]["data"]["to"] == "dave" and told == []
