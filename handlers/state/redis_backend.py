"""``state`` on Redis: documents shared by every host connected to one Redis, with the semantics
of one host (global versions, the same rebase-or-conflict rule, gap-free ``state.changed``).

Each host keeps a mirror of the documents it has read (``Documents.docs``), advanced only one
version at a time from the document's log in Redis (or from a hint carrying the next entry). A
patch is checked against the mirror by the embedded engine's own code (``Documents._prepare``),
then appended by a Lua script only if the document's top version is still the one the mirror had
(compare-and-append); if another host got there first, this host catches up from the log and
checks again, so of two racing patches with overlapping paths exactly one is applied and the
other is refused with 4501. Group commit: the patches to one document that queue while its
previous batch is being appended are decided one after another (each on the mirror as the ones
before it left it) and appended by one script call, all or none.

Keys of one document share one hash tag (a digest of its name), so Redis Cluster keeps them in
one slot: ``<prefix>:state:{<tag>}:head`` (hash: version, epoch, name), ``:log`` (a stream whose
entry IDs are ``<epoch>-<version>``), ``:snap`` (the newest snapshot), ``:idem:<digest>``
(idempotency keys, with a TTL). ``<prefix>:state:docs`` lists the names and
``<prefix>:state:changed`` carries a hint after every version: ``E <epoch> <version> ...`` with the
entry itself when its ops are at most 64 KiB (``parse_hint``), else ``<epoch> <version> <name>``
(the only form of earlier releases, still understood). A host whose mirror is exactly one version
behind applies the entry; otherwise it reads the log from its mirror's version, so a lost hint (a
reconnection) loses nothing.
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
from collections import deque
from dataclasses import dataclass
from typing import Any

import orjson
from redis import asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from bridge import BridgeError

from .engine import UNAVAILABLE, Doc, Documents, Limits, StartSoon
from .patches import PatchError, apply
from bridge.redis_url import RedisOptions, connect, is_cluster, redact, slot
from .store import Entry, StoreError, dumps

log = logging.getLogger("bridge.state")


# Epochs are decimal strings (a Lua number would be printed as 1.7e+15): a document's head gets
# one from the server's clock when it is created, and a delete adds one, so a host's mirror of
# an earlier document by that name (deleted, or lost with Redis's data) never passes for it.
# One call appends a batch of entries (the patches queued for the document, decided one after
# another on the host's mirror): all or none, only if the head is still the version they were
# decided on, none whose idempotency key is already used. KEYS: head, log, snap, then each
# entry's idempotency key; ARGV: version, epoch, name, log kept, channel, then 8 per entry.
APPEND = """
local n = (#ARGV - 5) / 8
for i = 1, n do
  if redis.call('EXISTS', KEYS[3 + i]) == 1 then return {'dup', tostring(i)} end
end
local head = redis.call('HMGET', KEYS[1], 'version', 'epoch')
local version = tonumber(head[1]) or 0
local epoch = head[2] or '0'
if version ~= tonumber(ARGV[1]) or epoch ~= ARGV[2] then return {'moved', tostring(version), epoch} end
if not head[2] then
  local now = redis.call('TIME')
  epoch = now[1] .. string.format('%06d', tonumber(now[2]))
end
local name, v = ARGV[3], version
for i = 1, n do
  local a = 5 + (i - 1) * 8  -- ops, touched, author, at, size, snapshot, idempotency TTL, whole hint
  v = v + 1
  local sv = tostring(v)
  redis.call('XADD', KEYS[2], epoch .. '-' .. sv, 'ops', ARGV[a + 1], 'touched', ARGV[a + 2],
             'author', ARGV[a + 3], 'at', ARGV[a + 4], 'size', ARGV[a + 5])
  if ARGV[a + 6] ~= '' then redis.call('HSET', KEYS[3], 'version', sv, 'epoch', epoch, 'value', ARGV[a + 6]) end
  redis.call('SET', KEYS[3 + i], sv, 'PX', ARGV[a + 7])
  if ARGV[a + 8] ~= '' then  -- the entry itself: a host one version behind needs no read
    redis.call('PUBLISH', ARGV[5], 'E ' .. epoch .. ' ' .. sv .. ' ' .. ARGV[a + 4] .. ' ' .. ARGV[a + 5] .. ' '
               .. #name .. ' ' .. #ARGV[a + 3] .. ' ' .. #ARGV[a + 2] .. '\\n' .. name .. ARGV[a + 3] .. ARGV[a + 2]
               .. ARGV[a + 1])
  else
    redis.call('PUBLISH', ARGV[5], epoch .. ' ' .. sv .. ' ' .. name)
  end
end
redis.call('HSET', KEYS[1], 'version', tostring(v), 'epoch', epoch, 'name', name)
local snap = tonumber(redis.call('HGET', KEYS[3], 'version') or '0') or 0
local keep = math.min(snap + 1, v + 1 - tonumber(ARGV[4]))
if keep > 1 then redis.call('XTRIM', KEYS[2], 'MINID', epoch .. '-' .. tostring(keep)) end
return {'ok', tostring(version + 1), epoch}
"""

#: A hint carries its entry when the ops are at most this many bytes (else the host reads the log).
HINT_OPS_MAX = 64 * 1024


def parse_hint(data: bytes) -> tuple[str, int, int]:
    """``(name, epoch, version)`` of a change hint: ``<epoch> <version> <name>``, or ``E <epoch>
    <version> <at> <size> <name bytes> <author bytes> <touched bytes>\\n`` then the name, author,
    touched and ops (``hint_entry``). ValueError if it is neither."""
    if data.startswith(b"E "):
        header, _, body = data.partition(b"\n")
        _, epoch, version, _, _, n_name, _, _ = header.split(b" ")
        return body[:int(n_name)].decode(), int(epoch), int(version)
    epoch, version, name = data.decode().split(" ", 2)
    return name, int(epoch), int(version)


def hint_entry(data: bytes) -> Entry | None:
    """The entry a hint carries (None for a hint without one); only for a hint ``parse_hint`` read."""
    if not data.startswith(b"E "):
        return None
    header, _, body = data.partition(b"\n")
    _, _, version, at, size, n_name, n_author, n_touched = header.split(b" ")
    a = int(n_name)
    b = a + int(n_author)
    c = b + int(n_touched)
    return Entry(body[:a].decode(), int(version), orjson.loads(body[c:]), [tuple(p) for p in orjson.loads(body[b:c])],
                 body[a:b].decode() or None, float(at), int(size))


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
        base = slot(prefix, "state", name)
        return cls(f"{base}:head", f"{base}:log", f"{base}:snap", f"{base}:idem:")

    def idem(self, participant: str, key: str) -> str:
        return self.idem_prefix + hashlib.blake2b(f"{participant}\0{key}".encode(), digest_size=16).hexdigest()


def _entry(name: str, entry_id: bytes, fields: dict[bytes, bytes]) -> tuple[int, Entry]:
    epoch, _, version = entry_id.decode().partition("-")
    author = fields[b"author"].decode() or None
    return int(epoch), Entry(name, int(version), orjson.loads(fields[b"ops"]),
                             [tuple(p) for p in orjson.loads(fields[b"touched"])], author,
                             float(fields[b"at"]), int(fields[b"size"]))


@dataclass(slots=True, eq=False)
class Queued:
    """A patch waiting for its document's writer, and its caller's answer."""

    ops: Any
    base: int | None
    participant: str
    keyed: bool  # the caller's idempotency key (else one of this call's own)
    idem: str  # that key in Redis
    ttl: int  # its life, ms
    answer: asyncio.Future[int]


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
        self._queues: dict[str, list[Queued]] = {}  # patches waiting for their document's writer
        self._writers: set[asyncio.Task[None]] = set()
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
                    await self._hint(message["data"])
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

    async def _hint(self, data: bytes) -> None:
        """Act on one change hint: a mirror behind it catches up (from the hint's entry when it is
        exactly the next version, else from the log)."""
        try:
            name, epoch, version = parse_hint(data)
        except ValueError:  # UnicodeDecodeError too
            return  # not one of ours: the log, not the hint, is what counts
        if not self._behind(name, (epoch, version)):
            return  # the usual case for this host's own patches: not even the entry is decoded
        try:
            entry = hint_entry(data)
        except (ValueError, TypeError):  # orjson's JSONDecodeError is a ValueError
            entry = None  # the log has it
        await self._follow(name, (epoch, version), entry)

    def _behind(self, name: str, hint: tuple[int, int]) -> bool:
        """Whether the mirror of ``name`` is behind a hint ``(epoch, version)``."""
        doc = self.docs.get(name)
        return doc is not None and (hint[0] != self._epochs.get(name) or hint[1] > doc.version)

    async def _follow(self, name: str, hint: tuple[int, int] | None = None, entry: Entry | None = None) -> None:
        """Catch ``name`` up for the listener; a document that cannot be rebuilt is logged, not fatal
        (Redis errors are the listener's: it reconnects). A hint this host's own patch already
        answered (its reply came while the hint waited for the lock) costs no read, nor does one
        carrying the ``entry`` that is the mirror's next version (same epoch, version + 1)."""
        try:
            async with self._lock(name):
                if hint is None or self._behind(name, hint):
                    doc = self.docs.get(name)
                    if (entry is not None and doc is not None and hint is not None
                            and hint[0] == self._epochs.get(name) and entry.version == doc.version + 1):
                        if not self._advance(name, doc, entry):
                            await self._load(name, reset=True)
                    else:
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
            if not self._advance(name, doc, entry):
                return await self._load(name, reset=True)
        return doc

    def _advance(self, name: str, doc: Doc, entry: Entry) -> bool:
        """Apply another host's ``entry`` (the mirror's next version) and tell subscribers; False
        if it does not apply to this mirror (then it is reloaded)."""
        try:
            value, _ = apply(doc.value, entry.ops)
        except PatchError as exc:
            log.error("state: version %d of %r does not apply to this host's copy (%s); reloading",
                      entry.version, name, exc)
            return False
        bound = doc.size + entry.size
        if any(op.get("op") == "copy" for op in entry.ops):
            bound = len(dumps(value))
        doc.advance(entry, value, bound, self.limits.history)
        doc.durable = entry.version
        self._tell(entry)
        return True

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
        """Queue the patch for the document's writer (``_write``): the patches queued while the
        previous batch was being appended are decided one after another on the mirror and
        appended by one script call (group commit). ``key`` (the caller's idempotency key, per
        participant and document) or, without one, a key of this call's own makes a retried
        append apply once."""
        await self._ready()
        keys = Keys.of(self.options.prefix, name)
        if key is not None:
            idem, ttl = keys.idem(participant, key), int(self.options.idempotency_ttl * 1000)
        else:  # only the client's immediate retry of a dropped connection can repeat it: a short life
            idem, ttl = keys.idem_prefix + "h" + uuid.uuid4().hex, int(max(10.0, 2 * self.options.timeout) * 1000)
        loop = asyncio.get_running_loop()
        q = Queued(ops, base, participant, key is not None, idem, ttl, loop.create_future())
        queue = self._queues.get(name)
        if queue is None:  # the writer of the batch before (if any) took its queue: this one needs its own
            queue = self._queues[name] = []
            # a task of its own, not the owner's task group: anyio's start_soon costs ~30 us a call, and a
            # writer never raises (every caller is answered), so nothing would reach the group anyway
            writer = loop.create_task(self._write(name))
            self._writers.add(writer)
            writer.add_done_callback(self._writers.discard)
        queue.append(q)
        return await q.answer  # a cancelled caller's patch is dropped if its batch has not started yet

    def _unknown(self, exc: BaseException, keyed: bool) -> BridgeError:
        return self._unavailable(exc, "; whether the patch was applied is unknown: " + (
            "retry it with the same idempotency_key" if keyed else "give an idempotency_key to retry safely"))

    async def _write(self, name: str) -> None:
        """Take the patches queued for ``name`` once its lock is free, and commit them as one batch;
        every caller is answered (it raises nothing but its own cancellation)."""
        batch: list[Queued] = []
        try:
            async with self._lock(name):
                batch = [q for q in self._queues.pop(name, []) if not q.answer.done()]
                if batch:
                    await self._commit(name, batch)
        except BaseException as exc:
            if not batch:  # stopped while waiting for the lock: this queue has no other writer
                batch = self._queues.pop(name, [])
            error: BaseException = exc
            if not isinstance(exc, Exception):
                error = BridgeError(UNAVAILABLE, "the state writer was stopped (the host is closing)")
            elif not isinstance(exc, (RedisError, OSError, BridgeError)):
                log.exception("state: committing %d patch(es) to %r failed", len(batch), name)
            for q in batch:
                self._settle(q, error)
            if not isinstance(exc, Exception):
                raise

    async def _commit(self, name: str, batch: list[Queued]) -> None:
        """Decide ``batch`` (under the lock) on the mirror, one after another, and append what is
        accepted with one compare-and-append; on a race, catch up and decide them all again."""
        keys = Keys.of(self.options.prefix, name)
        fresh = name not in self.docs  # a mirror this host already has is tried as it is: the
        todo = batch                   # append refuses it ("moved") if another host got further
        while todo:
            todo = await self._answer_applied(name, todo)
            if not todo:
                return
            doc = await self._catch_up(name) if fresh else self.docs[name]
            if not fresh and any(q.base is not None and q.base > doc.version for q in todo):
                fresh = True  # a caller saw a version this mirror has not: read it first
                continue
            if doc.version == 0:
                # named before its first version: state.list skips it until then, and never misses it
                await self.client.sadd(self.index, name)
            accepted, outcomes = await self._decide(name, doc, todo)
            kept = []
            for q, o in zip(todo, outcomes):
                if isinstance(o, Exception) and not isinstance(o, BridgeError):
                    self._settle(q, o)  # not a refusal but a failure (a hook's Redis error): final
                else:
                    kept.append((q, o))
            todo, outcomes = [q for q, _ in kept], [o for _, o in kept]
            stale = not fresh and any(isinstance(o, BridgeError) for o in outcomes)
            if not accepted:
                if stale:  # refused on a mirror that may be behind: refused for good if it was not
                    before = (doc.version, self._epochs.get(name))
                    after = await self._catch_up(name)
                    if (after.version, self._epochs.get(name)) != before or after is not doc:
                        fresh = True
                        continue
                for q, o in zip(todo, outcomes):
                    self._settle(q, o)
                doc = self.docs.get(name) or doc
                if doc.version == 0 and not any(s.doc == name for s in self.subscriptions.values()):
                    self.docs.pop(name, None)  # a refused first patch leaves no empty mirror behind
                    self._epochs.pop(name, None)
                return
            outcome, replicas = await self._append_batch(keys, name, accepted)
            kind = outcome[0].decode()
            if kind != "ok":  # "moved": another host appended first; "dup": applied meanwhile (elsewhere)
                fresh = True
                continue
            self._epochs[name] = int(outcome[2])  # a new document's, from Redis's clock
            for entry, _, value, bound, _ in accepted:
                doc.advance(entry, value, bound, self.limits.history)
                doc.durable = entry.version
                self._tell(entry)
            for q, o in zip(todo, outcomes):
                if isinstance(o, int):
                    version = accepted[o][0].version
                    try:
                        self._check_replicas(name, version, replicas)
                    except BridgeError as exc:
                        o = exc
                    else:
                        o = version
                self._settle(q, o)
            return

    async def _answer_applied(self, name: str, todo: list[Queued]) -> list[Queued]:
        """Answer the patches whose idempotency key was already used (their version); the others."""
        keyed = [q for q in todo if q.keyed]
        if not keyed:
            return todo
        done = {q.idem: int(v) for q, v in zip(keyed, await self.client.mget([q.idem for q in keyed])) if v is not None}
        rest = []
        for q in todo:
            if q.idem not in done:
                rest.append(q)
                continue
            try:
                await self._confirm(name, done[q.idem], q.idem, q.ttl)
            except BridgeError as exc:
                self._settle(q, exc)
            else:
                self._settle(q, done[q.idem])
        return rest

    async def _decide(self, name: str, doc: Doc, todo: list[Queued]
                      ) -> tuple[list[tuple[Entry, Queued, Any, int, bytes]], list[int | Exception]]:
        """Check each queued patch on the mirror as the ones before it left it (as if they came one
        at a time): the accepted entries (entry, patch, value, size bound, snapshot) and, for each
        patch, the index of its entry (a key used earlier in the batch: that entry's) or its error.
        The mirror itself is not changed: a copy is advanced, and the next patch decided on it."""
        accepted: list[tuple[Entry, Queued, Any, int, bytes]] = []
        outcomes: list[int | Exception] = []
        seen: dict[str, int] = {}
        work = doc
        for i, q in enumerate(todo):
            if q.keyed and q.idem in seen:
                outcomes.append(seen[q.idem])
                continue
            try:
                change = await self._prepare(name, q.ops, q.base, q.participant, work)
            except Exception as exc:
                outcomes.append(exc)
                continue
            version = work.version + 1
            entry = Entry(name, version, change.ops, change.touched, q.participant, time.time(), change.size)
            snapshot = b""
            if version % self.limits.snapshot_every == 0:
                snapshot = change.blob if change.blob is not None else dumps(change.value)
            bound = len(snapshot) if snapshot else change.bound
            seen[q.idem] = len(accepted)
            outcomes.append(len(accepted))
            accepted.append((entry, q, change.value, bound, snapshot))
            if i + 1 < len(todo):  # the next is decided after this one
                if work is doc:
                    work = Doc(doc.value, doc.version, doc.durable, deque(doc.history), doc.size)
                work.advance(entry, change.value, bound, self.limits.history)
        return accepted, outcomes

    def _settle(self, q: Queued, outcome: int | BaseException) -> None:
        """Answer one caller (unless it stopped waiting)."""
        if q.answer.done():
            return
        if isinstance(outcome, int):
            q.answer.set_result(outcome)
        else:
            q.answer.set_exception(self._unknown(outcome, q.keyed) if isinstance(outcome, (RedisError, OSError))
                                   else outcome)

    async def _append_batch(self, keys: Keys, name: str, accepted: list[tuple[Entry, Queued, Any, int, bytes]]
                            ) -> tuple[list[bytes], int | None]:
        """Run the compare-and-append of the batch; with ``wait_replicas``, one WAIT after it on the
        same connection (WAIT counts the replicas that have that connection's writes). The
        outcome and the replicas."""
        args: list[Any] = [accepted[0][0].version - 1, self._epochs[name], name,
                           max(self.limits.history, self.options.log_kept), self.channel]
        for entry, q, _, _, snapshot in accepted:
            ops = orjson.dumps(entry.ops)
            args += [ops, orjson.dumps(entry.touched), entry.author or "", repr(entry.at), entry.size, snapshot,
                     q.ttl, b"1" if len(ops) <= HINT_OPS_MAX else b""]
        script_keys = [keys.head, keys.log, keys.snap, *(q.idem for _, q, _, _, _ in accepted)]
        if not self.options.wait_replicas:
            return await self._append(keys=script_keys, args=args), None
        async with self.client.pipeline(transaction=False) as pipe:
            await self._append(keys=script_keys, args=args, client=pipe)
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
