"""handlers/collab: sessions, permissions on state documents, presence and locks with a
controllable clock, conflicts recorded and resolved each way, what survives a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import TaskGroup

from bridge import BridgeError
from bridge.builtins.collab.plugin import CollabSettings, Hub
from bridge.builtins.collab.sessions import FORBIDDEN, LOCKED, NOT_A_PARTICIPANT, Collab, Denied
from bridge.builtins.state.engine import CONFLICT, Documents
from harness import Notifications

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def model(**settings: Any) -> tuple[Collab, Clock, list[tuple[str, dict[str, Any], list[str]]]]:
    clock = Clock()
    told: list[tuple[str, dict[str, Any], list[str]]] = []
    collab = Collab(lambda event, params, to: told.append((event, params, [p.id for p in to] if to else [])),
                    clock=clock, wall=clock, **settings)
    return collab, clock, told


def test_presence_goes_away_then_removed_with_its_locks_and_empty_sessions_expire() -> None:
    collab, clock, told = model(away_after=300, remove_after=600, empty_session_ttl=60)
    collab.create("s", "alice", {"*": ["edit"]}, ["doc"])
    collab.join("s", "alice")
    collab.join("s", "bob")
    collab.acquire("s", "bob", "doc#/title", "exclusive", ttl=3600)
    clock.now += 299
    collab.heartbeat("s", "alice")
    assert collab.sweep() == [] and not [e for e in told if e[0] == "collab.presence"]
    clock.now += 1  # bob idle 300 s: away, and alice is told
    collab.sweep()
    assert ("collab.presence", {"session": "s", "participant": "bob", "status": "away", "presence": None},
            ["alice"]) in told
    clock.now += 300  # bob idle 600 s: removed, his lock released, alice told
    collab.sweep()
    assert "bob" not in collab.get("s").participants
    assert ("collab.lock_released", {"session": "s", "resource": "doc#/title", "holder": "bob", "reason": "idle"},
            ["alice"]) in told
    assert ("collab.participant_left", {"session": "s", "participant": "bob", "reason": "idle"}, ["alice"]) in told
    collab.leave("s", "alice")
    clock.now += 59
    assert collab.sweep() == []
    clock.now += 1
    assert collab.sweep() == ["s"] and "doc" not in collab.governed


def test_locks_block_others_edits_expire_and_share() -> None:
    collab, clock, told = model()
    collab.create("s", "alice", {"bob": ["edit"], "carol": ["view"]}, ["doc"])
    for who in ("alice", "bob", "carol"):
        collab.join("s", who)
    collab.acquire("s", "alice", "doc#/title", "exclusive", ttl=10)
    collab.check("alice", "doc", "edit", [("title",)])  # the holder may edit
    collab.check("bob", "doc", "edit", [("body",)])  # another path is free
    with pytest.raises(BridgeError) as locked:
        collab.check("bob", "doc", "edit", [("title", "text")])
    assert locked.value.code == LOCKED and locked.value.data["holder"] == "alice"
    with pytest.raises(BridgeError) as taken:
        collab.acquire("s", "bob", "doc", "shared", ttl=10)  # the whole doc overlaps alice's part
    assert taken.value.code == LOCKED
    with pytest.raises(BridgeError) as viewer:
        collab.acquire("s", "carol", "doc#/body", "exclusive", ttl=10)
    assert viewer.value.code == FORBIDDEN
    clock.now += 10
    collab.sweep()
    assert ("collab.lock_expired", {"session": "s", "resource": "doc#/title", "holder": "alice",
                                     "reason": "expired"}, ["alice", "bob", "carol"]) in told
    collab.check("bob", "doc", "edit", [("title",)])
    collab.acquire("s", "bob", "doc#/body", "shared", ttl=5)
    collab.acquire("s", "alice", "doc#/body", "shared", ttl=5)  # shared locks share


def test_permissions_are_enforced_and_can_be_shared() -> None:
    collab, _, told = model()
    collab.create("s", "alice", {"bob": ["view"]}, ["doc"])
    collab.join("s", "alice")
    with pytest.raises(BridgeError) as outsider:
        collab.join("s", "mallory")
    assert outsider.value.code == FORBIDDEN
    with pytest.raises(BridgeError) as not_joined:
        collab.check("bob", "doc", "read", [()])
    assert not_joined.value.code == NOT_A_PARTICIPANT
    collab.join("s", "bob")
    collab.check("bob", "doc", "read", [()])
    with pytest.raises(BridgeError) as viewer:
        collab.check("bob", "doc", "edit", [("x",)])
    assert viewer.value.code == FORBIDDEN and viewer.value.data["permissions"] == ["view"]
    with pytest.raises(BridgeError):
        collab.share("s", "bob", "bob", ["edit"])  # bob cannot share
    collab.share("s", "alice", "bob", ["edit"])
    collab.check("bob", "doc", "edit", [("x",)])
    assert collab.get("s").members["bob"] == ["edit", "view"]
    collab.check("anyone", "other-doc", "edit", [()])  # documents outside sessions are free


def test_only_refusals_for_want_of_membership_or_permission_are_denials_the_plugin_audits() -> None:
    collab, _, _ = model()
    collab.create("s", "alice", {"bob": ["view"]}, ["doc"])
    collab.join("s", "alice")
    refusals = []
    for refused in (lambda: collab.join("s", "mallory"), lambda: collab.check("bob", "doc", "read", [()]),
                    lambda: collab.share("s", "alice", "bob", ["fly"]),  # bad input, not a denial
                    lambda: collab.acquire("s", "alice", "doc#nope", "exclusive", 1)):
        with pytest.raises(BridgeError) as caught:
            refused()
        refusals.append(caught.value.audit if isinstance(caught.value, Denied) else caught.value.code)
    assert refusals == [{"session": "s", "reason": "forbidden", "needs": "join", "held": []},
                        {"session": "s", "reason": "not_joined", "needs": "view", "held": ["view"]},
                        FORBIDDEN, FORBIDDEN]


async def hub(tasks: TaskGroup, tmp_path: Path, **settings: Any) -> Hub:
    docs = await Documents.open(tmp_path / "state.sqlite3", tasks.start_soon)
    h = Hub(docs, CollabSettings(**settings), tasks.start_soon)
    await h.start()
    return h


async def two_writers_one_viewer(h: Hub) -> dict[str, Notifications]:
    conns = {who: Notifications() for who in ("alice", "bob", "carol")}
    h.model.create("s", "alice", {"bob": ["edit"], "carol": ["view"]}, ["doc"])
    for who, conn in conns.items():
        h.model.join("s", who, conn)
    await h.save("s")
    await h.docs.patch("doc", [{"op": "add", "path": "", "value": {"title": "t", "meta": {"a": 1, "b": 1}}}],
                       None, "alice")
    return conns


async def conflict_on(h: Hub, path: str, alice_value: Any, bob_value: Any) -> str:
    base = h.docs.docs["doc"].version
    await h.docs.patch("doc", [{"op": "replace", "path": path, "value": alice_value}], base, "alice")
    with pytest.raises(BridgeError) as refused:
        await h.docs.patch("doc", [{"op": "replace", "path": path, "value": bob_value},
                                   {"op": "add", "path": "/bob_was_here", "value": True}], base, "bob")
    assert refused.value.code == CONFLICT and refused.value.data["paths"] == [path]
    return refused.value.data["conflict_id"]


@pytest.mark.parametrize(("strategy", "value", "title"), [
    ("mine", None, "bob"), ("theirs", None, "alice"), ("manual", "both", "both")])
async def test_a_conflict_is_recorded_and_resolved(tmp_path: Path, strategy: str, value: Any, title: str, tasks: TaskGroup) -> None:
    h = await hub(tasks, tmp_path)
    conns = await two_writers_one_viewer(h)
    with pytest.raises(BridgeError) as viewer:
        await h.docs.patch("doc", [{"op": "replace", "path": "/title", "value": "carol"}], None, "carol")
    assert viewer.value.code == FORBIDDEN
    conflict_id = await conflict_on(h, "/title", "alice", "bob")
    recorded = conns["bob"].events("collab.conflict")[0]
    assert recorded["$meta"] == {"to": ["bob"]} and conns["alice"].events("collab.conflict")[0]["$meta"]["to"] == ["alice"]
    assert conns["carol"].events("collab.conflict") == []  # both authors are told; the viewer is not involved
    assert (recorded["base"], recorded["mine"]["value"], recorded["theirs"]["value"]) == ({"title": "t",
            "meta": {"a": 1, "b": 1}}["title"], "bob", "alice")
    done = await h.resolve(conflict_id, strategy, value, "bob")
    assert h.docs.docs["doc"].value["title"] == title
    assert h.docs.docs["doc"].value.get("bob_was_here") is (None if strategy == "theirs" else True)
    told = conns["alice"].events("collab.conflict_resolved")[0]
    assert told["strategy"] == strategy and told["version"] == done["version"] and told["by"] == "bob"
    with pytest.raises(BridgeError):
        await h.resolve(conflict_id, "theirs", None, "bob")  # once only
    await h.stop()
    await h.docs.close()


async def test_merge_takes_each_key_from_the_side_that_changed_it(tmp_path: Path, tasks: TaskGroup) -> None:
    h = await hub(tasks, tmp_path)
    await two_writers_one_viewer(h)
    base = h.docs.docs["doc"].version
    await h.docs.patch("doc", [{"op": "replace", "path": "/meta/a", "value": 2}], base, "alice")
    with pytest.raises(BridgeError) as refused:
        await h.docs.patch("doc", [{"op": "replace", "path": "/meta", "value": {"a": 1, "b": 3, "c": 4}}], base, "bob")
    done = await h.resolve(refused.value.data["conflict_id"], "merge", None, "alice")
    assert h.docs.docs["doc"].value["meta"] == {"a": 2, "b": 3, "c": 4} and done["overridden"] == []
    await h.stop()
    await h.docs.close()


async def test_sessions_members_and_conflicts_survive_a_restart_presence_and_locks_do_not(tmp_path: Path, tasks: TaskGroup) -> None:
    h = await hub(tasks, tmp_path)
    await two_writers_one_viewer(h)
    h.model.acquire("s", "alice", "doc#/meta", "exclusive", 60)
    conflict_id = await conflict_on(h, "/title", "alice", "bob")
    await h.stop()
    await h.docs.close()
    again = await hub(tasks, tmp_path)
    session = again.model.get("s")
    assert session.members == {"alice": ["edit", "view", "comment", "share"], "bob": ["edit", "view"],
                               "carol": ["view"]}
    assert session.participants == {} and session.locks == {}
    assert again.conflicts[conflict_id].resolved is None
    again.model.join("s", "bob", Notifications())
    await again.resolve(conflict_id, "mine", None, "bob")
    assert again.docs.docs["doc"].value["title"] == "bob"
    await again.stop()
    await again.docs.close()


def test_the_js_client_names_the_same_error_codes() -> None:
    """client_js/src/state.js lists these codes for apps; they must not drift from the plugins'."""
    import re

    from bridge.builtins.collab import sessions
    from bridge.builtins.state import engine

    source = (Path(__file__).parents[2] / "client_js" / "src" / "state.js").read_text()
    listed = {int(code) for code in re.findall(r":\s*(\d{4}),", source)}
    ours = {engine.CONFLICT, engine.PATCH_FAILED, engine.TOO_LARGE, engine.HISTORY_GONE, engine.UNAVAILABLE,
            engine.TOO_MANY_SUBSCRIPTIONS, sessions.NOT_A_PARTICIPANT, sessions.FORBIDDEN, sessions.LOCKED,
            sessions.NO_SUCH_SESSION, sessions.NO_SUCH_CONFLICT, sessions.SESSION_EXISTS}
    assert listed == ours


@pytest.mark.parametrize("mounted", [("state", "collab"), ("collab", "state"), ("collab",)])
async def test_the_lifespans_open_the_documents_once_and_leave_nothing_running(
        tmp_path: Path, mounted: tuple[str, ...], monkeypatch: pytest.MonkeyPatch) -> None:
    """Whichever mount order (``--plugin`` mounts collab first), or collab alone: one set of
    documents, collab's state reaches them; at the end collab stops first, then the documents
    are written and closed, and no task is left."""
    from contextlib import AsyncExitStack

    from bridge import Bridge
    from bridge.builtins.collab import plugin as collab_plugin
    from bridge.builtins.state import plugin as state_plugin
    from bridge.plugins import enter_lifespans

    plugins = {"state": state_plugin.plugin, "collab": collab_plugin.plugin}
    for mountable in plugins.values():  # put back as they were after the test
        monkeypatch.setattr(mountable, "app", None)
        monkeypatch.setattr(mountable, "settings", None)
    app = Bridge("lifespans")
    for name in mounted:
        app.include(plugins[name], settings={"path": str(tmp_path / "state.sqlite3")} if name == "state" else None)
    if "state" not in mounted:
        state_plugin.plugin.settings = state_plugin.StateSettings(path=str(tmp_path / "state.sqlite3"))
    before = asyncio.all_tasks()
    async with AsyncExitStack() as stack:
        await enter_lifespans(app, stack)
        h: Hub = collab_plugin.plugin.state
        if "state" in mounted:
            assert state_plugin.plugin.state is h.docs
        await h.docs.patch("doc", [{"op": "add", "path": "/a", "value": 1}], None, "alice")
        h.model.create("s", "alice", {}, ["doc"])
        await h.save("s")
        docs = h.docs
    assert collab_plugin.plugin.state is None and state_plugin.plugin.state is None
    assert h.guard not in docs.guards and docs._writing is None
    with pytest.raises(Exception):
        docs.store.db.execute("SELECT 1")  # closed
    assert asyncio.all_tasks() == before  # the writer and the sweeper ended with their lifespans
    async with anyio.create_task_group() as tasks:
        again = await Documents.open(tmp_path / "state.sqlite3", tasks.start_soon)
        assert again.docs["doc"].value == {"a": 1}
        await again.close()


async def test_conflicts_carry_a_severity(tmp_path: Path, tasks: TaskGroup) -> None:
    """high: one value must win; medium: both objects, a merge keeps both; low: both sides agree."""
    h = await hub(tasks, tmp_path)
    conns = await two_writers_one_viewer(h)
    await conflict_on(h, "/title", "alice", "bob")
    await conflict_on(h, "/meta", {"a": 2}, {"b": 3})
    await conflict_on(h, "/title", "same", "same")
    assert [e["severity"] for e in conns["bob"].events("collab.conflict")] == ["high", "medium", "low"]
    await h.stop()
    await h.docs.close()


async def test_a_conflict_left_past_the_timeout_is_resolved_by_the_declared_default(tmp_path: Path,
                                                                                     tasks: TaskGroup) -> None:
    h = await hub(tasks, tmp_path, conflict_timeout=30, conflict_default="mine")
    conns = await two_writers_one_viewer(h)
    conflict_id = await conflict_on(h, "/title", "alice", "bob")
    await h.sweep()
    assert h.conflicts[conflict_id].resolved is None  # not yet 30 s old
    h.conflicts[conflict_id].created -= 31  # as if 31 s had passed
    await h.sweep()
    told = conns["alice"].events("collab.conflict_resolved")[0]
    assert told["strategy"] == "mine" and told["by"] == "host:conflict_timeout"
    assert h.docs.docs["doc"].value["title"] == "bob"
    await h.stop()
    await h.docs.close()


def test_lock_metadata_is_shown_with_the_lock_and_kept_on_renewal() -> None:
    c, clock, _ = model()
    c.create("s", "alice", {"bob": ["edit"]}, ["doc"])
    c.join("s", "alice")
    c.join("s", "bob")
    lock = c.acquire("s", "alice", "doc#/title", "shared", 60, {"doing": "retitling"})
    assert lock.view(clock())["metadata"] == {"doing": "retitling"}
    c.acquire("s", "bob", "doc#/title", "shared", 60)  # shared: both may hold it
    renewed = c.acquire("s", "alice", "doc#/title", "shared", 60)
    assert renewed.view(clock())["metadata"] == {"doing": "retitling"}
    with pytest.raises(BridgeError):
        c.acquire("s", "bob", "doc#/title", "exclusive", 60)  # exclusive: not while alice shares it
