"""handlers/state: what start-up trusts. Checksums cover each row's document and version; the
marker beside the database (handlers/state/marker.py) makes a database that holds less than
was acknowledged a refusal (HistoryLost) unless the loss is accepted; it never refuses a good one."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from bridge.builtins.state import plugin as state_plugin
from bridge.builtins.state.marker import SLOT, Mark, Marker, decode, encode
from bridge.builtins.state.store import Entry, HistoryLost, Store, StoreError, digest, dumps, marker_path


def write(store: Store, doc: str, first: int, count: int) -> None:
    for v in range(first, first + count):
        store.append([Entry(doc, v, [{"op": "add", "path": f"/k{v}", "value": v}], [("k",)], "p", 0.0)])


def test_a_torn_slot_leaves_the_other_and_both_torn_is_unreadable(tmp_path: Path) -> None:
    marker = Marker(tmp_path / "db-ack")
    marker.reset(Mark("id", 1))
    marker.write(Mark("id", 1, "d", 4))
    marker.write(Mark("id", 1, "d", 5))
    assert marker.read() == Mark("id", 1, "d", 5)
    with open(marker.path, "r+b") as file:  # the newest slot (the second write went to slot 0) torn half-way
        file.write(b"\0" * 100)
    assert marker.read() == Mark("id", 1, "d", 4)
    marker.path.write_bytes(b"")
    with pytest.raises(OSError, match="no readable slot"):
        marker.read()
    marker.close()
    assert decode(encode(Mark("i", 3, "x" * 2000, 9), 7)) == (7, Mark("i", 3))  # a long name is dropped
    assert len(encode(Mark("i"))) == SLOT


def test_a_restored_older_copy_is_refused_and_an_older_marker_is_not(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    store = Store(path)
    write(store, "d", 1, 5)
    store.checkpoint_wal()
    shutil.copy(path, tmp_path / "old.sqlite3")
    old_marker = marker_path(path).read_bytes()
    write(store, "d", 6, 5)
    store.close()
    marker_path(path).write_bytes(old_marker)  # the marker lags (its writes lost with the machine): fine
    again = Store(path)
    write(again, "d", 11, 1)
    again.close()
    newer = marker_path(path).read_bytes()
    shutil.copy(tmp_path / "old.sqlite3", path)  # the database goes back to a copy from before
    marker_path(path).write_bytes(newer)
    with pytest.raises(HistoryLost, match="says version 11 of 'd' had been acknowledged, but the database has that "
                                          "document only up to version 5: versions 6-11") as lost:
        Store(path)
    assert str(path) in str(lost.value) and "accept_loss" in str(lost.value)
    assert (lost.value.expected.version, lost.value.found_version) == (11, 5)  # type: ignore[union-attr]


def test_rows_deleted_behind_the_counters_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    store = Store(path)
    write(store, "d", 1, 5)
    store.close()
    db = sqlite3.connect(path)
    db.execute("DELETE FROM log WHERE version > 3")
    db.commit()
    db.close()
    with pytest.raises(HistoryLost, match="version 5 of 'd' had been acknowledged, but the database has that "
                                          "document only up to version 3"):
        Store(path)


def test_deleting_the_newest_document_is_not_taken_for_a_loss(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    store = Store(path)
    write(store, "a", 1, 2)
    write(store, "d", 1, 3)
    store.delete("d")
    store.close()
    again = Store(path)
    assert again.docs() == ["a"] and again.loss is None
    again.close()


def test_accept_loss_opens_resets_the_marker_and_is_audited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "state.sqlite3"
    store = Store(path)
    write(store, "d", 1, 3)
    store.close()
    path.write_bytes(b"")
    for name in ("state.sqlite3-wal", "state.sqlite3-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    with pytest.raises(HistoryLost, match="the database holds nothing"):
        Store(path)
    accepted = Store(path, accept_loss=True)
    assert accepted.loss is not None and accepted.docs() == []
    recorded: list[tuple[str, dict[str, Any]]] = []
    audit = SimpleNamespace(record=lambda event, **fields: recorded.append((event, fields)))
    monkeypatch.setattr(state_plugin.plugin, "app", SimpleNamespace(audit=audit))
    state_plugin._record_loss(path, accepted.loss)
    assert recorded[0][0] == "state.recovered" and recorded[0][1]["participant"] is None
    assert (recorded[0][1]["expected_version"], recorded[0][1]["found_version"]) == (3, 0)
    accepted.close()
    Store(path).close()  # accepted once: the marker now says what the database holds

    marker_path(path).write_bytes(b"garbage")  # a marker that cannot be read cannot vouch for the database
    with pytest.raises(HistoryLost, match="no readable slot"):
        Store(path)
    Store(path, accept_loss=True).close()
    Store(path).close()


def test_a_log_row_moved_to_another_version_fails_its_checksum(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    store = Store(path)
    for v, value in enumerate(["x", "y", "z"], start=1):
        store.append([Entry("d", v, [{"op": "add", "path": "/a", "value": value}], [("a",)], "p", 0.0)])
    store.close()
    db = sqlite3.connect(path)  # versions 2 and 3 swap their contents: each row is intact, the order is not
    rows = {v: r for v, *r in db.execute("SELECT version, ops, touched, checksum FROM log")}
    for v, other in ((2, 3), (3, 2)):
        db.execute("UPDATE log SET ops = ?, touched = ?, checksum = ? WHERE version = ?", (*rows[other], v))
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="log entry 2 fails its checksum"):
        Store(path).recover("d", 10)


def test_databases_written_before_version_checksums_still_open(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    store = Store(path)
    store.close()
    db = sqlite3.connect(path)  # rows as the previous release wrote them: checksums of the value alone
    ops = [orjson.dumps([{"op": "add", "path": f"/k{v}", "value": v}]) for v in range(1, 6)]
    db.executemany("INSERT INTO log VALUES ('d', ?, ?, '[]', 'p', 0, ?)",
                   [(v, o, digest(o)) for v, o in enumerate(ops, start=1)])
    value = dumps({"k1": 1, "k2": 2, "k3": 3})
    db.execute("INSERT INTO snapshots VALUES ('d', 3, ?, 0, ?)", (value, digest(value)))
    db.commit()
    db.close()
    again = Store(path)
    found = again.recover("d", 10)
    assert (found.version, found.snapshot, found.value) == (5, 3, {f"k{v}": v for v in range(1, 6)})
    again.close()


def test_a_lost_write_that_appended_no_patch_is_refused_too(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    store = Store(path)
    write(store, "a", 1, 2)
    write(store, "d", 1, 2)
    store.checkpoint_wal()
    shutil.copy(path, tmp_path / "old.sqlite3")
    store.delete("a")  # the last commit: a lost delete would bring "a" back
    store.close()
    shutil.copy(tmp_path / "old.sqlite3", path)
    with pytest.raises(HistoryLost, match=r"says version 2 of 'd' had been acknowledged, but it holds 1 of the 2 "
                                          r"other writes \(deletes"):
        Store(path)
