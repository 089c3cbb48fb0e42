"""``Cache``: replies kept by method, canonical params and, if it matters, caller; ``Invalidate``
for mutating methods."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Any

import orjson

from ..codec import dumps, to_jsonable
from ..errors import INVALID_PARAMS, BridgeError
from . import Build, Next, Request

if TYPE_CHECKING:
    from ..app import Bridge
    from ..cache import CacheStore
    from ..methods import Method


_KEY_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
log = logging.getLogger("bridge.cache")

#: A declared warm-up: the method to pre-compute after a miss, and its params from the call's
#: validated arguments and result (None: nothing to warm this time).
Warm = tuple[str, Callable[[dict[str, Any], Any], "dict[str, Any] | list[Any] | None"]]
debug = logging.getLogger("bridge.debug")  # with --debug: a line per cache decision


def cache_key(method: str, kwargs: dict[str, Any], caller: str | None = None, generation: str = "") -> str:
    """The method, then its validated arguments as canonical JSON (sorted keys; hashed when
    long), so named-param order and positional-versus-named make no difference. A ``caller``
    (participant id) goes in front as a JSON string, so no two callers share a key and none
    shares one with a caller-independent call (whose canonical JSON starts with ``{``).
    ``generation`` (``code_generation``) keeps replies of another app version or handler
    code from ever matching."""
    return _key(_head(method, generation), kwargs, caller)


def _head(method: str, generation: str) -> str:
    """What every key of ``method``'s replies starts with (a ``Cache`` keeps it per method)."""
    return f"{method}\x00{generation}\x00" if generation else f"{method}\x00"


def _key(head: str, kwargs: dict[str, Any], caller: str | None) -> str:
    try:
        canonical = orjson.dumps(kwargs, default=to_jsonable, option=_KEY_OPTIONS)
    except TypeError:  # what orjson refuses (integers past 64 bits): the slower, total encoder
        canonical = json.dumps(kwargs, default=to_jsonable, sort_keys=True, separators=(",", ":")).encode()
    if caller is not None:
        canonical = orjson.dumps(caller) + canonical
    if len(canonical) <= 200:
        return head + canonical.decode()
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

    ``warm``: follow-ups to pre-compute in the background after a miss, as
    ``(method, params_of)`` where ``params_of(kwargs, result)`` gives the params (None: none
    this time). The target must be a cached, caller-independent method; its handler runs
    directly (not its middleware) and its reply is kept as a call's would be. At most
    ``warm_limit`` run at once (more are skipped); the connection owns them, so they end
    with it. Counted in rpc.metrics under ``cache.warm``.
    """

    def __init__(self, ttl: float | None = None, tags: Sequence[str] = (), *, per_caller: bool | None = None,
                 warm: Sequence[Warm] = (), warm_limit: int = 4) -> None:
        if ttl is not None and ttl <= 0:
            raise ValueError("ttl must be positive")
        if warm_limit < 1:
            raise ValueError(f"warm_limit must be at least 1, not {warm_limit}")
        for target in warm:
            if not (isinstance(target, tuple) and len(target) == 2 and isinstance(target[0], str)
                    and callable(target[1])):
                raise TypeError(f"a warm-up is (method name, params_of(kwargs, result)), not {target!r}")
        self.warm = tuple(warm)
        self.warm_limit = warm_limit
        self.warming = 0  # warm-ups running now
        self.warmed: dict[str, dict[str, int]] = {}  # by method: started, done, cached, skipped, failed
        self.app: Bridge | None = None
        self.ttl = ttl
        self.tags = tuple(tags)
        self.per_caller = per_caller
        self.store: CacheStore | None = None  # set when the app starts serving (on_build)
        self._heads: dict[str, str] = {}  # by method: its keys' start (_head: name, code_generation), by on_build
        self.hits: dict[str, int] = {}  # by method
        self.misses: dict[str, int] = {}
        self._flights: dict[str, _Flight] = {}

    uses_cache_store = True

    def on_build(self, build: Build) -> Cache:
        """Keep replies in the host's store (without one, calls pass through), keyed by the
        app's version and this handler's code."""
        self.store = build.cache
        name = build.method.name
        self._heads[name] = _head(name, code_generation(build.app.version, build.method.func))
        self.app = build.app
        for target, _ in self.warm:
            _check_warm_target(build.app, build.method.name, target)
        return self

    def metrics(self, method: str) -> dict[str, Any]:
        """This method's hits and misses, for rpc.metrics."""
        hits, misses = self.hits.get(method, 0), self.misses.get(method, 0)
        return {"cache": {"hits": hits, "misses": misses,
                          "hitRate": round(hits / (hits + misses), 4) if hits + misses else None,
                          **self._warm_metrics(method)}}

    async def __call__(self, request: Request, call_next: Next) -> Any:
        store = self.store
        if store is None:
            return await call_next(request)
        name = request.method.name
        per_caller = self.per_caller
        if per_caller is None:
            per_caller = request.method.context_param is not None
        key = _key(self._heads[name], request.validate(), request.participant if per_caller else None)
        logs = _debugging(request)
        started = perf_counter() if logs else 0.0
        body = store.get(key, not per_caller)
        if body is not None:
            self.hits[name] = self.hits.get(name, 0) + 1
            request.annotate(cached=True)
            if logs:
                debug.debug("cache %s id=%r: hit, %d bytes, %.3f ms", name, request.id, len(body),
                            (perf_counter() - started) * 1e3)
            return orjson.Fragment(body)
        flight = self._flights.get(key)
        if flight is not None:
            await flight.done.wait()
            if flight.body is not None:
                self.hits[name] = self.hits.get(name, 0) + 1
                request.annotate(cached=True, shared=True)
                if logs:
                    debug.debug("cache %s id=%r: shared, %d bytes, waited %.3f ms", name, request.id,
                                len(flight.body), (perf_counter() - started) * 1e3)
                return orjson.Fragment(flight.body)
            if flight.error is not None:
                raise flight.error
            # the leader was cancelled: this caller runs the handler itself
        with self._flying(key) as flight:
            seen = None
            if store.shared is not None and not per_caller:  # a miss in memory: the hosts' shared tier
                flight.body, seen = await store.fetch(key)
                if flight.body is not None:
                    self.hits[name] = self.hits.get(name, 0) + 1
                    request.annotate(cached=True)
                    if logs:
                        debug.debug("cache %s id=%r: hit in Redis, %d bytes, %.3f ms", name, request.id,
                                    len(flight.body), (perf_counter() - started) * 1e3)
                    return orjson.Fragment(flight.body)
            self.misses[name] = self.misses.get(name, 0) + 1
            result = await call_next(request)
            request.annotate(cached=False)
            try:
                flight.body = dumps(result)
            except (TypeError, orjson.JSONEncodeError):
                if logs:
                    debug.debug("cache %s id=%r: miss, not stored (not JSON), %.3f ms", name, request.id,
                                (perf_counter() - started) * 1e3)
                return result  # not JSON: the reply will say so; nothing to cache
            store.set(key, flight.body, self.ttl, name, not per_caller, seen)
            if self.warm:
                self._start_warming(request, result)
            if logs:
                debug.debug("cache %s id=%r: miss, stored %d bytes%s, %.3f ms", name, request.id,
                            len(flight.body), " for the caller" if per_caller else "", (perf_counter() - started) * 1e3)
            return result

    @contextlib.contextmanager
    def _flying(self, key: str) -> Iterator[_Flight]:
        """The single flight of ``key`` while its handler runs: callers arriving meanwhile wait
        for it and share its reply, or its error."""
        flight = self._flights[key] = _Flight()
        try:
            yield flight
        except Exception as exc:
            flight.error = exc
            raise
        finally:
            flight.done.set()
            if self._flights.get(key) is flight:
                del self._flights[key]


    async def fill(self, method: Method, params: dict[str, Any] | list[Any] | None) -> bool:
        """Run ``method``'s handler for ``params`` and keep its reply, unless one is cached or
        being computed; whether it ran. For warm-ups: no caller, no middleware."""
        store = self.store
        if store is None:
            return False
        kwargs = method.bind(params)
        key = _key(self._heads[method.name], kwargs, None)
        if key in self._flights or store.get(key) is not None:
            return False
        with self._flying(key) as flight:  # a call arriving meanwhile shares this run
            flight.body, seen = await store.fetch(key)
            if flight.body is not None:  # another host's, in the shared tier
                return False
            result = await method.invoke(kwargs)
            flight.body = dumps(method.shape(result) if method.shapes_result else result)
            store.set(key, flight.body, self.ttl, method.name, True, seen)
            return True

    def _start_warming(self, request: Request, result: Any) -> None:
        counts = self.warmed.setdefault(request.name, dict.fromkeys(_WARM_COUNTS, 0))
        for target, params_of in self.warm:
            if self.warming >= self.warm_limit:
                counts["skipped"] += 1
                continue
            try:
                params = params_of(dict(request.validate()), result)
            except Exception as exc:
                counts["failed"] += 1
                log.warning("%s: the warm-up params for %s failed: %r", request.name, target, exc)
                continue
            if params is None:
                continue
            self.warming += 1
            counts["started"] += 1
            request.connection.start_soon(self._warm(target, params, counts))

    async def _warm(self, target: str, params: Any, counts: dict[str, int]) -> None:
        try:
            method = self.app.methods[target]  # type: ignore[union-attr]
            cache = method.part(Cache)
            ran = await cache.fill(method, params)  # type: ignore[union-attr]
            counts["done" if ran else "cached"] += 1
        except Exception as exc:
            counts["failed"] += 1
            log.warning("warm-up of %s failed: %r", target, exc)
        finally:
            self.warming -= 1

    def _warm_metrics(self, method: str) -> dict[str, Any]:
        if not self.warm:
            return {}
        return {"warm": {**self.warmed.get(method, dict.fromkeys(_WARM_COUNTS, 0)), "running": self.warming}}


_WARM_COUNTS = ("started", "done", "cached", "skipped", "failed")


def _check_warm_target(app: Bridge, source: str, target: str) -> None:
    """A warm-up target runs with no caller and no middleware: a cached method that cannot
    see its caller, and neither a stream nor a batch."""
    method = app.methods.get(target)
    cache = method.part(Cache) if method is not None else None
    if method is None or cache is None:
        raise ValueError(f"{source}: warm-up target {target!r} is not a method with cache=Cache(...)")
    if cache.per_caller or (cache.per_caller is None and method.context_param is not None) \
            or method.kind is not None:
        raise ValueError(f"{source}: warm-up target {target!r} must be caller-independent, not a stream or batch")


def invalidation_method(app: Bridge) -> Callable[[list[str]], Awaitable[list[str]]]:
    """A handler that lets clients drop cached replies by method name or cache tag. Nothing
    mounts it: the app does, under a name of its choosing, so its allowlist decides who may
    call it: ``app.add_method(invalidation_method(app), "cache.invalidate")``."""

    async def invalidate(targets: list[str]) -> list[str]:
        """Drop the cached replies of these methods (names, or tags given to their ``Cache``);
        returns the methods whose replies were dropped."""
        cached = {m.name: m.part(Cache) for m in app.methods.values() if m.part(Cache) is not None}
        tags = {tag for cache in cached.values() for tag in cache.tags}  # type: ignore[union-attr]
        unknown = [t for t in targets if t not in cached and t not in tags]
        if unknown:
            raise BridgeError(INVALID_PARAMS, f"not a cached method or cache tag: {', '.join(unknown)}",
                              {"unknown": unknown})
        methods = methods_for(app, targets)
        store = app.connection.cache if app.connection is not None else None
        if store is not None:
            await _invalidated(store, methods)
        return methods

    return invalidate


class _Flight:
    __slots__ = ("done", "body", "error")

    def __init__(self) -> None:
        self.done = asyncio.Event()
        self.body: bytes | None = None
        self.error: Exception | None = None


async def _invalidated(store: CacheStore, methods: Sequence[str], request: Request | None = None) -> None:
    """Drop ``methods``' cached replies; with a shared tier, return once Redis has (every host's
    next call then misses), or at once if Redis is away (the host does it on reconnection)."""
    logs = request is not None and _debugging(request)
    pending = []
    for method in methods:
        started = perf_counter()
        done = store.invalidate(method)
        if done is not None:
            pending.append(done)
        if logs:
            debug.debug("cache %s: invalidated by %s id=%r, %.3f ms", method, request.name,  # type: ignore[union-attr]
                        request.id, (perf_counter() - started) * 1e3)  # type: ignore[union-attr]
    if pending:
        await asyncio.wait(pending)  # each bounded by the shared tier's write timeout; never cancelled from here


class Invalidate:
    """After a successful call, drop the cached replies of the methods in ``targets``
    (method names, or tags given to ``Cache``); with a shared tier, the reply waits until
    Redis has dropped them too (a middleware of its own, not a ``Step``: it awaits)."""

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

    async def __call__(self, request: Request, call_next: Next) -> Any:
        result = await call_next(request)
        if self.store is not None:
            await _invalidated(self.store, self.methods, request)
        return result


def methods_for(app: Bridge, targets: Sequence[str]) -> list[str]:
    """The methods named by ``targets``: method names, or tags given to their ``Cache``."""
    tagged: dict[str, list[str]] = {}
    for method in app.methods.values():
        cache = method.part(Cache)
        for tag in cache.tags if cache is not None else ():
            tagged.setdefault(tag, []).append(method.name)
    return sorted({m for t in targets for m in tagged.get(t, [t])})


def _debugging(request: Request) -> bool:
    """Debug mode (``--debug``) with the debug logger on: the decision gets a log line."""
    return debug.isEnabledFor(logging.DEBUG) and bool(request.connection.settings.debug)
