"""Hypothesis helpers for the state tests: random JSON Patches that apply to a given document."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from bridge.builtins.state.patches import pointer

KEYS = st.sampled_from(["a", "b", "c", "d/e", "~f", "g h"])
leaves = st.none() | st.booleans() | st.integers(-5, 5) | st.text(max_size=4)
values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
                      max_leaves=6)


def containers(doc: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every object or array in ``doc`` with its path."""
    found = []
    if isinstance(doc, (dict, list)):
        found.append((path, doc))
        items = doc.items() if isinstance(doc, dict) else enumerate(doc)
        for key, child in items:
            found.extend(containers(child, (*path, str(key))))
    return found


def members(doc: Any) -> list[tuple[str, ...]]:
    return [(*p, str(k)) for p, c in containers(doc) for k in (c if isinstance(c, dict) else range(len(c)))]


def draw_op(data: st.DataObject, doc: Any) -> dict[str, Any]:
    """One operation that applies to ``doc`` (the root is always an object here)."""
    existing = members(doc)
    kinds = ["add"] + (["remove", "replace", "test", "copy", "move"] if existing else [])
    kind = data.draw(st.sampled_from(kinds))
    if kind == "add":
        where, container = data.draw(st.sampled_from(containers(doc)))
        key = (data.draw(st.integers(0, len(container))) if isinstance(container, list) else data.draw(KEYS))
        return {"op": "add", "path": pointer((*where, str(key))), "value": data.draw(values)}
    target = data.draw(st.sampled_from(existing))
    if kind == "remove":
        return {"op": "remove", "path": pointer(target)}
    if kind == "replace":
        return {"op": "replace", "path": pointer(target), "value": data.draw(values)}
    if kind == "test":
        value: Any = doc
        for part in target:
            value = value[int(part)] if isinstance(value, list) else value[part]
        return {"op": "test", "path": pointer(target), "value": value}
    where, container = data.draw(st.sampled_from(containers(doc)))
    parent = target[:-1]
    if kind == "move" and (where[:len(target)] == target or (
            len(where) > len(parent) and where[:len(parent)] == parent
            and isinstance(dict(containers(doc))[parent], list))):
        kind = "copy"  # into itself, or past a sibling whose index the removal shifts
    key = (data.draw(st.integers(0, len(container) - (1 if kind == "move" and where == target[:-1] else 0)))
           if isinstance(container, list) else data.draw(KEYS))
    return {"op": kind, "from": pointer(target), "path": pointer((*where, str(key)))}
