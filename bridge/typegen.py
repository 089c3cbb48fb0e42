"""``bridge types``: TypeScript declarations of an app's methods and events, for the JS client.

The input is the OpenRPC document ``rpc.discover`` returns (bridge/discovery.py), so the types
come from the same type hints, through the same pydantic schemas, as the host's validation. The
output is one module: an interface or type alias per named schema, ``ApiMethods`` (each
method's params by name and by position, result, stream item and declared error data),
``ApiEvents`` (each declared event's params) and ``Api``, the type parameter the client takes
(``new RpcClient<Api>(...)``, ``spawnSidecar<Api>(...)``, ``RendererBridge<Api>``).

Why a converter here rather than a library: the one well-kept JSON Schema to TypeScript
converter is the npm package json-schema-to-typescript (the Python wrappers on PyPI,
pydantic-to-typescript among them, shell out to it), and ``bridge types`` must run where only
Python is, e.g. a Python developer's machine or a CI job with no Node. The subset pydantic emits
(objects, arrays and tuples, unions, enums and consts, ``$ref``, ``allOf``, formats) is small, and
a converter that knows the document can also write what no generic one would: the params tuple
from ``x-positional-only``/``x-keyword-only``/``x-variadic``, stream items, events.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

#: The module the ``window`` augmentation imports ``RendererBridge`` from.
PRELOAD_MODULE = "@bridge-rpc/client/electron/preload"

_UNION, _INTERSECTION, _ATOM = 0, 1, 2
_REF_PREFIX = "#/components/schemas/"
_PLAIN_KEY = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")
#: Words a declaration or a tuple label cannot be: TypeScript's type keywords and JavaScript's
#: reserved words, and the names the generated module declares or uses itself.
_RESERVED = frozenset("""
    any unknown never string number boolean object symbol bigint undefined null void this true false
    break case catch class const continue debugger default delete do else enum export extends finally for
    function if import in instanceof new return super switch throw try typeof var while with implements
    interface let package private protected public static yield await async of type keyof readonly infer
    is asserts unique declare namespace module global abstract as satisfies
    Api ApiMethods ApiEvents RendererBridge Record Partial Window
""".split())


def typescript(document: dict[str, Any], *, window: str | None = None) -> str:
    """The TypeScript module for an OpenRPC ``document`` from bridge. ``window``: also declare
    ``window[window]`` as ``RendererBridge<Api>`` (what the Electron preload exposes)."""
    info = document.get("info", {})
    title = " ".join(f"{info.get('title', 'app')} {info.get('version', '')}".split()).replace("*/", "*\\/")
    schemas = document.get("components", {}).get("schemas", {})
    writer = _Writer(schemas)
    out = [
        f"// The types of {title}: written by `bridge types` from the app's type hints (what rpc.discover",
        "// describes). Do not edit; run `bridge types` again when the app changes.",
        "",
    ]
    if window is not None:
        if not _PLAIN_KEY.match(window):
            raise ValueError(f"--window must be a JavaScript identifier, got {window!r}")
        out += [f"import type {{ RendererBridge }} from {json.dumps(PRELOAD_MODULE)};", ""]
    declared = set()
    for key, schema in schemas.items():
        name = writer.names[key]
        if name in declared:  # the -Input and -Output of a model that reads the same in TypeScript
            continue
        declared.add(name)
        out += _doc(schema, "")
        text, _ = writer.type(schema, "")
        out.append(f"export interface {name} {text}" if _is_object_literal(text) else f"export type {name} = {text};")
        out.append("")
    out += [f"/** The methods of {title}. */", "export interface ApiMethods {"]
    for method in document.get("methods", []):
        out += _doc({"description": method.get("summary")}, "  ")
        out.append(f"  {json.dumps(method['name'])}: {writer.method(method, '  ')};")
    out += ["}", "", f"/** The events {title} declares: each one's params. */", "export interface ApiEvents {"]
    for event in document.get("x-events", []):
        out += _doc({"description": event.get("description")}, "  ")
        out.append(f"  {json.dumps(event['name'])}: {writer.type(event.get('schema', {}), '  ')[0]};")
    out += [
        "}",
        "",
        "/** The client's type parameter: `new RpcClient<Api>(transport)`, `spawnSidecar<Api>(options)`. */",
        "export interface Api {",
        "  methods: ApiMethods;",
        "  events: ApiEvents;",
        "}",
    ]
    if window is not None:
        out += ["", "declare global {", "  interface Window {", f"    {window}: RendererBridge<Api>;", "  }", "}"]
    return "\n".join(out) + "\n"


class _Writer:
    """JSON Schema to TypeScript type expressions, with the document's named schemas by name."""

    def __init__(self, schemas: dict[str, Any]) -> None:
        self.names: dict[str, str] = {}
        taken = set(_RESERVED)
        for key in schemas:
            name = _identifier(key)
            candidate, n = name, 2
            while candidate in taken:
                candidate, n = f"{name}{n}", n + 1
            taken.add(candidate)
            self.names[key] = candidate
        self._merge_modes(schemas, taken)

    def _merge_modes(self, schemas: dict[str, Any], taken: set[str]) -> None:
        """Name ``Note-Input`` and ``Note-Output`` plain ``Note`` where their types read the same.
        pydantic splits a model by mode when its schemas differ, and always for a recursive one
        (each refers to its own name); tried merged, a pair is split again while they differ."""
        pairs = {}
        for key in schemas:
            base, _, mode = key.rpartition("-")
            if mode == "Input" and f"{base}-Output" in schemas and base not in schemas:
                name = _identifier(base)
                if name not in taken:
                    taken.add(name)
                    pairs[name] = (key, f"{base}-Output")
        split = {name: (self.names[a], self.names[b]) for name, (a, b) in pairs.items()}
        for name, (a, b) in pairs.items():
            self.names[a] = self.names[b] = name
        changed = True
        while changed:
            changed = False
            for name, (a, b) in list(pairs.items()):
                if self.type(schemas[a], "")[0] != self.type(schemas[b], "")[0]:
                    self.names[a], self.names[b] = split[name]
                    del pairs[name]
                    changed = True

    def type(self, schema: Any, indent: str) -> tuple[str, int]:
        """The type of ``schema`` and its precedence (how tightly it binds, for ``[]`` and ``&``)."""
        if schema is False:
            return "never", _ATOM
        if not isinstance(schema, dict):
            return "unknown", _ATOM
        if "$ref" in schema:
            return self._ref(schema["$ref"]), _ATOM
        if "const" in schema:
            return _literal(schema["const"]), _ATOM
        if "enum" in schema:
            return _union(_literal(value) for value in schema["enum"])
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return _union(self._member(member, indent, _UNION) for member in schema[key])
        if "allOf" in schema:
            if len(schema["allOf"]) == 1:
                return self.type(schema["allOf"][0], indent)
            return " & ".join(self._member(member, indent, _INTERSECTION) for member in schema["allOf"]), _INTERSECTION
        kind = schema.get("type")
        if isinstance(kind, list):
            return _union(self._member({**schema, "type": k}, indent, _UNION) for k in kind)
        if kind == "string":
            return "string", _ATOM
        if kind in ("integer", "number"):
            return "number", _ATOM
        if kind == "boolean":
            return "boolean", _ATOM
        if kind == "null":
            return "null", _ATOM
        if kind == "array" or (kind is None and ("items" in schema or "prefixItems" in schema)):
            return self._array(schema, indent), _ATOM
        if kind == "object" or (kind is None and ("properties" in schema or "additionalProperties" in schema)):
            return self._object(schema, indent), _ATOM
        return "unknown", _ATOM

    def method(self, method: dict[str, Any], indent: str) -> str:
        """A method's entry in ``ApiMethods``: params, positional, result, item, errors."""
        inner = indent + "  "
        params = method.get("params", [])
        variadic = method.get("x-variadic", {})
        lines = ["{"]
        if method.get("paramStructure") == "by-position":
            named = "never"
        else:
            by_name = [p for p in params if not p.get("x-positional-only")]
            properties = {p["name"]: _described(p.get("schema", {}), p.get("description")) for p in by_name}
            named = self._object({
                "properties": properties,
                "required": [p["name"] for p in by_name if p.get("required")],
                "additionalProperties": variadic["named"].get("schema", {}) if "named" in variadic else False,
            }, inner)
        lines.append(f"{inner}params: {named};")
        positional = "never" if method.get("paramStructure") == "by-name" else \
            self._positional(params, variadic.get("positional"), inner)
        lines.append(f"{inner}positional: {positional};")
        lines.append(f"{inner}result: {self.type(method.get('result', {}).get('schema', {}), inner)[0]};")
        stream = method.get("x-stream")
        if isinstance(stream, dict):
            lines.append(f"{inner}item: {self.type(stream.get('item', {}).get('schema', {}), inner)[0]};")
        declared = method.get("x-errors")
        if declared:
            lines.append(f"{inner}errors: {{")
            for error in declared:
                code = int(error["code"])
                key = str(code) if code >= 0 else json.dumps(str(code))
                lines += _doc({"description": error.get("message")}, inner + "  ")
                lines.append(f"{inner}  {key}: {self.type(error.get('data', {}).get('schema', {}), inner + '  ')[0]};")
            lines.append(f"{inner}}};")
        lines.append(f"{indent}}}")
        return "\n".join(lines)

    def _positional(self, params: list[dict[str, Any]], rest: dict[str, Any] | None, indent: str) -> str:
        """The params as a labelled tuple: an element is optional only if every one after it is too."""
        taken = [p for p in params if not p.get("x-keyword-only")]
        elements = []
        optional = True
        for p in reversed(taken):
            optional = optional and not p.get("required")
            text = self.type(p.get("schema", {}), indent)[0]
            elements.append(f"{_label(p['name'])}{'?' if optional else ''}: {text}")
        elements.reverse()
        if rest is not None:
            items = self._array({"items": rest.get("schema", {})}, indent)
            elements.append(f"...{_label(rest.get('name', 'rest'))}: {items}")
        return f"[{', '.join(elements)}]"

    def _ref(self, ref: str) -> str:
        key = ref.removeprefix(_REF_PREFIX).replace("~1", "/").replace("~0", "~")
        return self.names.get(key, "unknown")

    def _member(self, schema: Any, indent: str, within: int) -> str:
        text, precedence = self.type(schema, indent)
        return f"({text})" if precedence < within else text

    def _array(self, schema: dict[str, Any], indent: str) -> str:
        items = schema.get("items")
        prefix = schema.get("prefixItems")
        if prefix is None:
            if schema.get("maxItems") == 0:
                return "[]"
            if items is None or items is True:
                return "unknown[]"
            text, precedence = self.type(items, indent)
            return f"({text})[]" if precedence < _ATOM else f"{text}[]"
        least = schema.get("minItems", len(prefix))
        elements = [f"{self.type(item, indent)[0]}{'?' if i >= least else ''}" for i, item in enumerate(prefix)]
        if items is not False and schema.get("maxItems") != len(prefix):
            elements.append(f"...{self._array({'items': items if items is not None else True}, indent)}")
        return f"[{', '.join(elements)}]"

    def _object(self, schema: dict[str, Any], indent: str) -> str:
        properties: dict[str, Any] = schema.get("properties") or {}
        required = set(schema.get("required", ()))
        extra = schema.get("additionalProperties")
        patterns = schema.get("patternProperties") or {}
        inner = indent + "  "
        values: list[str] = []  # what the index signature admits
        if isinstance(extra, dict) or extra is True:
            values.append(self.type(extra, inner)[0])
        values += [self.type(s, inner)[0] for s in patterns.values()]
        if extra is None and not patterns and "properties" not in schema:
            values.append("unknown")  # a plain `dict`: any keys
        keys = schema.get("propertyNames", {})
        if values and not properties and isinstance(keys, dict) and "enum" in keys:  # dict[Literal[...], T]
            return f"Partial<Record<{_union(_literal(k) for k in keys['enum'])[0]}, {_union(values)[0]}>>"
        if not properties and not values:
            return "{ [key: string]: never }"
        lines = ["{"]
        for name, prop in properties.items():
            lines += _doc(prop, inner)
            text = self.type(prop, inner)[0]
            lines.append(f"{inner}{_key(name)}{'' if name in required else '?'}: {text};")
        if values:  # a property must fit the index signature too
            values += [self.type(prop, inner)[0] for prop in properties.values()]
            if required != set(properties):
                values.append("undefined")
            lines.append(f"{inner}[key: string]: {_union(values)[0]};")
        lines.append(f"{indent}}}")
        return "\n".join(lines)


def _union(parts: Iterable[str]) -> tuple[str, int]:
    unique = list(dict.fromkeys(parts))
    if "unknown" in unique:
        return "unknown", _ATOM
    if not unique:
        return "never", _ATOM
    return (unique[0], _ATOM) if len(unique) == 1 else (" | ".join(unique), _UNION)


def _literal(value: Any) -> str:
    if isinstance(value, (str, bool, int, float)) or value is None:
        return json.dumps(value)
    return "unknown"


def _identifier(name: str) -> str:
    """A TypeScript name for a schema's key: ``Note-Input`` is ``NoteInput``, ``Page[Note]`` ``PageNote``."""
    parts = [part for part in re.split(r"[^\w$]+", name) if part]
    text = "".join(part if i == 0 else part[:1].upper() + part[1:] for i, part in enumerate(parts)) or "Schema"
    return f"_{text}" if text[0].isdigit() else text


def _label(name: str) -> str:
    """A tuple label: the param's name, unless JavaScript reserves it."""
    text = _identifier(name)
    return f"{text}_" if text in _RESERVED else text


def _key(name: str) -> str:
    return name if _PLAIN_KEY.match(name) else json.dumps(name)


def _described(schema: Any, description: str | None) -> Any:
    if description and isinstance(schema, dict) and "description" not in schema:
        return {**schema, "description": description}
    return schema


def _is_object_literal(text: str) -> bool:
    return text.startswith("{\n") or text == "{ [key: string]: never }"


def _doc(schema: Any, indent: str) -> list[str]:
    """A JSDoc comment from a schema's description, format and deprecation."""
    if not isinstance(schema, dict):
        return []
    lines = str(schema.get("description") or "").replace("*/", "*\\/").strip().splitlines()
    formats = [s["format"] for s in (schema, *schema.get("anyOf", ())) if isinstance(s, dict) and s.get("format")]
    if formats:
        iso = formats[0] in ("date-time", "date", "time", "duration")
        lines.append(f"An ISO 8601 {formats[0]} string." if iso else f"Format: {formats[0]}.")
    if schema.get("deprecated"):
        lines.append("@deprecated")
    if not lines:
        return []
    if len(lines) == 1:
        return [f"{indent}/** {lines[0]} */"]
    return [f"{indent}/**", *(f"{indent} * {line}".rstrip() for line in lines), f"{indent} */"]
