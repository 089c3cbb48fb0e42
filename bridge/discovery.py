"""``rpc.discover``: an OpenRPC 1.3 document of every method and declared event, schemas from pydantic.

Every schema in the document comes from one pydantic pass (``TypeAdapter.json_schemas``), so
two models that share a class name, or a model whose params (validation) and result
(serialization) schemas differ (``Note-Input``, ``Note-Output``), get a name each instead of
one overwriting the other. ``bridge types`` (bridge/typegen.py) writes TypeScript from this
document alone.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import inspect
import typing
from typing import TYPE_CHECKING, Any

from . import errors as E
from .methods import Method

if TYPE_CHECKING:
    from .app import Bridge

OPENRPC_VERSION = "1.3.2"
_REF_TEMPLATE = "#/components/schemas/{model}"
_ITERATORS = frozenset({
    collections.abc.AsyncIterator, collections.abc.AsyncIterable, collections.abc.AsyncGenerator,
    collections.abc.Iterator, collections.abc.Iterable, collections.abc.Generator,
})


@dataclasses.dataclass(frozen=True)
class ErrorData:
    """Declares the ``data`` an application error of ``code`` carries, in a handler's return
    annotation: ``-> Annotated[Note, ErrorData(4001, FieldError)]``. Listed in rpc.discover
    (``x-errors``) and in the TypeScript of ``bridge types``; nothing is checked at run time."""

    code: int
    data: Any = Any
    message: str | None = None


def openrpc(app: Bridge) -> dict[str, Any]:
    """The OpenRPC document describing ``app``."""
    schemas = _Schemas()
    methods = [_method(method, schemas) for method in app.methods.values()]
    events = []
    for event in app.events.values():
        entry: dict[str, Any] = {"name": event.name, "schema": schemas.add(event.payload, "serialization")}
        if event.description:
            entry["description"] = event.description
        events.append(entry)
    defs = schemas.resolve()
    for doc, params_schema in methods:  # the params model inline, each param's schema from it
        params_schema = _inline(params_schema, defs)
        properties = params_schema.get("properties", {})
        required = set(params_schema.get("required", ()))
        for entry in doc["params"]:
            entry["required"] = entry["name"] in required
            entry["schema"] = properties.get(entry["name"], {})
    info: dict[str, Any] = {"title": app.name, "version": app.version}
    if app.description:
        info["description"] = app.description
    if app.plugins:
        info["x-plugins"] = [status.to_dict() for status in app.plugins.values()]
    document: dict[str, Any] = {
        "openrpc": OPENRPC_VERSION,
        "info": info,
        "methods": [doc for doc, _ in methods],
        "components": {
            "schemas": defs,
            "errors": {code.name: {"code": code.value, "message": code.message} for code in E.ErrorCode},
        },
    }
    if events:
        document["x-events"] = events
    return document


def _method(method: Method, schemas: _Schemas) -> tuple[dict[str, Any], dict[str, Any]]:
    """One method's entry (its schemas filled later by ``schemas.resolve``) and its params model's schema."""
    params = []
    variadic = method.variadic
    for p in method.params:
        entry: dict[str, Any] = {"name": p.name, "required": False, "schema": {}}  # filled from the params model
        if p.description:
            entry["description"] = p.description
        if variadic is not None and p.name in variadic.positional_only:
            entry["x-positional-only"] = True
        elif variadic is not None and p.name not in variadic.by_position:
            entry["x-keyword-only"] = True  # after *args: only a name reaches it
        params.append(entry)
    doc: dict[str, Any] = {
        "name": method.name,
        "params": params,
        "result": {"name": "result", "schema": schemas.add(method.return_type, "serialization")},
        "paramStructure": variadic.structure() if variadic is not None else "either",
    }
    if variadic is not None:  # the schema of each param past the named ones
        doc.update(variadic.describe(lambda annotation: schemas.add(annotation, "validation")))
    if method.idempotent:
        doc["x-idempotent"] = True
    for part in method.parts:  # each middleware describes itself
        describe = getattr(part, "describe", None)
        if describe is not None:
            doc.update(describe())
    returns = _declared_return(method)
    stream = doc.get("x-stream")
    item = _yield_type(returns)
    if isinstance(stream, dict) and item is not None:
        doc["x-stream"] = {**stream, "item": {"name": "item", "schema": schemas.add(item, "serialization")}}
    declared = [meta for meta in getattr(returns, "__metadata__", ()) if isinstance(meta, ErrorData)]
    if declared:
        doc["x-errors"] = [{"code": d.code, **({"message": d.message} if d.message else {}),
                            "data": {"name": "data", "schema": schemas.add(d.data, "serialization")}}
                           for d in declared]
    if method.description:
        summary, _, rest = method.description.partition("\n")
        doc["summary"] = summary.strip()
        if rest.strip():
            doc["description"] = method.description
    return doc, schemas.add(method.prepare(), "validation")


class _Schemas:
    """Schemas asked for while the document is built, made in one pydantic pass at the end: each
    ``add`` returns a dict that ``resolve`` fills in place."""

    def __init__(self) -> None:
        self._wanted: list[tuple[Any, str, dict[str, Any]]] = []

    def add(self, annotation: Any, mode: str) -> dict[str, Any]:
        slot: dict[str, Any] = {}
        self._wanted.append((annotation, mode, slot))
        return slot

    def resolve(self) -> dict[str, Any]:
        """Fill every slot; returns the named schemas (``components.schemas``). A type pydantic
        cannot describe is left as ``{}`` (any value) rather than failing the whole document."""
        from pydantic import TypeAdapter

        inputs = []
        for i, (annotation, mode, _) in enumerate(self._wanted):
            try:
                inputs.append((i, mode, TypeAdapter(annotation)))
            except Exception as exc:
                _undescribable(annotation, exc)
        try:
            by_key, top = TypeAdapter.json_schemas(inputs, ref_template=_REF_TEMPLATE)  # type: ignore[arg-type]
        except Exception:  # find the ones that fail, without them the rest
            inputs = [entry for entry in inputs if _describable(self._wanted[entry[0]][0], entry[2], entry[1])]
            by_key, top = TypeAdapter.json_schemas(inputs, ref_template=_REF_TEMPLATE)  # type: ignore[arg-type]
        for (i, mode), schema in by_key.items():
            self._wanted[i][2].update(schema)
        return dict(top.get("$defs", {}))


def _describable(annotation: Any, adapter: Any, mode: str) -> bool:
    try:
        adapter.json_schema(mode=mode)
    except Exception as exc:
        _undescribable(annotation, exc)
        return False
    return True


def _undescribable(annotation: Any, exc: Exception) -> None:
    import logging

    logging.getLogger("bridge").warning("rpc.discover: no schema for %r (any value): %s", annotation, exc)


def _inline(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """The params model's own schema, taken out of ``defs`` (only its fields are published)."""
    ref = schema.get("$ref")
    if not isinstance(ref, str):
        return schema
    return defs.pop(ref.removeprefix(_REF_TEMPLATE.format(model="")), {})


def _declared_return(method: Method) -> Any:
    """The handler's own return annotation, before an endpoint kind replaced it (Annotated kept)."""
    try:
        return typing.get_type_hints(inspect.unwrap(method.func), include_extras=True).get("return")
    except Exception:
        return None


def _yield_type(annotation: Any) -> Any:
    """``T`` of ``AsyncIterator[T]``, ``Iterator[T]``, ``(Async)Generator[T, ...]``, ``(Async)Iterable[T]``."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in _ITERATORS:
        args = typing.get_args(annotation)
        return args[0] if args else None
    return None
