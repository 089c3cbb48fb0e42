"""``Cache``: replies kept by method, canonical params and, if it matters, caller; ``Invalidate``
for mutating methods."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from ..codec import dumps, to_jsonable
from . import Build, Next, Request, Step

if TYPE_CHECKING:
    from ..app import Bridge
    from ..cache import CacheStore


_KEY_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def cache_key(method: str, kwargs: dict[str, Any], caller: str | None = None, generation: str = "") -> str:
    """The method, then its validated arguments as canonical JSON (sorted keys; hashed when
    long), so named-param order and positional-versus-named make no difference. A ``caller``
    (participant id) goes in front as a JSON string, so no two callers share a key and none
    shares one with a caller-independent call (whose canonical JSON starts with ``{``).
    ``generation`` (``code_generation``) keeps replies of another app version or handler
    code from ever matching."""
    try:
        canonical = orjson.dumps(kwargs, default=to_jsonable, option=_KEY_OPTIONS)
    except TypeError:  # what orjson refuses (integers past 64 bits): the slower, total encoder
        canonical = json.dumps(kwargs, default=to_jsonable, sort_keys=True, separators=(",", ":")).encode()
    if caller is not None:
        canonical = orjson.dumps(caller) + canonical
    head = f"{method}\x00{generation}\x00" if generation else f"{method}\x00"
    if len(canonical) <= 200:
        return f"{head}{canonical.decode()}"
    return f"{head}#{hashlib.blake2b(canonical, digest_size=16).hexdigest()}"


def code_generation(version: str, func: Any) -> str:
    """A short hash of the app's version and the handler's code (its bytecode and constants,
    nested functions included; not its file or line, which move with unrelated edits and,
    in a onefile bundle, with every start): a reply cached by other code is never served."""
    import inspect
    import marshal
    from types import CodeType

    def plain(code: CodeType) -> CodeType:
        consts = tuple(plain(c) if isinstance(c, CodeType) else c for c in code.co_consts)
        return code.replace(co_filename="", co_firstlineno=1, co_consts=consts)

    code = getattr(inspect.unwrap(func), "__code__", None)
    body = marshal.dumps(plain(code)) if isinstance(code, CodeType) else repr(func).encode()
    return hashlib.blake2b(version.encode() + b"\x00" + body, digest_size=6).hexdigest()


class Cache:
    """Keep a method's replies for ``ttl`` seconds (None: until evicted or invalidated).

    ``tags`` name groups that mutating methods invalidate together. Concurrent identical
    calls on a miss run the handler once (single flight). Errors are not cached.

    ``per_caller``: whether a reply is kept for its caller (participant id) alone, single
    flights included. None (the default) decides from the handler: per caller when it takes
    a ``Context`` (it can see who calls). Say True when the reply depends on the caller some
    other way (an app middleware, say), False when a handler that takes a Context answers
    every caller alike. Per-caller replies stay in memory, never on disk: caller ids such as
    ``window:3`` or ``connection:1`` name another caller in the next run.
    """

    def __init__(self, ttl: float | None = None, tags: Sequence[str] = (), *, per_caller: bool | None = None) -> None:
        if ttl is not None and ttl <= 0:
            raise ValueError("ttl must be positive")
        self.ttl = ttl
        self.tags = tuple(tags)
        self.per_caller = per_caller
        self.store: CacheStore | None = None  # set when the app starts serving (on_build)
        self.generations: dict[str, str] = {}  # by method: code_generation, set by on_build
        self.hits: dict[str, int] = {}  # by method
        self.misses: dict[str, int] = {}
        self._flights: dict[str, _Flight] = {}

    uses_cache_store = True

    def on_build(self, build: Build) -> Cache:
        """Keep replies in the host's store (without one, calls pass through), keyed by the
        app's version and this handler's code."""
        self.store = build.cache
        self.generations[build.method.name] = code_generation(build.app.version, build.method.func)
        return self

    def metrics(self, method: str) -> dict[str, Any]:
        """This method's hits and misses, for rpc.metrics."""
        hits, misses = self.hits.get(method, 0), self.misses.get(method, 0)
        return {"cache": {"hits": hits, "misses": misses,
                          "hitRate": round(hits / (hits + misses), 4) if hits + misses else None}}

    async def __call__(self, request: Request, call_next: Next) -> Any:
        store = self.store
        if store is None:
            return await call_next(request)
        per_caller = self.per_caller
        if per_caller is None:
            per_caller = request.method.context_param is not None
        key = cache_key(request.name, request.validate(), request.participant if per_caller else None,
                        self.generations.get(request.name, ""))
        body = store.get(key, not per_caller)
        if body is not None:
            self.hits[request.name] = self.hits.get(request.name, 0) + 1
            request.annotate(cached=True)
            return orjson.Fragment(body)
        flight = self._flights.get(key)
        if flight is not None:
            await flight.done.wait()
            if flight.body is not None:
                self.hits[request.name] = self.hits.get(request.name, 0) + 1
                request.annotate(cached=True, shared=True)
                return orjson.Fragment(flight.body)
            if flight.error is not None:
                raise flight.error
            # the leader was cancelled: this caller runs the handler itself
        flight = self._flights[key] = _Flight()
        self.misses[request.name] = self.misses.get(request.name, 0) + 1
        try:
            result = await call_next(request)
            request.annotate(cached=False)
            try:
                flight.body = dumps(result)
            except (TypeError, orjson.JSONEncodeError):
                return result  # not JSON: the reply will say so; nothing to cache
            store.set(key, flight.body, self.ttl, request.name, not per_caller)
            return result
        except Exception as exc:
            flight.error = exc
            raise
        finally:
            flight.done.set()
            if self._flights.get(key) is flight:
                del self._flights[key]


class _Flight:
    __slots__ = ("done", "body", "error")

    def __init__(self) -> None:
        self.done = asyncio.Event()
        self.body: bytes | None = None
        self.error: Exception | None = None


class Invalidate(Step):
    """After a successful call, drop the cached replies of the methods in ``targets``
    (method names, or tags given to ``Cache``)."""

    uses_cache_store = True

    def __init__(self, targets: Sequence[str]) -> None:
        self.targets = tuple(targets)
        self.methods: list[str] = []
        self.store: CacheStore | None = None

    def on_build(self, build: Build) -> Invalidate | None:
        """Resolve the tags to methods; not in the chain when the host keeps no cache."""
        if build.cache is None:
            return None
        self.methods = methods_for(build.app, self.targets)
        self.store = build.cache
        return self

    def after(self, request: Request, error: BaseException | None) -> None:
        if error is None and self.store is not None:
            for method in self.methods:
                self.store.invalidate(method)


def methods_for(app: Bridge, targets: Sequence[str]) -> list[str]:
    """The methods named by ``targets``: method names, or tags given to their ``Cache``."""
    tagged: dict[str, list[str]] = {}
    for method in app.methods.values():
        cache = method.part(Cache)
        for tag in cache.tags if cache is not None else ():
            tagged.setdefault(tag, []).append(method.name)
    return sorted({m for t in targets for m in tagged.get(t, [t])})
