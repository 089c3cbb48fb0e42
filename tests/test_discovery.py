"""bridge/discovery.py: rpc.discover returns an OpenRPC document built from the signatures."""

from __future__ import annotations

import subprocess
from typing import Any

import orjson
import pytest
from harness import ROOT, exchange, lines, python
from pydantic import BaseModel

from bridge import Bridge, Context

pytestmark = pytest.mark.anyio


class Entry(BaseModel):
    name: str
    size: int = 0


def make_app() -> Bridge:
    app = Bridge("files", "2.1.0", description="File helpers.")

    @app.method("files.find")
    async def find(pattern: str, ctx: Context, limit: int = 10) -> list[Entry]:
        """Find entries.

        Longer explanation here.
        """
        return []

    @app.method("files.touch")
    def touch(entry: Entry) -> None:
        """Create an entry."""

    return app


async def test_rpc_discover_describes_every_method() -> None:
    [reply] = await exchange(make_app(), lines({"jsonrpc": "2.0", "id": 1, "method": "rpc.discover"}))
    doc = reply["result"]
    assert doc["openrpc"].startswith("1.")
    assert doc["info"] == {"title": "files", "version": "2.1.0", "description": "File helpers."}
    methods = {m["name"]: m for m in doc["methods"]}
    assert set(methods) == {"files.find", "files.touch"}
    find = methods["files.find"]
    assert find["summary"] == "Find entries."
    assert "Longer explanation" in find["description"]
    assert [(p["name"], p["required"]) for p in find["params"]] == [("pattern", True), ("limit", False)]
    assert find["params"][0]["schema"]["type"] == "string"
    assert find["params"][1]["schema"]["default"] == 10
    assert find["result"]["schema"] == {"type": "array", "items": {"$ref": "#/components/schemas/Entry"}}
    assert doc["components"]["schemas"]["Entry"]["properties"]["name"] == {"title": "Name", "type": "string"}
    touch = methods["files.touch"]
    assert touch["params"][0]["schema"] == {"$ref": "#/components/schemas/Entry"}
    assert touch["result"]["schema"] == {"type": "null"}
    assert doc["components"]["errors"]["REQUEST_CANCELLED"]["code"] == -32800


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


async def test_every_ref_resolves() -> None:
    [reply] = await exchange(make_app(), lines({"jsonrpc": "2.0", "id": 1, "method": "rpc.discover"}))
    doc = reply["result"]
    for ref in _refs(doc["methods"]):
        assert ref.removeprefix("#/components/schemas/") in doc["components"]["schemas"]


def test_cli_discover_prints_the_document() -> None:
    out = subprocess.run([python(), "-m", "bridge", "discover", "bridge.builtins.demo:app"], cwd=ROOT,
                         capture_output=True, check=True).stdout
    doc = orjson.loads(out)
    assert "demo.add" in {m["name"] for m in doc["methods"]}


async def test_idempotent_methods_are_declared() -> None:
    app = Bridge()

    @app.method("a.get", idempotent=True)
    async def get() -> int:
        return 1

    @app.method("a.put")
    async def put() -> None: ...

    out = await exchange(app, lines({"jsonrpc": "2.0", "id": 1, "method": "rpc.discover"}), ready=True)
    assert out[0]["params"]["idempotent"] == ["a.get", "rpc.ping"]
    methods = {m["name"]: m for m in out[1]["result"]["methods"]}
    assert methods["a.get"]["x-idempotent"] is True and "x-idempotent" not in methods["a.put"]


async def test_stream_and_batch_methods_are_marked() -> None:
    from bridge import Batch

    app = Bridge()

    @app.method
    async def rows(n: int):
        yield n

    @app.method(batch=Batch(max_size=7))
    async def many(ids: list[str]) -> list[int]:
        return [len(i) for i in ids]

    [reply] = await exchange(app, lines({"jsonrpc": "2.0", "id": 1, "method": "rpc.discover"}))
    methods = {m["name"]: m for m in reply["result"]["methods"]}
    assert methods["rows"]["x-stream"] == {"chunkSize": 100}
    assert methods["many"]["x-batch"]["maxSize"] == 7
    assert methods["many"]["params"][0]["schema"]["type"] == "string"  # each call sends one id
