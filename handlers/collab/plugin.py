"""The built-in ``collab`` plugin: sessions over ``state`` documents, with participants and
their permissions, presence, locks and conflicts. Sessions, members, conflicts and comments are
kept in the state database; presence and locks live in the host's memory. On the Redis state
backend, all of it is kept in Redis and shared by every host (``redis_sessions.SharedHub``,
in place of ``Hub``). Refusals for want of
membership or permission, permission changes, locks released by others and conflict
resolutions go to the app's audit log."""

from __future__ import annotations

import itertools
import logging
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Literal

import anyio
import orjson
from pydantic import BaseModel, Field, field_validator

from bridge import INVALID_PARAMS, BridgeError, Context, Plugin, __version__
from bridge.identity import participant_id
from bridge.middleware import Next, Request

from ..state import plugin as state
from ..state.engine import UNAVAILABLE, Documents, StartSoon
from ..state.patches import Path, pointer
from . import events
from .conflicts import Conflict, from_hook, resolution
from .sessions import FORBIDDEN, NO_SUCH_CONFLICT, Collab, Denied, Participant

log = logging.getLogger("bridge.collab")

MIGRATIONS = [
    """
    CREATE TABLE collab_sessions (id TEXT PRIMARY KEY, record BLOB NOT NULL);
    CREATE TABLE collab_conflicts (id TEXT PRIMARY KEY, session TEXT NOT NULL, record BLOB NOT NULL);
    CREATE TABLE collab_comments (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, session TEXT NOT NULL, author TEXT NOT NULL,
        text TEXT NOT NULL, anchor BLOB, at REAL NOT NULL);
    """,
]


class CollabSettings(BaseModel):
    away_after: float = Field(default=300, gt=0, description="seconds without a call before a participant is away")
    remove_after: float = Field(default=600, gt=0, description="seconds without a call before a participant is removed")
    empty_session_ttl: float = Field(default=3600, ge=0, description="seconds an empty session is kept")
    max_lock_ttl: float = Field(default=3600, gt=0, description="longest lock a participant may take")
    sweep_interval: float = Field(default=1.0, gt=0, description="seconds between expiry checks")
    max_comment_chars: int = Field(default=10_000, ge=1)
    conflict_timeout: float = Field(default=0, ge=0, description="seconds a conflict may stay unresolved before "
                                    "the host resolves it with conflict_default (0: never)")
    conflict_default: Literal["mine", "theirs", "merge"] = Field(default="theirs", description="how a conflict "
                                                                "left past conflict_timeout is resolved")
    user: str | None = Field(default=None, description="on the Redis state backend (required there): this host's "
                             "user identity, one per host (e.g. alice@laptop); every participant id of this host is "
                             "qualified by it (alice@laptop/window:3). Set by whoever runs the host, never by a caller")
    host_ttl: float = Field(default=15.0, gt=0, description="on the Redis state backend: seconds after a host's last "
                            "sign of life before its participants leave the sessions (reason disconnected) on the others")

    @field_validator("user")
    @classmethod
    def _user(cls, value: str | None) -> str | None:
        if value is not None and (not 0 < len(value) <= 128 or "/" in value or not value.isprintable()
                                  or value.strip() != value or value == "*"):
            raise ValueError("user is 1 to 128 printable characters, without '/' or surrounding spaces, not '*'")
        return value


class Hub:
    """What the plugin holds while the host runs (``plugin.state``): the collab model wired to the
    state documents, the store and the connection; its sweeper runs in the task group of
    ``start_soon``."""

    shared = False  # SharedHub (Redis) says True

    def __init__(self, docs: Documents, settings: CollabSettings, start_soon: StartSoon) -> None:
        self.docs = docs
        self._start_soon = start_soon
        self._sweeping = anyio.CancelScope()  # the sweeper's; stop() cancels it, even before it runs
        self.model = Collab(self.emit, away_after=settings.away_after, remove_after=settings.remove_after,
                            empty_session_ttl=settings.empty_session_ttl, max_lock_ttl=settings.max_lock_ttl)
        self.settings = settings
        self.conflicts: dict[str, Conflict] = {}
        self._ids = itertools.count(1)

    async def start(self) -> None:
        await self.load()
        self.start_sweeping()

    async def load(self) -> None:
        """Read the sessions and conflicts back from the store; from then on, guard the documents."""
        store = self.docs.store
        await self.docs.run(store.migrate, "collab", MIGRATIONS)
        sessions = await self.docs.run(lambda: store.db.execute("SELECT record FROM collab_sessions").fetchall())
        for (record,) in sessions:
            self.model.load(orjson.loads(record))
        rows = await self.docs.run(lambda: store.db.execute("SELECT record FROM collab_conflicts").fetchall())
        for (record,) in rows:
            conflict = Conflict.from_record(orjson.loads(record))
            self.conflicts[conflict.id] = conflict
        self._ids = itertools.count(len(self.conflicts) + 1)
        self.docs.guards.append(self.guard)
        self.docs.conflict_hooks.append(self.record_conflict)
        log.info("collab: %d session(s), %d conflict(s) recovered", len(self.model.sessions), len(self.conflicts))

    def start_sweeping(self) -> None:
        self._start_soon(self._sweep_forever)

    async def stop(self) -> None:
        """Stop sweeping and stop guarding the documents (which stay open: they are state's)."""
        self._sweeping.cancel()
        if self.guard in self.docs.guards:
            self.docs.guards.remove(self.guard)
        if self.record_conflict in self.docs.conflict_hooks:
            self.docs.conflict_hooks.remove(self.record_conflict)

    # ---- the guard on state documents, audited -------------------------------

    def guard(self, who: str, doc: str, action: str, paths: list[Path]) -> None:
        """``Collab.check``, with its refusals for want of membership or permission audited."""
        try:
            self.model.check(who, doc, action, paths)
        except Denied as exc:
            denied(exc, who, doc=doc, action=action)
            raise

    # ---- events -------------------------------------------------------------

    def emit(self, event: str, params: dict[str, Any], to: list[Participant] | None) -> None:
        """Send ``event`` once per connection, naming its recipients in ``$meta.to`` (None: everyone)."""
        app = plugin.app
        events.send(event, params, None if to is None else [(p.connection, p.id) for p in to],
                    app.connection if app is not None else None)

    async def _sweep_forever(self) -> None:
        with self._sweeping:
            while True:
                await anyio.sleep(self.settings.sweep_interval)
                try:
                    await self.sweep()
                except Exception:
                    log.exception("collab: sweeping failed")

    async def sweep(self) -> None:
        expired = self.model.sweep()
        for id in expired:
            await self.docs.run(self._delete_session, id)
        if expired:
            self.emit("collab.sessions_changed", {"expired": expired}, None)
        timeout = self.settings.conflict_timeout
        if timeout:
            stale = time.time() - timeout
            for conflict in [c for c in self.conflicts.values() if c.resolved is None and c.created <= stale]:
                try:  # by the host, as the app declared: recorded and told like anyone's resolution
                    await self.resolve(conflict.id, self.settings.conflict_default, None, TIMEOUT_RESOLVER)
                except BridgeError as exc:
                    log.warning("collab: resolving %s after its timeout failed: %s", conflict.id, exc.message)

    # ---- durability ---------------------------------------------------------

    async def save(self, session_id: str) -> None:
        record = orjson.dumps(self.model.get(session_id).record())
        await self.docs.run(self._write, "INSERT OR REPLACE INTO collab_sessions VALUES (?, ?)", (session_id, record))

    async def save_conflict(self, conflict: Conflict) -> None:
        await self.docs.run(self._write, "INSERT OR REPLACE INTO collab_conflicts VALUES (?, ?, ?)",
                            (conflict.id, conflict.session, orjson.dumps(conflict.record())))

    def _write(self, sql: str, args: tuple[Any, ...]) -> None:
        with self.docs.store.transaction() as db:
            db.execute(sql, args)

    def _delete_session(self, id: str) -> None:
        with self.docs.store.transaction() as db:
            db.execute("DELETE FROM collab_sessions WHERE id = ?", (id,))
            db.execute("DELETE FROM collab_conflicts WHERE session = ?", (id,))
            db.execute("DELETE FROM collab_comments WHERE session = ?", (id,))

    # ---- conflicts ----------------------------------------------------------

    async def record_conflict(self, info: dict[str, Any]) -> dict[str, Any] | None:
        """The state documents found a conflict: record it if the document is a session's."""
        session_id = self.model.governed.get(info["doc"])
        if session_id is None:
            return None
        conflict = await from_hook(info, f"c{next(self._ids)}-{int(time.time() * 1000)}", session_id,
                                   info["participant"], self.docs.value_at)
        self.conflicts[conflict.id] = conflict
        await self.save_conflict(conflict)
        self.emit("collab.conflict", conflict.view(), self._involved(conflict))
        return {"conflict_id": conflict.id, "session": session_id}

    def _involved(self, conflict: Conflict, *more: str) -> list[Participant]:
        session = self.model.sessions.get(conflict.session)
        if session is None:
            return []
        wanted = conflict.involved | set(more)
        return [p for p in session.participants.values() if p.id in wanted]

    async def resolve(self, conflict_id: str, strategy: str, value: Any, who: str) -> dict[str, Any]:
        conflict = self.conflicts.get(conflict_id)
        if conflict is None:
            raise BridgeError(NO_SUCH_CONFLICT, f"no conflict {conflict_id!r}", {"conflict_id": conflict_id})
        if conflict.resolved is not None:
            raise BridgeError(NO_SUCH_CONFLICT, f"conflict {conflict_id!r} is already resolved",
                              {"conflict_id": conflict_id, "resolved": conflict.resolved})
        if who != TIMEOUT_RESOLVER:
            self.model.member(conflict.session, who, "edit")
        doc = self.docs.docs.get(conflict.doc)
        current = doc.value if doc is not None else {}
        ops, overridden = resolution(conflict, strategy, current, value)
        author = conflict.mine_author if who == TIMEOUT_RESOLVER else who  # the host writes the refused side's ops
        version = await self.docs.patch(conflict.doc, ops, None, author) if ops else (doc.version if doc else 0)
        conflict.resolved = {"strategy": strategy, "by": who, "version": version, "overridden": overridden}
        audit("collab.resolved", who, session=conflict.session, conflict_id=conflict_id, doc=conflict.doc,
              path=pointer(conflict.path), strategy=strategy, base_version=conflict.base_version,
              conflict_version=conflict.current_version, version=version, overridden=overridden,
              mine_author=conflict.mine_author, theirs_authors=conflict.theirs_authors)
        await self.save_conflict(conflict)
        self.emit("collab.conflict_resolved", {"conflict_id": conflict_id, "session": conflict.session,
                                               "doc": conflict.doc, **conflict.resolved},
                  self._involved(conflict, who))
        return {"conflict_id": conflict_id, **conflict.resolved}


#: Who resolves a conflict left past ``conflict_timeout`` (in its ``resolved.by``).
TIMEOUT_RESOLVER = "host:conflict_timeout"


def audit(event: str, participant: str | None, **fields: Any) -> None:
    """Write to the audit log of the app the plugin is mounted on (none: nothing)."""
    plugin.audit(event, participant, **fields)


def denied(exc: Denied, who: str, **about: Any) -> None:
    """Audit a refusal once (``collab.denied``), with what the caller asked for in ``about``."""
    if not exc.recorded:
        exc.recorded = True
        audit("collab.denied", who, **exc.audit, **about)


#: Parameters that tell an auditor what a refused collab call asked for, and their names in
#: the entry (payloads, comment texts and values are left out).
_ASKED = {"participant": "target", "permissions": "granting", "resource": "resource", "kind": "kind",
          "conflict_id": "conflict_id", "strategy": "strategy"}


async def audit_denials(request: Request, call_next: Next) -> Any:
    """Middleware of the collab methods: a refusal for want of membership or permission is audited."""
    try:
        return await call_next(request)
    except Denied as exc:
        kwargs = request.kwargs or {}
        denied(exc, request.participant, method=request.name,
               **{_ASKED[k]: v for k, v in kwargs.items() if k in _ASKED})
        raise


@asynccontextmanager
async def lifespan(plugin: Plugin) -> AsyncIterator[Any]:
    """Load the sessions and conflicts from the state documents, guard those documents and sweep
    expiries in a task group of this lifetime; at the end stop both, before the documents close."""
    async with AsyncExitStack() as stack:
        docs = await _documents(plugin, stack)
        settings = plugin.settings or CollabSettings()
        tasks = anyio.create_task_group()
        if _shared(docs):
            from .redis_sessions import SharedHub

            if settings.host_ttl <= 2 * settings.sweep_interval:
                raise RuntimeError("host_ttl must be more than twice sweep_interval (a host says it is alive "
                                   "once a sweep)")
            shared = SharedHub(docs, settings, tasks.start_soon, lambda: plugin.app)
            await shared.open()  # before the group: its error is what the plugin failed of
            async with tasks:
                shared.start()
                with anyio.move_on_after(settings.host_ttl):  # events from the first call on (else: logged)
                    await shared.listening.wait()
                try:
                    yield shared
                finally:
                    await shared.stop()
                tasks.cancel_scope.cancel()
            log.info("collab: stopped")
            return
        started = Hub(docs, settings, tasks.start_soon)
        await started.load()  # before the group: its error is what the plugin failed of
        async with tasks:
            started.start_sweeping()
            try:
                yield started
            finally:
                await started.stop()
            tasks.cancel_scope.cancel()
        log.info("collab: stopped")


def _shared(docs: Documents) -> bool:
    """Whether the documents are on Redis (its module is imported only where they are)."""
    backend = sys.modules.get("bridge.builtins.state.redis_backend")
    return backend is not None and isinstance(docs, backend.RedisDocuments)


async def _documents(plugin: Plugin, stack: AsyncExitStack) -> Documents:
    """The state plugin's documents (its ``state``), opened once: if it has not started (it is
    mounted after collab, or not at all), through its lifespan entered on ``stack``, and left in
    its ``state`` for it when it is mounted on the same app; if it failed, collab fails too."""
    owner = state.plugin
    if owner.state is not None:
        return owner.state
    app = plugin.app
    mounted = app is not None and owner.app is app
    if mounted and any(p is owner and s is not None and s.status == "failed" for p, s in app.lifespans):
        raise RuntimeError("the state plugin failed to start")
    docs: Documents = await stack.enter_async_context(state.lifespan(owner))
    if mounted:
        owner.state = docs
        stack.callback(setattr, owner, "state", None)
    return docs


plugin = Plugin("collab", __version__, description="Sessions, participants, presence, locks and conflicts.",
                settings=CollabSettings, lifespan=lifespan)


def hub() -> Any:
    """The running ``Hub`` (embedded) or ``SharedHub`` (Redis: it has ``shared``)."""
    started = plugin.state
    if started is None:
        raise BridgeError(UNAVAILABLE, "the collab plugin has not started")
    return started


def me(h: Any, ctx: Context) -> str:
    """The caller's participant id as every host knows it (qualified by ``user`` on Redis)."""
    return h.qualify(ctx.participant) if getattr(h, "shared", False) else ctx.participant


@plugin.method("create_session")
async def create_session(id: str, ctx: Context, permissions: dict[str, list[str]] | None = None,
                         docs: list[str] | None = None) -> dict[str, Any]:
    """Create session ``id`` governing state ``docs``; ``permissions`` maps participants (``*``:
    anyone else) to ``edit``, ``view``, ``comment``, ``share``. The creator holds all four and joins."""
    h = hub()
    if h.shared:
        who = me(h, ctx)
        view = await h.create_session(id, who, ctx.connection, permissions or {}, docs or [])
        audit("collab.permission", who, session=id, action="create", docs=view["docs"], members=view["members"])
        return view
    created = h.model.create(id, ctx.participant, permissions or {}, docs or [])
    audit("collab.permission", ctx.participant, session=id, action="create", docs=created.docs,
          members=created.members)
    h.model.join(id, ctx.participant, ctx.connection)
    await h.save(id)
    h.emit("collab.sessions_changed", {"created": [id]}, None)
    return h.model.view(h.model.get(id))


@plugin.method("join", middleware=[audit_denials])
async def join(session: str, ctx: Context) -> dict[str, Any]:
    """Join a session the caller has permissions in; the others get ``collab.participant_joined``."""
    h = hub()
    if h.shared:
        return await h.join(session, me(h, ctx), ctx.connection)
    was_empty = not h.model.get(session).participants
    joined = h.model.join(session, ctx.participant, ctx.connection)
    if was_empty:
        await h.save(session)
    return {**h.model.view(joined), "you": ctx.participant, "permissions": joined.permissions(ctx.participant)}


@plugin.method("leave")
async def leave(session: str, ctx: Context) -> bool:
    """Leave a session (the caller's locks are released); false if the caller was not in it."""
    h = hub()
    if h.shared:
        return await h.leave(session, me(h, ctx))
    left = h.model.leave(session, ctx.participant)
    if left and not h.model.get(session).participants:
        await h.save(session)
    return left


@plugin.method("departed", middleware=[audit_denials])
async def departed(participant: str, ctx: Context) -> list[str]:
    """``participant`` is gone for good (its Electron window closed or reloaded): it leaves every
    session it joined through this connection at once, its locks released and the others told
    (``reason: departed``). Only the connection itself may say so (a call that declares no
    caller: the Electron main process, never a window). Returns the sessions it left."""
    if ctx.participant != participant_id(None, ctx.connection.serial):
        raise Denied(FORBIDDEN, "collab.departed is accepted only from the connection itself, not from a caller "
                     f"it declares ({ctx.participant})", {"participant": participant},
                     reason="forbidden", needs="connection", held=[])
    h = hub()
    if h.shared:
        return await h.departed(h.qualify(participant), ctx.connection)
    left = h.model.depart(participant, ctx.connection)
    for id in left:
        if not h.model.get(id).participants:
            await h.save(id)
    return left


@plugin.method("sessions", idempotent=True)
async def sessions(ctx: Context) -> list[dict[str, Any]]:
    """The sessions the caller may join: ``[{id, docs, participants, created_by}]``."""
    h = hub()
    if h.shared:
        return await h.sessions(me(h, ctx))
    return h.model.visible(ctx.participant)


@plugin.method("session", idempotent=True, middleware=[audit_denials])
async def session(session: str, ctx: Context) -> dict[str, Any]:
    """One session as its participants see it: members, who is here, locks."""
    h = hub()
    if h.shared:
        return await h.session(session, me(h, ctx))
    return h.model.view(h.model.member(session, ctx.participant))


@plugin.method("share", middleware=[audit_denials])
async def share(session: str, participant: str, permissions: list[str], ctx: Context) -> dict[str, Any]:
    """Give ``participant`` these permissions (``[]`` takes them away); needs ``share``."""
    h = hub()
    if h.shared:
        return await h.share(session, me(h, ctx), participant, permissions)
    found = h.model.get(session)
    previous = found.members.get(participant, [])
    holds = [lock for held in found.locks.values() for lock in held if lock.holder == participant]
    h.model.share(session, ctx.participant, participant, permissions)
    audit("collab.permission", ctx.participant, session=session, action="share", target=participant,
          permissions=found.members.get(participant, []), previous=previous)
    if participant != ctx.participant and participant not in found.participants:  # removed: its locks went
        for lock in holds:
            audit("collab.lock_released_by_other", ctx.participant, session=session, holder=participant,
                  resource=lock.resource, kind=lock.kind, reason="removed")
    await h.save(session)
    return h.model.view(h.model.get(session))


@plugin.method("heartbeat", middleware=[audit_denials])
async def heartbeat(session: str, ctx: Context, presence: Any = None) -> bool:
    """I am here (any call in the session counts too); ``presence`` (a cursor, a selection) is
    passed on to the others as ``collab.presence`` when it changes."""
    h = hub()
    if h.shared:
        return await h.heartbeat(session, me(h, ctx), presence)
    h.model.heartbeat(session, ctx.participant, presence)
    return True


@plugin.method("broadcast", middleware=[audit_denials])
async def broadcast(session: str, payload: Any, ctx: Context, event: str | None = None,
                    to: str | None = None) -> int:
    """Send ``collab.broadcast {session, from, event, payload}`` to everyone else in the session,
    or with ``to`` to that participant alone (it must be in the session); how many were told."""
    h = hub()
    if h.shared:
        return await h.broadcast(session, me(h, ctx), payload, event, to)
    found = h.model.member(session, ctx.participant)
    others = h.model.others(found, ctx.participant)
    if to is not None:
        others = [p for p in others if p.id == to]
        if not others:
            raise BridgeError(INVALID_PARAMS, f"{to!r} is not in session {session!r}", {"session": session, "to": to})
    h.emit("collab.broadcast", {"session": session, "from": ctx.participant, "event": event, "payload": payload},
           others)
    return len(others)


@plugin.method("comment", middleware=[audit_denials])
async def comment(session: str, text: str, ctx: Context, anchor: Any = None) -> dict[str, Any]:
    """Add a comment (needs ``comment``); kept with the session and sent as ``collab.comment``."""
    h = hub()
    if h.shared:
        return await h.comment(session, me(h, ctx), text, anchor)
    found = h.model.member(session, ctx.participant, "comment")
    if len(text) > h.settings.max_comment_chars:
        raise BridgeError(INVALID_PARAMS, f"a comment is at most {h.settings.max_comment_chars} characters")
    at = time.time()

    def add() -> int:
        with h.docs.store.transaction() as db:
            cursor = db.execute(
                "INSERT INTO collab_comments (session, author, text, anchor, at) VALUES (?, ?, ?, ?, ?)",
                (session, ctx.participant, text, orjson.dumps(anchor), at))
            return int(cursor.lastrowid or 0)

    seq = await h.docs.run(add)
    note = {"session": session, "seq": seq, "author": ctx.participant, "text": text, "anchor": anchor, "at": at}
    h.emit("collab.comment", note, list(found.participants.values()))
    return note


@plugin.method("comments", idempotent=True, middleware=[audit_denials])
async def comments(session: str, ctx: Context) -> list[dict[str, Any]]:
    """The session's comments, oldest first."""
    h = hub()
    if h.shared:
        return await h.comments(session, me(h, ctx))
    h.model.member(session, ctx.participant, "view")
    rows = await h.docs.run(lambda: h.docs.store.db.execute(
        "SELECT seq, author, text, anchor, at FROM collab_comments WHERE session = ? ORDER BY seq",
        (session,)).fetchall())
    return [{"session": session, "seq": s, "author": a, "text": t, "anchor": orjson.loads(n), "at": at}
            for s, a, t, n, at in rows]


@plugin.method("acquire_lock", middleware=[audit_denials])
async def acquire_lock(session: str, resource: str, ctx: Context,
                       kind: Literal["exclusive", "shared"] = "exclusive",
                       ttl: float = Field(60, gt=0), metadata: Any = None) -> dict[str, Any]:
    """Lock ``resource`` (``doc`` or ``doc#/json/pointer``) for ``ttl`` seconds (again to renew);
    while held, others' edits of it are refused (4603, naming the holder). ``exclusive`` excludes
    every other lock on it, ``shared`` only exclusive ones. ``metadata`` (any JSON: what the
    holder is doing) is shown with the lock. Needs ``edit``."""
    h = hub()
    if h.shared:
        return await h.acquire(session, me(h, ctx), resource, kind, ttl, metadata)
    lock = h.model.acquire(session, ctx.participant, resource, kind, ttl, metadata)
    return lock.view(h.model.clock())


@plugin.method("release_lock", middleware=[audit_denials])
async def release_lock(session: str, resource: str, ctx: Context) -> bool:
    """Release the caller's lock on ``resource``; false if it held none."""
    h = hub()
    if h.shared:
        return await h.release(session, me(h, ctx), resource)
    return h.model.release(session, ctx.participant, resource)


@plugin.method("locks", idempotent=True, middleware=[audit_denials])
async def locks(session: str, ctx: Context) -> list[dict[str, Any]]:
    """The locks held in the session now."""
    h = hub()
    if h.shared:
        return await h.locks(session, me(h, ctx))
    return h.model.view(h.model.member(session, ctx.participant))["locks"]


@plugin.method("conflicts", idempotent=True, middleware=[audit_denials])
async def conflicts(session: str, ctx: Context, include_resolved: bool = False) -> list[dict[str, Any]]:
    """The session's conflicts (open ones, unless ``include_resolved``): in full to the session's
    editors and to the participants involved, as a summary (no values, operations or authors) to others."""
    h = hub()
    if h.shared:
        return await h.conflicts(session, me(h, ctx), include_resolved)
    found = h.model.member(session, ctx.participant, "view")
    editor = "edit" in found.permissions(ctx.participant)
    return [c.view() if editor or ctx.participant in c.involved else c.summary() for c in h.conflicts.values()
            if c.session == session and (include_resolved or c.resolved is None)]


@plugin.method("resolve", middleware=[audit_denials])
async def resolve(conflict_id: str, strategy: Literal["mine", "theirs", "merge", "manual"], ctx: Context,
                  value: Any = None) -> dict[str, Any]:
    """Resolve a conflict: ``mine`` (the refused patch wins), ``theirs`` (the document stays),
    ``merge`` (objects, key by key), ``manual`` (``value`` at the path; null if not given).
    Everyone involved is told."""
    h = hub()
    return await h.resolve(conflict_id, strategy, value, me(h, ctx))
