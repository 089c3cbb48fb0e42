"""handlers/fs/aggregate.py: the merge table, batch order, compression and bounded memory."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.builtins.fs.aggregate import KINDS, MERGE, Aggregator, Batch, summarise

PATHS = ["/r/a", "/r/b", "/r/sub/c", "/r/sub/d"]


def net(events: list[tuple[str, str]], **options: int) -> list[dict] | None:
    agg = Aggregator(**options)
    for kind, path in events:
        agg.add(kind, path)
    batch = agg.flush()
    return None if batch is None else batch.changes


@pytest.mark.parametrize(("first", "then", "expected"), [
    ("created", "modified", "created"),
    ("created", "deleted", None),
    ("modified", "deleted", "deleted"),
    ("deleted", "created", "modified"),
    ("modified", "modified", "modified"),
])
def test_merge_rules_from_the_issue(first, then, expected) -> None:
    assert MERGE[(first, then)] == expected
    changes = net([(first, "/r/a"), (then, "/r/a")])
    assert changes == (None if expected is None else [{"kind": expected, "path": "/r/a"}])


def test_table_covers_every_pair() -> None:
    assert set(MERGE) == {(a, b) for a in KINDS for b in KINDS}


def test_order_is_first_event_per_path_and_flush_starts_a_new_window() -> None:
    agg = Aggregator()
    for kind, path in [("modified", "/r/b"), ("created", "/r/a"), ("modified", "/r/b"), ("deleted", "/r/c")]:
        agg.add(kind, path)
    batch = agg.flush()
    assert batch == Batch(
        [
            {"kind": "modified", "path": "/r/b"},
            {"kind": "created", "path": "/r/a"},
            {"kind": "deleted", "path": "/r/c"},
        ],
        original_count=3,
    )
    assert batch.to_dict() == {"changes": batch.changes, "compressed": False, "original_count": 3, "dropped": 0}
    assert agg.flush() is None
    agg.add("deleted", "/r/a")
    assert agg.flush().changes == [{"kind": "deleted", "path": "/r/a"}]


def test_bad_kind_and_bad_settings_are_errors() -> None:
    with pytest.raises(ValueError, match="unknown event kind 'renamed'"):
        Aggregator().add("renamed", "/r/a")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_pending"):
        Aggregator(max_pending=0)
    with pytest.raises(ValueError, match="max_batch_compress"):
        Aggregator(max_batch_compress=-1)


def test_compression_summarises_per_directory() -> None:
    agg = Aggregator(max_batch_compress=2)
    for kind, path in [("created", "/r/x/1"), ("deleted", "/r/y/2"), ("modified", "/r/x/3")]:
        agg.add(kind, path)
    assert agg.flush() == Batch(
        [
            {"dir": "/r/x", "created": 1, "modified": 1, "deleted": 0},
            {"dir": "/r/y", "created": 0, "modified": 0, "deleted": 1},
        ],
        compressed=True,
        original_count=3,
    )
    agg.add("created", "/r/x/1")
    agg.add("created", "/r/x/2")
    assert not agg.flush().compressed  # at the threshold: still the full list
    never = Aggregator(max_batch_compress=None)
    for i in range(500):
        never.add("created", f"/r/{i}")
    assert not never.flush().compressed


def test_dropping_keeps_the_newest_and_reports_the_count() -> None:
    agg = Aggregator(max_pending=2)
    for path in ["/r/1", "/r/2", "/r/1", "/r/3", "/r/4"]:
        agg.add("modified", path)
    assert len(agg) == 2
    batch = agg.flush()
    assert batch.changes == [{"kind": "modified", "path": "/r/3"}, {"kind": "modified", "path": "/r/4"}]
    assert batch.dropped == 2
    assert agg.flush() is None  # the count is reported once


# A model of the world: each path's existence before the window and the events that follow.
@st.composite
def histories(draw) -> tuple[dict[str, bool], list[tuple[str, str]]]:
    exists = {p: draw(st.booleans()) for p in PATHS}
    initial = dict(exists)
    events = []
    for _ in range(draw(st.integers(0, 30))):
        path = draw(st.sampled_from(PATHS))
        kind = draw(st.sampled_from(["modified", "deleted"])) if exists[path] else "created"
        exists[path] = kind != "deleted"
        events.append((kind, path))
    return initial, events


def expected_net(initial: dict[str, bool], events: list[tuple[str, str]]) -> dict[str, str]:
    final, touched = dict(initial), set()
    for kind, path in events:
        final[path] = kind != "deleted"
        touched.add(path)
    out = {}
    for path in touched:
        before, after = initial[path], final[path]
        if before != after:
            out[path] = "created" if after else "deleted"
        elif after:
            out[path] = "modified"  # touched, present before and after: content may have changed
    return out


@given(histories())
def test_any_history_aggregates_to_the_net_change(history) -> None:
    initial, events = history
    changes = net(events) or []
    assert {c["path"]: c["kind"] for c in changes} == expected_net(initial, events)
    assert len({c["path"] for c in changes}) == len(changes)
    assert [c["path"] for c in changes] == expected_order(initial, events, {c["path"] for c in changes})


def expected_order(initial: dict[str, bool], events: list[tuple[str, str]], reported: set[str]) -> list[str]:
    """Paths by their first event, counted again after a path nets out (absent, then back to absent)."""
    start, exists = {}, dict(initial)
    for i, (kind, path) in enumerate(events):
        start.setdefault(path, i)
        exists[path] = kind != "deleted"
        if not initial[path] and not exists[path]:
            del start[path]
    return sorted(reported, key=start.__getitem__)


@given(histories(), st.lists(st.integers(0, 30), max_size=4))
def test_flushing_between_events_reports_each_window(history, cuts) -> None:
    initial, events = history
    agg = Aggregator()
    state, start = dict(initial), 0
    for end in sorted({min(c, len(events)) for c in cuts} | {len(events)}):
        window = events[start:end]
        for kind, path in window:
            agg.add(kind, path)
        batch = agg.flush()
        assert {c["path"]: c["kind"] for c in (batch.changes if batch else [])} == expected_net(state, window)
        for kind, path in window:
            state[path] = kind != "deleted"
        start = end


@given(st.lists(st.tuples(st.sampled_from(KINDS), st.sampled_from(PATHS + ["/s/e", "/s/t/f", "g"])), max_size=60),
       st.integers(0, 5))
def test_compression_preserves_the_counts(events, threshold) -> None:
    full = net(events, max_batch_compress=None) or []
    agg = Aggregator(max_batch_compress=threshold)
    for kind, path in events:
        agg.add(kind, path)
    batch = agg.flush()
    if batch is None:
        assert full == []
        return
    assert batch.original_count == len(full)
    assert batch.compressed == (len(full) > threshold)
    summary = batch.changes if batch.compressed else summarise(batch.changes)
    assert summary == summarise(full)
    for kind in KINDS:
        assert sum(s[kind] for s in summary) == sum(c["kind"] == kind for c in full)


@given(st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 40)), max_size=200), st.integers(1, 10))
def test_dropping_bounds_memory_and_counts_what_was_dropped(events, max_pending) -> None:
    agg = Aggregator(max_pending=max_pending, max_batch_compress=None)
    unbounded = Aggregator(max_pending=10**6, max_batch_compress=None)
    peak = 0
    for kind, n in events:
        agg.add(kind, f"/r/{n}")
        unbounded.add(kind, f"/r/{n}")
        assert len(agg) <= max_pending
        peak = max(peak, len(unbounded))
    batch, full = agg.flush(), unbounded.flush()
    dropped = batch.dropped if batch else 0
    assert (dropped > 0) == (peak > max_pending)  # identical until the first drop, which overflow forces
    assert dropped <= len(events) - max_pending or dropped == 0
    if not dropped:
        assert batch == full


def test_a_batch_of_nothing_but_drops_is_still_reported() -> None:
    agg = Aggregator(max_pending=1)
    agg.add("created", "/r/1")
    agg.add("created", "/r/2")  # evicts /r/1
    agg.add("deleted", "/r/2")  # nets out
    assert agg.flush() == Batch([], original_count=0, dropped=1)
