"""The reply cache's shared tier: a Redis every host reads and writes below its own memory tier.

Keys are ``<prefix>:cache:<app>:{<method hash>}:<reply key>``: one hash slot per method, so a
method's entries, its index and its invalidation counter can be changed by one script (and a
Cluster can hold them). An entry's TTL is its Redis expiry. Invalidating a method deletes its
entries, bumps its counter and publishes ``"<counter> <host> <nonce> <method>"``; every host drops
the method's entries from its memory tier and acknowledges, and the invalidating host waits for
the acknowledgements (``ACK_TIMEOUT`` at most) before its caller is answered. A reply computed
before an invalidation is never stored after it: the write carries the counter read when the
call missed.

Redis unreachable: reads and writes skip it (the host caches on its own), one warning per
outage, reconnection with backoff and jitter. On reconnection the host replays the invalidations
it made while away, then drops the memory entries of every method whose counter moved meanwhile
(all of them if Redis lost its data), so nothing it missed is served.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from .redis_url import RedisOptions, connect, redact

log = logging.getLogger("bridge.cache")

#: Seconds a read on a memory miss may take before it counts as a miss (the loop does not wait longer).
READ_TIMEOUT = 0.1
#: Seconds a write, an invalidation or a reconnection step may take.
WRITE_TIMEOUT = 2.0
#: Reads in a row that time out before Redis counts as unreachable (a black hole rather than a refusal).
TIMEOUTS_TO_LOSE = 3
#: Replies waiting to be written; past it, a reply is kept on this host only (counted as ``dropped``).
WRITES_QUEUED = 1024
#: Seconds an invalidation waits for every host to acknowledge it (a host that stopped reading
#: meanwhile is not waited for longer; counted as ``ackTimeouts``).
ACK_TIMEOUT = 1.0

# KEYS: entry, index, counter. ARGV: body, ttl in ms (0: none), the counter the writer saw.
_SET = """
local seen = tonumber(redis.call('GET', KEYS[3]) or '0')
if seen ~= tonumber(ARGV[3]) then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
  redis.call('ZADD', KEYS[2], now + ttl, KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[1])
  redis.call('ZADD', KEYS[2], '+inf', KEYS[1])
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
return 1
"""
# KEYS: index, counter. ARGV: channel, "<host> <nonce>", method. The new counter and how many
# hosts the message reached (each acknowledges it once its memory tier has dropped the method).
_INVALIDATE = """
local entries = redis.call('ZRANGE', KEYS[1], 0, -1)
for i = 1, #entries, 1000 do
  redis.call('UNLINK', unpack(entries, i, math.min(i + 999, #entries)))
end
redis.call('DEL', KEYS[1])
local counter = redis.call('INCR', KEYS[2])
local receivers = redis.call('PUBLISH', ARGV[1], counter .. ' ' .. ARGV[2] .. ' ' .. ARGV[3])
return {counter, receivers}
"""
# KEYS: entry, counter. The body, its remaining time in ms (-1: no expiry), the method's counter.
_GET = "return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1]), tonumber(redis.call('GET', KEYS[2]) or '0')}"


def method_of(key: str) -> str:
    """The method a reply key (``cache_key``) belongs to."""
    return key.partition("\x00")[0]


def namespace(app_name: str, prefix: str = "bridge") -> str:
    """Where ``app_name``'s shared replies live: every key starts with it (braces escaped: the only
    hash tag in a key is its method's)."""
    app = app_name.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")
    return f"{prefix}:cache:{app}"


async def clear(url: str, app_name: str, prefix: str = "bridge") -> int:
    """Delete every key of ``app_name``'s shared replies at ``url`` (replies, counters, the dataset
    token); how many. Hosts serving meanwhile keep their memory tiers until TTL or invalidation."""
    pattern = "".join("\\" + c if c in "*?[]\\" else c for c in namespace(app_name, prefix)) + "[:#]*"
    client = connect(RedisOptions(url, prefix))
    deleted = 0
    try:
        batch: list[Any] = []
        async for key in client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += await _delete(client, batch)
                batch = []
        if batch:
            deleted += await _delete(client, batch)
    finally:
        await client.aclose()
    return deleted


async def _delete(client: Any, keys: list[Any]) -> int:
    """One DEL per key, pipelined (keys of several hash slots: a cluster client routes each)."""
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.delete(key)
    return sum(await pipe.execute())


class SharedTier:
    """Cached replies in the Redis at ``url``, shared by every host serving ``app_name``.

    ``drop(method)`` drops that method's entries from the host's memory tier (``None``: every
    reply) and says how many there were; ``held()`` names the methods with entries there.
    ``run()`` keeps the connection and the invalidation subscription until cancelled; ``get``,
    ``put`` and ``invalidate`` are for the loop."""

    def __init__(self, url: str, app_name: str, drop: Callable[[str | None], int], held: Callable[[], set[str]],
                 *, prefix: str = "bridge",
                 read_timeout: float = READ_TIMEOUT, reconnect_max: float = 5.0) -> None:
        self.url = url
        self.namespace = namespace(app_name, prefix)
        self.channel = f"{self.namespace}#invalidate"
        self.host = secrets.token_hex(6)  # this host's acknowledgements come to namespace#ack:<host>
        self.ack_channel = f"{self.namespace}#ack:{self.host}"
        self.read_timeout = read_timeout
        self.reconnect_max = reconnect_max
        self.live = False  # connected and caught up: reads and writes go to Redis
        self.counts = dict.fromkeys(("hits", "misses", "timeouts", "errors", "stored", "refused", "dropped",
                                     "invalidations", "received", "ackTimeouts", "outages", "attempts",
                                     "staleDropped", "expiredUnwritten"), 0)
        self._acks: dict[str, list[Any]] = {}  # by nonce: [acknowledged, expected or None, Event]
        self._nonces = 0
        self._drop, self._held = drop, held
        self._served = False  # the last connection got as far as sharing
        self._client: Any = None
        self._scripts: dict[str, Any] = {}
        self._counters: dict[str, int] = {}  # by method: the invalidation counter last seen
        self._pending: dict[str, int] = {}  # by method: invalidations not yet applied in Redis
        self._epoch: bytes | None = None  # Redis's dataset token: a new one means it lost its data
        self._away = False  # an outage has been reported and not yet ended
        self._timeouts = 0  # reads in a row that timed out
        self._lost: asyncio.Event | None = None
        self._queue: asyncio.Queue[tuple[str, bytes, float | None, int]] | None = None

    # ---- keys --------------------------------------------------------------------------

    def slot(self, method: str) -> str:
        """The part of ``method``'s keys in braces: its hash slot (any name, braces included)."""
        return f"{self.namespace}:{{{hashlib.blake2b(method.encode(), digest_size=8).hexdigest()}}}"

    def key(self, key: str) -> str:
        """The Redis key of the reply key ``key``."""
        return f"{self.slot(method_of(key))}:{key}"

    # ---- on the loop -------------------------------------------------------------------

    async def get(self, key: str) -> tuple[bytes | None, float | None, int] | None:
        """The body shared under ``key`` (None: none), its remaining seconds (None: no expiry) and
        its method's invalidation counter (what ``put`` of a reply computed now is given). None
        when Redis was not asked or did not answer: while it is away, while an invalidation of the
        method is on its way, or when it takes longer than ``read_timeout``."""
        method = method_of(key)
        if not self.live or self._pending.get(method):
            return None
        slot = self.slot(method)
        try:
            async with asyncio.timeout(self.read_timeout):
                body, pttl, counter = await self._scripts["get"](keys=[f"{slot}:{key}", f"{slot}#counter"])
        except TimeoutError:
            self.counts["timeouts"] += 1
            self._timeouts += 1
            if self._timeouts >= TIMEOUTS_TO_LOSE:
                self._lose(f"{self._timeouts} reads in a row took over {self.read_timeout}s")
            return None
        except Exception as exc:
            self._lose(exc)
            return None
        self._timeouts = 0
        if counter > self._counters.get(method, -1):
            self._counters[method] = counter
        self.counts["misses" if body is None else "hits"] += 1
        return body, (pttl / 1000 if pttl > 0 else None), counter

    def put(self, key: str, body: bytes, ttl: float | None, seen: int) -> None:
        """Share ``body`` under ``key`` (written off the caller's path, in order), unless its
        method was invalidated since its host saw counter ``seen``."""
        if not self.live or self._queue is None:
            return
        try:  # the TTL runs from now, not from when the writer gets to it (it may be behind)
            self._queue.put_nowait((key, body, time.monotonic() + ttl if ttl else None, seen))
        except asyncio.QueueFull:
            self.counts["dropped"] += 1

    def counter(self, method: str) -> int:
        """``method``'s invalidation counter as this host last saw it."""
        return self._counters.get(method, 0)

    def invalidate(self, methods: Iterable[str]) -> Coroutine[Any, Any, None]:
        """Drop ``methods``' shared replies and tell every host: reads of them skip Redis from
        now on until Redis has done it, which the returned coroutine does (if Redis is away, it is
        done on reconnection)."""
        methods = list(methods)
        for method in methods:
            self._pending[method] = self._pending.get(method, 0) + 1
        return self._apply(methods)

    async def _apply(self, methods: list[str]) -> None:
        if not self.live:
            return
        waits = []
        try:
            async with asyncio.timeout(WRITE_TIMEOUT):
                for method in methods:
                    self._nonces += 1
                    nonce = str(self._nonces)
                    waiting = self._acks[nonce] = [0, None, asyncio.Event()]
                    waits.append(nonce)
                    waiting[1] = await self._invalidate(method, nonce)
                    if waiting[0] >= waiting[1]:
                        waiting[2].set()
                    left = self._pending.get(method, 1) - 1  # gone if a reconnection replayed it
                    if left > 0:
                        self._pending[method] = left
                    else:
                        self._pending.pop(method, None)
        except Exception as exc:
            for nonce in waits:
                self._acks.pop(nonce, None)
            self._lose(exc)
            return
        try:  # every host that got the message has dropped the method from its memory tier
            async with asyncio.timeout(ACK_TIMEOUT):
                for nonce in waits:
                    await self._acks[nonce][2].wait()
        except TimeoutError:
            self.counts["ackTimeouts"] += 1
        finally:
            for nonce in waits:
                self._acks.pop(nonce, None)

    async def _invalidate(self, method: str, nonce: str = "-") -> int:
        """Invalidate ``method`` in Redis; how many hosts the message reached."""
        slot = self.slot(method)
        counter, receivers = await self._scripts["invalidate"](
            keys=[f"{slot}#index", f"{slot}#counter"], args=[self.channel, f"{self.host} {nonce}", method])
        self._counters[method] = max(self._counters.get(method, 0), int(counter))
        self.counts["invalidations"] += 1
        return int(receivers)

    def stats(self) -> dict[str, Any]:
        return {"redis": redact(self.url), "live": self.live, **self.counts}

    # ---- the connection ------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, follow invalidations and write replies until cancelled; reconnect with
        backoff and jitter whenever Redis is lost."""
        import anyio
        from redis.backoff import EqualJitterBackoff

        self._lost = asyncio.Event()
        self._queue = asyncio.Queue(WRITES_QUEUED)
        backoff = EqualJitterBackoff(cap=self.reconnect_max, base=0.1)
        self._client = connect(RedisOptions(self.url, timeout=WRITE_TIMEOUT), retries=0)
        for name, source in (("get", _GET), ("set", _SET), ("invalidate", _INVALIDATE)):
            self._scripts[name] = self._client.register_script(source)
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._write_loop)
                failures = 0
                while True:
                    self._served = False
                    self.counts["attempts"] += 1
                    try:
                        await self._serve()
                    except Exception as exc:
                        self._lose(exc)
                    failures = 0 if self._served else failures + 1
                    await asyncio.sleep(backoff.compute(failures))
        finally:
            self.live = False
            with anyio.CancelScope(shield=True), anyio.move_on_after(1.0):
                await self._client.aclose()

    async def _serve(self) -> None:
        """One connection's life: subscribe, catch up, then follow the invalidations until lost."""
        pubsub = self._client.pubsub()
        try:
            async with asyncio.timeout(WRITE_TIMEOUT):
                await pubsub.subscribe(self.channel, self.ack_channel)
                dropped = await self._catch_up()
            self._lost.clear()  # type: ignore[union-attr]
            self._timeouts = 0
            self.live = self._served = True
            if self._away:
                self._away = False
                log.info("shared cache: the Redis at %s is reachable again; sharing resumed (%d local "
                         "entries that could have missed an invalidation dropped)", redact(self.url), dropped)
            else:
                log.info("shared cache: replies shared through the Redis at %s (%s)", redact(self.url),
                         self.namespace)
            while not self._lost.is_set():  # type: ignore[union-attr]
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is None or message["type"] != "message":
                    continue
                if message["channel"] == self.ack_channel.encode():
                    self._acknowledged(message["data"].decode())
                    continue
                ack = self._received(message["data"])
                if ack is not None:
                    async with asyncio.timeout(WRITE_TIMEOUT):
                        await self._client.publish(*ack)
        finally:
            self.live = False
            try:
                async with asyncio.timeout(1.0):
                    await pubsub.aclose()
            except Exception:
                pass

    async def _catch_up(self) -> int:
        """After (re)connecting: replay this host's invalidations made while away, then drop the
        memory entries of methods invalidated meanwhile elsewhere; how many were dropped."""
        epoch_key = f"{self.namespace}#epoch"
        await self._client.set(epoch_key, secrets.token_hex(8), nx=True)
        epoch = await self._client.get(epoch_key)
        while self._pending:  # including any made while this runs: none is left behind
            method = next(iter(self._pending))
            await self._invalidate(method)
            self._pending.pop(method, None)
        if epoch != self._epoch:  # the first connection, or Redis lost its data: no counter known holds
            if self._epoch is not None:
                log.info("shared cache: the Redis at %s lost its data; every local entry is dropped",
                         redact(self.url))
            self._epoch, self._counters = epoch, {}
        dropped = 0
        known = list(self._counters)
        if known:
            pipe = self._client.pipeline(transaction=False)
            for method in known:
                pipe.get(f"{self.slot(method)}#counter")
            for method, value in zip(known, await pipe.execute()):
                counter = int(value or 0)
                if counter != self._counters[method]:
                    self._counters[method] = counter
                    dropped += self._drop(method)
        for method in self._held() - set(known):  # cached while away, the counter never read: unknown
            dropped += self._drop(method)
        self.counts["staleDropped"] += dropped
        return dropped

    def _received(self, data: bytes) -> tuple[str, str] | None:
        """An invalidation: drop the method from memory; the acknowledgement to send (channel, nonce)."""
        try:
            counter_text, host, nonce, method = data.decode().split(" ", 3)
            counter = int(counter_text)
        except ValueError:
            return None  # not one of ours
        self.counts["received"] += 1
        if counter > self._counters.get(method, 0):
            self._counters[method] = counter
        self._drop(method)  # also for this host's own: a reply put back meanwhile is gone too
        return (f"{self.namespace}#ack:{host}", nonce) if nonce != "-" else None

    def _acknowledged(self, nonce: str) -> None:
        waiting = self._acks.get(nonce)
        if waiting is not None:
            waiting[0] += 1
            if waiting[1] is not None and waiting[0] >= waiting[1]:
                waiting[2].set()

    async def _write_loop(self) -> None:
        queue = self._queue
        assert queue is not None
        while True:
            batch = [await queue.get()]
            while not queue.empty() and len(batch) < 64:
                batch.append(queue.get_nowait())
            if not self.live:
                continue
            try:
                async with asyncio.timeout(WRITE_TIMEOUT):
                    pipe = self._client.pipeline(transaction=False)
                    now = time.monotonic()
                    for key, body, deadline, seen in batch:
                        ttl_ms = 0 if deadline is None else round((deadline - now) * 1000)
                        if deadline is not None and ttl_ms < 1:  # it expired waiting: nothing to share
                            self.counts["expiredUnwritten"] += 1
                            continue
                        slot = self.slot(method_of(key))
                        await self._scripts["set"](keys=[self.key(key), f"{slot}#index", f"{slot}#counter"],
                                                   args=[body, ttl_ms, seen], client=pipe)
                    results = await pipe.execute() if len(pipe) else []
            except Exception as exc:
                self._lose(exc)
                continue
            stored = sum(1 for r in results if r == 1)
            self.counts["stored"] += stored
            self.counts["refused"] += len(results) - stored

    def _lose(self, cause: BaseException | str) -> None:
        """Redis is away: skip it from now on, say so once per outage, and reconnect."""
        self.live = False
        self.counts["errors"] += 1
        if self._lost is not None:
            self._lost.set()
        if not self._away:
            self._away = True
            self.counts["outages"] += 1
            log.warning("shared cache: the Redis at %s is unreachable (%s); caching on this host only "
                        "until it is back", redact(self.url), cause or type(cause).__name__)

