"""The validation step: params bound and checked by pydantic, then an app's own validator."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from collections.abc import Awaitable

from ..errors import INVALID_PARAMS, BridgeError
from . import Request, Step

#: ``validator(kwargs) -> kwargs | None``; raise ValueError (or BridgeError) to refuse.
Validator = Callable[[dict[str, Any]], Any]


class Validate(Step):
    """Validate the params from the type hints, then with ``validator`` if given.

    A ValueError from the validator becomes INVALID_PARAMS with its message; returning a
    dict replaces the arguments (to normalise them).
    """

    def __init__(self, validator: Validator | None = None) -> None:
        self.validator = validator
        self._is_async = inspect.iscoroutinefunction(validator)

    def before(self, request: Request) -> Awaitable[Any] | None:
        kwargs = request.validate()
        if self.validator is None:
            return None
        if self._is_async:
            return self._check_async(request, kwargs)
        try:
            replaced = self.validator(kwargs)
        except ValueError as exc:
            raise _invalid(request, exc) from None
        if isinstance(replaced, dict):
            request.kwargs = replaced
        return None

    async def _check_async(self, request: Request, kwargs: dict[str, Any]) -> None:
        try:
            replaced = await self.validator(kwargs)  # type: ignore[misc]
        except ValueError as exc:
            raise _invalid(request, exc) from None
        if isinstance(replaced, dict):
            request.kwargs = replaced


def _invalid(request: Request, exc: ValueError) -> BridgeError:
    """A validator's ValueError as INVALID_PARAMS with its message."""
    return BridgeError(INVALID_PARAMS, f"Invalid params for {request.name}: {exc}",
                       {"errors": [{"loc": [], "msg": str(exc), "type": "value_error"}]})
