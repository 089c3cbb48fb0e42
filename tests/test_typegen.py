"""bridge/typegen.py: the TypeScript ``bridge types`` writes, from the document rpc.discover returns.

client_js/test/typegen.test.mjs compiles a consumer against it with tsc; here the text is checked
piece by piece, and a property test has tsc check that whatever pydantic sends fits the type.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Generator, Iterator
from datetime import date, datetime
from decimal import Decimal
from enum import Enum, IntEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, computed_field

from bridge import Batch, Bridge, Context, Plugin
from bridge.discovery import ErrorData, openrpc
from bridge.plugins import PluginConflict
from bridge.typegen import typescript
from harness import ROOT, exchange, lines, python

pytestmark = pytest.mark.anyio
TSC = ROOT / "client_js" / "node_modules" / "typescript" / "bin" / "tsc"


class Color(str, Enum):
    red = "red"
    green = "green"


class Level(IntEnum):
    low = 1
    high = 2


class Address(BaseModel):
    city: str
    zip: Optional[str] = None


class User(BaseModel):
    """Someone who writes notes."""

    name: Annotated[str, Field(description="The display name.")]
    born: date
    seen: datetime | None = None
    address: Address
    roles: list[Literal["admin", "editor"]] = []
    scores: dict[str, float] = {}
    color: Color = Color.red
    level: Level = Level.low
    pair: tuple[int, str] | None = None
    friends: list[User] = []
    id_or_name: Union[int, str] = 0


class Price(BaseModel):
    amount: Decimal

    @computed_field  # type: ignore[prop-decorator]
    @property
    def doubled(self) -> Decimal:
        return self.amount * 2


class Api(BaseModel):  # the name the generated module declares itself
    x: int


class Problem(BaseModel):
    field: str


class Saved(BaseModel):
    at: datetime


app = Bridge("sample", "2.0.0")


@app.method("users.get")
def get_user(name: str, default: str = "", *, strict: bool = False) -> User | None:
    """Find a user.

    By name."""


@app.method("prices.convert")
def convert(price: Price, rate: float = 1.0) -> Annotated[Price, ErrorData(4001, Problem, "no rate"),
                                                          ErrorData(-32099)]:
    ...


@app.method("names.clash")
def clash(api: Api) -> Api:
    return api


@app.method
def total(*numbers: float) -> float:
    return sum(numbers)


@app.method
def forward(name: str, /, *rest: int, flag: bool = False, **extra: str) -> None: ...


@app.method
def point(x: int, y: int = 0, /) -> list[int]:
    return [x, y]


@app.method
def ordered(a: int = 1, *, b: str) -> None: ...


@app.method("rows.users")
async def rows_users(n: int, ctx: Context) -> AsyncIterator[User]:
    yield User(name="u", born=date(2000, 1, 1), address=Address(city="c"))


@app.method("rows.ints")
def rows_ints() -> Iterator[int]:
    yield 1


@app.method("rows.dicts")
def rows_dicts() -> Generator[dict[str, int], None, None]:
    yield {}


@app.method("rows.bare")
async def rows_bare():  # type: ignore[no-untyped-def]
    yield 1


@app.method("batch.get", batch=Batch())
async def batch_get(ids: list[str]) -> list[int]:
    return [len(i) for i in ids]


@app.method("loose")
def loose(anything, data: dict[str, Any]):  # type: ignore[no-untyped-def]
    return anything


app.event("users.changed", User, description="A user's fields changed.")
app.event("ping")

clock = Plugin("clock")
clock.event("ticked", Saved)


@clock.method("now")
def now() -> datetime:
    return datetime(2024, 1, 2)


app.include(clock)


def _block(text: str, start: str) -> str:
    """The declaration or map entry that begins with the line ``start``, through its closing line."""
    lines_ = text.splitlines()
    first = lines_.index(start)
    indent = len(start) - len(start.lstrip())
    for i in range(first + 1, len(lines_)):
        if len(lines_[i]) - len(lines_[i].lstrip()) == indent and lines_[i].strip().startswith("}"):
            return "\n".join(lines_[first : i + 1])
    raise AssertionError(f"{start!r} is not closed")


@pytest.fixture(scope="module")
def generated() -> str:
    return typescript(openrpc(app))


def test_a_model_is_an_interface_with_its_docs_optionals_and_formats(generated: str) -> None:
    assert _block(generated, "export interface User {") == """\
export interface User {
  /** The display name. */
  name: string;
  /** An ISO 8601 date string. */
  born: string;
  /** An ISO 8601 date-time string. */
  seen?: string | null;
  address: Address;
  roles?: ("admin" | "editor")[];
  scores?: {
    [key: string]: number;
  };
  color?: Color;
  level?: Level;
  pair?: [number, string] | null;
  friends?: User[];
  id_or_name?: number | string;
}"""
    assert "/** Someone who writes notes. */\nexport interface User {" in generated
    assert "export type Color = \"red\" | \"green\";" in generated
    assert "export type Level = 1 | 2;" in generated
    assert _block(generated, "export interface Address {") == \
        "export interface Address {\n  city: string;\n  zip?: string | null;\n}"


def test_params_come_by_name_and_by_position(generated: str) -> None:
    assert _block(generated, '  "users.get": {') == """\
  "users.get": {
    params: {
      name: string;
      default?: string;
      strict?: boolean;
    };
    positional: [name: string, default_?: string, strict?: boolean];
    result: User | null;
  };"""
    assert "/**\n   * Find a user.\n   */\n  \"users.get\"" not in generated
    assert '  /** Find a user. */\n  "users.get": {' in generated
    # an optional param before a required one is required by position
    assert "    positional: [a: number, b: string];" in _block(generated, '  "ordered": {')


def test_variadic_params(generated: str) -> None:
    assert _block(generated, '  "total": {') == """\
  "total": {
    params: never;
    positional: [...numbers: number[]];
    result: number;
  };"""
    assert _block(generated, '  "forward": {') == """\
  "forward": {
    params: {
      flag?: boolean;
      [key: string]: string | boolean | undefined;
    };
    positional: [name: string, ...rest: number[]];
    result: null;
  };"""
    assert "    params: never;\n    positional: [x: number, y?: number];" in _block(generated, '  "point": {')


def test_streams_give_their_item_type(generated: str) -> None:
    assert "    item: User;" in _block(generated, '  "rows.users": {')
    assert "    item: number;" in _block(generated, '  "rows.ints": {')
    assert "    item: {\n      [key: string]: number;\n    };" in _block(generated, '  "rows.dicts": {')
    assert "    item: unknown;" in _block(generated, '  "rows.bare": {')
    assert "item:" not in _block(generated, '  "batch.get": {')
    assert "    params: {\n      ids: string;\n    };\n    positional: [ids: string];\n    result: number;" in \
        _block(generated, '  "batch.get": {')  # what one call of a batched method sends and gets


def test_events_of_the_app_and_of_a_plugin(generated: str) -> None:
    assert _block(generated, "export interface ApiEvents {") == """\
export interface ApiEvents {
  /** A user's fields changed. */
  "users.changed": User;
  "ping": unknown;
  "clock.ticked": Saved;
}"""


def test_declared_error_data(generated: str) -> None:
    assert _block(generated, "    errors: {") == """\
    errors: {
      /** no rate */
      4001: Problem;
      "-32099": unknown;
    };"""


def test_names_are_kept_apart(generated: str) -> None:
    # one name for a model whose params and result read the same, two for one whose differ
    assert "export interface PriceInput {\n  amount: number | string;\n}" in generated
    assert "export interface PriceOutput {\n  amount: string;\n  doubled: string;\n}" in generated
    assert generated.count("export interface User {") == 1
    assert "    params: {\n      price: PriceInput;\n      rate?: number;\n    };" in generated
    # a model named like the module's own Api
    assert "export interface Api2 {\n  x: number;\n}" in generated
    assert "    params: {\n      api: Api2;\n    };" in generated
    assert generated.count("export interface Api {") == 1


def test_two_classes_of_one_name_are_two_types() -> None:
    class User(BaseModel):  # the same class name as the module's User, another model
        handle: str

    local = Bridge()

    def first(a: Any) -> Any:
        return a

    def second(b: Any) -> Any:
        return [b]

    first.__annotations__ = {"a": User, "return": User}  # this module's annotations are strings
    second.__annotations__ = {"b": globals()["User"], "return": list[globals()["User"]]}
    local.add_method(first)
    local.add_method(second)

    text = typescript(openrpc(local))
    first_params = _block(text, '  "first": {').splitlines()[2].strip()
    second_params = _block(text, '  "second": {').splitlines()[2].strip()
    first_name = first_params.removeprefix("a: ").rstrip(";")
    second_name = second_params.removeprefix("b: ").rstrip(";")
    assert first_name != second_name
    assert f"export interface {first_name} {{\n  handle: string;\n}}" in text
    assert f"export interface {second_name} {{\n  /** The display name. */\n  name: string;" in text


@pytest.mark.parametrize(("schema", "expected"), [
    ({"allOf": [{"$ref": "#/components/schemas/A"}, {"type": "object", "properties": {"b": {"type": "integer"}},
                                                     "required": ["b"]}]}, "A & {\n  b: number;\n}"),
    ({"allOf": [{"anyOf": [{"type": "string"}, {"type": "integer"}]}, {"$ref": "#/components/schemas/A"}]},
     "(string | number) & A"),
    ({"oneOf": [{"const": "x"}, {"const": 2}, {"const": None}, {"const": True}]}, '"x" | 2 | null | true'),
    ({"type": ["string", "null"]}, "string | null"),
    ({"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "null"}]}}, "(string | null)[]"),
    ({"type": "array", "prefixItems": [{"type": "string"}], "items": {"type": "integer"}}, "[string, ...number[]]"),
    ({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "minItems": 1},
     "[string, number?, ...unknown[]]"),
    ({"type": "array", "maxItems": 0}, "[]"),
    ({"type": "object", "patternProperties": {"^x": {"type": "integer"}}}, "{\n  [key: string]: number;\n}"),
    ({"type": "object", "properties": {"a-b": {"type": "integer"}}, "additionalProperties": True},
     '{\n  "a-b"?: number;\n  [key: string]: unknown;\n}'),
    ({"type": "object", "additionalProperties": {"type": "integer"}, "propertyNames": {"enum": ["a", "b"]}},
     'Partial<Record<"a" | "b", number>>'),
    ({"type": "object", "additionalProperties": False}, "{ [key: string]: never }"),
    ({"not": {"type": "string"}}, "unknown"),
    (False, "never"),
    ({"$ref": "#/components/schemas/Missing"}, "unknown"),
])
def test_json_schema_constructs(schema: Any, expected: str) -> None:
    document = {"info": {"title": "t"}, "methods": [], "x-events": [{"name": "e", "schema": schema}],
                "components": {"schemas": {"A": {"type": "object", "properties": {}}}}}
    assert _block(typescript(document), "export interface ApiEvents {") == \
        f"export interface ApiEvents {{\n  \"e\": {expected.replace(chr(10), chr(10) + '  ')};\n}}"


def test_no_annotation_is_unknown(generated: str) -> None:
    assert _block(generated, '  "loose": {') == """\
  "loose": {
    params: {
      anything: unknown;
      data: {
        [key: string]: unknown;
      };
    };
    positional: [anything: unknown, data: {
      [key: string]: unknown;
    }];
    result: unknown;
  };"""


def test_the_window_declaration_is_optional(generated: str) -> None:
    assert "declare global" not in generated and "import" not in generated
    with_window = typescript(openrpc(app), window="notes")
    assert with_window.startswith(generated.split("\n\n")[0] + "\n\nimport type { RendererBridge } from "
                                  '"@bridge-rpc/client/electron/preload";\n')
    assert with_window.endswith("declare global {\n  interface Window {\n    notes: RendererBridge<Api>;\n  }\n}\n")
    with pytest.raises(ValueError, match="JavaScript identifier"):
        typescript(openrpc(app), window="my-bridge")


async def test_rpc_discover_lists_events_stream_items_and_error_data() -> None:
    [reply] = await exchange(app, lines({"jsonrpc": "2.0", "id": 1, "method": "rpc.discover"}))
    doc = reply["result"]
    assert doc["x-events"] == [
        {"name": "users.changed", "schema": {"$ref": "#/components/schemas/User"},
         "description": "A user's fields changed."},
        {"name": "ping", "schema": {}},
        {"name": "clock.ticked", "schema": {"$ref": "#/components/schemas/Saved"}},
    ]
    methods = {m["name"]: m for m in doc["methods"]}
    assert methods["rows.users"]["x-stream"] == {
        "chunkSize": 100, "item": {"name": "item", "schema": {"$ref": "#/components/schemas/User"}}}
    assert methods["rows.bare"]["x-stream"] == {"chunkSize": 100}
    assert methods["prices.convert"]["x-errors"] == [
        {"code": 4001, "message": "no rate",
         "data": {"name": "data", "schema": {"$ref": "#/components/schemas/Problem"}}},
        {"code": -32099, "data": {"name": "data", "schema": {}}},
    ]
    assert [p.get("x-keyword-only") for p in methods["forward"]["params"]] == [None, True]
    assert [p.get("x-positional-only") for p in methods["forward"]["params"]] == [True, None]
    assert set(doc["components"]["schemas"]) >= {"User", "Price-Input", "Price-Output", "Address", "Problem", "Saved"}
    assert not any(name.endswith("Params") for name in doc["components"]["schemas"]), "params models are inlined"


def test_an_annotation_pydantic_cannot_describe_is_any_value(caplog: pytest.LogCaptureFixture) -> None:
    from typing import TypedDict  # pydantic refuses typing.TypedDict before Python 3.12

    class Point(TypedDict):
        x: int

    broken = Bridge()

    def where(p: int) -> Any: ...

    where.__annotations__ = {"p": int, "return": Point}
    broken.add_method(where)

    doc = openrpc(broken)
    if sys.version_info < (3, 12):
        assert doc["methods"][0]["result"]["schema"] == {}
        assert "no schema for" in caplog.text
        assert "    result: unknown;" in typescript(doc)
    assert doc["methods"][0]["params"][0]["schema"]["type"] == "integer"


def test_event_declarations_are_checked() -> None:
    local = Bridge()
    local.event("a.b", int)
    with pytest.raises(ValueError, match="declared twice"):
        local.event("a.b", str)
    for bad in ("", "rpc.x", "$/x"):
        with pytest.raises(ValueError, match="event names"):
            local.event(bad)
    plugin = Plugin("a")
    plugin.event("b", str)
    with pytest.raises(PluginConflict, match="'a.b'"):
        local.include(plugin)
    assert "a.b" not in local.plugins and local.events["a.b"].payload is int
    other = Bridge()
    other.include(plugin, prefix="x")
    assert other.events["x.b"].name == "x.b" and plugin.events["b"].name == "b"


def test_cli_prints_the_module() -> None:
    out = subprocess.run([python(), "-m", "bridge", "types", "test_typegen:app", "--no-plugins", "--window"],
                         cwd=ROOT / "tests", capture_output=True, check=True, text=True, encoding="utf-8").stdout
    assert out == typescript(openrpc(app), window="bridge")
    refused = subprocess.run([python(), "-m", "bridge", "types", "test_typegen:app", "--window", "a.b"],
                             cwd=ROOT / "tests", capture_output=True, text=True)
    assert refused.returncode == 2 and "JavaScript identifier" in refused.stderr


# What pydantic sends must fit the TypeScript: random types, random values, checked by tsc.


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")
    a: int


class Leaf(BaseModel):
    label: str
    when: datetime | None = None
    color: Color = Color.green


def _types() -> st.SearchStrategy[tuple[Any, st.SearchStrategy[Any]]]:
    """(annotation, a strategy of its values), nested a few levels."""
    text = st.text(max_size=4)
    leaves = st.sampled_from([
        (int, st.integers(-(2**40), 2**40)),
        (float, st.floats(allow_nan=False, allow_infinity=False)),
        (str, text),
        (bool, st.booleans()),
        (type(None), st.none()),
        (datetime, st.datetimes()),
        (date, st.dates()),
        (Literal["a", "b", 3], st.sampled_from(["a", "b", 3])),
        (Color, st.sampled_from(Color)),
        (Level, st.sampled_from(Level)),
        (Decimal, st.decimals(allow_nan=False, allow_infinity=False, places=2)),
        (Leaf, st.builds(Leaf, label=text, when=st.none() | st.datetimes(), color=st.sampled_from(Color))),
        (dict[Literal["a", "b"], int], st.dictionaries(st.sampled_from(["a", "b"]), st.integers(0, 9))),
        (tuple[()], st.just(())),
        (Open, st.builds(Open, a=st.integers(0, 9))),
    ])

    def extend(inner: st.SearchStrategy[tuple[Any, Any]]) -> st.SearchStrategy[tuple[Any, Any]]:
        def wrap(pair: tuple[Any, Any]) -> st.SearchStrategy[tuple[Any, Any]]:
            kind, values = pair
            return st.sampled_from([
                (list[kind], st.lists(values, max_size=3)),  # type: ignore[valid-type]
                (dict[str, kind], st.dictionaries(text, values, max_size=3)),  # type: ignore[valid-type]
                (Optional[kind], st.none() | values),
                (tuple[kind, int], st.tuples(values, st.integers(0, 9))),  # type: ignore[valid-type]
                (Union[kind, Leaf], values),
            ])

        return inner.flatmap(wrap)

    return st.recursive(leaves, extend, max_leaves=3)


@pytest.mark.skipif(shutil.which("node") is None or not TSC.exists(), reason="needs node and client_js's TypeScript")
# No shrinking: each step would run tsc again (minutes); a failure prints the whole module and checks.
@settings(max_examples=8, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.data())
def test_what_pydantic_sends_fits_the_types(tmp_path: Path, data: st.DataObject) -> None:
    sample = Bridge("random")
    checks = []
    for i in range(6):
        kind, values = data.draw(_types(), label=f"type {i}")
        value = TypeAdapter(kind).dump_python(data.draw(values, label=f"value {i}"), mode="json")

        def handler(item: Any) -> Any:
            return item

        handler.__annotations__ = {"item": kind, "return": kind}
        sample.add_method(handler, f"m{i}")
        literal = json.dumps(value)
        checks += [f'export const r{i}: ApiMethods["m{i}"]["result"] = {literal};',  # a result as sent
                   f'export const p{i}: ApiMethods["m{i}"]["params"] = {{ item: {literal} }};']  # and sent back
    folder = Path(tempfile.mkdtemp(dir=tmp_path))  # tmp_path is shared by the examples
    (folder / "api.d.ts").write_text(typescript(openrpc(sample)), encoding="utf-8")
    source = "import type { ApiMethods } from './api.js';\n" + "\n".join(checks) + "\n"
    (folder / "check.ts").write_text(source, encoding="utf-8")
    result = subprocess.run(["node", str(TSC), "--strict", "--noEmit", "--module", "nodenext", "--target", "es2022",
                             "--pretty", "false", "check.ts"], cwd=folder, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + (folder / "api.d.ts").read_text() + "\n".join(checks)
