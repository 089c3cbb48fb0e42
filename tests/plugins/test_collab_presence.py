"""handlers/collab: a departed participant (its window closed or reloaded) leaves at once, only
the connection itself may say so, and ``collab.conflicts`` shows details only to those involved
and to editors. The model directly, and the methods through a real host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bridge.builtins.collab.sessions import FORBIDDEN, Collab
from harness import Host


def test_depart_leaves_every_session_of_that_connection_with_its_locks_and_tells_the_others() -> None:
    told: list[tuple[str, dict[str, Any], list[str]]] = []
    collab = Collab(lambda event, params, to: told.append((event, params, [p.id for p in to] if to else [])))
    main, other = object(), object()
    for id, doc in (("s", "a"), ("t", "b"), ("u", "c")):
        collab.create(id, "alice", {"*": ["edit"]}, [doc])
        collab.join(id, "alice", main)
    collab.join("s", "win", main)
    collab.join("t", "win", main)
    collab.join("u", "win", other)  # the same id through another connection is not this one's to end
    collab.acquire("s", "win", "a#/title", "exclusive", ttl=3600)
    told.clear()

    assert collab.depart("win", main) == ["s", "t"]
    assert "win" not in collab.get("s").participants and "win" not in collab.get("t").participants
    assert "win" in collab.get("u").participants
    assert ("collab.lock_released", {"session": "s", "resource": "a#/title", "holder": "win", "reason": "departed"},
            ["alice"]) in told
    assert [e for e in told if e[0] == "collab.participant_left"] == [
        ("collab.participant_left", {"session": "s", "participant": "win", "reason": "departed"}, ["alice"]),
        ("collab.participant_left", {"session": "t", "participant": "win", "reason": "departed"}, ["alice"]),
    ]
    collab.check("alice", "a", "edit", [("title",)])  # the lock is gone at once, not after its TTL
    assert collab.depart("win", main) == []


class Caller:
    """Calls as one participant (``$caller``), or as the connection itself (``None``)."""

    ids = iter(range(1, 1 << 30))

    def __init__(self, h: Host, name: str | None) -> None:
        self.h, self.name = h, name

    def __call__(self, method: str, **params: Any) -> Any:
        id = next(self.ids)
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method, "params": params}
        if self.name is not None:
            message["$caller"] = self.name
        self.h.send(message)
        return self.h.reply(id)

    def ok(self, method: str, **params: Any) -> Any:
        reply = self(method, **params)
        assert "result" in reply, reply
        return reply["result"]


def host(tmp_path: Path) -> Host:
    return Host("--plugin", "state", "--plugin", "collab", "--no-ready",
                env={"BRIDGE_STATE_PATH": str(tmp_path / "state.sqlite3")})


def test_departed_from_the_connection_ends_presence_and_locks_at_once_and_a_caller_cannot_forge_it(
        tmp_path: Path) -> None:
    with host(tmp_path) as h:
        main, alice, win = Caller(h, None), Caller(h, "alice"), Caller(h, {"window": 7, "frame": "app://x"})
        alice.ok("collab.create_session", id="s", docs=["notes"], permissions={"*": ["edit"]})
        win.ok("collab.join", session="s")
        win.ok("collab.acquire_lock", session="s", resource="notes#/title", ttl=3600)

        # a window (or anyone declaring a caller) saying another participant left is refused
        for forger in (alice, win):
            reply = forger("collab.departed", participant="window:7")
            assert reply["error"]["code"] == FORBIDDEN, reply
        assert [p["participant"] for p in alice.ok("collab.session", session="s")["participants"]] == \
            ["alice", "window:7"]

        h.send({"jsonrpc": "2.0", "id": "bye", "method": "collab.departed", "params": {"participant": "window:7"}})
        reply, before = h.recv_until(lambda m: m.get("id") == "bye")
        assert reply["result"] == ["s"]
        [left] = [m for m in before if m.get("method") == "collab.participant_left"]
        assert left["params"] == {"session": "s", "participant": "window:7", "reason": "departed",
                                  "$meta": {"to": ["alice"]}}
        view = alice.ok("collab.session", session="s")
        assert [p["participant"] for p in view["participants"]] == ["alice"] and view["locks"] == []
        assert alice.ok("state.patch", doc="notes", ops=[{"op": "add", "path": "/title", "value": "mine now"}])
        assert main.ok("collab.departed", participant="window:7") == []


def test_conflicts_show_details_to_the_involved_and_to_editors_a_summary_to_other_viewers(tmp_path: Path) -> None:
    with host(tmp_path) as h:
        alice, bob, carol, dave = (Caller(h, n) for n in ("alice", "bob", "carol", "dave"))
        alice.ok("collab.create_session", id="s", docs=["notes"],
                 permissions={"bob": ["edit"], "carol": ["view"], "dave": ["edit"]})
        for who in (bob, carol, dave):
            who.ok("collab.join", session="s")
        base = alice.ok("state.set", doc="notes", value={"title": "secret draft"})["version"]
        alice.ok("state.patch", doc="notes", ops=[{"op": "replace", "path": "/title", "value": "alice's"}])
        refused = bob("state.patch", doc="notes", base_version=base,
                      ops=[{"op": "replace", "path": "/title", "value": "bob's"}])
        conflict_id = refused["error"]["data"]["conflict_id"]

        full = {who.name: who.ok("collab.conflicts", session="s") for who in (alice, bob, dave)}
        for shown in full.values():  # alice and bob are involved; dave is an editor
            assert [c["conflict_id"] for c in shown] == [conflict_id]
            assert shown[0]["mine"] == {"participant": "bob", "value": "bob's",
                                        "ops": [{"op": "replace", "path": "/title", "value": "bob's"}]}
            assert shown[0]["theirs"] == {"participants": ["alice"], "value": "alice's"}
            assert shown[0]["base"] == "secret draft"
        [summary] = carol.ok("collab.conflicts", session="s")  # a viewer, not involved
        assert summary == {"conflict_id": conflict_id, "session": "s", "doc": "notes", "path": "/title",
                           "base_version": base, "current_version": base + 1, "redacted": True, "severity": "high"}
        assert "secret draft" not in str(summary)

        alice.ok("collab.resolve", conflict_id=conflict_id, strategy="theirs")
        [resolved] = carol.ok("collab.conflicts", session="s", include_resolved=True)
        assert resolved["redacted"] is True and resolved["resolved"]["strategy"] == "theirs"
        assert "by" not in resolved["resolved"] and "mine" not in resolved
