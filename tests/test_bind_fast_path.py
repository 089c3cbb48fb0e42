"""Params that need no conversion skip pydantic (``methods._as_given``): whatever it lets through,
pydantic would have produced the same arguments, of the same types; everything else still goes
to pydantic (conversions, constraints, error messages)."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import Field

from bridge import Bridge, BridgeError, Context

ANNOTATIONS = [Any, int, str, bool, float, type(None), Optional[int], int | str, list, list[Any], dict, dict[str, Any],
               Optional[str], float | None, list[int], list[str], list[bool], list[float], list[int | None],
               list[dict[str, Any]], list[list], dict[str, int], dict[str, str | None], dict[str, list[Any]]]
JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False)
                    | st.text(max_size=5), lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=3), inner, max_size=3), max_leaves=6)


def method_for(annotation: Any, default: Any) -> Any:
    app = Bridge()
    if default is None:
        async def handler(x):  # type: ignore[no-untyped-def]
            return x
    else:
        async def handler(x=default[0]):  # type: ignore[no-untyped-def]
            return x
    handler.__annotations__ = {"x": annotation}
    return app.add_method(handler, "m")


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(ANNOTATIONS), st.none() | st.tuples(st.none() | st.integers() | st.text(max_size=3)),
       st.dictionaries(st.sampled_from(["x", "y"]), JSON, max_size=2))
def test_what_skips_pydantic_is_what_pydantic_would_give(annotation: Any, default: Any, named: dict[str, Any]) -> None:
    method = method_for(annotation, default)
    assert method._plain is not None
    from bridge.methods import _as_given

    fast = _as_given(method._plain, named)
    if fast is None:
        return
    slow = method.prepare().model_validate(named).__dict__
    assert fast == slow
    assert shape(fast) == shape(slow)  # the same types all the way down (1 == 1.0 == True)


@settings(max_examples=600, deadline=None)
@given(st.sampled_from(ANNOTATIONS), st.none() | st.tuples(st.none() | st.integers() | st.text(max_size=3)),
       st.dictionaries(st.sampled_from(["x", "y"]), JSON | st.text(max_size=4) | st.sampled_from(
           ["1", "1.5", "true", "no", "", " 2 ", "1e3", "nan"]), max_size=2))
def test_plain_params_converted_without_pydantic_as_pydantic_would(annotation: Any, default: Any,
                                                                    named: dict[str, Any]) -> None:
    """What the fast path leaves (a conversion, an error) goes to pydantic_core with the schema
    pydantic generates (``plain_schema``): the same arguments of the same types, or the same errors."""
    method = method_for(annotation, default)
    options = {"include_url": False, "include_context": False, "include_input": False}
    try:
        core = method._plain_validator().validate_python(named)
    except Exception as exc:
        core = exc.errors(**options)  # type: ignore[attr-defined]
    try:
        model = method.prepare().model_validate(named).__dict__
    except Exception as exc:
        model = exc.errors(**options)  # type: ignore[attr-defined]
    assert nan_named(core) == nan_named(model)  # ("nan" and "NAN" convert to a float nan, unequal to itself)
    assert shape(core) == shape(model)


def nan_named(value: Any) -> Any:
    """``value`` with every float nan replaced by the string "nan", so equal values compare equal."""
    if isinstance(value, dict):
        return {k: nan_named(v) for k, v in value.items()}
    if isinstance(value, list):
        return [nan_named(v) for v in value]
    return "nan" if isinstance(value, float) and value != value else value


def test_a_call_that_converts_plain_params_does_not_import_pydantic() -> None:
    """pydantic_core's engine alone converts them: a host's first such call waits for neither
    pydantic nor the pydantic_core package (its schema builders), and pydantic imported later
    shares that engine: the same ValidationError, models that convert."""
    import subprocess

    from harness import ROOT, python

    code = ("import sys; from bridge import Bridge, BridgeError; app = Bridge()\n"
            "@app.method\nasync def add(a: int, b: float = 0.5, c: int | None = None) -> float:\n    return a + b\n"
            "print(app.methods['add'].bind({'a': '2', 'b': '1'}))\n"
            "print(sorted(m for m in ('pydantic', 'pydantic_core', 'pydantic_core.core_schema') if m in sys.modules))\n"
            "try:\n    app.methods['add'].bind({'a': 'x'})\nexcept BridgeError as e:\n    print(e.data)\n"
            "import pydantic, pydantic_core\n"
            "class M(pydantic.BaseModel):\n    a: int\n"
            "print(M(a='3').a, pydantic_core.SchemaValidator is type(app.methods['add']._core),\n"
            "      pydantic.ValidationError is sys.modules['pydantic_core._pydantic_core'].ValidationError)\n")
    done = subprocess.run([python(), "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    bound, imported, refused, later = done.stdout.splitlines()
    assert bound == "{'a': 2, 'b': 1.0, 'c': None}"
    assert imported == "[]"
    assert "int_parsing" in refused and "'loc': ['a']" in refused
    assert later == "3 True True"


RACE = """
import sys, threading, time
from bridge import plain_schema
sys.setswitchinterval(1e-6)  # the threads take turns as often as the interpreter lets them
start, failed = threading.Barrier(2), []

def models():  # as the thread building params models right after $/ready does
    start.wait()
    try:
        import pydantic
        assert pydantic.create_model("M", x=(int, ...))(x="1").x == 1
    except Exception as exc:
        failed.append(repr(exc))

def convert(delay):  # a converting call on the loop, a little later each run
    start.wait()
    until = time.perf_counter() + delay
    while time.perf_counter() < until:
        pass
    try:
        assert plain_schema._engine().SchemaValidator({"type": "int"}).validate_python("2") == 2
    except Exception as exc:
        failed.append(repr(exc))

threads = [threading.Thread(target=models), threading.Thread(target=convert, args=(float(sys.argv[1]),))]
for t in threads: t.start()
for t in threads: t.join()
import pydantic_core
assert sys.modules["pydantic_core._pydantic_core"].SchemaValidator is pydantic_core.SchemaValidator
print(failed)
"""


@pytest.mark.parametrize("delay_ms", [n / 4 for n in range(21)])
def test_the_engine_loads_while_another_thread_imports_pydantic(delay_ms: float) -> None:
    """The engine loaded alone while pydantic is being imported elsewhere, the two starts 0 to
    5 ms apart: both work, with the same classes. (This found that a module another thread had
    put in ``sys.modules`` could still be initialising: the compiled run, at 2 ms, one run in
    ten.)"""
    import subprocess

    from harness import ROOT, python

    done = subprocess.run([python(), "-c", RACE, str(delay_ms / 1e3)], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def shape(value: Any) -> Any:
    """``value`` with every leaf replaced by its type."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([list[int], list[dict[str, Any]], dict[str, int], list[float]]),
       st.lists(JSON, max_size=4) | st.dictionaries(st.text(max_size=3), JSON, max_size=4))
def test_containers_whose_items_need_converting_or_refusing_go_to_pydantic(annotation: Any, value: Any) -> None:
    """An item of another type (a float for an int, a string, a bool for a float) is never let
    through as it came: pydantic converts it or says which item is wrong."""
    from bridge.methods import _as_given

    method = method_for(annotation, None)
    fast = _as_given(method._plain, {"x": value})
    try:
        slow = method.prepare().model_validate({"x": value}).__dict__
    except Exception:
        assert fast is None  # pydantic refuses it: so must the fast path (it leaves it to pydantic)
        return
    if fast is not None:
        assert fast == slow and shape(fast) == shape(slow)


def test_conversions_constraints_and_mutable_defaults_still_go_through_pydantic() -> None:
    app = Bridge()

    @app.method
    async def ratio(x: float, n: Annotated[int, Field(ge=0)] = 0, tags: list[str] = []) -> float:  # noqa: B006
        return x

    method = app.methods["ratio"]
    assert method._plain is None  # a constraint and a mutable default: pydantic binds every call

    @app.method
    async def half(x: float) -> float:
        return x / 2

    half_method = app.methods["half"]
    assert half_method._plain is not None
    assert type(half_method.bind({"x": 3})["x"]) is float  # an int for a float: converted, not as given
    with pytest.raises(BridgeError) as caught:
        half_method.bind({"x": "lots"})
    assert caught.value.data["errors"][0]["loc"] == ["x"]
    with pytest.raises(BridgeError, match="Extra inputs"):
        half_method.bind({"x": 1.5, "y": 2})


@pytest.mark.parametrize("source", ["int", "str | None", "Optional[int]", "list[Any]", "dict[str, Any]", "Any", "None",
                                    "Annotated[int, Field(ge=0)]", "list['Item']", "Literal['a', 'b']", "tuple[int, ...]",
                                    "Item", "list[Item] | None"])
def test_type_hints_read_quickly_are_typings(source: str) -> None:
    """``methods._type_hints`` (string annotations compiled once) agrees with ``typing.get_type_hints``."""
    import typing

    from pydantic import BaseModel

    from bridge.methods import _type_hints

    class Item(BaseModel):
        id: int

    namespace = {"Any": Any, "Optional": Optional, "Annotated": Annotated, "Field": Field, "Item": Item,
                 "Literal": typing.Literal}
    exec(f"def handler(x: {source!r}, y: int = 0) -> {source!r}: ...", namespace)
    handler = namespace["handler"]
    assert repr(_type_hints(handler)) == repr(typing.get_type_hints(handler, include_extras=True))


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3), st.booleans(), st.integers(0, 3), st.booleans(),
       st.integers(0, 6))
def test_parameters_read_from_the_code_are_inspects(posonly: int, plain: int, defaults: int, star: bool, kwonly: int,
                                                    starstar: bool, kwdefaults: int) -> None:
    """``methods._parameters`` (read from the code object) agrees with ``inspect.signature``."""
    import inspect

    from bridge.methods import _parameters

    names = iter(f"p{i}" for i in range(20))
    positional = [next(names) for _ in range(posonly + plain)]
    defaults = min(defaults, len(positional))
    parts = [n if i < len(positional) - defaults else f"{n}={i}" for i, n in enumerate(positional)]
    if posonly:
        parts.insert(posonly, "/")
    if star:
        parts.append("*rest")
    elif kwonly:
        parts.append("*")
    parts += [f"{n}={i}" if i < kwdefaults else n for i, n in enumerate(next(names) for _ in range(kwonly))]
    if starstar:
        parts.append("**extra")
    namespace: dict[str, Any] = {}
    exec(f"def f({', '.join(parts)}): ...", namespace)
    f = namespace["f"]
    assert [(p.name, p.kind, p.default) for p in _parameters(f)] == \
        [(p.name, p.kind, p.default) for p in inspect.signature(f).parameters.values()]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(ANNOTATIONS), st.none() | st.tuples(st.none() | st.integers() | st.text(max_size=3)),
       st.dictionaries(st.sampled_from(["x", "y", "$meta"]), JSON, max_size=2))
def test_arguments_by_position_are_the_arguments_by_name(annotation: Any, default: Any, named: dict[str, Any]) -> None:
    """A call the handler gets by position (``Method.args_given``) gets what it would by name,
    and only where ``_as_given`` would have taken the params as they are."""
    from bridge.methods import _as_given

    method = method_for(annotation, default)
    assert method.direct is not None
    args = method.args_given(named)
    by_name = _as_given(method._plain, named) if "$meta" not in named else None
    assert (args is None) == (by_name is None)
    if args is not None:
        assert all(a is b for a, b in zip(args, by_name.values())) and list(by_name) == list(method.param_names)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ANNOTATIONS), st.none() | st.tuples(st.none() | st.integers() | st.text(max_size=3)),
       st.lists(JSON, max_size=2))
def test_arguments_by_position_from_an_array_are_what_bind_makes_of_it(annotation: Any, default: Any,
                                                                      given: list[Any]) -> None:
    """Params by position (a JSON array) that ``args_given`` takes are the handler's arguments, as
    ``bind`` would name them; too many, or any that need converting, are left to ``bind``."""
    from bridge.methods import _as_given

    method = method_for(annotation, default)
    args = method.args_given(given)
    by_name = _as_given(method._plain, dict(zip(method.param_names, given))) if len(given) <= 1 else None
    assert (args is None) == (by_name is None)
    if args is not None:
        assert all(a is b for a, b in zip(args, by_name.values())) and len(args) == len(method.param_names)


def test_only_a_handler_of_its_own_signature_with_positional_params_is_called_by_position() -> None:
    import functools

    app = Bridge()

    def keywords_only(func: Any) -> Any:
        @functools.wraps(func)
        async def wrapper(**kwargs: Any) -> Any:  # a decorator that passes on keywords only
            return await func(**kwargs)
        return wrapper

    async def plain(a: int, b: str = "") -> str:
        return f"{a}{b}"

    async def keyword(a: int, *, b: str = "") -> str:
        return f"{a}{b}"

    async def with_context(a: int, ctx: Context) -> int:
        return a

    def sync(a: int) -> int:
        return a

    assert app.add_method(plain, "plain").direct is not None
    for name, func in (("wrapped", keywords_only(plain)), ("keyword", keyword), ("with_context", with_context),
                       ("sync", sync)):
        assert app.add_method(func, name).direct is None, name

    from bridge.testing import TestClient

    with TestClient(app) as client:
        for name in ("plain", "wrapped", "keyword"):
            assert client.call(name, {"a": 1, "b": "x"}) == "1x", name
        assert client.call("with_context", {"a": 2}) == 2 and client.call("sync", {"a": 3}) == 3
