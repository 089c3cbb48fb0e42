"""Sessions, their participants, presence and locks: the collaboration model, free of I/O.

Time comes from ``clock`` (monotonic seconds), so expiry is tested without waiting. What
must survive a restart (sessions, their members and permissions) is handed to the plugin to
store; presence and locks live only here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bridge import BridgeError

from ..state.patches import Path, overlaps, split

#: Application error codes of the collab plugin.
NOT_A_PARTICIPANT = 4601
FORBIDDEN = 4602
LOCKED = 4603
NO_SUCH_SESSION = 4604
NO_SUCH_CONFLICT = 4605
SESSION_EXISTS = 4606

PERMISSIONS = ("edit", "view", "comment", "share")
#: Anyone who may edit or comment may also view.
IMPLIED = {"edit": {"view"}, "comment": {"view"}}
#: The key of ``permissions`` that applies to any participant not named.
ANYONE = "*"


class Denied(BridgeError):
    """A refusal for want of membership (4601) or permission (4602); ``audit`` holds what the
    plugin writes to the audit log about it (``collab.denied``)."""

    def __init__(self, code: int, message: str, data: dict[str, Any], **audit: Any) -> None:
        super().__init__(code, message, data)
        self.audit = audit
        self.recorded = False  # audited already (a refusal can pass two places that record)


def normalise(perms: list[str]) -> list[str]:
    unknown = set(perms) - set(PERMISSIONS)
    if unknown:
        raise BridgeError(FORBIDDEN, f"unknown permission(s) {sorted(unknown)}; known: {list(PERMISSIONS)}")
    full = set(perms)
    for perm in perms:
        full |= IMPLIED.get(perm, set())
    return [p for p in PERMISSIONS if p in full]


@dataclass(slots=True)
class Participant:
    id: str
    joined: float
    seen: float
    connection: Any = None
    away: bool = False
    presence: Any = None  # what the client last sent with a heartbeat (a cursor, a selection)

    def view(self, perms: list[str]) -> dict[str, Any]:
        return {"participant": self.id, "status": "away" if self.away else "active", "permissions": perms,
                "presence": self.presence}


@dataclass(slots=True)
class Lock:
    resource: str
    doc: str
    path: Path
    kind: str
    holder: str
    expires: float
    metadata: Any = None  # what the holder says of it ("editing the title"), shown to everyone

    def view(self, now: float) -> dict[str, Any]:
        shown = {"resource": self.resource, "kind": self.kind, "holder": self.holder,
                 "expires_in": round(max(0.0, self.expires - now), 3)}
        if self.metadata is not None:
            shown["metadata"] = self.metadata
        return shown


@dataclass(slots=True)
class Session:
    """Durable: id, creator, docs and members (participant -> permissions, ``*`` for anyone)."""

    id: str
    created_by: str
    docs: list[str]
    members: dict[str, list[str]]
    created_at: float = field(default_factory=time.time)
    emptied_at: float | None = None  # wall clock: when the last participant left
    participants: dict[str, Participant] = field(default_factory=dict)
    locks: dict[str, list[Lock]] = field(default_factory=dict)

    def permissions(self, who: str) -> list[str]:
        return self.members.get(who, self.members.get(ANYONE, []))

    def record(self) -> dict[str, Any]:
        return {"id": self.id, "created_by": self.created_by, "docs": self.docs, "members": self.members,
                "created_at": self.created_at, "emptied_at": self.emptied_at}

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "docs": self.docs, "participants": len(self.participants),
                "created_by": self.created_by}


def parse_resource(resource: str) -> tuple[str, Path]:
    """``"doc"`` is a whole document; ``"doc#/a/b"`` the part of it at that JSON Pointer."""
    doc, sep, where = resource.partition("#")
    try:
        return doc, split(where) if sep else ()
    except ValueError as exc:
        raise BridgeError(FORBIDDEN, f"bad lock resource {resource!r}: {exc}") from None


#: ``emit(event, params, recipients)``: send ``event`` to those participants.
Emit = Callable[[str, dict[str, Any], list[Participant]], None]


class Collab:
    """Every session in the host, with presence and locks, expired by ``sweep``."""

    def __init__(self, emit: Emit, *, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, away_after: float = 300, remove_after: float = 600,
                 empty_session_ttl: float = 3600, max_lock_ttl: float = 3600) -> None:
        self.emit = emit
        self.clock, self.wall = clock, wall
        self.away_after, self.remove_after = away_after, remove_after
        self.empty_session_ttl, self.max_lock_ttl = empty_session_ttl, max_lock_ttl
        self.sessions: dict[str, Session] = {}
        self.governed: dict[str, str] = {}  # doc -> the session that governs it

    # ---- sessions -----------------------------------------------------------

    def load(self, record: dict[str, Any]) -> Session:
        """A session read back from the store: no one is present after a restart."""
        session = Session(record["id"], record["created_by"], record["docs"], record["members"],
                          record["created_at"], record.get("emptied_at") or self.wall())
        self._add(session)
        return session

    def create(self, id: str, creator: str, members: dict[str, list[str]], docs: list[str]) -> Session:
        if id in self.sessions:
            raise BridgeError(SESSION_EXISTS, f"a session {id!r} exists", {"session": id})
        for doc in docs:
            if doc in self.governed:
                raise BridgeError(SESSION_EXISTS, f"document {doc!r} already belongs to session "
                                  f"{self.governed[doc]!r}", {"session": self.governed[doc], "doc": doc})
        members = {who: normalise(perms) for who, perms in members.items()}
        members[creator] = list(PERMISSIONS)
        session = Session(id, creator, list(docs), members, self.wall())
        self._add(session)
        return session

    def _add(self, session: Session) -> None:
        self.sessions[session.id] = session
        for doc in session.docs:
            self.governed[doc] = session.id

    def get(self, id: str) -> Session:
        session = self.sessions.get(id)
        if session is None:
            raise BridgeError(NO_SUCH_SESSION, f"no session {id!r}", {"session": id})
        return session

    def visible(self, who: str) -> list[dict[str, Any]]:
        return [s.summary() for s in self.sessions.values() if s.permissions(who)]

    def join(self, id: str, who: str, connection: Any = None) -> Session:
        session = self.get(id)
        perms = session.permissions(who)
        if not perms:
            raise Denied(FORBIDDEN, f"{who} may not join session {id!r}", {"session": id},
                         session=id, reason="forbidden", needs="join", held=[])
        now = self.clock()
        known = session.participants.get(who)
        if known is not None:
            known.seen, known.away, known.connection = now, False, connection
            return session
        session.participants[who] = Participant(who, now, now, connection)
        session.emptied_at = None
        self.emit("collab.participant_joined", {"session": id, "participant": who, "permissions": perms},
                  self.others(session, who))
        return session

    def leave(self, id: str, who: str, reason: str = "left") -> bool:
        session = self.get(id)
        gone = session.participants.pop(who, None)
        if gone is None:
            return False
        for resource in list(session.locks):
            self._release(session, resource, who, reason)
        if not session.participants:
            session.emptied_at = self.wall()
        self.emit("collab.participant_left", {"session": id, "participant": who, "reason": reason},
                  list(session.participants.values()))
        return True

    def depart(self, who: str, connection: Any = None, reason: str = "departed") -> list[str]:
        """``who`` is gone (its window closed or reloaded): leave every session it is in, at once.
        With ``connection``, only where it joined through that connection. Returns the sessions left."""
        left = [s.id for s in self.sessions.values() if (p := s.participants.get(who)) is not None
                and (connection is None or p.connection is connection)]
        for id in left:
            self.leave(id, who, reason)
        return left

    def share(self, id: str, who: str, target: str, perms: list[str]) -> Session:
        session = self.member(id, who, "share")
        session.members[target] = normalise(perms) if perms else []
        if not session.members[target]:
            del session.members[target]
        self.emit("collab.permissions_changed", {"session": id, "participant": target,
                                                 "permissions": session.permissions(target), "by": who},
                  list(session.participants.values()))
        if target in session.participants and not session.permissions(target):
            self.leave(id, target, reason="removed")
        return session

    def member(self, id: str, who: str, need: str | None = None) -> Session:
        """The session, if ``who`` has joined it (and holds ``need``); marks ``who`` as seen."""
        session = self.get(id)
        participant = session.participants.get(who)
        if participant is None:
            raise Denied(NOT_A_PARTICIPANT, f"{who} has not joined session {id!r}",
                         {"session": id, "participant": who},
                         session=id, reason="not_joined", needs=need, held=session.permissions(who))
        self.seen(session, participant)
        if need is not None and need not in session.permissions(who):
            held = session.permissions(who)
            raise Denied(FORBIDDEN, f"{who} may not {need} in session {id!r} "
                         f"(permissions: {', '.join(held) or 'none'})",
                         {"session": id, "participant": who, "needs": need, "permissions": held},
                         session=id, reason="forbidden", needs=need, held=held)
        return session

    def seen(self, session: Session, participant: Participant) -> None:
        participant.seen = self.clock()
        if participant.away:
            participant.away = False
            self.emit("collab.presence", {"session": session.id, "participant": participant.id,
                                          "status": "active", "presence": participant.presence},
                      self.others(session, participant.id))

    def heartbeat(self, id: str, who: str, presence: Any = None) -> None:
        session = self.member(id, who)
        participant = session.participants[who]
        if presence is not None and presence != participant.presence:
            participant.presence = presence
            self.emit("collab.presence", {"session": id, "participant": who, "status": "active",
                                          "presence": presence}, self.others(session, who))

    def others(self, session: Session, who: str) -> list[Participant]:
        return [p for p in session.participants.values() if p.id != who]

    def view(self, session: Session) -> dict[str, Any]:
        now = self.clock()
        return {**session.summary(), "members": session.members,
                "participants": [p.view(session.permissions(p.id)) for p in session.participants.values()],
                "locks": [lock.view(now) for held in session.locks.values() for lock in held]}

    # ---- the guard on state documents ---------------------------------------

    def check(self, who: str, doc: str, action: str, paths: list[Path]) -> None:
        """Refuse a state call on a session's document: not joined, not allowed, or locked."""
        id = self.governed.get(doc)
        if id is None:
            return
        session = self.member(id, who, "edit" if action == "edit" else "view")
        if action != "edit":
            return
        now = self.clock()
        for held in session.locks.values():
            for lock in held:
                if lock.holder != who and lock.doc == doc and lock.expires > now and any(
                        overlaps(lock.path, p) for p in paths):
                    raise BridgeError(LOCKED, f"{lock.resource} is locked by {lock.holder}",
                                      {"session": id, **lock.view(now)})

    # ---- locks --------------------------------------------------------------

    def acquire(self, id: str, who: str, resource: str, kind: str, ttl: float, metadata: Any = None) -> Lock:
        if kind not in ("exclusive", "shared"):
            raise BridgeError(FORBIDDEN, f"lock kind must be 'exclusive' or 'shared', not {kind!r}")
        session = self.member(id, who, "edit")
        doc, path = parse_resource(resource)
        now = self.clock()
        ttl = min(max(ttl, 0.001), self.max_lock_ttl)
        for held in session.locks.values():
            for lock in held:
                if (lock.holder != who and lock.doc == doc and lock.expires > now and overlaps(lock.path, path)
                        and (kind == "exclusive" or lock.kind == "exclusive")):
                    raise BridgeError(LOCKED, f"{lock.resource} is locked by {lock.holder}",
                                      {"session": id, **lock.view(now)})
        held = session.locks.setdefault(resource, [])
        mine = next((lock for lock in held if lock.holder == who), None)
        if mine is not None:  # renewing (or changing kind or metadata)
            mine.kind, mine.expires = kind, now + ttl
            if metadata is not None:
                mine.metadata = metadata
            return mine
        lock = Lock(resource, doc, path, kind, who, now + ttl, metadata)
        held.append(lock)
        self.emit("collab.lock_acquired", {"session": id, **lock.view(now)}, list(session.participants.values()))
        return lock

    def release(self, id: str, who: str, resource: str) -> bool:
        return self._release(self.member(id, who), resource, who, "released")

    def _release(self, session: Session, resource: str, who: str, reason: str) -> bool:
        held = session.locks.get(resource, [])
        mine = [lock for lock in held if lock.holder == who]
        if not mine:
            return False
        session.locks[resource] = [lock for lock in held if lock.holder != who]
        if not session.locks[resource]:
            del session.locks[resource]
        event = "collab.lock_expired" if reason == "expired" else "collab.lock_released"
        self.emit(event, {"session": session.id, "resource": resource, "holder": who, "reason": reason},
                  list(session.participants.values()))
        return True

    # ---- expiry -------------------------------------------------------------

    def sweep(self) -> list[str]:
        """Expire what is due: locks, idle participants (away, then removed), empty sessions.
        Returns the ids of the sessions that expired (the plugin deletes them from the store)."""
        now, wall = self.clock(), self.wall()
        expired: list[str] = []
        for session in list(self.sessions.values()):
            for resource, held in list(session.locks.items()):
                for lock in [lock for lock in held if lock.expires <= now]:
                    self._release(session, resource, lock.holder, "expired")
            for participant in list(session.participants.values()):
                idle = now - participant.seen
                if getattr(participant.connection, "closed", False):
                    self.leave(session.id, participant.id, reason="disconnected")
                elif idle >= self.remove_after:
                    self.leave(session.id, participant.id, reason="idle")
                elif idle >= self.away_after and not participant.away:
                    participant.away = True
                    self.emit("collab.presence", {"session": session.id, "participant": participant.id,
                                                  "status": "away", "presence": participant.presence},
                              self.others(session, participant.id))
            if not session.participants and session.emptied_at is not None and \
                    wall - session.emptied_at >= self.empty_session_ttl:
                del self.sessions[session.id]
                for doc in session.docs:
                    self.governed.pop(doc, None)
                expired.append(session.id)
        return expired
