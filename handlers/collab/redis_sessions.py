"""collab on Redis: sessions shared by every host whose ``state`` backend is one Redis.

Redis holds each session (record, members and permissions, who is here), its locks, the hosts
alive in it, its comments and conflicts, all under one hash tag (a digest of the session id) so
Redis Cluster keeps a session in one slot. A host keeps no session of its own: each operation reads
the session from Redis, runs the same model as one host (``sessions.Collab``) on it, and writes it
back only if no other host changed it meanwhile (a revision compared by a script); locks are granted
by a script of their own (exclusive across hosts, an owner token for renewal and release, expiry by
Redis's clock). Events go over one pub/sub channel; each host passes on those meant for its own
participants. Participant ids are qualified by the host's ``user`` (``alice@laptop/window:3``), so
two machines' windows never collide.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from redis.exceptions import RedisError

from bridge import INVALID_PARAMS, BridgeError
from bridge.redis_url import connect, redact, slot

from ..state.engine import UNAVAILABLE, Documents, StartSoon
from ..state.patches import pointer
from . import events
from . import redis_scripts as lua
from .conflicts import Conflict, from_hook, resolution
from .plugin import TIMEOUT_RESOLVER, audit, denied
from .sessions import (ANYONE, FORBIDDEN, LOCKED, NO_SUCH_CONFLICT, NO_SUCH_SESSION, NOT_A_PARTICIPANT,
                       SESSION_EXISTS, Collab, Denied, Lock, Participant, Session, parse_resource)

log = logging.getLogger("bridge.collab")
T = TypeVar("T")

#: Separates the host's user from the participant id it qualifies.
SEP = "/"
#: Set while a state call runs with a participant id already qualified (a patch through the hub).
_QUALIFIED: ContextVar[bool] = ContextVar("collab_qualified", default=False)


def user_of(participant: str) -> str | None:
    user, sep, _ = participant.partition(SEP)
    return user if sep else None


@dataclass(slots=True)
class SharedSession(Session):
    """A session whose members may also name a user (every participant of that host) besides a
    participant id or ``*``."""

    def permissions(self, who: str) -> list[str]:
        found = self.members.get(who)
        if found is None:
            user = user_of(who)
            found = self.members.get(user) if user is not None else None
        return found if found is not None else self.members.get(ANYONE, [])


@dataclass(frozen=True, slots=True)
class Keys:
    """The Redis keys of one session (one hash slot)."""

    session: str
    locks: str
    hosts: str
    comments: str
    conflicts: str

    @classmethod
    def of(cls, prefix: str, id: str) -> Keys:
        base = slot(prefix, "collab", id)
        return cls(f"{base}:session", f"{base}:locks", f"{base}:hosts", f"{base}:comments", f"{base}:conflicts")

    @property
    def all(self) -> list[str]:
        return [self.session, self.locks, self.hosts, self.comments, self.conflicts]


@dataclass(slots=True)
class Snapshot:
    """A session as Redis had it at ``now`` (Redis's clock, seconds), at revision ``rev``, and
    the users of the hosts alive in it then."""

    session: SharedSession
    rev: int
    now: float
    alive: set[str] = field(default_factory=set)


@dataclass(slots=True)
class Mine:
    """One of this host's participants in one session: its connection and when it last called."""

    connection: Any
    seen: float = field(default_factory=time.monotonic)


class Collected:
    """What a model run emitted, ready to publish."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []

    def __call__(self, event: str, params: dict[str, Any], to: list[Participant] | None) -> None:
        if event in ("collab.lock_released", "collab.lock_expired"):
            return  # locks are Redis's: the scripts that end them tell
        self.messages.append(orjson.dumps({"e": event, "p": params, "to": None if to is None else [p.id for p in to]}))


class SharedHub:
    """What the plugin holds on the Redis backend (``plugin.state``), in place of ``Hub``."""

    shared = True

    def __init__(self, docs: Documents, settings: Any, start_soon: StartSoon, app: Callable[[], Any]) -> None:
        if not settings.user:
            raise RuntimeError("collab on the Redis state backend needs this host's user identity: set "
                               "[plugins.collab] user (or BRIDGE_COLLAB_USER), one per host, e.g. \"alice@laptop\"")
        self.docs = docs
        self.settings = settings
        self.user: str = settings.user
        self.client = docs.client  # type: ignore[attr-defined]
        self.options = docs.options  # type: ignore[attr-defined]
        self.prefix = self.options.prefix
        self.index = f"{self.prefix}:collab:sessions"
        self.governed_key = f"{self.prefix}:collab:governed"
        self.channel = f"{self.prefix}:collab:events"
        self.token = uuid.uuid4().hex  # this process: the owner of the locks it grants
        self._app = app
        self._start_soon = start_soon
        self._load = self.client.register_script(lua.LOAD)
        self._cas = self.client.register_script(lua.CAS)
        self._acquire = self.client.register_script(lua.ACQUIRE)
        self._release = self.client.register_script(lua.RELEASE)
        self._sweep = self.client.register_script(lua.SWEEP)
        self._host = self.client.register_script(lua.HOST)
        self._host_free = self.client.register_script(lua.HOST_FREE)
        self.host_key = f"{self.prefix}:collab:host:{self.user}"
        self._listener = connect(self.options, retries=0)
        self.mine: dict[tuple[str, str], Mine] = {}  # (session, participant) -> this host's
        self.cache: dict[str, Snapshot] = {}  # sessions read by ``sync``, for the guard
        self.governed: dict[str, str] = {}  # doc -> session, as ``sync`` last read it
        self._stopping = False
        self.listening = asyncio.Event()

    # ---- identity -------------------------------------------------------------

    def qualify(self, participant: str) -> str:
        """This host's participant as every host knows it: ``<user>/<participant>``."""
        return f"{self.user}{SEP}{participant}"

    def local(self, participant: str) -> str | None:
        """The id this host's connection knows a qualified participant by (None: another host's)."""
        user, sep, rest = participant.partition(SEP)
        return rest if sep and user == self.user else None

    # ---- life -----------------------------------------------------------------

    async def open(self) -> None:
        """Reach Redis and claim this host's user (an error here fails the plugin)."""
        try:
            await self.client.ping()
            deadline = time.monotonic() + self.settings.host_ttl + 1
            while not await self._claim():  # a process killed meanwhile holds it until its time is up
                if time.monotonic() > deadline:
                    raise RuntimeError(f"collab user {self.user!r} is in use by another live host on this Redis; "
                                       f"give each host a user of its own")
                await asyncio.sleep(0.2)
        except (RedisError, OSError) as exc:
            raise RuntimeError(f"cannot reach the collab Redis at {redact(self.options.url)}: {exc}") from exc

    def start(self) -> None:
        """Guard the documents, listen for events and sweep, in the owner's task group."""
        self.docs.guards.append(self.guard)
        self.docs.conflict_hooks.append(self.record_conflict)
        self.docs.around.append(self._around)  # read the session before the sync guard runs
        self._start_soon(self._listen)
        self._start_soon(self._sweep_forever)
        log.info("collab: sessions in Redis at %s (prefix %r) as user %r", redact(self.options.url), self.prefix,
                 self.user)

    async def stop(self) -> None:
        """Take this host's participants out of their sessions (the others are told now, not after
        ``host_ttl``), stop guarding, free the user."""
        self._stopping = True
        try:
            await asyncio.wait_for(self._leave_all(), self.options.timeout)
        except (BridgeError, TimeoutError) as exc:
            log.warning("collab: this host's participants could not leave their sessions (%s); the other hosts "
                        "remove them after host_ttl", exc)
        if self._around in self.docs.around:
            self.docs.around.remove(self._around)
        if self.guard in self.docs.guards:
            self.docs.guards.remove(self.guard)
        if self.record_conflict in self.docs.conflict_hooks:
            self.docs.conflict_hooks.remove(self.record_conflict)
        try:
            await self._host_free(keys=[self.host_key], args=[self.token])  # the user is free again
        except (RedisError, OSError):
            pass
        try:
            await self._listener.aclose()
        except (RedisError, OSError):
            pass

    async def _leave_all(self) -> None:
        for id, who in list(self.mine):
            try:
                await self.leave(id, who, "disconnected")
            except BridgeError as exc:
                if exc.code != NO_SUCH_SESSION:
                    raise

    @asynccontextmanager
    async def _around(self, doc: str, participant: str, action: str) -> AsyncIterator[str]:
        """Around a state call on ``doc`` (``Documents.around``): the session read first (the guard
        is synchronous); a patch is made as the qualified participant, so its author in the log
        and its idempotency key are the same participant on every host."""
        await self.sync(doc)
        if action != "patch" or _QUALIFIED.get():
            yield participant
            return
        token = _QUALIFIED.set(True)
        try:
            yield self.qualify(participant)
        finally:
            _QUALIFIED.reset(token)

    # ---- reading and writing a session ------------------------------------------

    def keys(self, id: str) -> Keys:
        return Keys.of(self.prefix, id)

    def _unavailable(self, exc: BaseException) -> BridgeError:
        return BridgeError(UNAVAILABLE, f"the collab Redis is unreachable or refused the request ({exc}); try again",
                           {"backend": "redis", "retry_after": 0.5})

    async def _redis(self, call: Callable[[], Any]) -> Any:
        try:
            return await call()
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from None

    async def _write_script(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """Run a script that writes; with the state plugin's ``wait_replicas``, WAIT on the same
        connection and refuse (4505, ``replicas``) when fewer replicas confirmed it in time: it is
        in the primary, and the same call again is safe (a join, a renewal by the owner)."""
        wanted = self.options.wait_replicas
        if not wanted:
            return await self._redis(lambda: script(keys=keys, args=args))

        async def with_wait() -> list[Any]:
            async with self.client.pipeline(transaction=False) as pipe:
                await script(keys=keys, args=args, client=pipe)
                pipe.execute_command("WAIT", wanted, int(self.options.wait_timeout * 1000))
                return list(await pipe.execute())

        out, got = await self._redis(with_wait)
        if got < wanted:
            raise BridgeError(UNAVAILABLE, f"the change is in Redis, but only {got} of {wanted} replicas confirmed it "
                              f"in time; try again", {"backend": "redis", "replicas": got,
                                                      "retry_after": self.options.wait_timeout})
        return out

    async def snapshot(self, id: str) -> Snapshot:
        keys = self.keys(id)
        raw = await self._redis(lambda: self._load(keys=[keys.session, keys.locks, keys.hosts]))
        now, rev = int(raw[0]) / 1000, int(raw[1])
        if not raw[2]:
            self.cache.pop(id, None)
            raise BridgeError(NO_SUCH_SESSION, f"no session {id!r}", {"session": id})
        record = orjson.loads(raw[2])
        session = SharedSession(record["id"], record["created_by"], record["docs"], record["members"],
                                record["created_at"], record.get("emptied_at"))
        for who, p in orjson.loads(raw[3]).items():
            session.participants[who] = Participant(who, p["joined"], now, None, p["away"], p.get("presence"))
        hosts = int(raw[4])
        alive = {h.decode() for h in raw[5:5 + hosts]}
        for i in range(5 + hosts, len(raw), 2):
            core, _, meta = raw[i + 1].partition(b"\n")
            lock = orjson.loads(core)
            session.locks.setdefault(lock["resource"], []).append(Lock(
                lock["resource"], lock["doc"], tuple(lock["path"]), lock["kind"], lock["holder"],
                lock["expires"] / 1000, orjson.loads(meta)))
        snap = Snapshot(session, rev, now, alive)
        self.cache[id] = snap
        for doc in session.docs:
            self.governed[doc] = id
        return snap

    def model(self, snap: Snapshot) -> tuple[Collab, Collected]:
        """The one-host model over ``snap`` alone, at Redis's time; what it emits is collected."""
        told = Collected()
        s = self.settings
        collab = Collab(told, clock=lambda: snap.now, wall=lambda: snap.now, away_after=s.away_after,
                        remove_after=s.remove_after, empty_session_ttl=s.empty_session_ttl, max_lock_ttl=s.max_lock_ttl)
        collab._add(snap.session)
        return collab, told

    async def write(self, snap: Snapshot, told: Collected, *, drop: dict[str, str] | None = None,
                    alive: bool = False, delete: bool = False) -> bool:
        """Write ``snap``'s session back if it is still at its revision, publishing what was told
        and ending the locks of the participants in ``drop`` (with its reason for each). False:
        another host moved it first."""
        session, keys = snap.session, self.keys(snap.session.id)
        people = {p.id: {"joined": p.joined, "away": p.away, "presence": p.presence}
                  for p in session.participants.values()}
        args = [snap.rev, orjson.dumps(session.record()), orjson.dumps(people), self.channel,
                orjson.dumps([m.decode() for m in told.messages]), orjson.dumps(drop or {}), "",
                self.user if alive else "", int(self.settings.host_ttl * 1000), "1" if delete else "0"]
        return bool(await self._write_script(self._cas, keys.all, args))

    async def change(self, id: str, step: Callable[[Collab, Snapshot], T], *, reason: str = "left",
                     alive: bool = False) -> T:
        """Run ``step`` on the session as it is now and write the outcome, again from the top if
        another host changed the session meanwhile; participants ``step`` removed lose their locks."""
        while True:
            snap = await self.snapshot(id)
            before = set(snap.session.participants)
            collab, told = self.model(snap)
            result = step(collab, snap)
            gone = {who: reason for who in before - set(snap.session.participants)}
            if await self.write(snap, told, drop=gone, alive=alive):
                return result

    # ---- the guard on state documents -------------------------------------------

    async def sync(self, doc: str) -> None:
        """Read whether ``doc`` is a session's, and that session, before a state call on it."""
        id = await self._redis(lambda: self.client.hget(self.governed_key, doc))
        if id is None:
            self.governed.pop(doc, None)
            return
        try:
            await self.snapshot(id.decode())
        except BridgeError as exc:
            if exc.code != NO_SUCH_SESSION:
                raise
            self.governed.pop(doc, None)

    def guard(self, who: str, doc: str, action: str, paths: list[Any]) -> None:
        """``Collab.check`` on the session as ``sync`` just read it (this host's caller qualified)."""
        id = self.governed.get(doc)
        snap = self.cache.get(id) if id is not None else None
        if snap is None:
            return
        participant = who if _QUALIFIED.get() else self.qualify(who)
        collab, _ = self.model(snap)
        try:
            collab.check(participant, doc, action, paths)
        except Denied as exc:
            denied(exc, participant, doc=doc, action=action)
            raise
        self.touch(snap.session.id, participant)

    def touch(self, session: str, participant: str) -> None:
        mine = self.mine.get((session, participant))
        if mine is not None:
            mine.seen = time.monotonic()

    def member(self, snap: Snapshot, who: str, need: str | None = None) -> Collab:
        collab, _ = self.model(snap)
        collab.member(snap.session.id, who, need)
        self.touch(snap.session.id, who)
        return collab

    # ---- events -------------------------------------------------------------------

    async def publish(self, event: str, params: dict[str, Any], to: list[str] | None) -> None:
        message = orjson.dumps({"e": event, "p": params, "to": to})
        await self._redis(lambda: self.client.publish(self.channel, message))

    def deliver(self, event: str, params: dict[str, Any], to: list[str] | None) -> None:
        """Pass an event on to this host's participants among ``to`` (None: to this host's client),
        once per connection, ``$meta.to`` naming them as that connection knows them."""
        app = self._app()
        session = params.get("session")

        def mine() -> Iterable[tuple[Any, str]]:
            for participant in to or ():
                local = self.local(participant)
                if local is not None:
                    held = self.mine.get((session, participant)) if session is not None else None
                    yield (held.connection if held is not None else None), local

        events.send(event, params, None if to is None else mine(), app.connection if app is not None else None)

    async def _listen(self) -> None:
        """Follow the event channel, reconnecting with backoff and jitter (events sent while it is
        away are lost: the sessions themselves are in Redis, and read again by the next call)."""
        attempt = 0
        while not self._stopping:
            pubsub = None
            try:
                await self._listener.ping()  # connects (a cluster client learns its slots)
                pubsub = self._listener.pubsub()
                await pubsub.subscribe(self.channel)
                if attempt:
                    log.warning("collab: the Redis at %s is reachable again", redact(self.options.url))
                attempt = 0
                self.listening.set()
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=30.0)
                    if message is None or message["type"] != "message":
                        continue
                    try:
                        body = orjson.loads(message["data"])
                        to = body["to"]
                        self.deliver(body["e"], body["p"], None if to is None else list(to))
                    except Exception:
                        log.exception("collab: an event from Redis could not be passed on")
            except Exception as exc:
                if self._stopping:
                    return
                self.listening.clear()
                if not attempt:
                    log.warning("collab: lost the Redis at %s (%s: %s); reconnecting", redact(self.options.url),
                                type(exc).__name__, exc, exc_info=not isinstance(exc, (RedisError, OSError)))
                delay = min(self.options.reconnect_max, 0.1 * 2 ** attempt) * random.uniform(0.5, 1.0)
                attempt += 1
                await asyncio.sleep(delay)
            finally:
                if pubsub is not None:
                    try:
                        await pubsub.aclose()
                    except (RedisError, OSError):
                        pass

    # ---- expiry ---------------------------------------------------------------------

    async def _sweep_forever(self) -> None:
        failing = False  # logged once per outage, not once a sweep
        while not self._stopping:
            await asyncio.sleep(self.settings.sweep_interval)
            try:
                await self.sweep()
            except Exception as exc:
                if not failing:
                    log.warning("collab: sweeping failed (%s); trying again every sweep", exc,
                                exc_info=not isinstance(exc, BridgeError))
                failing = True
            else:
                failing = False

    async def _claim(self) -> bool:
        """Hold this host's user for this process (``host_ttl``), so no two live hosts share one."""
        return bool(await self._host(keys=[self.host_key], args=[self.token, int(self.settings.host_ttl * 1000)]))

    async def sweep(self) -> None:
        """Every session: locks past their time expire (by a script, on Redis's clock), this host
        says it is alive where it has participants, the participants of hosts no longer alive
        leave (``disconnected``), this host's own go away or leave as they idle, and a session
        empty for ``empty_session_ttl`` expires."""
        if not await self._redis(self._claim):
            log.error("collab: another host now runs as user %r (this one was silent past host_ttl)", self.user)
        ids = [i.decode() for i in await self._redis(lambda: self.client.smembers(self.index))]
        for id in ids:
            keys = self.keys(id)
            here = any(s == id for s, _ in self.mine)
            out = await self._redis(lambda: self._sweep(keys=[keys.session, keys.locks, keys.hosts], args=[
                id, self.channel, self.user if here else "", int(self.settings.host_ttl * 1000)]))
            if out[1] == b"-1":  # gone (expired by another host)
                self._forget(id)
                continue
            try:
                await self._expire(id)
            except BridgeError as exc:
                if exc.code != NO_SUCH_SESSION:
                    raise
                self._forget(id)
        if self.settings.conflict_timeout:
            await self._resolve_stale(ids)

    def _forget(self, id: str) -> None:
        for key in [k for k in self.mine if k[0] == id]:
            del self.mine[key]
        self.cache.pop(id, None)

    async def _expire(self, id: str) -> None:
        s = self.settings
        while True:
            snap = await self.snapshot(id)
            session, now_local = snap.session, time.monotonic()
            collab, told = self.model(snap)
            gone: dict[str, str] = {}
            changed = False
            for who, p in list(session.participants.items()):
                user, mine = user_of(who), self.mine.get((id, who))
                if user == self.user and mine is None:  # an earlier process of this host's
                    gone[who] = "disconnected"
                elif user != self.user and user not in snap.alive:  # its host stopped saying it is alive
                    gone[who] = "disconnected"
                elif mine is not None:
                    idle = now_local - mine.seen
                    if getattr(mine.connection, "closed", False):
                        gone[who] = "disconnected"
                    elif idle >= s.remove_after:
                        gone[who] = "idle"
                    elif idle >= s.away_after and not p.away:
                        p.away, changed = True, True
                        collab.emit("collab.presence", {"session": id, "participant": who, "status": "away",
                                                        "presence": p.presence}, collab.others(session, who))
                    elif idle < s.away_after and p.away:
                        collab.seen(session, p)
                        changed = True
            for who, reason in gone.items():
                collab.leave(id, who, reason)
            emptied = session.emptied_at
            if session.participants:
                session.emptied_at = None
            elif session.emptied_at is None:
                session.emptied_at = snap.now
            expired = not session.participants and snap.now - session.emptied_at >= s.empty_session_ttl
            if not (gone or changed or expired or emptied != session.emptied_at):
                return  # nothing to write
            if await self.write(snap, told, drop=gone, delete=expired):
                break
        for who in gone:
            self.mine.pop((id, who), None)
        if expired:
            await self._redis(lambda: self._unindex(session))
            self._forget(id)
            await self.publish("collab.sessions_changed", {"expired": [id]}, None)

    async def _unindex(self, session: Session) -> None:
        async with self.client.pipeline(transaction=False) as pipe:
            for doc in session.docs:
                pipe.hdel(self.governed_key, doc)
            pipe.srem(self.index, session.id)
            await pipe.execute()
        for doc in session.docs:
            self.governed.pop(doc, None)

    # ---- sessions -------------------------------------------------------------------

    async def create_session(self, id: str, who: str, conn: Any, permissions: dict[str, list[str]],
                             docs: list[str]) -> dict[str, Any]:
        collab = Collab(Collected())
        made = collab.create(id, who, permissions, docs)  # validates, as one host would
        session = SharedSession(made.id, made.created_by, made.docs, made.members, made.created_at)
        snap = Snapshot(session, 0, time.time())
        collab, told = self.model(snap)
        self.mine[(id, who)] = Mine(conn)
        collab.join(id, who, None)
        if not await self.write(snap, told, alive=True):
            self.mine.pop((id, who), None)
            raise BridgeError(SESSION_EXISTS, f"a session {id!r} exists", {"session": id})
        claimed: list[str] = []
        for doc in docs:
            if await self._redis(lambda: self.client.hsetnx(self.governed_key, doc, id)):
                claimed.append(doc)
                continue
            owner = await self._redis(lambda: self.client.hget(self.governed_key, doc))
            async with self.client.pipeline(transaction=False) as pipe:
                for mine in claimed:
                    pipe.hdel(self.governed_key, mine)
                pipe.delete(*self.keys(id).all)
                await self._redis(pipe.execute)
            self.mine.pop((id, who), None)
            raise BridgeError(SESSION_EXISTS, f"document {doc!r} already belongs to session "
                              f"{(owner or b'').decode()!r}", {"session": (owner or b"").decode(), "doc": doc})
        await self._redis(lambda: self.client.sadd(self.index, id))
        await self.publish("collab.sessions_changed", {"created": [id]}, None)
        return collab.view((await self.snapshot(id)).session)

    async def join(self, id: str, who: str, conn: Any) -> dict[str, Any]:
        def step(collab: Collab, snap: Snapshot) -> SharedSession:
            collab.join(id, who, None)
            return snap.session

        self.mine[(id, who)] = Mine(conn)
        try:
            joined = await self.change(id, step, alive=True)
        except BaseException:
            self.mine.pop((id, who), None)
            raise
        collab, _ = self.model(self.cache[id])
        return {**collab.view(joined), "you": who, "permissions": joined.permissions(who)}

    async def leave(self, id: str, who: str, reason: str = "left") -> bool:
        left = await self.change(id, lambda collab, _: collab.leave(id, who, reason), reason=reason)
        self.mine.pop((id, who), None)
        return left

    async def departed(self, who: str, conn: Any) -> list[str]:
        left = []
        for id, participant in [k for k, m in self.mine.items() if k[1] == who and m.connection is conn]:
            try:
                if await self.leave(id, participant, "departed"):
                    left.append(id)
            except BridgeError as exc:
                if exc.code != NO_SUCH_SESSION:
                    raise
                self._forget(id)
        return left

    async def sessions(self, who: str) -> list[dict[str, Any]]:
        ids = sorted(i.decode() for i in await self._redis(lambda: self.client.smembers(self.index)))
        shown = []
        for id in ids:
            try:
                snap = await self.snapshot(id)
            except BridgeError:
                continue
            if snap.session.permissions(who):
                shown.append(snap.session.summary())
        return shown

    async def session(self, id: str, who: str) -> dict[str, Any]:
        snap = await self.snapshot(id)
        return self.member(snap, who).view(snap.session)

    async def share(self, id: str, who: str, target: str, perms: list[str]) -> dict[str, Any]:
        previous: list[str] = []

        def step(collab: Collab, snap: Snapshot) -> SharedSession:
            previous[:] = snap.session.members.get(target, [])
            collab.share(id, who, target, perms)
            for participant in list(snap.session.participants):  # a user's or everyone's taken away
                if not snap.session.permissions(participant):
                    collab.leave(id, participant, "removed")
            return snap.session

        found = await self.change(id, step, reason="removed")
        audit("collab.permission", who, session=id, action="share", target=target,
              permissions=found.members.get(target, []), previous=previous)
        collab, _ = self.model(self.cache[id])
        return collab.view(found)

    async def heartbeat(self, id: str, who: str, presence: Any) -> bool:
        snap = await self.snapshot(id)
        self.member(snap, who)
        participant = snap.session.participants[who]
        if participant.away or (presence is not None and presence != participant.presence):
            await self.change(id, lambda collab, _: collab.heartbeat(id, who, presence))
        return True

    async def broadcast(self, id: str, who: str, payload: Any, event: str | None, to: str | None) -> int:
        snap = await self.snapshot(id)
        collab = self.member(snap, who)
        others = collab.others(snap.session, who)
        if to is not None:
            others = [p for p in others if p.id == to]
            if not others:
                raise BridgeError(INVALID_PARAMS, f"{to!r} is not in session {id!r}", {"session": id, "to": to})
        await self.publish("collab.broadcast", {"session": id, "from": who, "event": event, "payload": payload},
                           [p.id for p in others])
        return len(others)

    # ---- comments ---------------------------------------------------------------------

    async def comment(self, id: str, who: str, text: str, anchor: Any) -> dict[str, Any]:
        snap = await self.snapshot(id)
        self.member(snap, who, "comment")
        if len(text) > self.settings.max_comment_chars:
            raise BridgeError(INVALID_PARAMS, f"a comment is at most {self.settings.max_comment_chars} characters")
        at = time.time()
        entry = {"author": who, "text": text, "anchor": anchor, "at": at}
        seq = await self._redis(lambda: self.client.rpush(self.keys(id).comments, orjson.dumps(entry)))
        note = {"session": id, "seq": seq, **entry}
        await self.publish("collab.comment", note, list(snap.session.participants))
        return note

    async def comments(self, id: str, who: str) -> list[dict[str, Any]]:
        snap = await self.snapshot(id)
        self.member(snap, who, "view")
        rows = await self._redis(lambda: self.client.lrange(self.keys(id).comments, 0, -1))
        return [{"session": id, "seq": i, **orjson.loads(row)} for i, row in enumerate(rows, 1)]

    # ---- locks ------------------------------------------------------------------------

    async def acquire(self, id: str, who: str, resource: str, kind: str, ttl: float, metadata: Any) -> dict[str, Any]:
        if kind not in ("exclusive", "shared"):
            raise BridgeError(FORBIDDEN, f"lock kind must be 'exclusive' or 'shared', not {kind!r}")
        snap = await self.snapshot(id)
        self.member(snap, who, "edit")
        doc, path = parse_resource(resource)
        ttl = min(max(ttl, 0.001), self.settings.max_lock_ttl)
        keys = self.keys(id)
        told = {"session": id, **Lock(resource, doc, path, kind, who, ttl, metadata).view(0.0)}
        out = await self._write_script(self._acquire, [keys.session, keys.locks], [
            id, who, resource, doc, orjson.dumps(list(path)), kind, max(1, int(ttl * 1000)), self.token,
            orjson.dumps(metadata), self.channel, orjson.dumps(told)])
        outcome = out[0].decode()
        if outcome == "gone":
            raise Denied(NOT_A_PARTICIPANT, f"{who} has not joined session {id!r}", {"session": id, "participant": who},
                         session=id, reason="not_joined", needs="edit", held=snap.session.permissions(who))
        if outcome == "locked":
            core, _, meta = out[1].partition(b"\n")
            lock = orjson.loads(core)
            shown = {"resource": lock["resource"], "kind": lock["kind"], "holder": lock["holder"],
                     "expires_in": round(max(0.0, lock["expires"] / 1000 - snap.now), 3)}
            if meta != b"null":
                shown["metadata"] = orjson.loads(meta)
            raise BridgeError(LOCKED, f"{lock['resource']} is locked by {lock['holder']}", {"session": id, **shown})
        lock = orjson.loads(out[1])
        granted = Lock(resource, doc, path, kind, who, lock["expires"] / 1000, orjson.loads(out[4]))
        return granted.view(int(out[3]) / 1000)

    async def release(self, id: str, who: str, resource: str) -> bool:
        snap = await self.snapshot(id)
        self.member(snap, who)
        keys = self.keys(id)
        return bool(await self._write_script(self._release, [keys.session, keys.locks], [
            id, who, resource, self.token, self.channel]))

    async def locks(self, id: str, who: str) -> list[dict[str, Any]]:
        snap = await self.snapshot(id)
        return self.member(snap, who).view(snap.session)["locks"]

    # ---- conflicts ----------------------------------------------------------------------

    async def record_conflict(self, info: dict[str, Any]) -> dict[str, Any] | None:
        """The state documents found a conflict: record it in Redis if the document is a session's."""
        id = self.governed.get(info["doc"])
        if id is None:
            return None
        conflict = await from_hook(info, f"c{uuid.uuid4().hex[:16]}", id, info["participant"] if _QUALIFIED.get()
                                   else self.qualify(info["participant"]), self.docs.value_at)
        await self._save_conflict(conflict)
        snap = self.cache.get(id)
        involved = [p for p in (snap.session.participants if snap else {}) if p in conflict.involved]
        await self.publish("collab.conflict", conflict.view(), involved)
        return {"conflict_id": conflict.id, "session": id}

    async def _save_conflict(self, conflict: Conflict) -> None:
        await self._redis(lambda: self.client.hset(self.keys(conflict.session).conflicts, conflict.id,
                                                   orjson.dumps(conflict.record())))

    async def _conflicts(self, id: str) -> list[Conflict]:
        rows = await self._redis(lambda: self.client.hvals(self.keys(id).conflicts))
        return sorted((Conflict.from_record(orjson.loads(r)) for r in rows), key=lambda c: c.created)

    async def conflicts(self, id: str, who: str, include_resolved: bool) -> list[dict[str, Any]]:
        snap = await self.snapshot(id)
        self.member(snap, who, "view")
        editor = "edit" in snap.session.permissions(who)
        return [c.view() if editor or who in c.involved else c.summary() for c in await self._conflicts(id)
                if include_resolved or c.resolved is None]

    async def _find_conflict(self, conflict_id: str, session: str | None = None) -> Conflict:
        ids = [session] if session is not None else [
            i.decode() for i in await self._redis(lambda: self.client.smembers(self.index))]
        for id in ids:
            raw = await self._redis(lambda: self.client.hget(self.keys(id).conflicts, conflict_id))
            if raw is not None:
                return Conflict.from_record(orjson.loads(raw))
        raise BridgeError(NO_SUCH_CONFLICT, f"no conflict {conflict_id!r}", {"conflict_id": conflict_id})

    async def resolve(self, conflict_id: str, strategy: str, value: Any, who: str) -> dict[str, Any]:
        found = await self._find_conflict(conflict_id)
        if who != TIMEOUT_RESOLVER:
            self.member(await self.snapshot(found.session), who, "edit")
        # one resolver across hosts: SET NX PX on a claim, held until the resolution is recorded
        # (or for 30 s), and the conflict read again under it
        claim = f"{self.keys(found.session).conflicts}:claim:{conflict_id}"
        if not await self._redis(lambda: self.client.set(claim, self.token, nx=True, px=30_000)):
            raise BridgeError(NO_SUCH_CONFLICT, f"conflict {conflict_id!r} is being resolved",
                              {"conflict_id": conflict_id})
        try:
            conflict = await self._find_conflict(conflict_id, found.session)
            if conflict.resolved is not None:
                raise BridgeError(NO_SUCH_CONFLICT, f"conflict {conflict_id!r} is already resolved",
                                  {"conflict_id": conflict_id, "resolved": conflict.resolved})
            await self.docs.refresh(conflict.doc)
            doc = self.docs.docs.get(conflict.doc)
            current = doc.value if doc is not None else {}
            ops, overridden = resolution(conflict, strategy, current, value)
            # the host writes the refused side's ops as their author when it resolves by timeout
            author = conflict.mine_author if who == TIMEOUT_RESOLVER else who
            version = doc.version if doc is not None else 0
            if ops:
                qualified = _QUALIFIED.set(True)
                try:
                    version = await self.docs.patch(conflict.doc, ops, None, author)
                finally:
                    _QUALIFIED.reset(qualified)
            conflict.resolved = {"strategy": strategy, "by": who, "version": version, "overridden": overridden}
            await self._save_conflict(conflict)
        finally:
            await self._redis(lambda: self.client.delete(claim))
        audit("collab.resolved", who, session=conflict.session, conflict_id=conflict_id, doc=conflict.doc,
              path=pointer(conflict.path), strategy=strategy, base_version=conflict.base_version,
              conflict_version=conflict.current_version, version=version, overridden=overridden,
              mine_author=conflict.mine_author, theirs_authors=conflict.theirs_authors)
        snap = self.cache.get(conflict.session)
        wanted = conflict.involved | {who}
        await self.publish("collab.conflict_resolved", {"conflict_id": conflict_id, "session": conflict.session,
                                                        "doc": conflict.doc, **conflict.resolved},
                           [p for p in (snap.session.participants if snap else {}) if p in wanted])
        return {"conflict_id": conflict_id, **conflict.resolved}

    async def _resolve_stale(self, ids: list[str]) -> None:
        stale = time.time() - self.settings.conflict_timeout
        for id in ids:
            for conflict in await self._conflicts(id):
                if conflict.resolved is None and conflict.created <= stale:
                    try:
                        await self.resolve(conflict.id, self.settings.conflict_default, None, TIMEOUT_RESOLVER)
                    except BridgeError as exc:
                        log.info("collab: resolving %s after its timeout: %s", conflict.id, exc.message)
