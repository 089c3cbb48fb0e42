"""Handlers that take ``*args``, ``**kwargs`` and positional-only params (bridge/variadic.py):
bound and validated from JSON-RPC params, described by rpc.discover, served end to end."""

from __future__ import annotations

from typing import Any

import pytest
from harness import Host, exchange, lines
from hypothesis import given, settings
from hypothesis import strategies as st
from variadic_app import app

from bridge import Bridge, BridgeError
from bridge.discovery import openrpc

def call(id: int, method: str, params: Any = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id, "method": method, **({"params": params} if params is not None else {})}


async def served(*calls: dict[str, Any]) -> dict[Any, Any]:
    return {r["id"]: r for r in await exchange(app, lines(*calls))}


@pytest.mark.anyio
async def test_every_shape_through_the_connection() -> None:
    out = await served(
        call(1, "total", [1, 2, 3.5]), call(2, "total"), call(3, "echo", {"a": 1, "b": [2]}),
        call(4, "point", [3]), call(5, "point", [3, 4]), call(6, "point", {"label": "p"}),
        call(7, "mixed", ["a", 1, 2]), call(8, "mixed", {"first": "a", "flag": True, "n": 4}),
        call(9, "who", ["x", "y"]), call(10, "echo", {"$meta": {"info": True}, "k": "v"}),
    )
    assert out[1]["result"] == 6.5 and out[2]["result"] == 0
    assert out[3]["result"] == {"a": 1, "b": [2]}
    assert out[4]["result"] == [3, 0, ""] and out[5]["result"] == [3, 4, ""]
    assert out[6]["error"]["code"] == -32602  # x is required, and it cannot come by name
    assert out[7]["result"] == ["a", [1, 2], False, {}]
    assert out[8]["result"] == ["a", [], True, {"n": 4}]
    assert out[9]["result"] == ["who", ["x", "y"]]  # a positional-only Context, then *tags
    assert out[10]["result"] == {"k": "v"}  # $meta is never a param


@pytest.mark.anyio
async def test_each_rest_param_is_validated_and_located_where_the_caller_sent_it() -> None:
    out = await served(
        call(1, "total", [1, "two", 3]), call(2, "mixed", ["a", 1, "x"]), call(3, "mixed", {"first": "a", "n": -1}),
        call(4, "point", {"x": 1}), call(5, "point", [1, 2, "l", "extra"]), call(6, "echo", [1]),
        call(7, "total", {"numbers": [1]}),
    )
    errors = {id: r["error"] for id, r in out.items()}
    assert all(e["code"] == -32602 for e in errors.values())
    assert errors[1]["data"]["errors"][0]["loc"] == [1]
    assert errors[2]["data"]["errors"][0]["loc"] == [2]
    assert errors[3]["data"]["errors"][0]["loc"] == ["n"] and "greater than or equal to 0" in errors[3]["message"]
    assert errors[4]["data"]["errors"][0] == {"loc": ["x"], "msg": "Positional-only param: send the params as an array",
                                              "type": "positional_only"}
    assert "at most 3 positional params" in errors[5]["message"]
    assert "at most 0 positional params" in errors[6]["message"]
    assert errors[7]["data"]["errors"][0]["type"] == "extra_forbidden"  # *numbers has no name to be sent by


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), max_size=50))
def test_any_number_of_positional_params_binds_to_star_args(numbers: list[float]) -> None:
    method = app.methods["total"]
    assert method.func(**method.bind(numbers)) == sum(numbers)


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.text(min_size=1).filter(lambda k: k != "$meta"), st.integers() | st.text() | st.none(),
                       max_size=20))
def test_any_named_params_bind_to_star_star_kwargs(params: dict[str, Any]) -> None:
    method = app.methods["echo"]
    assert method.func(**method.bind(params)) == params


def test_discovery_describes_the_structure_and_the_rest() -> None:
    doc = {m["name"]: m for m in openrpc(app)["methods"]}
    assert doc["total"]["paramStructure"] == "by-position" and doc["total"]["params"] == []
    assert doc["total"]["x-variadic"] == {"positional": {"name": "numbers", "schema": {"type": "number"}}}
    assert doc["echo"]["paramStructure"] == "either" and doc["echo"]["x-variadic"]["named"]["name"] == "params"
    assert doc["point"]["paramStructure"] == "by-position"
    assert [p.get("x-positional-only", False) for p in doc["point"]["params"]] == [True, True, False]
    assert doc["mixed"]["x-variadic"]["named"]["schema"] == {"minimum": 0, "type": "integer"}
    assert doc["mixed"]["paramStructure"] == "either"


def test_a_batched_or_streamed_handler_keeps_the_plain_shape() -> None:
    from bridge.middleware.batch import Batch

    with pytest.raises(TypeError, match="cannot take"):
        Bridge().add_method(lambda *items: items, "b", batch=Batch())


def test_a_10_mib_sum_of_5_million_ones_through_the_real_host() -> None:
    body = b'{"jsonrpc":"2.0","id":1,"method":"total","params":[' + b", ".join([b"1"] * 5_000_000) + b"]}\n"
    assert len(body) > 10 * 1024 * 1024
    with Host("tests.variadic_app:app") as host:
        host.recv()  # $/ready
        host.send_raw(body)
        assert host.reply(1, timeout=60)["result"] == 5_000_000
        assert host.call("echo", {"still": "serving"}, id=2)["result"] == {"still": "serving"}


def test_bridge_error_from_a_variadic_handler_is_its_own() -> None:
    local = Bridge()

    @local.method
    def refuse(*args: int) -> None:
        raise BridgeError(4001, "no", {"got": list(args)})

    method = local.methods["refuse"]
    with pytest.raises(BridgeError) as caught:
        method.func(**method.bind([1, 2]))
    assert caught.value.data == {"got": [1, 2]}
