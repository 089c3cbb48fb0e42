"""The validation step: params bound and checked by pydantic, then an app's own validator."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ..errors import INVALID_PARAMS, BridgeError
from . import Next, Request

#: ``validator(kwargs) -> kwargs | None``; raise ValueError (or BridgeError) to refuse.
Validator = Callable[[dict[str, Any]], Any]


class Validate:
    """Validate the params from the type hints, then with ``validator`` if given.

    A ValueError from the validator becomes INVALID_PARAMS with its message; returning a
    dict replaces the arguments (to normalise them).
    """

    def __init__(self, validator: Validator | None = None) -> None:
        self.validator = validator
        self._is_async = inspect.iscoroutinefunction(validator)

    async def __call__(self, request: Request, call_next: Next) -> Any:
        kwargs = request.validate()
        if self.validator is not None:
            try:
                replaced = self.validator(kwargs)
                if self._is_async:
                    replaced = await replaced
            except ValueError as exc:
                raise BridgeError(INVALID_PARAMS, f"Invalid params for {request.name}: {exc}",
                                  {"errors": [{"loc": [], "msg": str(exc), "type": "value_error"}]}) from None
            if isinstance(replaced, dict):
                request.kwargs = replaced
        return await call_next(request)
