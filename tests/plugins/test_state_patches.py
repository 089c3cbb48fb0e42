"""handlers/state/patches.py: applying patches, the paths they touch, overlaps, three-way merge."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.builtins.state.patches import MISSING, PatchError, apply, clashes, common_ancestor, merge3, overlaps, set_at

from state_ops import draw_op


def test_apply_leaves_the_input_alone_and_reports_touched_paths() -> None:
    doc = {"list": [1, 2], "obj": {"x": 1}}
    new, touched = apply(doc, [{"op": "add", "path": "/list/0", "value": 0},
                               {"op": "replace", "path": "/obj/x", "value": 2}])
    assert doc == {"list": [1, 2], "obj": {"x": 1}}
    assert new == {"list": [0, 1, 2], "obj": {"x": 2}}
    assert touched == [("list",), ("obj", "x")]  # an insert touches the whole array


def test_a_failing_op_keeps_nothing() -> None:
    with pytest.raises(PatchError, match="operation 1"):
        apply({"a": 1}, [{"op": "replace", "path": "/a", "value": 2}, {"op": "test", "path": "/a", "value": 1}])
    with pytest.raises(PatchError):
        apply({}, [{"op": "remove", "path": "/missing"}])


@pytest.mark.parametrize("op", [
    {"op": "replace", "path": "/obj/missing", "value": 1},
    {"op": "remove", "path": "/obj/missing"},
    {"op": "add", "path": "/nowhere/x", "value": 1},
    {"op": "add", "path": "/obj/x/deeper", "value": 1},  # x is a number, not an object
    {"op": "add", "path": "/obj/y"},  # no value
    {"op": "add", "path": "obj", "value": 1},  # not a pointer
])
def test_an_object_member_op_that_cannot_apply_fails_as_jsonpatch_says(op: dict) -> None:
    """Adds, replaces and removes of object members are applied without jsonpatch's objects;
    one that cannot apply still fails with jsonpatch's (or jsonpointer's) reason, nothing kept."""
    import copy

    import jsonpatch
    import jsonpointer

    doc = {"obj": {"x": 1}, "list": [1]}
    with pytest.raises((jsonpatch.JsonPatchException, jsonpointer.JsonPointerException)) as theirs:
        jsonpatch.apply_patch(copy.deepcopy(doc), [op])
    with pytest.raises(PatchError) as mine:
        apply(doc, [op])
    assert str(theirs.value) in str(mine.value)
    with pytest.raises(PatchError, match="operation 1|bad JSON pointer"):
        apply(doc, [{"op": "add", "path": "/obj/z", "value": 0}, op])
    assert doc == {"obj": {"x": 1}, "list": [1]}


def test_object_members_named_like_array_places_are_members() -> None:
    new, touched = apply({"o": {}}, [{"op": "add", "path": "/o/-", "value": [1]},
                                     {"op": "add", "path": "/o/0", "value": 2},
                                     {"op": "add", "path": "/o/-/0", "value": 0},
                                     {"op": "remove", "path": "/o/0"}])
    assert new == {"o": {"-": [0, 1]}} and touched == [("o", "-"), ("o", "0"), ("o", "-"), ("o", "0")]


def test_overlap_is_prefix_either_way() -> None:
    assert overlaps(("a",), ("a", "b")) and overlaps(("a", "b"), ("a",)) and overlaps((), ("z",))
    assert not overlaps(("a", "b"), ("a", "c"))
    assert clashes([("a", "b"), ("c",)], [("a",)]) == [("a", "b")]
    assert common_ancestor([("a", "b", "c"), ("a", "b"), ("a", "b", "d")]) == ("a", "b")


def test_set_at_builds_add_replace_or_remove() -> None:
    assert set_at(("k",), MISSING, 1) == [{"op": "add", "path": "/k", "value": 1}]
    assert set_at(("k",), 0, 1) == [{"op": "replace", "path": "/k", "value": 1}]
    assert set_at(("k",), 0, MISSING) == [{"op": "remove", "path": "/k"}]


def test_merge3_key_by_key() -> None:
    base = {"title": "a", "body": "b", "tags": {"x": 1}}
    mine = {"title": "mine", "body": "b", "tags": {"x": 1, "y": 2}}
    theirs = {"title": "a", "body": "theirs", "tags": {"x": 3}}
    merged, overridden = merge3(base, mine, theirs)
    assert merged == {"title": "mine", "body": "theirs", "tags": {"x": 3, "y": 2}}
    assert overridden == []
    merged, overridden = merge3({"k": 1}, {"k": 2}, {"k": 3})
    assert merged == {"k": 2} and overridden == ["k"]
    merged, _ = merge3({"gone": 1, "kept": 1}, {"kept": 1}, {"gone": 1, "kept": 2})
    assert merged == {"kept": 2}
    with pytest.raises(PatchError):
        merge3(1, 2, 3)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_touched_paths_cover_every_change(data: st.DataObject) -> None:
    """What a patch changes lies under the paths it reports: undoing those paths undoes it."""
    doc: dict = {"a": [1, {"b": 2}], "c": {"d": "x"}}
    for _ in range(data.draw(st.integers(1, 4))):
        ops = [draw_op(data, doc)]
        new, touched = apply(doc, ops)
        for key in set(doc) | set(new):
            if not any(overlaps((key,), p) for p in touched):
                assert doc.get(key, MISSING) == new.get(key, MISSING)
        doc = new


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_copy_on_write_matches_jsonpatch_and_changes_neither_the_document_nor_the_patch(data: st.DataObject) -> None:
    """Against jsonpatch on a deep copy, for random patches (several operations, some on what an
    earlier one added): the same result, the old document and the ops (the log keeps them) intact."""
    import copy

    import jsonpatch

    doc: dict = {"a": [1, {"b": [2, 3]}], "c": {"d": {"e": "x"}}}
    for _ in range(data.draw(st.integers(1, 4))):
        ops = []
        scratch = copy.deepcopy(doc)
        for _ in range(data.draw(st.integers(1, 3))):
            op = draw_op(data, scratch)
            ops.append(op)
            scratch = jsonpatch.apply_patch(scratch, [op])
        before, ops_before = copy.deepcopy(doc), copy.deepcopy(ops)
        new, _ = apply(doc, ops)
        assert new == jsonpatch.apply_patch(copy.deepcopy(doc), copy.deepcopy(ops))
        assert doc == before and ops == ops_before
        if ops:  # and later patches do not reach back into this one's values either
            apply(new, [{"op": "add", "path": "/zz", "value": 1}])
            assert ops == ops_before
        doc = new


def test_a_root_replacement_then_an_edit_leaves_the_logged_value_alone() -> None:
    ops = [{"op": "add", "path": "", "value": {"list": []}}, {"op": "add", "path": "/list/-", "value": 1}]
    new, _ = apply({}, ops)
    assert new == {"list": [1]} and ops[0]["value"] == {"list": []}
