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
        with _as_invalid(request):
            self._apply(request, self.validator(kwargs))
        return None

    async def _check_async(self, request: Request, kwargs: dict[str, Any]) -> None:
        with _as_invalid(request):
            self._apply(request, await self.validator(kwargs))  # type: ignore[misc]

    @staticmethod
    def _apply(request: Request, replaced: Any) -> None:
        if isinstance(replaced, dict):
            request.kwargs = replaced


class _as_invalid:
    """A validator's ValueError becomes INVALID_PARAMS with its message."""

    def __init__(self, request: Request) -> None:
        self.request = request

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        if isinstance(exc, ValueError):
            raise BridgeError(INVALID_PARAMS, f"Invalid params for {self.request.name}: {exc}",
                              {"errors": [{"loc": [], "msg": str(exc), "type": "value_error"}]}) from None
