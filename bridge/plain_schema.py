"""Validators for plain params straight from pydantic_core, pydantic's engine, without pydantic.

A method whose params are plain JSON types (``methods._plain_params``: ``Any``, ``str``, ``int``,
``float``, ``bool``, ``None``, bare ``list``/``dict``, ``list[X]`` and ``dict[str, X]``, unions
of them, immutable defaults) needs validation beyond a type check only to convert a value
(``"1"`` to 1) or to say what is wrong. For that, pydantic_core validates the params with the
core schemas pydantic itself generates for those types (tests/test_bind_fast_path.py holds the
two to the same values, types and errors). Loading pydantic_core alone costs about half of
importing pydantic and building a model, which a call that converts at start-up waits for.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic_core import CoreSchema, SchemaValidator

    from .methods import Param

_NONE = type(None)


def validator(params: Sequence[Param], empty: Any) -> SchemaValidator:
    """A validator of a params object (names to values; ``empty``: a param without a default),
    unknown names refused, as a pydantic model with ``extra="forbid"`` would."""
    from pydantic_core import SchemaValidator
    from pydantic_core import core_schema as cs

    fields = {}
    for p in params:
        schema = schema_of(p.annotation)
        if p.default is empty:
            fields[p.name] = cs.typed_dict_field(schema, required=True)
        else:
            fields[p.name] = cs.typed_dict_field(cs.with_default_schema(schema, default=p.default), required=False)
    return SchemaValidator(cs.typed_dict_schema(fields, extra_behavior="forbid"))


def schema_of(annotation: Any) -> CoreSchema:
    """The core schema pydantic generates for a plain annotation; TypeError for any other."""
    from pydantic_core import core_schema as cs

    if annotation is Any or annotation is object:
        return cs.any_schema()
    simple = _SIMPLE.get(annotation)
    if simple is not None:
        return getattr(cs, simple)()  # type: ignore[no-any-return]
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is list and len(args) == 1:
        return cs.list_schema(schema_of(args[0]))
    if origin is dict and len(args) == 2 and args[0] is str:
        return cs.dict_schema(cs.str_schema(), schema_of(args[1]))
    if origin in (typing.Union, types.UnionType):
        choices = [arg for arg in args if arg is not _NONE]
        inner = schema_of(choices[0]) if len(choices) == 1 else cs.union_schema([schema_of(c) for c in choices])
        return cs.nullable_schema(inner) if len(choices) < len(args) else inner
    raise TypeError(f"not a plain annotation: {annotation!r}")


_SIMPLE: dict[Any, str] = {
    str: "str_schema", int: "int_schema", float: "float_schema", bool: "bool_schema", _NONE: "none_schema",
    list: "list_schema", dict: "dict_schema",
}
