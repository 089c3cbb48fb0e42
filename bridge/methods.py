"""A registered handler: its signature read once, params bound and validated per call.

The pydantic model of the params is built on first use (or by ``prepare``), so
registering handlers costs no pydantic import and start-up stays fast.
"""

from __future__ import annotations

import functools
import inspect
import operator
import types
import typing
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypedDict


from .context import Context
from .errors import INVALID_PARAMS, BridgeError

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from pydantic import BaseModel

    from .middleware import Middleware, Request
    from .middleware.batch import Batch
    from .middleware.cache import Cache
    from .middleware.stream import Stream
    from .middleware.circuit import CircuitBreaker
    from .middleware.ratelimit import RateLimit
    from .middleware.validation import Validator


class MethodOptions(TypedDict, total=False):
    """What ``@app.method(...)`` accepts besides the name.

    ``rate_limit`` and ``circuit`` default to the app's; pass False to turn the app's off.
    """

    timeout: float | None
    idempotent: bool
    description: str | None
    rate_limit: RateLimit | Literal[False] | None
    circuit: CircuitBreaker | Literal[False] | None
    validator: Validator | None
    middleware: Sequence[Middleware]
    cache: Cache | None
    invalidates: Sequence[str]
    batch: Batch | None
    stream: Stream | None

_EMPTY = inspect.Parameter.empty
_UNSUPPORTED_KINDS = {
    inspect.Parameter.VAR_POSITIONAL: "*args",
    inspect.Parameter.VAR_KEYWORD: "**kwargs",
    inspect.Parameter.POSITIONAL_ONLY: "positional-only parameters",
}


class Param(typing.NamedTuple):
    name: str
    annotation: Any
    default: Any
    description: str | None


class Method:
    """A handler and what bridge learned from its signature."""

    __slots__ = (
        "_model",
        "batch",
        "cache",
        "invalidates",
        "_renames",
        "context_param",
        "description",
        "circuit",
        "effective_timeout",
        "func",
        "idempotent",
        "is_async",
        "middleware",
        "name",
        "param_names",
        "params",
        "parts",
        "pipeline",
        "rate_limit",
        "return_type",
        "shapes_result",
        "stream",
        "_result_adapter",
        "timeout",
        "validator",
    )

    def __init__(self, func: Callable[..., Any], name: str, **options: Unpack[MethodOptions]) -> None:
        unknown = set(options) - set(MethodOptions.__annotations__)
        if unknown:
            raise TypeError(f"{name}: unknown method option(s): {', '.join(sorted(unknown))}")
        self.name = name
        self.func = func
        self.is_async = inspect.iscoroutinefunction(func)
        self.timeout = options.get("timeout")
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError(f"{name}: timeout must be positive")
        self.effective_timeout = self.timeout
        self.idempotent = options.get("idempotent", False)
        self.rate_limit = options.get("rate_limit")
        self.circuit = options.get("circuit")
        self.validator = options.get("validator")
        self.middleware = tuple(options.get("middleware", ()))
        self.cache = options.get("cache")
        self.invalidates = tuple(options.get("invalidates", ()))
        self.batch = options.get("batch")
        self.stream = options.get("stream")
        if inspect.isasyncgenfunction(func) or inspect.isgeneratorfunction(func):
            if self.stream is None:
                from .middleware.stream import Stream

                self.stream = Stream()
        elif self.stream is not None:
            raise TypeError(f"{name}: stream= needs a generator handler (one that yields its items)")
        self.pipeline: Callable[[Request], Awaitable[Any]] | None = None
        description = options.get("description")
        self.description = description if description is not None else inspect.getdoc(func)
        try:
            hints = typing.get_type_hints(func, include_extras=True)
        except Exception as exc:  # a forward reference that cannot resolve
            raise TypeError(f"{name}: cannot read type hints: {exc}") from exc
        self.context_param: str | None = None
        params: list[Param] = []
        for p in inspect.signature(func).parameters.values():
            annotation = hints.get(p.name, Any)
            if isinstance(annotation, type) and issubclass(annotation, Context):
                self.context_param = p.name
                continue
            if p.kind in _UNSUPPORTED_KINDS:
                raise TypeError(f"{name}: handlers cannot take {_UNSUPPORTED_KINDS[p.kind]} ({p.name})")
            params.append(Param(p.name, annotation, p.default, _param_doc(annotation)))
        self.return_type = hints.get("return", Any)
        if self.stream is not None:  # items go out as they are; the reply only closes the stream
            self.return_type = dict[str, int]
        if self.batch is not None:
            params, self.return_type = _per_call_view(name, params, self.return_type, self.context_param)
        self.params = tuple(params)
        self.param_names = tuple(p.name for p in params)
        self.shapes_result = _needs_shaping(self.return_type)
        self._result_adapter: Any = None
        self._model: type[BaseModel] | None = None
        self._renames: dict[str, str] = {}
        #: The method's own middleware and endpoint kind, in order: each may report its own
        #: ``metrics(name)`` (for rpc.metrics) and ``describe()`` (for rpc.discover).
        self.parts: tuple[Any, ...] = tuple(part for part in (
            *self.middleware, self.circuit, self.rate_limit, self.cache, self.batch, self.stream) if part)

    def bind(self, params: dict[str, Any] | list[Any] | None) -> dict[str, Any]:
        """Keyword arguments for the handler, validated; BridgeError(INVALID_PARAMS) if not."""
        named: dict[str, Any]
        if isinstance(params, list):
            if len(params) > len(self.param_names):
                raise BridgeError(
                    INVALID_PARAMS,
                    f"{self.name} takes at most {len(self.param_names)} positional params, got {len(params)}",
                )
            named = dict(zip(self.param_names, params))
        elif params is None:
            named = {}
        elif "$meta" in params:
            named = {k: v for k, v in params.items() if k != "$meta"}
        else:
            named = params
        if not self.param_names:
            if named:
                raise _invalid(self.name, [
                    {"loc": [k], "msg": "Unexpected param", "type": "extra_forbidden"} for k in named
                ])
            return {}
        model = self._model or self.prepare()
        try:
            values = model.model_validate(named).__dict__
        except Exception as exc:
            errors = getattr(exc, "errors", None)
            if errors is None:
                raise
            raise _invalid(self.name, errors(include_url=False, include_context=False, include_input=False)) from None
        if self._renames:
            values = {self._renames.get(k, k): v for k, v in values.items()}
        return values

    async def invoke(self, kwargs: dict[str, Any]) -> Any:
        """Run the handler: async ones on the loop, sync ones in a worker thread."""
        if self.is_async:
            return await self.func(**kwargs)
        from anyio import to_thread

        return await to_thread.run_sync(functools.partial(self.func, **kwargs), abandon_on_cancel=True)

    def shape(self, result: Any) -> Any:
        """The result as its return annotation describes it (a parent model drops a subclass's
        extra fields), in JSON types. Only called when the annotation names such types."""
        adapter = self._result_adapter
        if adapter is None:
            from pydantic import TypeAdapter

            try:
                adapter = self._result_adapter = TypeAdapter(self.return_type)
            except Exception as exc:  # an annotation pydantic cannot describe: send results as they are
                import logging

                logging.getLogger("bridge").warning("%s: results not shaped by %r: %s", self.name, self.return_type, exc)
                self.shapes_result = False
                return result
        return adapter.dump_python(result, mode="json", warnings=False)

    def prepare(self) -> type[BaseModel]:
        """Build (once) the pydantic model of the params; safe to race from two threads."""
        if self._model is None:
            from pydantic import ConfigDict, Field, create_model

            fields: dict[str, Any] = {}
            renames: dict[str, str] = {}
            for i, p in enumerate(self.params):
                default = ... if p.default is _EMPTY else p.default
                if _is_safe_field_name(p.name):
                    fields[p.name] = (p.annotation, default)
                else:
                    safe = f"param_{i}"
                    renames[safe] = p.name
                    fields[safe] = (p.annotation, Field(default, alias=p.name))
            config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, protected_namespaces=())
            model = create_model(_model_name(self.name), __config__=config, **fields)  # type: ignore[call-overload]
            self._renames = renames
            self._model = model
        return self._model

    def __repr__(self) -> str:
        return f"Method({self.name!r})"


def _per_call_view(name: str, params: list[Param], returns: Any, context: str | None) -> tuple[list[Param], Any]:
    """A batched handler takes ``items: list[T]`` and returns ``list[R]``: each call sends one
    ``T`` (as ``{"items": t}`` or ``[t]``) and gets one ``R``. Return that per-call view."""
    if context is not None or len(params) != 1 or typing.get_origin(params[0].annotation) is not list:
        raise TypeError(f"{name}: a batched handler takes exactly one parameter, a list[...] of the calls' items")
    item = params[0]
    (item_type,) = typing.get_args(item.annotation) or (Any,)
    result_type = (typing.get_args(returns) or (Any,))[0] if typing.get_origin(returns) is list else Any
    return [Param(item.name, item_type, _EMPTY, item.description)], _without_exceptions(result_type)


def _without_exceptions(annotation: Any) -> Any:
    """``R | BridgeError`` -> ``R``: an item that is an exception fails its caller instead."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        kept = [a for a in typing.get_args(annotation) if not (isinstance(a, type) and issubclass(a, BaseException))]
        return functools.reduce(operator.or_, kept) if kept else Any
    return annotation


_PLAIN = frozenset({int, float, str, bool, bytes, type(None), list, dict, tuple, set, frozenset})
_CONTAINERS = frozenset({list, dict, tuple, set, frozenset, typing.Union, types.UnionType})


def _needs_shaping(annotation: Any) -> bool:
    """Whether a result annotated so needs pydantic to shape it (models, dataclasses, enums...),
    as opposed to plain JSON types that orjson writes as they are."""
    if annotation is Any or annotation is None or annotation in _PLAIN:
        return False
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _needs_shaping(typing.get_args(annotation)[0])
    if origin is typing.Literal:
        return False
    if origin in _CONTAINERS:
        return any(_needs_shaping(arg) for arg in typing.get_args(annotation) if arg is not Ellipsis)
    return True


def _invalid(method: str, errors: list[Any]) -> BridgeError:
    errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors]
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "params"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return BridgeError(INVALID_PARAMS, f"Invalid params for {method}: {where}: {first['msg']}{more}", {"errors": errors})


@functools.cache
def _base_model_attrs() -> frozenset[str]:
    from pydantic import BaseModel

    return frozenset(dir(BaseModel))


def _is_safe_field_name(name: str) -> bool:
    return not name.startswith("_") and not name.startswith("model_") and name not in _base_model_attrs()


def _model_name(method: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in method.replace("/", ".").split(".") if part) + "Params"


def _param_doc(annotation: Any) -> str | None:
    """The description of an ``Annotated[T, Field(description=...)]`` param, if any."""
    for meta in getattr(annotation, "__metadata__", ()):
        description = getattr(meta, "description", None)
        if isinstance(description, str):
            return description
    return None
