"""``rpc.discover``: an OpenRPC 1.3 document of every method, schemas from pydantic."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import errors as E
from .methods import Method

if TYPE_CHECKING:
    from .app import Bridge

OPENRPC_VERSION = "1.3.2"
_REF_TEMPLATE = "#/components/schemas/{model}"


def openrpc(app: Bridge) -> dict[str, Any]:
    """The OpenRPC document describing ``app``."""
    from pydantic import TypeAdapter

    schemas: dict[str, Any] = {}
    methods = []
    for method in app.methods.values():
        params_schema = _take_defs(method.prepare().model_json_schema(ref_template=_REF_TEMPLATE), schemas)
        properties = params_schema.get("properties", {})
        required = set(params_schema.get("required", ()))
        params = []
        variadic = method.variadic
        for p in method.params:
            entry: dict[str, Any] = {"name": p.name, "required": p.name in required, "schema": properties.get(p.name, {})}
            if p.description:
                entry["description"] = p.description
            if variadic is not None and p.name in variadic.positional_only:
                entry["x-positional-only"] = True
            params.append(entry)
        result_schema = _take_defs(
            TypeAdapter(method.return_type).json_schema(ref_template=_REF_TEMPLATE, mode="serialization"), schemas
        )
        doc: dict[str, Any] = {
            "name": method.name,
            "params": params,
            "result": {"name": "result", "schema": result_schema},
            "paramStructure": variadic.structure() if variadic is not None else "either",
        }
        if variadic is not None:  # the schema of each param past the named ones
            doc.update(variadic.describe(lambda annotation: _take_defs(
                TypeAdapter(annotation).json_schema(ref_template=_REF_TEMPLATE), schemas)))
        if method.idempotent:
            doc["x-idempotent"] = True
        for part in method.parts:  # each middleware describes itself
            describe = getattr(part, "describe", None)
            if describe is not None:
                doc.update(describe())
        if method.description:
            summary, _, rest = method.description.partition("\n")
            doc["summary"] = summary.strip()
            if rest.strip():
                doc["description"] = method.description
        methods.append(doc)
    info: dict[str, Any] = {"title": app.name, "version": app.version}
    if app.description:
        info["description"] = app.description
    if app.plugins:
        info["x-plugins"] = [status.to_dict() for status in app.plugins.values()]
    return {
        "openrpc": OPENRPC_VERSION,
        "info": info,
        "methods": methods,
        "components": {
            "schemas": schemas,
            "errors": {code.name: {"code": code.value, "message": code.message} for code in E.ErrorCode},
        },
    }


def discover_method(app: Bridge) -> Method:
    """``rpc.discover`` as a method of ``app``'s connection."""

    async def discover() -> dict[str, Any]:
        """The OpenRPC document of this service."""
        return openrpc(app)

    return Method(discover, "rpc.discover")


def _take_defs(schema: dict[str, Any], into: dict[str, Any]) -> dict[str, Any]:
    into.update(schema.pop("$defs", {}))
    return schema
