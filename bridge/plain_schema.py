"""Validators for plain params straight from pydantic_core, pydantic's engine, without pydantic.

A method whose params are plain JSON types (``methods._plain_params``: ``Any``, ``str``, ``int``,
``float``, ``bool``, ``None``, bare ``list``/``dict``, ``list[X]`` and ``dict[str, X]``, unions
of them, immutable defaults) needs validation beyond a type check only to convert a value
(``"1"`` to 1) or to say what is wrong. For that, pydantic_core validates the params with the
core schemas pydantic itself generates for those types (tests/test_bind_fast_path.py holds the
two to the same values, types and errors), so a call that converts at start-up waits for neither
pydantic's import nor a model.

The schemas are written here as the plain dicts they are, and the engine is loaded without the
``pydantic_core`` package's ``__init__``: that imports ``core_schema`` (the schemas' builder
functions and their TypedDicts), ``typing_extensions`` and ``decimal``, 8 of the 10 ms a host's
first converting call waited for, against 2 ms for the engine alone (``_engine``).
"""

from __future__ import annotations

import sys
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
    fields: dict[str, Any] = {}
    for p in params:
        schema = schema_of(p.annotation)
        if p.default is empty:
            fields[p.name] = {"type": "typed-dict-field", "schema": schema, "required": True}
        else:
            fields[p.name] = {"type": "typed-dict-field", "schema": {"type": "default", "schema": schema,
                                                                     "default": p.default}, "required": False}
    return _engine().SchemaValidator({"type": "typed-dict", "fields": fields, "extra_behavior": "forbid"})


def schema_of(annotation: Any) -> CoreSchema:
    """The core schema pydantic generates for a plain annotation; TypeError for any other."""
    if annotation is Any or annotation is object:
        return {"type": "any"}
    simple = _SIMPLE.get(annotation)
    if simple is not None:
        return {"type": simple}  # type: ignore[return-value]
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is list and len(args) == 1:
        return {"type": "list", "items_schema": schema_of(args[0])}
    if origin is dict and len(args) == 2 and args[0] is str:
        return {"type": "dict", "keys_schema": {"type": "str"}, "values_schema": schema_of(args[1])}
    if origin in (typing.Union, types.UnionType):
        choices = [arg for arg in args if arg is not _NONE]
        inner = schema_of(choices[0]) if len(choices) == 1 else {"type": "union",
                                                                  "choices": [schema_of(c) for c in choices]}
        return {"type": "nullable", "schema": inner} if len(choices) < len(args) else inner
    raise TypeError(f"not a plain annotation: {annotation!r}")


def _engine() -> Any:
    """pydantic_core's compiled module: the one already imported, else loaded from its file
    under the name the package gives it, so a later ``import pydantic_core`` (pydantic's) finds
    and reuses it. The package's own import once that has begun (in a thread building models,
    say), which waits for it to finish, or when the layout is not the one expected. Two threads
    loading it at once each get a whole module, of the same classes (the tests race the two)."""
    name = "pydantic_core._pydantic_core"
    module = sys.modules.get(name)
    if module is not None and not getattr(getattr(module, "__spec__", None), "_initializing", False):
        return module
    if module is None and "pydantic_core" not in sys.modules:
        try:
            module = _load_alone(name)
        except Exception:  # noqa: BLE001  # whatever went wrong, the package's own import is the way
            module = None
        if module is not None:
            return module
    from pydantic_core import _pydantic_core

    return _pydantic_core


def _load_alone(name: str) -> Any:
    """The extension module ``name`` of pydantic_core loaded from its file (None if there is no
    such file), then shared in ``sys.modules`` unless a thread put one there meanwhile."""
    import importlib.machinery
    import importlib.util

    package = importlib.util.find_spec("pydantic_core")
    if package is None or not package.submodule_search_locations:
        return None
    spec = importlib.machinery.PathFinder.find_spec(name, list(package.submodule_search_locations))
    if spec is None or not isinstance(spec.loader, importlib.machinery.ExtensionFileLoader):
        return None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules.setdefault(name, module)
    return module  # (this one, whole: one a thread put there may still be initialising)


_SIMPLE: dict[Any, str] = {str: "str", int: "int", float: "float", bool: "bool", _NONE: "none", list: "list",
                           dict: "dict"}
