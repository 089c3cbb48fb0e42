"""RFC 6902 patches (applied by ``jsonpatch``) and the paths they touch, for conflict checks.

A path is a tuple of JSON Pointer parts; ``()`` is the whole document. Two paths overlap when
one is a prefix of the other. An op that inserts into or removes from an array shifts every
later element, so it touches the array itself, not just its index: conservative, so that a
rebased patch never lands on an element that moved.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

import jsonpatch
import jsonpointer

Path = tuple[str, ...]
MISSING: Any = object()


class PatchError(ValueError):
    """The patch is malformed, or does not apply to the document (a failed ``test`` included)."""


def parse(ops: Any) -> list[dict[str, Any]]:
    """Check the shape of a patch: a list of operations with an ``op`` and a ``path``."""
    if not isinstance(ops, list):
        raise PatchError("a patch is a list of operations")
    for i, op in enumerate(ops):
        if not isinstance(op, dict) or not isinstance(op.get("op"), str) or not isinstance(op.get("path"), str):
            raise PatchError(f"operation {i} must be an object with string 'op' and 'path'")
        if op["op"] in ("move", "copy") and not isinstance(op.get("from"), str):
            raise PatchError(f"operation {i} ({op['op']}) needs a string 'from'")
    return ops


def apply(value: Any, ops: Sequence[dict[str, Any]]) -> tuple[Any, list[Path]]:
    """The document after ``ops`` and the paths they touched. ``value`` is not changed.

    Copy on write: only the containers on the way to what an operation changes are copied,
    so a patch costs the depth of its paths, not the size of the document, and the new
    document shares the rest with the old one (which stays as it was: a reply or a snapshot
    may still be serialising it). All or nothing: a failing operation raises PatchError and
    the old document is untouched.
    """
    doc = value
    owned: set[int] = set()
    touched: list[Path] = []
    for i, op in enumerate(ops):
        if isinstance(doc, (dict, list)) and id(doc) not in owned:  # the old root, or an op's value
            doc = _shallow(doc)
            owned.add(id(doc))
        try:
            member = _member(doc, op)
            if member is not None:  # the common case, without building jsonpatch's objects
                touched.append(member)
                _own_spine(doc, member, owned)
                _set_member(doc, member, op)
                continue
            touched.extend(touched_paths(op, doc))
            for key in ("from", "path"):
                if isinstance(op.get(key), str):
                    _own_spine(doc, split(op[key]), owned)
            doc = jsonpatch.JsonPatch([op]).apply(doc, in_place=True)
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, TypeError, KeyError) as exc:
            raise PatchError(f"operation {i} ({op.get('op')} {op.get('path')}): {exc}") from None
    return doc, touched


def _member(doc: Any, op: dict[str, Any]) -> Path | None:
    """The path of an ``add``, ``replace`` or ``remove`` of an object's member, reached through
    objects only, that will succeed; None for anything else (jsonpatch applies it, or says why not)."""
    kind = op.get("op")
    if kind not in ("add", "replace", "remove") or (kind != "remove" and "value" not in op):
        return None
    path = split(op["path"])
    if not path:
        return None
    parent = doc
    for part in path[:-1]:
        if type(parent) is not dict or part not in parent:
            return None
        parent = parent[part]
    if type(parent) is not dict or (kind != "add" and path[-1] not in parent):
        return None
    return path


def _set_member(doc: Any, path: Path, op: dict[str, Any]) -> None:
    """Apply the operation ``_member`` vouched for (its parent already this patch's own)."""
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    if op["op"] == "remove":
        del parent[path[-1]]
    else:  # a copy of the value, as jsonpatch makes: the document shares nothing with the patch
        value = op["value"]
        parent[path[-1]] = copy.deepcopy(value) if isinstance(value, (dict, list)) else value


def _shallow(value: Any) -> Any:
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        return list(value)
    return value


def _own_spine(doc: Any, path: Path, owned: set[int]) -> None:
    """Make every container from ``doc`` down to ``path``'s parent a copy of this patch's own
    (``owned`` holds their ids), so changing the parent changes nothing another version shares.
    Values an operation brought stay unowned too: the patch log holds them."""
    node = doc
    for part in path[:-1]:
        if isinstance(node, dict) and part in node:
            key: Any = part
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            key = int(part)
        else:
            return  # the operation will fail on this path; nothing to protect below
        child = node[key]
        if not isinstance(child, (dict, list)):
            return
        if id(child) not in owned:
            child = _shallow(child)
            owned.add(id(child))
            node[key] = child
        node = child


def touched_paths(op: dict[str, Any], doc: Any = MISSING) -> list[Path]:
    """The paths ``op`` touches in ``doc``: its target, and a move's or copy's source. An add,
    remove, move or copy into an array shifts the later elements, so it touches the array; with
    no document to look at (a patch that did not apply), it is taken to touch the parent
    whatever that is. A malformed pointer raises PatchError."""
    kind = op.get("op")
    found: list[Path] = []
    for key in ("from", "path"):
        if key == "from" and kind not in ("move", "copy"):
            continue
        path = split(op[key]) if isinstance(op.get(key), str) else None
        if path is None:
            continue
        shifts = kind == "move" if key == "from" else kind in ("add", "remove", "move", "copy")
        if shifts and path and (doc is MISSING or isinstance(value_at(doc, path[:-1]), list)):
            path = path[:-1]
        found.append(path)
    return found


def split(pointer: str) -> Path:
    """A JSON Pointer's parts (PatchError if it is malformed); short ones are remembered, as
    the same few paths come patch after patch."""
    return _split_short(pointer) if len(pointer) <= 256 else _split(pointer)


@lru_cache(maxsize=4096)
def _split_short(pointer: str) -> Path:
    return _split(pointer)


def _split(pointer: str) -> Path:
    try:
        return tuple(jsonpointer.JsonPointer(pointer).parts)
    except jsonpointer.JsonPointerException as exc:
        raise PatchError(f"bad JSON pointer {pointer!r}: {exc}") from None


def pointer(path: Path) -> str:
    return jsonpointer.JsonPointer.from_parts(list(path)).path


def value_at(doc: Any, path: Path) -> Any:
    """The value at ``path``, or MISSING."""
    for part in path:
        if isinstance(doc, dict):
            if part not in doc:
                return MISSING
            doc = doc[part]
        elif isinstance(doc, list):
            if not part.isdigit() or int(part) >= len(doc):
                return MISSING
            doc = doc[int(part)]
        else:
            return MISSING
    return doc


def overlaps(a: Path, b: Path) -> bool:
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def clashes(mine: Iterable[Path], theirs: Iterable[Path]) -> list[Path]:
    """My paths that overlap any of theirs."""
    theirs = list(theirs)
    return [p for p in dict.fromkeys(mine) if any(overlaps(p, q) for q in theirs)]


def common_ancestor(paths: Iterable[Path]) -> Path:
    paths = list(paths)
    if not paths:
        return ()
    first = paths[0]
    n = len(first)
    for p in paths[1:]:
        n = min(n, len(p))
        for i in range(n):
            if p[i] != first[i]:
                n = i
                break
    return first[:n]


def set_at(path: Path, current: Any, value: Any) -> list[dict[str, Any]]:
    """The ops that make the value at ``path`` be ``value`` (MISSING: absent)."""
    where = pointer(path)
    if value is MISSING:
        return [] if current is MISSING else [{"op": "remove", "path": where}]
    return [{"op": "add" if current is MISSING else "replace", "path": where, "value": value}]


def merge3(base: Any, mine: Any, theirs: Any) -> tuple[Any, list[str]]:
    """Three-way merge of objects, key by key (nested objects recursively).

    A key changed on one side only takes that side; a key both sides changed differently
    takes mine and is listed in the second value. MISSING stands for an absent key.
    """
    if not (isinstance(mine, dict) and isinstance(theirs, dict)):
        raise PatchError("merge needs an object on both sides; use mine, theirs or manual")
    base = base if isinstance(base, dict) else {}
    merged: dict[str, Any] = {}
    overridden: list[str] = []
    for key in dict.fromkeys([*theirs, *mine, *base]):
        b, m, t = base.get(key, MISSING), mine.get(key, MISSING), theirs.get(key, MISSING)
        if _same(m, b):
            chosen = t
        elif _same(t, b) or _same(m, t):
            chosen = m
        elif isinstance(m, dict) and isinstance(t, dict):
            chosen, deeper = merge3(b, m, t)
            overridden.extend(f"{key}/{k}" for k in deeper)
        else:
            chosen = m
            overridden.append(key)
        if chosen is not MISSING:
            merged[key] = chosen
    return merged, overridden


def _same(a: Any, b: Any) -> bool:
    return a is b or (a is not MISSING and b is not MISSING and a == b)
