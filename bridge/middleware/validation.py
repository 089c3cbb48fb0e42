"""The validation step: params bound and checked by pydantic, then an app's own validator."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from collections.abc import Awaitable

from ..errors import INVALID_PARAMS, BridgeError
from . import Request, Step

#: ``validator(kwargs) -> None | True | False | str | kwargs``; False, a message or a ValueError refuse.
Validator = Callable[[dict[str, Any]], Any]


class Validate(Step):
    """Validate the params from the type hints, then with ``validator`` if given.

    The validator (sync or async) passes by returning None or True; refuses with
    INVALID_PARAMS by returning False (a generic message), a string (that message) or by
    raising ValueError (its message); returning a dict replaces the arguments (to normalise).
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
            verdict = self.validator(kwargs)
        except ValueError as exc:
            raise _invalid(request, str(exc)) from None
        if verdict is not None and verdict is not True:
            _apply(request, verdict)
        return None

    async def _check_async(self, request: Request, kwargs: dict[str, Any]) -> None:
        try:
            verdict = await self.validator(kwargs)  # type: ignore[misc]
        except ValueError as exc:
            raise _invalid(request, str(exc)) from None
        _apply(request, verdict)


def _apply(request: Request, verdict: Any) -> None:
    """What a validator returned: None or True passes; a dict replaces the arguments; False
    refuses with a generic message, a string with that message (the designs' validators)."""
    if verdict is None or verdict is True:
        return
    if isinstance(verdict, dict):
        request.kwargs = verdict
    elif verdict is False:
        raise _invalid(request, "the validator refused these params")
    elif isinstance(verdict, str):
        raise _invalid(request, verdict)
    else:
        raise TypeError(f"{request.name}: a validator returns None, True, False, a message or the arguments as a dict, "
                        f"not {type(verdict).__name__}")


def _invalid(request: Request, message: str) -> BridgeError:
    """A validator's refusal as INVALID_PARAMS with its message."""
    return BridgeError(INVALID_PARAMS, f"Invalid params for {request.name}: {message}",
                       {"errors": [{"loc": [], "msg": message, "type": "value_error"}]})
