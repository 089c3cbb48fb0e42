"""bridge/identity.py: one participant id per caller, whatever the client declared."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge import Bridge, Context
from bridge.identity import MAX_PARTICIPANT_CHARS, participant_id

from harness import exchange, lines

pytestmark = pytest.mark.anyio


#: Shared with client_js/test/identity.test.mjs: both sides derive the same ids (null: the connection's).
VECTORS = orjson.loads((Path(__file__).parent / "identity_vectors.json").read_bytes())


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: orjson.dumps(v["declared"]).decode())
def test_declared_callers_map_to_participant_ids(vector: dict[str, Any]) -> None:
    assert participant_id(vector["declared"], 5) == (vector["participant"] or "connection:5")


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
