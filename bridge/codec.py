"""JSON in and out: orjson, with pydantic's serialiser as the fallback for what orjson lacks."""

from __future__ import annotations

from typing import Any

import orjson

_DUMPS_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY

loads = orjson.loads
JSONDecodeError = orjson.JSONDecodeError


def to_jsonable(obj: Any) -> Any:
    """orjson's fallback: pydantic models, and whatever else pydantic can serialise."""
    from pydantic_core import to_jsonable_python

    return to_jsonable_python(obj)


def dumps(obj: Any) -> bytes:
    """``obj`` as compact JSON bytes (dict keys of any type; numpy arrays; models via pydantic)."""
    return orjson.dumps(obj, default=to_jsonable, option=_DUMPS_OPTIONS)


def serialisable(obj: Any) -> bool:
    """Whether ``dumps(obj)`` succeeds."""
    try:
        dumps(obj)
    except (TypeError, orjson.JSONEncodeError):
        return False
    return True
