"""The naive way to make patches durable, for bench/state.mjs to compare with: one SQLite
transaction (WAL, synchronous=FULL or NORMAL) per patch, no RPC at all.

Usage: python bench/sqlite_peer.py N full|normal DB  ->  prints {"per_s": ..., "cpu_us": ...} as JSON
(``cpu_us``: the process's CPU per transaction, user and system).

Served as an app (``python -m bridge serve bench.sqlite_peer:app``, database and mode from
``PEER_DB`` and ``PEER_SYNCHRONOUS``), ``peer.commit {doc, ops}`` makes the same transaction
per call, on the event loop: the RPC round trip plus this transaction is the floor of any
host that commits one patch per call, the state plugin included.
"""

from __future__ import annotations

import json
import os
import resource
import sqlite3
import sys
import time
from typing import Any


def connect(path: str, mode: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={mode.upper()}")
    db.execute("CREATE TABLE IF NOT EXISTS log (doc TEXT, version INTEGER, ops BLOB, PRIMARY KEY (doc, version))")
    return db


def commit(db: sqlite3.Connection, doc: str, version: int, ops: Any) -> None:
    """One patch, one transaction."""
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO log VALUES (?, ?, ?)", (doc, version, json.dumps(ops).encode()))
    db.execute("COMMIT")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    n, mode, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    db = connect(path, mode)
    start, cpu = time.perf_counter(), _cpu()
    for i in range(n):
        commit(db, "d", i + 1, [{"op": "add", "path": f"/k{i % 100}", "value": i}])
    elapsed, cpu = time.perf_counter() - start, _cpu() - cpu
    print(json.dumps({"per_s": n / elapsed, "cpu_us": cpu / n * 1e6}))
else:
    from bridge import Bridge

    app = Bridge("sqlite-peer")
    _db: sqlite3.Connection | None = None
    _versions: dict[str, int] = {}

    @app.method("peer.commit")
    async def peer_commit(doc: str, ops: list[dict[str, Any]]) -> dict[str, Any]:
        """``{doc, version}`` once the patch's transaction is committed."""
        global _db
        if _db is None:
            _db = connect(os.environ["PEER_DB"], os.environ.get("PEER_SYNCHRONOUS", "full"))
        version = _versions[doc] = _versions.get(doc, 0) + 1
        commit(_db, doc, version, ops)
        return {"doc": doc, "version": version}
