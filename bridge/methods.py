"""A registered handler: its signature read once, params bound and validated per call.

The pydantic model of the params is built on first use (or by ``prepare``), so
registering handlers costs no pydantic import and start-up stays fast.
"""

from __future__ import annotations

import builtins
import functools
import inspect
import types
import typing
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypedDict, TypeVar

from .context import Context
from .errors import INVALID_PARAMS, BridgeError
from .variadic import Variadic

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

    ``middleware`` is the method's own, in order. The keywords after it are shortcuts for
    built-in middleware, which join the chain after the method's own in the order listed
    here; ``rate_limit`` and ``circuit`` default to the app's (pass False to turn the app's
    off). ``batch`` and ``stream`` choose how the handler is run (an endpoint kind).
    """

    timeout: float | None
    idempotent: bool
    description: str | None
    middleware: Sequence[Middleware]
    circuit: CircuitBreaker | Literal[False] | None
    rate_limit: RateLimit | Literal[False] | None
    validator: Validator | None
    invalidates: Sequence[str]
    cache: Cache | None
    batch: Batch | None
    stream: Stream | None


_OPTION_NAMES = frozenset(MethodOptions.__annotations__)

#: The keyword options that name a built-in middleware, in the order they join the chain.
PART_OPTIONS = ("circuit", "rate_limit", "validator", "invalidates", "cache")

T = TypeVar("T")
_EMPTY = inspect.Parameter.empty
_KIND = inspect.Parameter
_POSITIONAL_ONLY, _POSITIONAL_OR_KEYWORD = _KIND.POSITIONAL_ONLY, _KIND.POSITIONAL_OR_KEYWORD
_VAR_POSITIONAL, _VAR_KEYWORD = _KIND.VAR_POSITIONAL, _KIND.VAR_KEYWORD
_GENERATOR_FLAGS = inspect.CO_GENERATOR | inspect.CO_ASYNC_GENERATOR
_VARIADIC_FLAGS = inspect.CO_VARARGS | inspect.CO_VARKEYWORDS


class Param(typing.NamedTuple):
    name: str
    annotation: Any
    default: Any
    description: str | None


#: ``Param(...)`` without its keyword handling (what ``Param._make`` calls): 60 ns less a param.
_new_param = tuple.__new__


class Method:
    """A handler and what bridge learned from its signature."""

    __slots__ = (
        "_description",
        "_core",
        "_doc",
        "_mismatch_warned",
        "_model",
        "_plain",
        "_renames",
        "_result_adapter",
        "context_param",
        "direct",
        "effective_timeout",
        "func",
        "idempotent",
        "is_async",
        "kind",
        "middleware",
        "name",
        "options",
        "param_names",
        "params",
        "parts",
        "pipeline",
        "return_type",
        "shapes_result",
        "timeout",
        "variadic",
        "waits",
    )

    def __init__(self, func: Callable[..., Any], name: str, **options: Unpack[MethodOptions]) -> None:
        # Everything a wrong handler or option could fail is checked here, at registration; the
        # common case (a plain function, no options) takes the short way through each step
        # (an app of 10,000 handlers spends its start-up here).
        if options:
            unknown = options.keys() - _OPTION_NAMES
            if unknown:
                raise TypeError(f"{name}: unknown method option(s): {', '.join(sorted(unknown))}")
        self.name = name
        self.func = func
        flags = func.__code__.co_flags if type(func) is types.FunctionType else None
        self.is_async = bool(flags & inspect.CO_COROUTINE) if flags is not None else inspect.iscoroutinefunction(func)
        self.timeout = self.effective_timeout = timeout = options.get("timeout")
        if timeout is not None and timeout <= 0:
            raise ValueError(f"{name}: timeout must be positive")
        self.idempotent = options.get("idempotent", False)
        #: The method's own middleware, in order.
        self.middleware = tuple(options["middleware"]) if "middleware" in options else ()
        #: The built-in middleware named by keyword (``PART_OPTIONS``), in chain order; False
        #: turns the app's default off.
        given: dict[str, Any] = options  # type: ignore[assignment]  # read by key names from a tuple
        self.options: dict[str, Any] = {
            key: _keyword_part(key, given[key]) for key in PART_OPTIONS if given.get(key) is not None
        } if options else {}
        #: How the handler is run when not plainly (``Batch``, ``Stream``): the chain's endpoint.
        self.kind: Any = _kind(name, func, options.get("batch"), options.get("stream")) \
            if options or flags is None or flags & _GENERATOR_FLAGS else None
        self.pipeline: Callable[[Request], Awaitable[Any]] | None = None
        #: A call of it waited in its first step: its calls get tasks of their own (connection.py).
        self.waits = False
        self._description: str | None = options.get("description")
        #: The docstring, until ``description`` is first read and cleans it.
        self._doc: str | None = None if self._description is not None else (
            func.__doc__ if flags is not None else getattr(func, "__doc__", None)) or None
        try:
            hints = _type_hints(func)
        except Exception as exc:  # a forward reference that cannot resolve
            raise TypeError(f"{name}: cannot read type hints: {exc}") from exc
        self.context_param: str | None = None
        params: list[Param] = []
        rest: dict[Any, Param] = {}  # *args and **kwargs, by kind
        positional_only = False
        own = _own_signature(func)
        parameters = _signature(func, own)
        for param_name, kind, default in parameters:
            annotation = hints.get(param_name, Any)
            simple = isinstance(annotation, type)  # a class: no Annotated description to read
            if kind is _VAR_POSITIONAL or kind is _VAR_KEYWORD:
                rest[kind] = Param(param_name, annotation, _EMPTY, None if simple else _param_doc(annotation))
                continue
            if kind is _POSITIONAL_ONLY:
                positional_only = True
            if simple and issubclass(annotation, Context):
                self.context_param = param_name
                continue
            params.append(_new_param(Param, (param_name, annotation, default, None if simple else _param_doc(annotation))))
        #: How ``*args``, ``**kwargs`` and positional-only params are taken (None: none of them).
        self.variadic: Variadic | None = None
        if rest or positional_only:
            if self.kind is not None:
                raise TypeError(f"{name}: a batched or streamed handler cannot take *args, **kwargs or positional-only params")
            by_position = (_POSITIONAL_ONLY, _POSITIONAL_OR_KEYWORD) if _VAR_POSITIONAL in rest \
                else (_POSITIONAL_ONLY,)
            kinds = {param_name: kind for param_name, kind, _ in parameters}
            self.variadic = Variadic([(param, kinds[param.name]) for param in params], rest.get(_VAR_POSITIONAL),
                                     rest.get(_VAR_KEYWORD), tuple(n for n, kind, _ in parameters if kind in by_position))
            self.func = self.variadic.spread(func)
        self.return_type = hints.get("return", Any)
        if self.kind is not None:  # what each call sends and gets, as the kind sees it
            params, self.return_type = self.kind.signature(self, params)
        self.params = tuple(params)
        self.param_names = tuple([p.name for p in params])
        #: Per param (name, the exact types taken as they are or None for any, default), when
        #: every param is that simple; None otherwise (then pydantic binds every call).
        self._plain = _plain_params(self.params)
        self._core: Any = None  # plain params' pydantic_core validator, built when a call first needs it
        self.shapes_result = _needs_shaping(self.return_type)
        #: ``_plain`` when the handler is an async function of its own signature (not a wrapper, which
        #: may take ``**kwargs`` only) whose params may all be given by position (no keyword-only
        #: one, no Context) and whose result is sent as it is: calls whose values need no conversion
        #: pass them by position, without a dict (``args_given``); else None.
        self.direct = self._plain if self.is_async and not self.shapes_result and self.context_param is None \
            and self.kind is None and self.variadic is None and own and not func.__code__.co_kwonlyargcount \
            else None
        self._result_adapter: Any = None
        self._mismatch_warned = False
        self._model: type[BaseModel] | None = None
        self._renames: dict[str, str] = {}
        #: The method's own middleware and endpoint kind, in order: each may report its own
        #: ``metrics(name)`` (for rpc.metrics) and ``describe()`` (for rpc.discover).
        self.parts: tuple[Any, ...] = tuple(part for part in (
            *self.middleware, *self.options.values(), self.kind) if part) if options or self.kind else ()

    @property
    def description(self) -> str | None:
        """The ``description`` option, else the docstring cleaned as ``inspect.getdoc`` does
        (without its class search), on first read: ``rpc.discover`` and ``bridge types`` read it,
        registration need not clean 10,000 docstrings (~1 us each)."""
        doc = self._doc
        if doc is not None:
            self._description, self._doc = inspect.cleandoc(doc), None
        return self._description

    def part(self, kind: type[T]) -> T | None:
        """The method's first part of this type (``method.part(Cache)``), or None."""
        return next((part for part in self.parts if isinstance(part, kind)), None)

    def bind(self, params: dict[str, Any] | list[Any] | None) -> dict[str, Any]:
        """Keyword arguments for the handler, validated; BridgeError(INVALID_PARAMS) if not."""
        named: dict[str, Any]
        if self.variadic is not None:
            return self._bind_variadic(params)
        if type(params) is dict and "$meta" not in params:  # by name: the usual case, first
            named = params
        elif isinstance(params, list):
            if len(params) > len(self.param_names):
                raise BridgeError(
                    INVALID_PARAMS,
                    f"{self.name} takes at most {len(self.param_names)} positional params, got {len(params)}",
                )
            named = dict(zip(self.param_names, params))
        elif params is None:
            named = {}
        else:
            named = {k: v for k, v in params.items() if k != "$meta"}
        if not self.param_names:
            if named:
                raise invalid(self.name, [
                    {"loc": [k], "msg": "Unexpected param", "type": "extra_forbidden"} for k in named
                ])
            return {}
        if self._plain is not None:  # values that need no conversion skip pydantic
            values = _as_given(self._plain, named)
            if values is not None:
                return values
            core = self._core or self._plain_validator()
            try:
                return core.validate_python(named)  # type: ignore[no-any-return]
            except Exception as exc:
                raise invalid(self.name, _errors_of(exc)) from None
        model = self._model or self.prepare()
        try:
            values = model.model_validate(named).__dict__
        except Exception as exc:
            raise invalid(self.name, _errors_of(exc)) from None
        if self._renames:
            values = {self._renames.get(k, k): v for k, v in values.items()}
        return values

    def args_given(self, params: dict[str, Any] | list[Any] | None) -> list[Any] | None:
        """A ``direct`` method's arguments in its handler's order when ``params``, by name or by
        position, already have their types (``_as_given``'s test); None: ``bind`` them (converted,
        refused, ``$meta``). The same loop as ``_as_given``'s, kept apart: making either one's
        result from the other's costs ~0.2 us a call (``dict(zip(...))`` for two params)."""
        plain = self.direct
        if plain is None:
            return None
        if type(params) is list:
            return _args_by_position(plain, params)
        if type(params) is not dict or "$meta" in params:
            return None
        args = []
        found = 0
        for name, exact, default, items in plain:
            if name in params:
                value = params[name]
                if exact is not None and type(value) not in exact or items is not None and not _items_given(value, items):
                    return None
                args.append(value)
                found += 1
            elif default is _EMPTY:
                return None
            else:
                args.append(default)
        return args if found == len(params) else None

    def _bind_variadic(self, params: dict[str, Any] | list[Any] | None) -> dict[str, Any]:
        variadic: Variadic = self.variadic  # type: ignore[assignment]
        model = self._model or self.prepare()
        try:
            values = model.model_validate(variadic.arrange(self.name, params)).__dict__
        except Exception as exc:
            raise invalid(self.name, variadic.relocate(_errors_of(exc))) from None
        if self._renames:
            values = {self._renames.get(k, k): v for k, v in values.items()}
        return values

    async def invoke(self, kwargs: dict[str, Any]) -> Any:
        """Run the handler: async ones on the loop, sync ones in a worker thread."""
        if self.is_async:
            return await self.func(**kwargs)
        from .threads import run_sync

        return await run_sync(functools.partial(self.func, **kwargs), abandon_on_cancel=True)

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

    @property
    def needs_model(self) -> bool:
        """Whether a call usually needs the params model (not built yet, and the params are not
        plain JSON values that skip it)."""
        return self._model is None and self._plain is None and bool(self.param_names or self.variadic)

    def check_result(self, result: Any) -> None:
        """Debug mode: warn, once per method, when ``result`` does not match the return annotation
        (the reply still goes out as it is)."""
        if self.return_type is Any or self._mismatch_warned:
            return
        from pydantic import TypeAdapter, ValidationError

        try:
            TypeAdapter(self.return_type).validate_python(result)
        except ValidationError as exc:
            import logging

            self._mismatch_warned = True
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(part) for part in first["loc"]) or "result"
            logging.getLogger("bridge").warning("%s returned a result its annotation %r does not describe: %s: %s",
                                                self.name, self.return_type, where, first["msg"])
        except Exception:  # an annotation pydantic cannot check
            self._mismatch_warned = True

    def _plain_validator(self) -> Any:
        """Build (once) the pydantic_core validator of plain params (``plain_schema``)."""
        if self._core is None:
            from .plain_schema import validator

            self._core = validator(self.params, _EMPTY)
        return self._core

    def prepare(self) -> type[BaseModel]:
        """Build (once) the pydantic model of the params; safe to race from two threads."""
        if self._model is None:
            from pydantic import ConfigDict, Field, create_model

            fields: dict[str, Any] = {}
            renames: dict[str, str] = {}
            for i, p in enumerate((*self.params, *(self.variadic.fields() if self.variadic else ()))):
                default = ... if p.default is _EMPTY else p.default
                if _is_safe_field_name(p.name):
                    fields[p.name] = (p.annotation, default)
                else:
                    safe = f"param_{i}"
                    renames[safe] = p.name
                    fields[safe] = (p.annotation, Field(default, alias=p.name))
            key = _model_key(fields)
            model = _MODELS.get(key) if key is not None else None
            if model is None:
                config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, protected_namespaces=())
                model = create_model(_model_name(self.name), __config__=config, **fields)  # type: ignore[call-overload]
                if key is not None:
                    _MODELS[key] = model
            self._renames = renames
            self._model = model
        return self._model

    def __repr__(self) -> str:
        return f"Method({self.name!r})"


_EXACT: dict[Any, tuple[type, ...]] = {str: (str,), int: (int,), bool: (bool,), float: (float,),
                                       type(None): (type(None),), list: (list,), dict: (dict,)}
_IMMUTABLE = (type(None), bool, int, float, str, tuple, frozenset)
#: Items of a list[X] or dict[str, X] param checked here at most; a longer one goes to pydantic
#: (measured: 3 items 0.5 us against pydantic's 0.85, even at ~100, 10,000 items 143 against 88).
_ITEMS_CHECKED = 64


def _exact_types(annotation: Any) -> tuple[type, ...] | None | bool:
    """The types a value of ``annotation`` may have to be used as it came from JSON (no
    conversion, no constraint): None for any value, False when pydantic must look at it."""
    if annotation is Any or annotation is object:
        return None
    exact = _EXACT.get(annotation)
    if exact is not None:
        return exact
    origin = typing.get_origin(annotation)
    if origin in (list, dict) and all(arg is Any or arg is str for arg in typing.get_args(annotation)) \
            and (origin is dict or typing.get_args(annotation) in ((Any,), ())):
        return (origin,)
    if origin in (typing.Union, types.UnionType):
        parts = [_exact_types(arg) for arg in typing.get_args(annotation)]
        if all(isinstance(part, tuple) for part in parts):
            return tuple(t for part in parts for t in part)  # type: ignore[union-attr]
    return False


def _item_types(annotation: Any) -> tuple[tuple[type, ...], tuple[type, ...]] | None:
    """For ``list[X]`` and ``dict[str, X]`` whose X is taken as it comes (``_exact_types``):
    the container's type and X's types, each item checked per call; None otherwise."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    item = args[0] if origin is list and len(args) == 1 else args[1] if origin is dict and len(args) == 2 \
        and args[0] is str else None
    if item is None or item is Any:
        return None
    exact = _exact_types(item)
    return ((origin,), exact) if isinstance(exact, tuple) else None


def _plain_params(params: tuple[Param, ...]) -> tuple[tuple[str, Any, Any, Any], ...] | None:
    """``Method._plain``: only when each param takes JSON values as they are (a list's or an
    object's items each of one of its item types, ``_item_types``) and its default is
    immutable (pydantic would not copy it). Reading it imports nothing (start-up)."""
    plain = []
    for p in params:
        exact = _exact_types(p.annotation)
        items = None
        if exact is False:
            container = _item_types(p.annotation)
            if container is None:
                return None
            exact, items = container
        if not (p.default is _EMPTY or type(p.default) in _IMMUTABLE):
            return None
        plain.append((p.name, exact, p.default, items))
    return tuple(plain)


def _errors_of(exc: Exception) -> list[Any]:
    """A failed validation's errors as a reply carries them (pydantic's, or pydantic_core's);
    ``exc`` raised again when it is something else."""
    errors = getattr(exc, "errors", None)
    if errors is None:
        raise exc
    return errors(include_url=False, include_context=False, include_input=False)  # type: ignore[no-any-return]


def _as_given(plain: tuple[tuple[str, Any, Any, Any], ...], named: dict[str, Any]) -> dict[str, Any] | None:
    """The arguments when every value already has its param's type (and none is missing or
    unknown); None to let pydantic convert, or name what is wrong."""
    values = {}
    found = 0
    for name, exact, default, items in plain:
        if name in named:
            value = named[name]
            if exact is not None and type(value) not in exact or items is not None and not _items_given(value, items):
                return None
            values[name] = value
            found += 1
        elif default is _EMPTY:
            return None
        else:
            values[name] = default
    return values if found == len(named) else None  # else an unknown name: pydantic names it


def _args_by_position(plain: tuple[tuple[str, Any, Any, Any], ...], given: list[Any]) -> list[Any] | None:
    """``args_given`` for params by position: the first params', then the defaults of the rest."""
    if len(given) > len(plain):
        return None  # (bind says how many it takes)
    for (_, exact, _, items), value in zip(plain, given):
        if exact is not None and type(value) not in exact or items is not None and not _items_given(value, items):
            return None
    args = list(given)
    for _, _, default, _ in plain[len(given):]:
        if default is _EMPTY:
            return None
        args.append(default)
    return args


def _items_given(value: Any, items: tuple[type, ...]) -> bool:
    """Whether each item of ``value`` (a list, or an object's values) has one of ``items``' types."""
    if len(value) > _ITEMS_CHECKED:  # pydantic's loop (in Rust) is the quicker one past this
        return False
    for item in value.values() if type(value) is dict else value:
        if type(item) not in items:
            return False
    return True


def _is(func: Callable[..., Any], flag: int, check: Callable[[Any], bool]) -> bool:
    """``check(func)`` (an ``inspect.is...function``), read from a plain function's code flags
    directly (registration of thousands of handlers spent a fifth of its time in inspect)."""
    if type(func) is types.FunctionType:
        return bool(func.__code__.co_flags & flag)
    return check(func)


class _Parameter(typing.NamedTuple):
    name: str
    kind: Any
    default: Any


def _parameters(func: Callable[..., Any]) -> list[_Parameter]:
    """``inspect.signature(func).parameters.values()``: ``_signature``'s, by name."""
    return [_Parameter(*parameter) for parameter in _signature(func)]


def _own_signature(func: Callable[..., Any]) -> bool:
    """Whether ``func`` is a plain function whose signature is its code's (not a wrapper's)."""
    return type(func) is types.FunctionType and not hasattr(func, "__wrapped__") and not hasattr(func, "__signature__")


def _signature(func: Callable[..., Any], own: bool | None = None) -> list[tuple[str, Any, Any]]:
    """(name, kind, default) of each of ``inspect.signature(func).parameters``, read straight
    from a plain function's code object (a tenth of the time: it counts in an app of thousands
    of handlers); any other callable goes to ``inspect``. ``own``: ``_own_signature(func)``."""
    if not (_own_signature(func) if own is None else own):
        return [(p.name, p.kind, p.default) for p in inspect.signature(func).parameters.values()]
    code = func.__code__
    positional = code.co_argcount
    names = code.co_varnames
    defaults = func.__defaults__ or ()
    first_default = positional - len(defaults)
    posonly = code.co_posonlyargcount
    out: list[tuple[str, Any, Any]] = [(names[i], _POSITIONAL_ONLY if i < posonly else _POSITIONAL_OR_KEYWORD,
            defaults[i - first_default] if i >= first_default else _EMPTY) for i in range(positional)]
    kwonly = code.co_kwonlyargcount
    if not kwonly and not code.co_flags & _VARIADIC_FLAGS:
        return out
    kwdefaults = func.__kwdefaults__ or {}
    at = positional + kwonly
    if code.co_flags & inspect.CO_VARARGS:  # signature order: *args, then the keyword-only ones
        out.append((names[at], _VAR_POSITIONAL, _EMPTY))
        at += 1
    for name in names[positional:positional + kwonly]:
        out.append((name, _KIND.KEYWORD_ONLY, kwdefaults.get(name, _EMPTY)))
    if code.co_flags & inspect.CO_VARKEYWORDS:
        out.append((names[at], _VAR_KEYWORD, _EMPTY))
    return out


def _type_hints(func: Callable[..., Any]) -> dict[str, Any]:
    """``typing.get_type_hints(func, include_extras=True)``, quicker for the common case of
    string annotations (``from __future__ import annotations``) that name something in the
    function's module: each distinct string is compiled once, not once per handler (an app of
    10,000 handlers spent most of its registration there). Anything else: typing's own."""
    annotations = getattr(func, "__annotations__", None)
    namespace = getattr(func, "__globals__", None)
    if not isinstance(annotations, dict) or namespace is None or hasattr(func, "__wrapped__"):
        return typing.get_type_hints(func, include_extras=True)
    hints = {}
    for name, value in annotations.items():
        if isinstance(value, str):
            if value.isidentifier():  # a name: looked up where eval would look (module, then builtins)
                found = namespace.get(value, _MISSING)
                value = _BUILTINS.get(value, _MISSING) if found is _MISSING else found
                if value is _MISSING:
                    return typing.get_type_hints(func, include_extras=True)  # (its NameError)
            elif "'" in value or '"' in value:  # a string inside (a forward reference, a Literal): typing's
                return typing.get_type_hints(func, include_extras=True)
            else:
                try:
                    value = eval(_compiled(value), namespace)  # noqa: S307: the app's own annotation
                except Exception:
                    return typing.get_type_hints(func, include_extras=True)
        elif not isinstance(value, type) and not typing.get_origin(value) and value is not None:
            return typing.get_type_hints(func, include_extras=True)  # a ForwardRef object, a TypeVar...
        hints[name] = type(None) if value is None else value
    return hints


_MISSING = object()
_BUILTINS = vars(builtins)

#: Params models by their fields: methods with the same params share one (an app of 10,000
#: ``(id: str)`` methods builds one model, not 10,000 at ~1 ms each).
_MODELS: dict[Any, Any] = {}


def _model_key(fields: dict[str, Any]) -> Any:
    """A hashable key of a model's fields (names, annotations, defaults), or None if one is not."""
    parts = []
    for name, (annotation, default) in fields.items():
        parts.append((name, annotation, repr(default) if type(default).__repr__ is not object.__repr__ else id(default)))
    key = tuple(parts)
    try:
        hash(key)
    except TypeError:
        return None
    return key


@functools.lru_cache(maxsize=4096)
def _compiled(annotation: str) -> types.CodeType:
    return compile(annotation, "<annotation>", "eval")


def _keyword_part(key: str, value: Any) -> Any:
    """The middleware a keyword option names: ``validator=f`` is ``Validate(f)``,
    ``invalidates=[...]`` is ``Invalidate([...])``; the others are given as middleware."""
    if key == "validator":
        from .middleware.validation import Validate

        return Validate(value)
    if key == "invalidates":
        from .middleware.cache import Invalidate

        return Invalidate(value)
    return value


def _kind(name: str, func: Callable[..., Any], batch: Any, stream: Any) -> Any:
    """The endpoint kind: ``batch=``, ``stream=``, or a default ``Stream`` for a generator."""
    if batch is not None and stream is not None:
        raise TypeError(f"{name}: a method is batched or streamed, not both")
    if _is(func, inspect.CO_ASYNC_GENERATOR, inspect.isasyncgenfunction) \
            or _is(func, inspect.CO_GENERATOR, inspect.isgeneratorfunction):
        if stream is None:
            from .middleware.stream import Stream

            stream = Stream()
    elif stream is not None:
        raise TypeError(f"{name}: stream= needs a generator handler (one that yields its items)")
    return batch if batch is not None else stream


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


def invalid(method: str, errors: list[Any]) -> BridgeError:
    """INVALID_PARAMS naming the first wrong param, with every error in ``data.errors``."""
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
