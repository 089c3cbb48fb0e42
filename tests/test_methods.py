"""bridge/methods.py and bridge/app.py: signatures become schemas, results become JSON."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import threading
import uuid
from typing import Annotated, Any

import anyio
import pytest
from harness import exchange, lines
from pydantic import BaseModel, Field

from bridge import Bridge, BridgeError, Context

pytestmark = pytest.mark.anyio


class Color(enum.Enum):
    RED = "red"


class Point(BaseModel):
    x: int
    y: int = 0


@dataclasses.dataclass
class Stamp:
    at: dt.datetime
    color: Color
    id: uuid.UUID


def call(method: str, params: Any = None, id: Any = 1) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        message["params"] = params
    return lines(message)


async def one(app: Bridge, method: str, params: Any = None) -> dict[str, Any]:
    [reply] = await exchange(app, call(method, params))
    return reply


async def test_pydantic_model_params_and_results() -> None:
    app = Bridge()

    @app.method
    async def move(p: Point, dx: int = 1) -> Point:
        return Point(x=p.x + dx, y=p.y)

    assert (await one(app, "move", {"p": {"x": 1}}))["result"] == {"x": 2, "y": 0}
    assert (await one(app, "move", [{"x": 1, "y": 5}, 10]))["result"] == {"x": 11, "y": 5}
    error = (await one(app, "move", {"p": {"x": "nope"}}))["error"]
    assert error["code"] == -32602
    assert error["data"]["errors"] == [{"loc": ["p", "x"], "msg": error["data"]["errors"][0]["msg"], "type": "int_parsing"}]
    assert "p.x" in error["message"]


async def test_dataclass_datetime_enum_uuid_results() -> None:
    app = Bridge()
    u = uuid.UUID(int=7)

    @app.method
    def stamp() -> Stamp:
        return Stamp(dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC), Color.RED, u)

    result = (await one(app, "stamp"))["result"]
    assert result == {"at": "2024-05-06T07:08:09Z", "color": "red", "id": str(u)}


async def test_unknown_missing_and_extra_params() -> None:
    app = Bridge()

    @app.method
    async def f(a: int, b: str = "x") -> str:
        return b * a

    assert (await one(app, "f", {"a": 2}))["result"] == "xx"
    extra = (await one(app, "f", {"a": 1, "zzz": 1}))["error"]
    assert extra["code"] == -32602 and extra["data"]["errors"][0]["loc"] == ["zzz"]
    missing = (await one(app, "f", {}))["error"]
    assert missing["data"]["errors"][0] == {"loc": ["a"], "msg": "Field required", "type": "missing"}
    too_many = (await one(app, "f", [1, "y", 3]))["error"]
    assert too_many["code"] == -32602 and "at most 2" in too_many["message"]


async def test_method_with_no_params_rejects_some() -> None:
    app = Bridge()

    @app.method
    async def nothing() -> int:
        return 1

    assert (await one(app, "nothing", []))["result"] == 1
    assert (await one(app, "nothing", {}))["result"] == 1
    assert (await one(app, "nothing", {"a": 1}))["error"]["code"] == -32602
    assert (await one(app, "nothing", [1]))["error"]["code"] == -32602


async def test_params_named_like_basemodel_attributes() -> None:
    app = Bridge()

    @app.method
    async def odd(json: str, model_config: int, copy: bool = False) -> list[Any]:
        return [json, model_config, copy]

    assert (await one(app, "odd", {"json": "j", "model_config": 3}))["result"] == ["j", 3, False]
    assert (await one(app, "odd", ["j", 4, True]))["result"] == ["j", 4, True]
    error = (await one(app, "odd", {"json": "j", "model_config": "x"}))["error"]
    assert error["data"]["errors"][0]["loc"] == ["model_config"]


async def test_meta_is_not_a_param() -> None:
    app = Bridge()

    @app.method
    async def f(a: int, ctx: Context) -> Any:
        return [a, ctx.progress_token]

    assert (await one(app, "f", {"a": 1, "$meta": {"progressToken": "t"}}))["result"] == [1, "t"]
    assert (await one(app, "f", {"a": 1}))["result"] == [1, 1]


async def test_sync_handlers_run_in_threads_and_do_not_block_the_loop() -> None:
    app = Bridge()
    release = threading.Event()
    loop_thread = threading.get_ident()
    seen: dict[str, int] = {}

    @app.method
    def blocking(ctx: Context) -> str:
        seen["thread"] = threading.get_ident()
        ctx.notify("from.thread", {"ok": True})  # thread-safe notify
        assert release.wait(10)
        return "unblocked"

    @app.method
    async def quick() -> str:
        release.set()  # only reachable if the loop is free while `blocking` waits
        return "quick"

    out = await exchange(app, call("blocking", id=1) + call("quick", id=2))
    assert seen["thread"] != loop_thread
    assert {"jsonrpc": "2.0", "method": "from.thread", "params": {"ok": True}} in out
    results = {m["id"]: m["result"] for m in out if "id" in m}
    assert results == {1: "unblocked", 2: "quick"}


async def test_bridge_error_codes_and_data() -> None:
    app = Bridge()

    @app.method
    async def refuse() -> None:
        raise BridgeError(4001, "no", {"why": "because"})

    @app.method
    async def invalid_on_purpose() -> None:
        raise BridgeError(-32602, data={"errors": []})

    assert (await one(app, "refuse"))["error"] == {"code": 4001, "message": "no", "data": {"why": "because"}}
    assert (await one(app, "invalid_on_purpose"))["error"] == {"code": -32602, "message": "Invalid params", "data": {"errors": []}}
    with pytest.raises(ValueError, match="reserved"):
        BridgeError(-32050, "mine")
    with pytest.raises(TypeError):
        BridgeError("1", "x")  # type: ignore[arg-type]


async def test_internal_error_hides_the_traceback_unless_debug() -> None:
    app = Bridge()

    @app.method
    async def boom() -> None:
        raise KeyError("secret")

    [plain] = await exchange(app, call("boom"))
    assert plain["error"] == {"code": -32603, "message": "Internal error", "data": {"exception": "KeyError"}}
    [debug] = await exchange(app, call("boom"), debug=True)
    assert "secret" in debug["error"]["message"]
    assert any("raise KeyError" in line for line in debug["error"]["data"]["traceback"])


async def test_unserialisable_result_is_an_internal_error() -> None:
    app = Bridge()

    @app.method
    async def weird() -> Any:
        return object()

    reply = await one(app, "weird")
    assert reply["id"] == 1 and reply["error"]["code"] == -32603


async def test_context_reports_cancellation_to_sync_handlers() -> None:
    app = Bridge()
    observed = threading.Event()

    @app.method(timeout=0.1)
    def poll(ctx: Context) -> str:
        for _ in range(1000):
            if ctx.cancelled:
                observed.set()
                return "stopped"
            threading.Event().wait(0.01)
        return "never cancelled"

    reply = await one(app, "poll")
    assert reply["error"]["code"] == -32001
    with anyio.fail_after(5):
        while not observed.is_set():
            await anyio.sleep(0.01)


async def test_annotated_param_descriptions_and_constraints() -> None:
    app = Bridge()

    @app.method
    async def page(size: Annotated[int, Field(gt=0, le=100, description="items per page")] = 10) -> int:
        return size

    assert app.methods["page"].params[0].description == "items per page"
    assert (await one(app, "page", {"size": 500}))["error"]["data"]["errors"][0]["type"] == "less_than_equal"
    assert (await one(app, "page"))["result"] == 10


class Public(BaseModel):
    name: str


class Private(Public):
    password: str


async def test_the_return_annotation_shapes_the_result() -> None:
    app = Bridge()

    @app.method
    async def user() -> Public:
        return Private(name="ada", password="secret")

    @app.method
    async def users() -> list[Public] | None:
        return [Private(name="a", password="x"), {"name": "b"}]

    @app.method
    async def when() -> dt.datetime:
        return dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)

    @app.method
    async def untyped():
        return Private(name="c", password="shown: no annotation to shape by")

    assert (await one(app, "user"))["result"] == {"name": "ada"}
    assert (await one(app, "users"))["result"] == [{"name": "a"}, {"name": "b"}]
    assert (await one(app, "when"))["result"] == "2024-01-02T03:04:05Z"
    assert (await one(app, "untyped"))["result"] == {"name": "c", "password": "shown: no annotation to shape by"}


def test_plain_annotations_skip_shaping() -> None:
    from bridge.methods import _needs_shaping

    for plain in (int, str, list[int], dict[str, Any], Any, None, int | None, tuple[int, ...], Annotated[int, "x"]):
        assert not _needs_shaping(plain), plain
    for shaped in (Point, list[Point], dict[str, Point], Point | None, dt.datetime, Color, Stamp):
        assert _needs_shaping(shaped), shaped
