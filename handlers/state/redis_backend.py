"""``state`` on Redis: documents shared by every host connected to one Redis, with the semantics
of one host (global versions, the same rebase-or-conflict rule, gap-free ``state.changed``).

Each host keeps a mirror of the documents it has read (``Documents.docs``), advanced only one
version at a time from the document's log in Redis. A patch is checked against the mirror by
the embedded engine's own code (``Documents._prepare``), then appended by a Lua script only if
the document's top version is still the one the mirror had (compare-and-append); if another
host got there first, this host catches up from the log and checks again, so of two racing
patches with overlapping paths exactly one is applied and the other is refused with 4501.

Keys of one document share one hash tag (a digest of its name), so Redis Cluster keeps them in
one slot: ``<prefix>:state:{<tag>}:head`` (hash: version, epoch, name), ``:log`` (a stream whose
entry IDs are ``<epoch>-<version>``), ``:snap`` (the newest snapshot), ``:idem:<digest>``
(idempotency keys, with a TTL). ``<prefix>:state:docs`` lists the names and
``<prefix>:state:changed`` carries a hint ``<epoch> <version> <name>`` after every change: hosts
then read the log from their mirror's version, so a lost hint (a reconnection) loses nothing.
A document's epoch (from Redis's clock when its head is created, plus one at each delete) is in
every hint and log entry, so a mirror of a deleted document, or of one Redis lost, is never taken
for the document now under that name.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from redis import asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from bridge import BridgeError

from .engine import UNAVAILABLE, Doc, Documents, Limits, StartSoon
from .patches import PatchError, apply
from .redis_url import RedisOptions, connect, is_cluster, redact
from .store import Entry, StoreError, dumps

log = logging.getLogger("bridge.state")


# Epochs are decimal strings (a Lua number would be printed as 1.7e+15): a document's head gets
# one from the server's clock when it is created, and a delete adds one, so a host's mirror of
# an earlier document by that name (deleted, or lost with Redis's data) never passes for it.
APPEND = """
local head = redis.call('HMGET', KEYS[1], 'version', 'epoch')
local version = tonumber(head[1]) or 0
local epoch = head[2] or '0'
local done = redis.call('GET', KEYS[4])
if done then
  redis.call('PEXPIRE', KEYS[4], ARGV[11])  -- a write, so that a WAIT after it covers the original too
  return {'dup', done, epoch}
end
if version ~= tonumber(ARGV[1]) or epoch ~= ARGV[2] then return {'moved', tostring(version), epoch} end
if not head[2] then
  local now = redis.call('TIME')
  epoch = now[1] .. string.format('%06d', tonumber(now[2]))
end
local v = tostring(version + 1)
redis.call('XADD', KEYS[2], epoch .. '-' .. v, 'ops', ARGV[4], 'touched', ARGV[5], 'author', ARGV[6],
           'at', ARGV[7], 'size', ARGV[8])
redis.call('HSET', KEYS[1], 'version', v, 'epoch', epoch, 'name', ARGV[3])
if ARGV[9] ~= '' then redis.call('HSET', KEYS[3], 'version', v, 'epoch', epoch, 'value', ARGV[9]) end
local snap = tonumber(redis.call('HGET', KEYS[3], 'version') or '0') or 0
local keep = math.min(snap + 1, version + 2 - tonumber(ARGV[10]))
if keep > 1 then redis.call('XTRIM', KEYS[2], 'MINID', epoch .. '-' .. tostring(keep)) end
redis.call('SET', KEYS[4], v, 'PX', ARGV[11])
redis.call('PUBLISH', ARGV[12], epoch .. ' ' .. v .. ' ' .. ARGV[3])
return {'ok', v, epoch}
"""

DELETE = """
local head = redis.call('HMGET', KEYS[1], 'version', 'epoch')
if (tonumber(head[1]) or 0) == 0 then return 0 end
local epoch = string.format('%.0f', tonumber(head[2]) + 1)
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('HSET', KEYS[1], 'version', '0', 'epoch', epoch, 'name', ARGV[1])
redis.call('PUBLISH', ARGV[2], epoch .. ' 0 ' .. ARGV[1])
return 1
"""

SNAPSHOT = """
local head = redis.call('HMGET', KEYS[1], 'version', 'epoch')
if head[1] ~= ARGV[1] or head[2] ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[2], 'version', ARGV[1], 'epoch', ARGV[2], 'value', ARGV[3])
local keep = tonumber(ARGV[1]) - tonumber(ARGV[4]) + 1
if keep > 1 then redis.call('XTRIM', KEYS[3], 'MINID', ARGV[2] .. '-' .. tostring(keep)) end
return 1
"""


@dataclass(frozen=True, slots=True)
class Keys:
    """The Redis keys of one document (one hash slot)."""

    head: str
    log: str
    snap: str
    idem_prefix: str

    @classmethod
    def of(cls, prefix: str, name: str) -> Keys:
        tag = hashlib.blake2b(name.encode(), digest_size=10).hexdigest()
        base = f"{prefix}:state:{{{tag}}}"
        return cls(f"{base}:head", f"{base}:log", f"{base}:snap", f"{base}:idem:")

    def idem(self, participant: str, key: str) -> str:
        return self.idem_prefix + hashlib.blake2b(f"{participant}\0{key}".encode(), digest_size=16).hexdigest()


def _entry(name: str, entry_id: bytes, fields: dict[bytes, bytes]) -> tuple[int, Entry]:
    epoch, _, version = entry_id.decode().partition("-")
    author = fields[b"author"].decode() or None
    return int(epoch), Entry(name, int(version), orjson.loads(fields[b"ops"]),
                             [tuple(p) for p in orjson.loads(fields[b"touched"])], author,
                             float(fields[b"at"]), int(fields[b"size"]))


class NoStore:
    """In place of the SQLite store: nothing on the Redis backend uses one (collab keeps its
    sessions in Redis too: ``collab/redis_sessions.py``); a use is a bug, and says so."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"the Redis state backend has no SQLite store (asked for {name!r})")


class RedisDocuments(Documents):
    """Documents kept in Redis and shared by every host; this host's mirror in ``docs``."""

    def __init__(self, client: aioredis.Redis, options: RedisOptions, start_soon: StartSoon,
                 limits: Limits | None = None) -> None:
        super().__init__(NoStore(), start_soon, limits)  # type: ignore[arg-type]
        self.client, self.options = client, options
        self.index, self.channel = f"{options.prefix}:state:docs", f"{options.prefix}:state:changed"
        self._epochs: dict[str, int] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        # hints come on a connection of their own that never reconnects by itself: the listener
        # does, so that it catches up after every reconnection
        self._listener = connect(options, retries=0)
        self._append = client.register_script(APPEND)
        self._delete_script = client.register_script(DELETE)
        self._snapshot = client.register_script(SNAPSHOT)
        self._listening = False
        self._tried = asyncio.Event()  # the listener's first attempt has ended, either way
        self._down: BaseException | None = None  # why Redis cannot be used, while it cannot
        self._retry_at = 0.0  # when the listener tries again (monotonic)
        self._closing = False

    @classmethod
    async def open_redis(cls, options: RedisOptions, start_soon: StartSoon, limits: Limits | None = None
                         ) -> RedisDocuments:
        """Connect (StoreError if Redis does not answer). The listener starts with the first call."""
        if is_cluster(options.url) and options.wait_replicas:
            raise StoreError("wait_replicas is not supported with Redis Cluster yet (WAIT must follow the write on "
                             "its node's connection)")
        client = None
        try:
            client = connect(options)
            await client.ping()
        except (RedisError, OSError, ValueError) as exc:
            if client is not None:
                await client.aclose()
            raise StoreError(f"cannot reach the state Redis at {redact(options.url)}: {exc}") from exc
        log.info("state: documents in Redis at %s (prefix %r)", redact(options.url), options.prefix)
        return cls(client, options, start_soon, limits)

    async def close(self) -> None:
        self._closing = True
        self._executor.shutdown(wait=False)
        await self.client.aclose()
        await self._listener.aclose()

    # ---- availability -------------------------------------------------------

    def _unavailable(self, cause: BaseException | str, after: str = "") -> BridgeError:
        """4505 with ``retry_after`` (seconds): Redis cannot be reached, or refused the command
        (an ACL without the keys, out of memory, a replica during a failover)."""
        if isinstance(cause, ResponseError):
            what = f"the state Redis refused the request ({cause})"
        else:
            what = f"the state Redis is unreachable ({str(cause) or type(cause).__name__})"
        retry_after = round(max(0.1, self._retry_at - time.monotonic()), 2) if self._down else 0.5
        return BridgeError(UNAVAILABLE, f"{what}; try again{after}", {"backend": "redis", "retry_after": retry_after})

    async def _ready(self) -> None:
        """Start the listener (in the owner's task group) with the first call; refuse while Redis is down."""
        if not self._listening:
            self._listening = True
            self._start_soon(self._listen)
        if not self._tried.is_set():
            try:
                await asyncio.wait_for(self._tried.wait(), self.options.timeout * 2)
            except TimeoutError:
                raise self._unavailable("no answer") from None
        if self._down is not None:
            raise self._unavailable(self._down)

    async def _listen(self) -> None:
        """Follow the change hints; after each (re)connection catch every mirrored document up,
        so subscribers get exactly the versions they missed. Reconnects with backoff and jitter."""
        attempt = 0
        while not self._closing:
            pubsub = None
            try:
                await self._listener.ping()  # connects (a cluster client learns its slots)
                pubsub = self._listener.pubsub()
                await pubsub.subscribe(self.channel)
                for name in list(self.docs):
                    await self._follow(name)
                if self._down is not None:
                    log.warning("state: the Redis at %s is reachable again; documents caught up",
                                redact(self.options.url))
                self._down, attempt = None, 0
                self._tried.set()
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=30.0)
                    if message is None or message["type"] != "message":
                        continue
                    try:
                        epoch, version, name = message["data"].decode().split(" ", 2)
                        hint = int(epoch), int(version)
                    except ValueError:
                        continue  # not one of ours: the log, not the hint, is what counts
                    doc = self.docs.get(name)
                    if doc is not None and self._behind(name, hint):
                        await self._follow(name, hint)
            except Exception as exc:  # whatever it is, the listener carries on: the host must not stop
                if self._closing:
                    return
                delay = min(self.options.reconnect_max, 0.1 * 2 ** attempt) * random.uniform(0.5, 1.0)
                attempt += 1
                if self._down is None:
                    log.warning("state: lost the Redis at %s (%s); reconnecting", redact(self.options.url), exc,
                                exc_info=not isinstance(exc, (RedisError, OSError)))
                self._down, self._retry_at = exc, time.monotonic() + delay
                self._tried.set()
                await asyncio.sleep(delay)
            finally:
                if pubsub is not None:
                    try:
                        await pubsub.aclose()
                    except (RedisError, OSError):
                        pass

    def _behind(self, name: str, hint: tuple[int, int]) -> bool:
        """Whether the mirror of ``name`` is behind a hint ``(epoch, version)``."""
        doc = self.docs.get(name)
        return doc is not None and (hint[0] != self._epochs.get(name) or hint[1] > doc.version)

    async def _follow(self, name: str, hint: tuple[int, int] | None = None) -> None:
        """Catch ``name`` up for the listener; a document that cannot be rebuilt is logged, not fatal
        (Redis errors are the listener's: it reconnects). A hint this host's own patch already
        answered (its reply came while the hint waited for the lock) costs no read."""
        try:
            async with self._lock(name):
                if hint is None or self._behind(name, hint):
                    await self._catch_up(name)
        except (RedisError, OSError):
            raise
        except Exception:
            log.exception("state: catching %r up from Redis failed", name)

    def _lock(self, name: str) -> asyncio.Lock:
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = asyncio.Lock()
        return lock

    # ---- the mirror ------------------------------------------------------------

    async def _catch_up(self, name: str) -> Doc:
        """Advance the mirror of ``name`` to Redis's top, one version at a time (telling
        subscribers each); reload it (``state.reset``) if the log no longer reaches back to it."""
        doc = self.docs.get(name)
        if doc is None:
            return await self._load(name)
        keys, epoch = Keys.of(self.options.prefix, name), self._epochs[name]
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hmget(keys.head, "version", "epoch")
            pipe.xrange(keys.log, min=f"{epoch}-{doc.version + 1}", max="+")
            (top, top_epoch), rows = await pipe.execute()
        top, top_epoch = int(top or 0), int(top_epoch or 0)
        if top_epoch != epoch:
            if doc.version == 0:  # the empty document this host saw is the one now written
                self._epochs[name] = top_epoch
                return await self._catch_up(name)
            if top_epoch == 0:  # no head at all: Redis lost the document
                self._lost(name, doc.version, top)
            elif top == 0:  # deleted (by any host)
                doc = self.docs[name] = Doc()
                self._epochs[name] = top_epoch
                self._tell_reset_deleted(name)
                return doc
            else:
                log.info("state: %r was replaced (deleted and written again) since version %d; reloading",
                         name, doc.version)
            return await self._load(name, reset=True)
        entries = [e for ep, e in (_entry(name, i, f) for i, f in rows) if ep == epoch]
        if top < doc.version:
            self._lost(name, doc.version, top)
            return await self._load(name, reset=True)
        if top > doc.version and (not entries or entries[0].version != doc.version + 1
                                  or entries[-1].version != top):
            return await self._load(name, reset=True)  # fell behind the kept log
        for entry in entries:
            try:
                value, _ = apply(doc.value, entry.ops)
            except PatchError as exc:
                log.error("state: version %d of %r does not apply to this host's copy (%s); reloading",
                          entry.version, name, exc)
                return await self._load(name, reset=True)
            bound = doc.size + entry.size
            if any(op.get("op") == "copy" for op in entry.ops):
                bound = len(dumps(value))
            doc.advance(entry, value, bound, self.limits.history)
            doc.durable = entry.version
            self._tell(entry)
        return doc

    def _lost(self, name: str, saw: int, top: int) -> None:
        log.error("state: Redis no longer has the %r this host saw at version %d (it has %s): acknowledged "
                  "patches were lost (see the Redis durability settings); subscribers get state.reset",
                  name, saw, f"version {top}" if top else "nothing")

    async def _load(self, name: str, reset: bool = False) -> Doc:
        """Read ``name`` from Redis: its snapshot and the log after it."""
        keys = Keys.of(self.options.prefix, name)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hmget(keys.head, "version", "epoch")
            pipe.hgetall(keys.snap)
            pipe.xrange(keys.log, min="-", max="+")
            (top, epoch), snap, rows = await pipe.execute()
        top, epoch = int(top or 0), int(epoch or 0)
        value: Any = {}
        base = 0
        if snap and int(snap[b"epoch"]) == epoch:
            base, value = int(snap[b"version"]), orjson.loads(snap[b"value"])
        logged = [e for ep, e in (_entry(name, i, f) for i, f in rows) if ep == epoch]  # contiguous, up to top
        after = [e for e in logged if e.version > base]
        if [e.version for e in after] != list(range(base + 1, top + 1)):
            raise BridgeError(UNAVAILABLE, f"the state Redis cannot rebuild {name!r}: the log after its snapshot "
                              f"(version {base}) does not reach version {top}", {"doc": name, "version": top})
        for entry in after:
            value, _ = apply(value, entry.ops)
        doc = Doc.recovered(value, top, logged[-self.limits.history:] if self.limits.history else [])
        self.docs[name], self._epochs[name] = doc, epoch
        if reset:
            self._tell_reset(name)
        return doc

    # ---- reads ---------------------------------------------------------------

    async def _refresh(self, name: str) -> None:
        await self._ready()
        try:
            async with self._lock(name):
                await self._catch_up(name)
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from None

    async def listing(self) -> list[dict[str, Any]]:
        await self._ready()
        try:
            names = sorted(n.decode() for n in await self.client.smembers(self.index))
            async with self.client.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.hget(Keys.of(self.options.prefix, name).head, "version")
                versions = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from None
        return [{"doc": n, "version": int(v)} for n, v in zip(names, versions) if v and int(v)]

    async def value_at(self, name: str, version: int) -> Any:
        doc = self.docs.get(name)
        if doc is not None and doc.version == version:
            return doc.value
        keys = Keys.of(self.options.prefix, name)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hget(keys.head, "epoch")
            pipe.hgetall(keys.snap)
            pipe.xrange(keys.log, min="-", max="+")
            epoch, snap, rows = await pipe.execute()
        epoch = int(epoch or 0)
        base, value = 0, {}
        if snap and int(snap[b"epoch"]) == epoch and int(snap[b"version"]) <= version:
            base, value = int(snap[b"version"]), orjson.loads(snap[b"value"])
        entries = [e for ep, e in (_entry(name, i, f) for i, f in rows) if ep == epoch and base < e.version <= version]
        if [e.version for e in entries] != list(range(base + 1, version + 1)):
            raise StoreError(f"state document {name!r}: version {version} is no longer kept")
        for entry in entries:
            value, _ = apply(value, entry.ops)
        return value

    # ---- writes --------------------------------------------------------------

    async def _patch_as(self, name: str, ops: Any, base: int | None, participant: str, key: str | None) -> int:
        """Check against the caught-up mirror, then compare-and-append; on a race, catch up and
        check again. ``key`` (the caller's idempotency key, per participant and document) or,
        without one, a key of this call's own makes a retried append apply once."""
        await self._ready()
        keys = Keys.of(self.options.prefix, name)
        if key is not None:
            idem, ttl = keys.idem(participant, key), int(self.options.idempotency_ttl * 1000)
        else:  # only the client's immediate retry of a dropped connection can repeat it: a short life
            idem, ttl = keys.idem_prefix + "h" + uuid.uuid4().hex, int(max(10.0, 2 * self.options.timeout) * 1000)
        try:
            async with self._lock(name):
                version = await self._patch_locked(name, keys, idem, ttl, ops, base, participant, key is not None)
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc, "; whether the patch was applied is unknown: " + (
                "retry it with the same idempotency_key" if key is not None
                else "give an idempotency_key to retry safely")) from None
        return version

    async def _patch_locked(self, name: str, keys: Keys, idem: str, ttl: int, ops: Any, base: int | None,
                            participant: str, keyed: bool) -> int:
        if keyed:
            done = await self.client.get(idem)
            if done is not None:
                await self._confirm(name, int(done), idem, ttl)
                return int(done)
        fresh = name not in self.docs  # a mirror this host already has is tried as it is: the
        while True:                    # append refuses it ("moved") if another host got further
            doc = await self._catch_up(name) if fresh else self.docs[name]
            if not fresh and base is not None and base > doc.version:
                fresh = True  # the caller saw a version this mirror has not: read it first
                continue
            if doc.version == 0:
                # named before its first version: state.list skips it until then, and never misses it
                await self.client.sadd(self.index, name)
            try:
                change = await self._prepare(name, ops, base, participant)
            except BridgeError:
                if not fresh:  # decided against a mirror that may be behind: decide again on Redis's top
                    fresh = True
                    continue
                if doc.version == 0 and not any(s.doc == name for s in self.subscriptions.values()):
                    self.docs.pop(name, None)  # a refused first patch leaves no empty mirror behind
                    self._epochs.pop(name, None)
                raise
            version = doc.version + 1
            entry = Entry(name, version, change.ops, change.touched, participant, time.time(), change.size)
            snapshot = b""
            if version % self.limits.snapshot_every == 0:
                snapshot = change.blob if change.blob is not None else dumps(change.value)
            outcome, replicas = await self._append_entry(keys, idem, ttl, entry, snapshot)
            kind = outcome[0].decode()
            if kind == "dup":
                await self._catch_up(name)
                version = int(outcome[1])
            elif kind == "ok":
                self._epochs[name] = int(outcome[2])  # a new document's, from Redis's clock
                doc.advance(entry, change.value, len(snapshot) if snapshot else change.bound, self.limits.history)
                doc.durable = version
                self._tell(entry)
            if kind in ("dup", "ok"):
                self._check_replicas(name, version, replicas)
                return version
            fresh = True  # "moved": another host appended first; catch up and decide again

    async def _append_entry(self, keys: Keys, idem: str, ttl: int, entry: Entry, snapshot: bytes
                            ) -> tuple[list[bytes], int | None]:
        """Run the compare-and-append; with ``wait_replicas``, WAIT on the same connection (WAIT
        counts the replicas that have that connection's writes). The outcome and the replicas."""
        args = [entry.version - 1, self._epochs[entry.doc], entry.doc, orjson.dumps(entry.ops),
                orjson.dumps(entry.touched), entry.author or "", repr(entry.at), entry.size, snapshot,
                max(self.limits.history, self.options.log_kept), ttl, self.channel]
        if not self.options.wait_replicas:
            return await self._append(keys=[keys.head, keys.log, keys.snap, idem], args=args), None
        async with self.client.pipeline(transaction=False) as pipe:
            await self._append(keys=[keys.head, keys.log, keys.snap, idem], args=args, client=pipe)
            pipe.execute_command("WAIT", self.options.wait_replicas, int(self.options.wait_timeout * 1000))
            outcome, replicas = await pipe.execute()
        return outcome, replicas

    async def _confirm(self, name: str, version: int, idem: str, ttl: int) -> None:
        """For a patch found already applied: WAIT after a write of this connection's own (the
        key's expiry renewed), so the replicas counted have everything before it too."""
        if not self.options.wait_replicas:
            return
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.pexpire(idem, ttl)
            pipe.execute_command("WAIT", self.options.wait_replicas, int(self.options.wait_timeout * 1000))
            _, got = await pipe.execute()
        self._check_replicas(name, version, got)

    def _check_replicas(self, name: str, version: int, got: int | None) -> None:
        """4505 when fewer than ``wait_replicas`` replicas confirmed the write in time."""
        if got is not None and got < self.options.wait_replicas:
            raise BridgeError(UNAVAILABLE, f"version {version} of {name!r} is in Redis, but only {got} of "
                              f"{self.options.wait_replicas} replicas confirmed it in time; retry with the same "
                              f"idempotency_key", {"backend": "redis", "doc": name, "version": version,
                                                   "replicas": got, "retry_after": self.options.wait_timeout})

    async def _delete(self, name: str, participant: str) -> bool:
        await self._ready()
        self._guard(participant, name, "edit", [()])
        keys = Keys.of(self.options.prefix, name)
        try:
            async with self._lock(name):
                # the name stays in the index (state.list skips version 0): removing it could race
                # with another host writing the name again, and the head stays for its epoch anyway
                deleted = await self._delete_script(keys=[keys.head, keys.log, keys.snap], args=[name, self.channel])
                if name in self.docs:
                    await self._catch_up(name)  # the new epoch: subscribers get the reset
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from None
        return bool(deleted)

    async def checkpoint(self) -> dict[str, int]:
        """Snapshot every mirrored document at Redis's top (those another host moved meanwhile are skipped)."""
        await self._ready()
        taken: dict[str, int] = {}
        try:
            for name in list(self.docs):
                keys = Keys.of(self.options.prefix, name)
                async with self._lock(name):
                    doc = await self._catch_up(name)
                    if doc.version and await self._snapshot(
                            keys=[keys.head, keys.snap, keys.log],
                            args=[doc.version, self._epochs[name], dumps(doc.value),
                                  max(self.limits.history, self.options.log_kept)]):
                        taken[name] = doc.version
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from None
        return taken
