"""JSON in and out: orjson, with pydantic's serialiser as the fallback for what orjson lacks."""

from __future__ import annotations

from base64 import b64encode
from typing import Any

import orjson

DUMPS_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY

loads = orjson.loads
JSONDecodeError = orjson.JSONDecodeError


def to_jsonable(obj: Any) -> Any:
    """orjson's fallback: pydantic models, and whatever else pydantic can serialise. ``bytes``
    go out as standard base64 (JSON has no bytes; as UTF-8 they would fail or change on the way;
    JS reads it with ``atob`` or ``Buffer.from(s, 'base64')``)."""
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return b64encode(obj).decode("ascii")
    from pydantic_core import to_jsonable_python

    return to_jsonable_python(obj)


def dumps(obj: Any) -> bytes:
    """``obj`` as compact JSON bytes (dict keys of any type; numpy arrays; models via pydantic)."""
    return orjson.dumps(obj, default=to_jsonable, option=DUMPS_OPTIONS)


def serialisable(obj: Any) -> bool:
    """Whether ``dumps(obj)`` succeeds."""
    try:
        dumps(obj)
    except (TypeError, orjson.JSONEncodeError):
        return False
    return True
