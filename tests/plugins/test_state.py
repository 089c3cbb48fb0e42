"""handlers/state: the durable store (log, checksummed snapshots, recovery, migrations) and the
live documents (atomic patches, conflicts and rebasing, group commit, subscriptions, limits)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from anyio.abc import TaskGroup
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge import INVALID_PARAMS, BridgeError
from bridge.builtins.state import engine
from bridge.builtins.state.engine import (CONFLICT, HISTORY_GONE, PATCH_FAILED, TOO_LARGE, TOO_MANY_SUBSCRIPTIONS,
                                          UNAVAILABLE, Documents, Limits)
from bridge.builtins.state.patches import apply
from bridge.builtins.state.store import WAL_PAGES, Entry, Store, StoreError, dumps

from harness import Notifications
from state_ops import draw_op


def history_of(data: st.DataObject, n: int) -> tuple[list[Any], list[list[dict[str, Any]]]]:
    """``n`` random patches and the value after each (values[0] is the empty document)."""
    values: list[Any] = [{}]
    patches = []
    for _ in range(n):
        ops = [draw_op(data, values[-1]) for _ in range(data.draw(st.integers(1, 2)))]
        try:
            new, _ = apply(values[-1], ops)
        except Exception:  # the second op may not apply after the first: keep the first only
            ops = ops[:1]
            new, _ = apply(values[-1], ops)
        values.append(new)
        patches.append(ops)
    return values, patches


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_replay_from_any_checkpoint_gives_the_same_document(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 12))
    values, patches = history_of(data, n)
    for k in range(n + 1):
        store = Store(None)
        entries = [Entry("d", v, patches[v - 1], [], "p", 0.0) for v in range(k + 1, n + 1)]
        store.append(entries, [("d", k, dumps(values[k]))] if k else [])
        if k:  # the log before the checkpoint is gone, as after pruning
            found = store.recover("d", history=0)
        else:
            store.append([], [])
            found = store.recover("d", history=0)
        assert (found.version, found.value, found.snapshot) == (n, values[n], k)
        store.close()


async def in_task_group(run: Callable[..., Awaitable[None]], *args: Any) -> None:
    """``run(tasks, *args)`` with a task group for the documents' writer, as the plugin's lifespan gives."""
    async with anyio.create_task_group() as tasks:
        await run(tasks, *args)
        tasks.cancel_scope.cancel()


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_the_diff_from_any_kept_version_leads_to_now(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 10))
    history = data.draw(st.integers(0, 10))
    values, patches = history_of(data, n)

    async def run(tasks: TaskGroup) -> None:
        docs = await Documents.open(None, tasks.start_soon, Limits(history=history, snapshot_every=3))
        for ops in patches:
            await docs.patch("d", ops, None, "p")
            # the size kept is the document's, or a bound above it (what the size limit checks)
            assert docs.docs["d"].size >= len(orjson.dumps(docs.docs["d"].value))
        for since in range(n + 1):
            caught = orjson.loads(orjson.dumps(docs.subscribe("d", since, "p", Notifications())))  # type: ignore[arg-type]
            if since >= n - history:
                assert caught["full"] is False
                assert apply(values[since], caught["ops"])[0] == values[n]
            else:
                assert caught["full"] is True and caught["value"] == values[n]
            assert caught["to"] == n
        await docs.close()

    asyncio.run(in_task_group(run))


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_patches_and_checkpoints_in_any_order_reopen_to_the_same_document(data: st.DataObject) -> None:
    """Through the live documents: patches, checkpoints at random points, automatic snapshots;
    a reopened store (snapshot + log replay) has exactly the document and version."""
    n = data.draw(st.integers(1, 15))
    values, patches = history_of(data, n)
    checkpoints = data.draw(st.sets(st.integers(1, n)))
    every = data.draw(st.integers(1, 6))
    history = data.draw(st.integers(0, 5))

    async def run(tasks: TaskGroup, directory: Path) -> None:
        docs = await Documents.open(directory / "s.db", tasks.start_soon, Limits(snapshot_every=every, history=history))
        for version, ops in enumerate(patches, start=1):
            await docs.patch("d", ops, None, "p")
            if version in checkpoints:
                await docs.checkpoint()
        await docs.close()
        again = await Documents.open(directory / "s.db", tasks.start_soon, Limits(history=history))
        assert (again.docs["d"].version, again.docs["d"].value) == (n, values[n])
        assert len(again.docs["d"].history) <= history
        await again.close()

    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(in_task_group(run, Path(directory)))


pytestmark = pytest.mark.anyio


async def open_docs(tasks: TaskGroup, tmp_path: Path, **limits: Any) -> Documents:
    return await Documents.open(tmp_path / "state.sqlite3", tasks.start_soon, Limits(**limits))


async def test_patches_survive_a_reopen(tmp_path: Path, tasks: TaskGroup) -> None:
    docs = await open_docs(tasks, tmp_path, snapshot_every=4)
    for i in range(10):
        assert await docs.patch("notes", [{"op": "add", "path": f"/n{i}", "value": i}], None, "alice") == i + 1
    await docs.close()
    again = await open_docs(tasks, tmp_path)
    assert again.docs["notes"].version == 10
    assert again.docs["notes"].value == {f"n{i}": i for i in range(10)}
    assert [e.author for e in again.docs["notes"].history][-1] == "alice"
    await again.close()


async def test_a_stale_base_on_the_same_path_is_a_conflict(tmp_path: Path, tasks: TaskGroup) -> None:
    docs = await open_docs(tasks, tmp_path)
    await docs.patch("d", [{"op": "add", "path": "", "value": {"title": "a", "body": "b", "list": [1, 2]}}], None, "x")
    assert await docs.patch("d", [{"op": "replace", "path": "/title", "value": "alice"}], 1, "alice") == 2
    with pytest.raises(BridgeError) as refused:
        await docs.patch("d", [{"op": "replace", "path": "/title", "value": "bob"}], 1, "bob")
    assert refused.value.code == CONFLICT
    assert refused.value.data == {"doc": "d", "base_version": 1, "current_version": 2, "paths": ["/title"],
                                  "authors": ["alice"]}
    # a disjoint path from the same old base is rebased and applied
    assert await docs.patch("d", [{"op": "replace", "path": "/body", "value": "bob"}], 1, "bob") == 3
    assert docs.docs["d"].value["title"] == "alice" and docs.docs["d"].value["body"] == "bob"
    # an insert into an array moves its elements: an edit of one of them from before is a conflict
    assert await docs.patch("d", [{"op": "add", "path": "/list/0", "value": 0}], 3, "alice") == 4
    with pytest.raises(BridgeError) as shifted:
        await docs.patch("d", [{"op": "replace", "path": "/list/1", "value": 20}], 3, "bob")
    assert shifted.value.code == CONFLICT and shifted.value.data["paths"] == ["/list/1"]
    await docs.close()


async def test_bad_bases_and_bad_patches(tmp_path: Path, tasks: TaskGroup) -> None:
    docs = await open_docs(tasks, tmp_path, history=2)
    for i in range(5):
        await docs.patch("d", [{"op": "add", "path": f"/k{i}", "value": i}], None, "p")
    with pytest.raises(BridgeError) as ahead:
        await docs.patch("d", [], 9, "p")
    assert ahead.value.code == INVALID_PARAMS
    with pytest.raises(BridgeError) as gone:
        await docs.patch("d", [{"op": "add", "path": "/z", "value": 1}], 1, "p")
    assert gone.value.code == HISTORY_GONE and gone.value.data["version"] == 5
    with pytest.raises(BridgeError) as failed:
        await docs.patch("d", [{"op": "add", "path": "/new", "value": 1}, {"op": "test", "path": "/k0", "value": 9}],
                         None, "p")
    assert failed.value.code == PATCH_FAILED and "operation 1" in failed.value.message
    with pytest.raises(BridgeError) as malformed:
        await docs.patch("d", [{"path": "/x"}], None, "p")
    assert malformed.value.code == INVALID_PARAMS
    assert docs.docs["d"].version == 5 and "new" not in docs.docs["d"].value
    await docs.close()


async def test_limits_refuse_without_changing_anything(tmp_path: Path, tasks: TaskGroup) -> None:
    docs = await open_docs(tasks, tmp_path, max_patch_bytes=200, max_doc_bytes=300)
    with pytest.raises(BridgeError) as patch_size:
        await docs.patch("d", [{"op": "add", "path": "/x", "value": "x" * 300}], None, "p")
    assert patch_size.value.code == TOO_LARGE and patch_size.value.data["limit"] == 200
    for i in range(2):
        await docs.patch("d", [{"op": "add", "path": f"/k{i}", "value": "y" * 100}], None, "p")
    with pytest.raises(BridgeError) as doc_size:
        await docs.patch("d", [{"op": "add", "path": "/k9", "value": "y" * 100}], None, "p")
    assert doc_size.value.code == TOO_LARGE and doc_size.value.data["limit"] == 300
    assert docs.docs["d"].version == 2
    await docs.close()


async def test_concurrent_patches_share_transactions_and_are_each_told_once(tmp_path: Path, tasks: TaskGroup) -> None:
    docs = await open_docs(tasks, tmp_path)
    writes: list[int] = []
    append = docs.store.append
    docs.store.append = lambda entries, snaps=(): (writes.append(len(list(entries) if not isinstance(entries, list)
                                                                        else entries)), append(entries, snaps))[1]
    listener = Notifications()
    docs.subscribe("d", 0, "watcher", listener)  # type: ignore[arg-type]
    versions = await asyncio.gather(*(docs.patch("d", [{"op": "add", "path": f"/k{i}", "value": i}], None, f"p{i % 3}")
                                      for i in range(200)))
    assert sorted(versions) == list(range(1, 201))
    assert sum(writes) == 200 and len(writes) < 50  # group commit: a transaction carries many patches
    changes = [params for method, params in listener.sent if method == "state.changed"]
    assert [(c["from"], c["to"]) for c in changes] == [(v - 1, v) for v in range(1, 201)]
    await docs.close()


async def test_a_failed_write_fails_its_patches_and_memory_goes_back_to_the_disk(tmp_path: Path, tasks: TaskGroup) -> None:
    docs = await open_docs(tasks, tmp_path)
    await docs.patch("d", [{"op": "add", "path": "/kept", "value": 1}], None, "p")
    listener = Notifications()
    docs.subscribe("d", 1, "watcher", listener)  # type: ignore[arg-type]
    append = docs.store.append

    def disk_full(entries: Any, snaps: Any = ()) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    docs.store.append = disk_full  # type: ignore[method-assign]
    results = await asyncio.gather(*(docs.patch("d", [{"op": "add", "path": f"/lost{i}", "value": i}], None, "p")
                                     for i in range(5)), return_exceptions=True)
    assert all(isinstance(r, BridgeError) and r.code == UNAVAILABLE for r in results)
    assert docs.docs["d"].value == {"kept": 1} and docs.docs["d"].version == 1
    assert ("state.reset", {"doc": "d", "version": 1, "value": {"kept": 1}, "$meta": {"to": ["watcher"]}}) in listener.sent
    assert not [m for m, _ in listener.sent if m == "state.changed"]
    docs.store.append = append  # type: ignore[method-assign]
    assert await docs.patch("d", [{"op": "add", "path": "/after", "value": 2}], None, "p") == 2
    await docs.close()


async def test_checkpoint_prunes_the_log_and_recovery_stays_exact(tmp_path: Path, tasks: TaskGroup) -> None:
    docs = await open_docs(tasks, tmp_path, history=3, snapshot_every=1000)
    for i in range(20):
        await docs.patch("d", [{"op": "add", "path": f"/k{i}", "value": i}], None, "p")
    assert await docs.checkpoint() == {"d": 20}
    logged = docs.store.db.execute("SELECT min(version), count(*) FROM log").fetchone()
    assert logged == (18, 3)  # only the kept history is left
    expected = docs.docs["d"].value
    await docs.close()
    again = await open_docs(tasks, tmp_path, history=3)
    assert again.docs["d"].value == expected and len(again.docs["d"].history) == 3
    await again.close()


async def test_a_corrupt_newest_snapshot_falls_back_to_the_older_one(tmp_path: Path, tasks: TaskGroup) -> None:
    docs = await open_docs(tasks, tmp_path, snapshot_every=5, history=100)
    for i in range(12):
        await docs.patch("d", [{"op": "add", "path": f"/k{i}", "value": i}], None, "p")
    expected = docs.docs["d"].value
    await docs.close()
    db = sqlite3.connect(tmp_path / "state.sqlite3")
    assert [v for (v,) in db.execute("SELECT version FROM snapshots ORDER BY version")] == [5, 10]
    db.execute("UPDATE snapshots SET value = ? WHERE version = 10", (b'{"k0": 666}',))
    db.commit()
    db.close()
    again = await open_docs(tasks, tmp_path)
    assert again.docs["d"].value == expected and again.docs["d"].version == 12
    await again.close()


async def test_a_log_that_cannot_be_trusted_is_an_error_at_open(tmp_path: Path, tasks: TaskGroup) -> None:
    docs = await open_docs(tasks, tmp_path)
    for i in range(3):
        await docs.patch("d", [{"op": "add", "path": f"/k{i}", "value": i}], None, "p")
    await docs.close()
    db = sqlite3.connect(tmp_path / "state.sqlite3")
    db.execute("UPDATE log SET ops = ? WHERE version = 2", (b'[]',))
    db.commit()
    db.close()  # (open, it would keep the host out: see the next test)
    with pytest.raises(StoreError, match="log entry 2 fails its checksum"):
        await open_docs(tasks, tmp_path)
    db = sqlite3.connect(tmp_path / "state.sqlite3")
    db.execute("DELETE FROM log WHERE version = 2")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="jumps from version 1 to 3"):
        await open_docs(tasks, tmp_path)


def test_one_host_at_a_time_serves_a_database(tmp_path: Path) -> None:
    """Documents live in the host's memory, so a second host on the same file would fork their
    histories: the first holds the database until it closes, and the second is refused (after
    ``wait`` seconds) with a clear error, then opens once the first has closed."""
    first = Store(tmp_path / "state.sqlite3")
    with pytest.raises(StoreError, match="is in use by another process"):
        Store(tmp_path / "state.sqlite3", wait=0.05)
    outsider = sqlite3.connect(tmp_path / "state.sqlite3", timeout=0.05)  # nor does anything else get in
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        outsider.execute("SELECT count(*) FROM log").fetchone()
    outsider.close()
    first.close()
    second = Store(tmp_path / "state.sqlite3", wait=0.05)
    assert second.docs() == []
    second.close()


def test_the_wal_stops_growing_at_its_fold(tmp_path: Path) -> None:
    """A commit that grows the WAL file pays in its fsync for a journal commit of its size, so the
    WAL is folded in at WAL_PAGES (not SQLite's 1000): lone patches soon reuse the file."""
    store = Store(tmp_path / "state.sqlite3", synchronous="normal")  # the same WAL, without the fsyncs
    page = store.db.execute("PRAGMA page_size").fetchone()[0]
    wal = tmp_path / "state.sqlite3-wal"
    sizes = []
    for version in range(1, 1001):
        store.append([Entry("d", version, [{"op": "add", "path": f"/k{version}", "value": version}], [], "p", 0.0)])
        sizes.append(wal.stat().st_size)
    store.close()
    bound = 32 + (WAL_PAGES + 4) * (page + 24)  # the header, then frames: the fold comes after the commit crossing it
    assert max(sizes) <= bound
    assert sizes[-1] - sizes[-400] <= 8 * (page + 24)  # reused for the last 400 patches (a fold may come a page late)


async def test_an_unopenable_or_garbage_file_is_a_clear_error(tmp_path: Path, tasks: TaskGroup) -> None:
    garbage = tmp_path / "state.sqlite3"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="state database"):
        await open_docs(tasks, tmp_path)
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(StoreError):
        await Documents.open(blocked / "sub" / "state.sqlite3", tasks.start_soon)


def test_migrations_run_once_and_a_newer_schema_is_refused(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    steps = ["CREATE TABLE t1 (x INTEGER)", "ALTER TABLE t1 ADD COLUMN y INTEGER"]
    assert store.migrate("extra", steps[:1]) == 1
    assert store.migrate("extra", steps) == 2  # only the new step runs
    with pytest.raises(StoreError, match="refusing to downgrade"):
        store.migrate("extra", steps[:1])
    store.close()


async def test_patches_sent_during_a_delete_land_after_it_and_survive_a_reopen(tmp_path: Path, tasks: TaskGroup) -> None:
    docs = await open_docs(tasks, tmp_path)
    for i in range(5):
        await docs.patch("d", [{"op": "add", "path": f"/old{i}", "value": i}], None, "p")
    racing = [docs.patch("d", [{"op": "add", "path": f"/new{i}", "value": i}], None, "p") for i in range(3)]
    deleted, *versions = await asyncio.gather(docs.delete("d", "p"), *racing)
    assert deleted is True and sorted(versions) == [1, 2, 3]
    assert docs.docs["d"].value == {"new0": 0, "new1": 1, "new2": 2}
    await docs.close()
    again = await open_docs(tasks, tmp_path)
    assert (again.docs["d"].version, again.docs["d"].value) == (3, {"new0": 0, "new1": 1, "new2": 2})
    await again.close()


async def test_a_refused_first_patch_leaves_no_document(tmp_path: Path, tasks: TaskGroup) -> None:
    docs = await open_docs(tasks, tmp_path)
    for i in range(50):
        with pytest.raises(BridgeError):
            await docs.patch(f"junk{i}", [{"op": "remove", "path": "/nothing"}], None, "p")
    assert docs.docs == {} and docs.names() == []
    await docs.close()


async def test_subscriptions_per_connection_are_limited(tmp_path: Path, tasks: TaskGroup) -> None:
    docs = await open_docs(tasks, tmp_path, max_subscriptions=3)
    one, other = Notifications(), Notifications()
    subs = [docs.subscribe(f"d{i}", None, "p", one)["subscription"] for i in range(3)]  # type: ignore[arg-type]
    with pytest.raises(BridgeError) as refused:
        docs.subscribe("d9", None, "p", one)  # type: ignore[arg-type]
    assert refused.value.code == TOO_MANY_SUBSCRIPTIONS and refused.value.data == {"limit": 3}
    docs.subscribe("d9", None, "p", other)  # type: ignore[arg-type]  # another connection has its own
    assert docs.unsubscribe(subs[0], "p")
    docs.subscribe("d9", None, "p", one)  # type: ignore[arg-type]
    await docs.close()


async def test_a_compact_catch_up_sends_the_value_when_it_is_smaller_than_the_ops(tmp_path: Path, tasks: TaskGroup) -> None:
    docs = await open_docs(tasks, tmp_path, history=5000)
    for i in range(300):
        await docs.patch("d", [{"op": "add", "path": f"/k{i % 3}", "value": i}], None, "p")
    ops = orjson.loads(orjson.dumps(docs.subscribe("d", 0, "p", Notifications(), compact=False)))  # type: ignore[arg-type]
    assert ops["full"] is False and len(ops["ops"]) == 300
    small = orjson.loads(orjson.dumps(docs.subscribe("d", 0, "p", Notifications(), compact=True)))  # type: ignore[arg-type]
    assert small["full"] is True and small["value"] == {"k0": 297, "k1": 298, "k2": 299}
    assert "smaller than the ops of the 300 versions" in small["reason"]
    recent = orjson.loads(orjson.dumps(docs.subscribe("d", 298, "p", Notifications(), compact=True)))  # type: ignore[arg-type]
    assert recent["full"] is False and len(recent["ops"]) == 2
    await docs.close()


async def test_a_caller_cancelled_while_its_patch_is_written_leaves_the_patch_in_place(tmp_path: Path, tasks: TaskGroup) -> None:
    docs = await open_docs(tasks, tmp_path)
    call = asyncio.ensure_future(docs.patch("d", [{"op": "add", "path": "/a", "value": 1}], None, "p"))
    await asyncio.sleep(0)  # applied and queued; the write has not finished
    assert docs.docs["d"].version == 1 and docs.docs["d"].durable == 0
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert await docs.patch("d", [{"op": "add", "path": "/b", "value": 2}], None, "p") == 2
    assert docs.docs["d"].durable == 2
    await docs.close()
    again = await open_docs(tasks, tmp_path)
    assert again.docs["d"].value == {"a": 1, "b": 2}
    await again.close()


async def test_a_failed_prune_loses_nothing_and_blocks_no_one(tmp_path: Path, tasks: TaskGroup) -> None:
    docs = await open_docs(tasks, tmp_path, snapshot_every=2)

    def broken(doc: str, keep_from: int) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    docs.store.prune = broken  # type: ignore[method-assign]
    versions = await asyncio.gather(*(docs.patch("d", [{"op": "add", "path": f"/k{i}", "value": i}], None, "p")
                                      for i in range(20)))
    assert sorted(versions) == list(range(1, 21)) and docs.docs["d"].durable == 20
    await docs.close()
    again = await open_docs(tasks, tmp_path)
    assert again.docs["d"].value == {f"k{i}": i for i in range(20)}
    await again.close()


async def test_the_size_limit_holds_when_the_size_is_only_estimated(tmp_path: Path, tasks: TaskGroup) -> None:
    docs = await open_docs(tasks, tmp_path, max_doc_bytes=1000, snapshot_every=10_000)
    await docs.patch("d", [{"op": "add", "path": "/big", "value": "x" * 400}], None, "p")
    with pytest.raises(BridgeError) as copied:  # a copy doubles it: measured, refused
        await docs.patch("d", [{"op": "copy", "from": "/big", "path": "/twin"}, {"op": "copy", "from": "/big",
                                                                                "path": "/triplet"}], None, "p")
    assert copied.value.code == TOO_LARGE
    for i in range(50):  # replacing the same key: the estimate grows, the document does not
        await docs.patch("d", [{"op": "replace", "path": "/big", "value": "y" * 400}], None, "p")
    assert len(orjson.dumps(docs.docs["d"].value)) <= docs.docs["d"].size <= 1000  # re-measured near the limit
    await docs.close()


def committing_threads(docs: Documents) -> list[tuple[str, int]]:
    """Record, for every commit of ``docs``, the thread it ran on and how many patches it carried."""
    seen: list[tuple[str, int]] = []
    append = docs.store.append

    def recorded(entries: Any, snaps: Any = ()) -> None:
        seen.append((threading.current_thread().name, len(entries)))
        append(entries, snaps)

    docs.store.append = recorded  # type: ignore[method-assign]
    return seen


async def test_a_lone_patch_is_committed_on_the_loop_and_a_burst_by_the_store_thread(
        tmp_path: Path, tasks: TaskGroup, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = await open_docs(tasks, tmp_path)
    docs.limits.inline_commit_s = 60.0  # however slow this machine's disk is
    seen = committing_threads(docs)
    loop_thread = threading.current_thread().name
    for i in range(5):  # one at a time: no hop to the store's thread and back
        assert await docs.patch("d", [{"op": "add", "path": f"/a{i}", "value": i}], None, "p") == i + 1
    assert seen == [(loop_thread, 1)] * 5
    seen.clear()
    versions = await asyncio.gather(*(docs.patch("d", [{"op": "add", "path": f"/b{i}", "value": i}], None, "p")
                                      for i in range(100)))
    assert sorted(versions) == list(range(6, 106))
    assert all(name.startswith("bridge-state") for name, _ in seen)  # a batch: the group commit, off the loop
    assert sum(n for _, n in seen) == 100 and len(seen) < 30
    big = {"op": "add", "path": "/big", "value": "x" * (engine.INLINE_MAX_BYTES + 1)}
    seen.clear()
    await docs.patch("d", [big], None, "p")
    assert seen[0][0].startswith("bridge-state")  # a large patch would hold the loop: the store's thread
    await docs.close()
    again = await open_docs(tasks, tmp_path)
    assert again.docs["d"].version == 106 and len(again.docs["d"].value) == 106
    await again.close()


async def test_patches_go_to_the_store_thread_while_commits_are_slow(
        tmp_path: Path, tasks: TaskGroup, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = await open_docs(tasks, tmp_path)
    docs.limits.inline_commit_s = 1e-9  # every commit takes longer than this
    seen = committing_threads(docs)
    for i in range(4):
        await docs.patch("d", [{"op": "add", "path": f"/a{i}", "value": i}], None, "p")
    assert seen[0] == (threading.current_thread().name, 1)  # nothing measured yet
    assert all(name.startswith("bridge-state") for name, _ in seen[1:])  # measured slow: off the loop
    await docs.close()


async def test_a_store_call_still_running_keeps_a_lone_patch_off_the_loop(
        tmp_path: Path, tasks: TaskGroup, monkeypatch: pytest.MonkeyPatch) -> None:
    """A call on the store's thread whose caller was cancelled runs on; a patch committed on the
    loop meanwhile would use the connection from two threads at once (or join its transaction)."""
    docs = await open_docs(tasks, tmp_path)
    docs.limits.inline_commit_s = 60.0
    started, release = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        release.wait(10)

    held = asyncio.ensure_future(docs.run(hold))
    assert await asyncio.to_thread(started.wait, 10)
    held.cancel()
    with pytest.raises(asyncio.CancelledError):
        await held
    seen = committing_threads(docs)
    patch = asyncio.ensure_future(docs.patch("d", [{"op": "add", "path": "/a", "value": 1}], None, "p"))
    for _ in range(10):  # loop turns, more than a commit on the loop waits for
        await asyncio.sleep(0)
    assert not patch.done() and seen == []  # waits for the thread
    release.set()
    assert await patch == 1
    assert seen[0][0].startswith("bridge-state")
    await docs.close()


async def test_a_failed_commit_on_the_loop_fails_the_patch_and_memory_goes_back_to_the_disk(
        tmp_path: Path, tasks: TaskGroup, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = await open_docs(tasks, tmp_path)
    docs.limits.inline_commit_s = 60.0
    await docs.patch("d", [{"op": "add", "path": "/kept", "value": 1}], None, "p")
    listener = Notifications()
    docs.subscribe("d", 1, "watcher", listener)  # type: ignore[arg-type]
    append = docs.store.append
    failed_on: list[str] = []

    def disk_full(entries: Any, snaps: Any = ()) -> None:
        failed_on.append(threading.current_thread().name)
        raise sqlite3.OperationalError("database or disk is full")

    docs.store.append = disk_full  # type: ignore[method-assign]
    with pytest.raises(BridgeError) as lost:
        await docs.patch("d", [{"op": "add", "path": "/lost", "value": 2}], None, "p")
    assert lost.value.code == UNAVAILABLE and "disk is full" in lost.value.message
    assert failed_on == [threading.current_thread().name]  # it was the commit on the loop that failed
    assert docs.docs["d"].value == {"kept": 1} and docs.docs["d"].version == 1
    reset = {"doc": "d", "version": 1, "value": {"kept": 1}, "$meta": {"to": ["watcher"]}}
    assert ("state.reset", reset) in listener.sent
    docs.store.append = append  # type: ignore[method-assign]
    assert await docs.patch("d", [{"op": "add", "path": "/after", "value": 2}], None, "p") == 2
    await docs.close()
    again = await open_docs(tasks, tmp_path)
    assert again.docs["d"].value == {"kept": 1, "after": 2}
    await again.close()


def test_a_single_patch_never_joins_a_transaction_left_open(tmp_path: Path) -> None:
    """One patch is written as one statement (its own transaction), unless a transaction is
    open: then it would commit only with that one, so it is refused instead of acknowledged."""
    store = Store(tmp_path / "s.db")
    store.append([Entry("d", 1, [{"op": "add", "path": "/a", "value": 1}], [("a",)], "p", 0.0)])
    store.db.execute("BEGIN")
    with pytest.raises(sqlite3.OperationalError, match="within a transaction"):
        store.append([Entry("d", 2, [{"op": "add", "path": "/b", "value": 2}], [("b",)], "p", 0.0)])
    store.db.execute("ROLLBACK")
    store.close()
    again = Store(tmp_path / "s.db")
    assert again.recover("d", 10).value == {"a": 1}
    again.close()


async def test_a_burst_read_at_once_over_a_connection_shares_transactions(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Calls read together reach the documents over several loop turns (a call that waits hands
    the rest to a new worker task): they still share transactions, none is committed alone."""
    from contextlib import AsyncExitStack

    from bridge import Bridge
    from bridge.builtins.state import plugin as state_plugin
    from bridge.plugins import enter_lifespans

    from harness import exchange, lines

    monkeypatch.setattr(state_plugin.plugin, "app", None)
    monkeypatch.setattr(state_plugin.plugin, "settings", None)
    app = Bridge("burst")
    app.include(state_plugin.plugin, settings={"path": str(tmp_path / "state.sqlite3")})
    commits: list[int] = []
    append = Store.append

    def counted(self: Store, entries: Any, snaps: Any = ()) -> None:
        commits.append(len(entries))
        append(self, entries, snaps)

    monkeypatch.setattr(Store, "append", counted)
    async with AsyncExitStack() as stack:
        await enter_lifespans(app, stack)
        replies = await exchange(app, lines(*({"jsonrpc": "2.0", "id": i, "method": "state.patch", "params": {
            "doc": "d", "ops": [{"op": "add", "path": f"/k{i}", "value": i}]}} for i in range(200))))
    assert sorted(r["result"]["version"] for r in replies) == list(range(1, 201))
    assert sum(commits) == 200 and len(commits) < 40, commits


async def test_no_commit_is_made_on_the_loop_when_the_setting_is_zero(tmp_path: Path, tasks: TaskGroup) -> None:
    docs = await open_docs(tasks, tmp_path)
    docs.limits.inline_commit_s = 0.0  # [plugins.state] inline_commit_ms = 0
    seen = committing_threads(docs)
    for i in range(3):
        await docs.patch("d", [{"op": "add", "path": f"/a{i}", "value": i}], None, "p")
    assert len(seen) == 3 and all(name.startswith("bridge-state") for name, _ in seen)
    await docs.close()
