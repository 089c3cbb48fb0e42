"""bridge/identity.py: one participant id per caller, whatever the client declared."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge import Bridge, Context
from bridge.identity import MAX_PARTICIPANT_CHARS, participant_id

from harness import exchange, lines

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(("declared", "expected"), [
    ("alice", "alice"),
    (7, "7"),
    ({"participant": "bob", "window": 3}, "bob"),
    ({"window": 3, "frame": "app://index.html"}, "window:3"),
    ({"id": "carol"}, "carol"),
    (None, "connection:5"),
    ("", "connection:5"),
    (True, "connection:5"),
    ([1, 2], "connection:5"),
    ({"frame": "x"}, "connection:5"),
])
def test_declared_callers_map_to_participant_ids(declared: Any, expected: str) -> None:
    assert participant_id(declared, 5) == expected


@given(st.text(min_size=MAX_PARTICIPANT_CHARS + 1, max_size=2 * MAX_PARTICIPANT_CHARS))
def test_long_ids_become_short_stable_digests(text: str) -> None:
    first = participant_id(text)
    assert first == participant_id({"participant": text}) and first.startswith("sha256:")
    assert len(first) < MAX_PARTICIPANT_CHARS


async def test_context_and_middleware_see_the_same_participant() -> None:
    app = Bridge("t")
    seen: list[str] = []

    @app.add_middleware
    async def record(request: Any, call_next: Any) -> Any:
        seen.append(request.participant)
        return await call_next(request)

    @app.method
    def who(ctx: Context) -> str:
        return ctx.participant

    replies = await exchange(app, lines(
        {"jsonrpc": "2.0", "id": 1, "method": "who", "params": {"$meta": {"caller": {"window": 9}}}},
        {"jsonrpc": "2.0", "id": 2, "method": "who"},
    ))
    by_id = {r["id"]: r["result"] for r in replies}
    assert by_id[1] == "window:9"
    assert by_id[2].startswith("connection:")
    assert sorted(seen) == sorted(by_id.values())
