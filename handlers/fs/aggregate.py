"""Merge raw file events of one subscription into net changes per flush (sans-IO: no clock, no disk)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

Kind = Literal["created", "modified", "deleted"]
KINDS: tuple[Kind, ...] = get_args(Kind)

# (pending net kind, new event) -> new net kind, or None when the path nets out to no change.
# The single source of truth. A pending kind records whether the path existed when the window
# opened (created: no; modified, deleted: yes); the new event says whether it exists now
# (deleted: no; created, modified: yes). Net: absent->present is created, present->present is
# modified, present->absent is deleted, absent->absent is nothing. Impossible pairs (created
# twice, modified after deleted) come from lost or reordered OS events; they follow the same rule.
MERGE: dict[tuple[Kind, Kind], Kind | None] = {
    ("created", "created"): "created",
    ("created", "modified"): "created",
    ("created", "deleted"): None,
    ("modified", "created"): "modified",
    ("modified", "modified"): "modified",
    ("modified", "deleted"): "deleted",
    ("deleted", "created"): "modified",
    ("deleted", "modified"): "modified",
    ("deleted", "deleted"): "deleted",
}


@dataclass(frozen=True)
class Batch:
    """Net changes since the previous flush.

    ``changes`` holds ``{"kind", "path"}`` entries in order of each path's first event, or, when
    ``compressed``, one ``{"dir", "created", "modified", "deleted"}`` summary per parent directory
    (in order of first appearance). ``dropped`` counts pending paths evicted to bound memory: when
    it is non-zero the batch is incomplete and the receiver should rescan.
    """

    changes: list[dict[str, Any]]
    compressed: bool = False
    original_count: int = 0
    dropped: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The wire form of the batch."""
        return {
            "changes": self.changes,
            "compressed": self.compressed,
            "original_count": self.original_count,
            "dropped": self.dropped,
        }


@dataclass
class Aggregator:
    """Collect events with :meth:`add`; :meth:`flush` at the end of each debounce window.

    ``max_batch_compress``: a batch with more changes is summarised per directory (None: never).
    ``max_pending``: distinct pending paths kept; beyond it the oldest are dropped and counted.
    """

    max_batch_compress: int | None = 100
    max_pending: int = 10_000
    _pending: dict[str, Kind] = field(default_factory=dict, init=False, repr=False)
    _dropped: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_batch_compress is not None and self.max_batch_compress < 0:
            raise ValueError(f"max_batch_compress must be at least 0 or None, not {self.max_batch_compress}")
        if self.max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, not {self.max_pending}")

    def __len__(self) -> int:
        """Distinct paths with a pending net change."""
        return len(self._pending)

    def add(self, kind: Kind, path: str) -> None:
        """Merge one raw event into the pending changes."""
        if kind not in KINDS:
            raise ValueError(f"unknown event kind {kind!r}; expected one of {', '.join(KINDS)}")
        pending = self._pending
        previous = pending.get(path)
        if previous is None:
            if len(pending) >= self.max_pending:
                del pending[next(iter(pending))]  # dicts keep insertion order: this is the oldest
                self._dropped += 1
            pending[path] = kind
            return
        merged = MERGE[(previous, kind)]
        if merged is None:
            del pending[path]
        else:
            pending[path] = merged  # an existing key keeps its place in the order

    def flush(self) -> Batch | None:
        """Return the net changes since the last flush and start a new window; None if there are none."""
        pending, dropped = self._pending, self._dropped
        if not pending and not dropped:
            return None
        self._pending, self._dropped = {}, 0
        changes: list[dict[str, Any]] = [{"kind": kind, "path": path} for path, kind in pending.items()]
        if self.max_batch_compress is not None and len(changes) > self.max_batch_compress:
            return Batch(summarise(changes), compressed=True, original_count=len(changes), dropped=dropped)
        return Batch(changes, original_count=len(changes), dropped=dropped)


def summarise(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One ``{"dir", "created", "modified", "deleted"}`` entry per parent directory of the changes."""
    by_dir: dict[str, dict[str, Any]] = {}
    for change in changes:
        directory = os.path.dirname(change["path"])
        summary = by_dir.get(directory)
        if summary is None:
            summary = by_dir[directory] = {"dir": directory, "created": 0, "modified": 0, "deleted": 0}
        summary[change["kind"]] += 1
    return list(by_dir.values())
