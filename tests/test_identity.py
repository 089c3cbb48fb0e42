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


def _who_app(middleware: bool) -> tuple[Bridge, list[str]]:
    """``who`` answers the participant its Context sees; the middleware, if any, records its own."""
    app = Bridge("t")
    seen: list[str] = []
    if middleware:

        @app.add_middleware
        async def record(request: Any, call_next: Any) -> Any:
            seen.append(request.participant)
            return await call_next(request)

    @app.method
    def who(ctx: Context, x: int = 0) -> str:
        return ctx.participant

    return app, seen


#: (request members beside jsonrpc/id/method, the participant the host must take it for; None: its connection's)
ASSERTED = [
    ({"params": {"$meta": {"caller": "alice"}}, "$caller": {"window": 3, "frame": "f"}}, "window:3"),
    ({"params": [1], "$caller": "bob"}, "bob"),
    ({"$caller": 7}, "7"),
    ({"params": {"x": 1}, "$caller": {"participant": "carol"}}, "carol"),
    ({"params": {"$meta": {"caller": "alice"}}, "$caller": None}, None),  # asserted "nobody": params cannot fill it in
    ({"params": {"$meta": {"caller": "alice"}}}, "alice"),  # no transport assertion: the declared caller
]


@pytest.mark.parametrize("middleware", [False, True], ids=["inline", "pipeline"])
async def test_caller_asserted_by_the_transport_wins_whatever_the_params(middleware: bool) -> None:
    app, seen = _who_app(middleware)
    requests = [{"jsonrpc": "2.0", "id": i, "method": "who", **extra} for i, (extra, _) in enumerate(ASSERTED)]
    replies = {r["id"]: r["result"] for r in await exchange(app, lines(*requests))}
    expected = {i: participant for i, (_, participant) in enumerate(ASSERTED)}
    for i, participant in expected.items():
        if participant is None:
            assert replies[i].startswith("connection:"), (ASSERTED[i], replies[i])
        else:
            assert replies[i] == participant, ASSERTED[i]
    if middleware:
        assert sorted(seen) == sorted(replies.values())


async def test_caller_in_params_is_only_a_param() -> None:
    app, _ = _who_app(False)
    [reply] = await exchange(app, lines({"jsonrpc": "2.0", "id": 1, "method": "who", "params": {"$caller": "mallory"}}))
    assert reply["error"]["code"] == -32602 and reply["error"]["data"]["errors"][0]["loc"] == ["$caller"]


@pytest.mark.parametrize("middleware", [False, True], ids=["inline", "pipeline"])
async def test_each_batch_entry_is_its_own_callers(middleware: bool) -> None:
    app, _ = _who_app(middleware)
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "who", "$caller": "a"},
        {"jsonrpc": "2.0", "id": 2, "method": "who", "params": [], "$caller": {"window": 2}},
        {"jsonrpc": "2.0", "id": 3, "method": "who", "params": {"$meta": {"caller": "c"}}, "$caller": "d"},
        {"jsonrpc": "2.0", "id": 4, "method": "who", "params": {"$meta": {"caller": "e"}}},
        {"jsonrpc": "2.0", "id": 5, "method": "who"},
    ]
    [replies] = await exchange(app, lines(batch))
    by_id = {r["id"]: r["result"] for r in replies}
    assert [by_id[i] for i in range(1, 5)] == ["a", "window:2", "d", "e"]
    assert by_id[5].startswith("connection:")
