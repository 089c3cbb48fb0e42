"""The naive way to make patches durable, for bench/state.mjs to compare with: one SQLite
transaction (WAL, synchronous=FULL or NORMAL) per patch, no RPC at all.

Usage: python bench/sqlite_peer.py N full|normal DB  ->  prints {"per_s": ...} as JSON.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time

n, mode, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
db = sqlite3.connect(path, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute(f"PRAGMA synchronous={mode.upper()}")
db.execute("CREATE TABLE IF NOT EXISTS log (doc TEXT, version INTEGER, ops BLOB, PRIMARY KEY (doc, version))")
start = time.perf_counter()
for i in range(n):
    ops = json.dumps([{"op": "add", "path": f"/k{i % 100}", "value": i}]).encode()
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO log VALUES (?, ?, ?)", ("d", i + 1, ops))
    db.execute("COMMIT")
print(json.dumps({"per_s": n / (time.perf_counter() - start)}))
