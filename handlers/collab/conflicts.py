"""Conflicts: two participants' patches to the same path from the same base, and their resolution.

A conflict is recorded with the value at the clashing path in three versions: the common
base, the refused patch's (``mine``) and the document's when it was refused (``theirs``).
Resolving writes one value at that path, along with the refused patch's other operations.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from collections.abc import Awaitable, Callable
from typing import Any

from bridge import INVALID_PARAMS, BridgeError

from ..state.patches import (MISSING, Path, PatchError, apply, common_ancestor, merge3, overlaps, pointer, set_at,
                             touched_paths, value_at)

STRATEGIES = ("mine", "theirs", "merge", "manual")


def _box(value: Any) -> list[Any]:
    """MISSING (nothing at the path) as ``[]``, a value as ``[value]``: JSON-safe."""
    return [] if value is MISSING else [value]


def _unbox(boxed: list[Any]) -> Any:
    return boxed[0] if boxed else MISSING


@dataclass(slots=True)
class Conflict:
    id: str
    session: str
    doc: str
    base_version: int
    current_version: int
    path: Path
    ops: list[dict[str, Any]]
    mine_author: str
    theirs_authors: list[str]
    base: Any
    mine: Any
    theirs: Any
    created: float = field(default_factory=time.time)
    resolved: dict[str, Any] | None = None

    @property
    def involved(self) -> set[str]:
        return {self.mine_author, *self.theirs_authors}

    @property
    def severity(self) -> str:
        """``low``: both sides left the same value (nothing to decide); ``medium``: both are
        objects, so a key-by-key ``merge`` can keep both sides' changes; ``high``: one value must win."""
        if self.mine == self.theirs:
            return "low"
        if isinstance(self.mine, dict) and isinstance(self.theirs, dict):
            return "medium"
        return "high"

    def view(self) -> dict[str, Any]:
        """What participants are told (a side with nothing at the path is absent)."""
        shown: dict[str, Any] = {
            "conflict_id": self.id, "session": self.session, "doc": self.doc, "path": pointer(self.path),
            "base_version": self.base_version, "current_version": self.current_version,
            "severity": self.severity, "created": self.created,
            "mine": {"participant": self.mine_author, "ops": self.ops},
            "theirs": {"participants": self.theirs_authors},
        }
        for side, value in (("base", self.base), ("mine", self.mine), ("theirs", self.theirs)):
            if value is not MISSING:
                if side == "base":
                    shown["base"] = value
                else:
                    shown[side]["value"] = value
        if self.resolved is not None:
            shown["resolved"] = self.resolved
        return shown

    def summary(self) -> dict[str, Any]:
        """What a participant neither involved nor an editor is shown: that there is a conflict,
        where, and whether it is resolved; not the values, the operations or who wrote them."""
        shown: dict[str, Any] = {
            "conflict_id": self.id, "session": self.session, "doc": self.doc, "path": pointer(self.path),
            "base_version": self.base_version, "current_version": self.current_version, "redacted": True,
            "severity": self.severity,
        }
        if self.resolved is not None:
            shown["resolved"] = {"strategy": self.resolved["strategy"], "version": self.resolved["version"]}
        return shown

    def record(self) -> dict[str, Any]:
        return {"id": self.id, "session": self.session, "doc": self.doc, "base_version": self.base_version,
                "current_version": self.current_version, "path": list(self.path), "ops": self.ops,
                "mine_author": self.mine_author, "theirs_authors": self.theirs_authors, "base": _box(self.base),
                "mine": _box(self.mine), "theirs": _box(self.theirs), "created": self.created,
                "resolved": self.resolved}

    @classmethod
    def from_record(cls, r: dict[str, Any]) -> Conflict:
        return cls(r["id"], r["session"], r["doc"], r["base_version"], r["current_version"], tuple(r["path"]),
                   r["ops"], r["mine_author"], r["theirs_authors"], _unbox(r["base"]), _unbox(r["mine"]),
                   _unbox(r["theirs"]), r["created"], r["resolved"])


def resolution(conflict: Conflict, strategy: str, current: Any, value: Any = MISSING) -> tuple[list[dict[str, Any]], list[str]]:
    """The ops that resolve ``conflict`` on the document as it is now (``current``), and the
    keys a merge decided for mine where both sides changed them; -32602 when they cannot be made."""
    try:
        return _resolution(conflict, strategy, current, value)
    except PatchError as exc:
        raise BridgeError(INVALID_PARAMS, str(exc), {"conflict_id": conflict.id}) from None


def _resolution(conflict: Conflict, strategy: str, current: Any, value: Any) -> tuple[list[dict[str, Any]], list[str]]:
    if strategy not in STRATEGIES:
        raise BridgeError(INVALID_PARAMS, f"strategy must be one of {', '.join(STRATEGIES)}", {"strategy": strategy})
    if strategy == "theirs":
        return [], []
    now = value_at(current, conflict.path)
    overridden: list[str] = []
    if strategy == "mine":
        chosen = conflict.mine
    elif strategy == "merge":
        chosen, overridden = merge3(conflict.base, conflict.mine, now)
    else:
        chosen = value
    rest = [op for op in conflict.ops if not any(overlaps(p, conflict.path) for p in touched_paths(op, current))]
    return rest + set_at(conflict.path, now, chosen), overridden


async def from_hook(info: dict[str, Any], id: str, session: str, participant: str,
                    read_version: Callable[[str, int], Awaitable[Any]]) -> Conflict:
    """The Conflict a state conflict hook's ``info`` describes, at the clashing paths' common
    ancestor: the base (``read_version(doc, base_version)``; MISSING when no longer kept), the
    refused patch applied to it, and the document as the patch was decided on."""
    doc, path = info["doc"], common_ancestor(info["clashing"])
    current = info["value"]
    try:
        base_doc = await read_version(doc, info["base_version"])
    except Exception:  # no longer kept: a merge then sees no base
        base_doc = MISSING
    try:
        mine_doc = apply(base_doc if base_doc is not MISSING else current, info["ops"])[0]
    except PatchError:
        mine_doc = MISSING
    return Conflict(id, session, doc, info["base_version"], info["current_version"], path, info["ops"], participant,
                    info["authors"], value_at(base_doc, path) if base_doc is not MISSING else MISSING,
                    value_at(mine_doc, path) if mine_doc is not MISSING else MISSING, value_at(current, path))
