"""Handlers that take ``*args``, ``**kwargs`` or positional-only parameters.

JSON-RPC params come by position (an array) or by name (an object); a Python signature says
which of its parameters each may fill. ``*numbers: float`` takes the positional params past
the named ones, each validated as a ``float``; ``**extra: int`` takes the named params no
parameter matches, each an ``int``; a positional-only parameter is filled from an array only
(by name it would be a ``**kwargs`` entry, as in Python). Methods without any of these never
reach this module: their binding stays the plain path in ``methods.py``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .methods import Param

_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


class Variadic:
    """How one handler's params are arranged for validation, and how the handler is called."""

    __slots__ = ("by_position", "by_name", "leading", "positional_only", "var_positional", "var_keyword")

    def __init__(self, params: list[tuple[Param, Any]], var_positional: Param | None, var_keyword: Param | None,
                 leading: tuple[str, ...]) -> None:
        """``params``: the named parameters with their ``inspect`` kinds, in order; ``leading``:
        the names the handler must be given by position, in order (a ``Context`` one included):
        the positional-only ones, and with ``*args`` every one declared before it."""
        self.var_positional = var_positional
        self.var_keyword = var_keyword
        self.leading = leading
        self.positional_only = frozenset(p.name for p, kind in params if kind is inspect.Parameter.POSITIONAL_ONLY)
        #: Filled by an array's leading entries: all named params, unless ``*args`` takes the rest
        #: (then only those declared before it).
        self.by_position = tuple(p.name for p, kind in params if var_positional is None or kind in _POSITIONAL)
        #: Filled from an object's members of the same name.
        self.by_name = frozenset(p.name for p, kind in params if kind is not inspect.Parameter.POSITIONAL_ONLY)

    def fields(self) -> list[Param]:
        """The extra model fields: ``*args`` as ``list[T]``, ``**kwargs`` as ``dict[str, T]``."""
        from .methods import Param

        extra = []
        if self.var_positional is not None:
            p = self.var_positional
            extra.append(Param(p.name, list[p.annotation], [], p.description))  # type: ignore[name-defined]
        if self.var_keyword is not None:
            p = self.var_keyword
            extra.append(Param(p.name, dict[str, p.annotation], {}, p.description))  # type: ignore[name-defined]
        return extra

    def arrange(self, method: str, params: dict[str, Any] | list[Any] | None) -> dict[str, Any]:
        """The model's input: each param where the signature puts it. Raises the INVALID_PARAMS
        error for too many positional params or a name nothing takes."""
        if params is None:
            return {}
        if isinstance(params, list):
            count = len(self.by_position)
            arranged = dict(zip(self.by_position, params))
            if self.var_positional is not None:
                arranged[self.var_positional.name] = params[count:]
            elif len(params) > count:
                from .errors import INVALID_PARAMS, BridgeError

                raise BridgeError(INVALID_PARAMS, f"{method} takes at most {count} positional params, got {len(params)}")
            return arranged
        arranged = {}
        rest: dict[str, Any] = {}
        unexpected = []
        for key, value in params.items():
            if key in self.by_name:
                arranged[key] = value
            elif key == "$meta":
                continue
            elif self.var_keyword is not None:
                rest[key] = value
            elif key in self.positional_only:
                unexpected.append({"loc": [key], "msg": "Positional-only param: send the params as an array",
                                   "type": "positional_only"})
            else:
                unexpected.append({"loc": [key], "msg": "Unexpected param", "type": "extra_forbidden"})
        if unexpected:
            from .methods import invalid

            raise invalid(method, unexpected)
        if self.var_keyword is not None:
            arranged[self.var_keyword.name] = rest
        return arranged

    def relocate(self, errors: list[Any]) -> list[Any]:
        """Errors in ``*args`` at the position the caller sent; in ``**kwargs`` at its name."""
        at_position = self.var_positional.name if self.var_positional is not None else None
        at_name = self.var_keyword.name if self.var_keyword is not None else None
        moved = []
        for error in errors:
            loc = list(error["loc"])
            if loc and len(loc) > 1 and loc[0] == at_position and isinstance(loc[1], int):
                loc = [len(self.by_position) + loc[1], *loc[2:]]
            elif loc and len(loc) > 1 and loc[0] == at_name:
                loc = loc[1:]
            moved.append({**error, "loc": loc})
        return moved

    def spread(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """``func`` called from the validated keyword arguments: the leading ones and ``*args``
        by position, ``**kwargs`` spread by name."""
        leading = self.leading
        var_positional = self.var_positional.name if self.var_positional is not None else None
        var_keyword = self.var_keyword.name if self.var_keyword is not None else None

        @functools.wraps(func)
        def call(**kwargs: Any) -> Any:
            args = [kwargs.pop(name) for name in leading]
            if var_positional is not None:
                args += kwargs.pop(var_positional, ())
            if var_keyword is not None:
                kwargs.update(kwargs.pop(var_keyword, {}))
            return func(*args, **kwargs)

        return call

    def structure(self) -> str:
        """OpenRPC ``paramStructure``: by position when a param cannot be named."""
        only_position = self.positional_only or (self.var_positional is not None and not self.by_name)
        return "by-position" if only_position and self.var_keyword is None else "either"

    def describe(self, schema: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
        """``x-variadic`` for rpc.discover: the item schema of ``*args`` and of ``**kwargs``."""
        out: dict[str, Any] = {}
        for key, p in (("positional", self.var_positional), ("named", self.var_keyword)):
            if p is not None:
                entry: dict[str, Any] = {"name": p.name, "schema": schema(p.annotation)}
                if p.description:
                    entry["description"] = p.description
                out[key] = entry
        return {"x-variadic": out} if out else {}
