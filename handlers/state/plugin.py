"""The built-in ``state`` plugin: named JSON documents, changed by RFC 6902 patches.

Every acknowledged patch is on disk (SQLite, WAL), or in a Redis shared by several hosts
(setting ``backend``); ``state.changed`` tells subscribers.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import anyio
from pydantic import BaseModel, Field, field_validator

from bridge import INTERNAL_ERROR, INVALID_PARAMS, BridgeError, Context, Plugin, __version__

from .engine import Documents, Limits, StartSoon
from .store import HistoryLost, StoreError

log = logging.getLogger("bridge.state")


class StateSettings(BaseModel):
    backend: str = Field(default="embedded", description="'embedded' (SQLite, one host), or a Redis URL shared by "
                         "several hosts: redis://[user:password@]host:port/db, rediss:// (TLS), unix://, "
                         "redis+sentinel://[user:password@]host:port[,host:port]/service[/db], "
                         "redis+cluster://[user:password@]host:port[,host:port]")
    redis_prefix: str = Field(default="bridge", min_length=1, description="the first part of every Redis key")
    redis_timeout: float = Field(default=5.0, gt=0, description="seconds for a Redis connection or reply")
    wait_replicas: int = Field(default=0, ge=0, description="acknowledge a patch only once this many replicas "
                               "have it (Redis WAIT); 0: once the primary has it")
    wait_timeout: float = Field(default=1.0, gt=0, description="seconds WAIT may take (then 4505)")
    idempotency_ttl: float = Field(default=3600.0, gt=0, description="seconds Redis remembers a patch's "
                                   "idempotency_key")
    path: str | None = Field(default=None, description="the SQLite file (default: state.sqlite3 in the app's data directory)")
    memory: bool = Field(default=False, description="keep documents in memory only: nothing survives the host")
    memory_if_unavailable: bool = Field(default=False, description="if the database cannot be opened or trusted, run "
                                        "in memory with a warning instead of failing at start-up")
    synchronous: Literal["full", "normal"] = Field(default="full", description="'full' also survives power loss; "
                                                   "'normal' survives the host being killed")
    snapshot_every: int = Field(default=1000, ge=1, description="versions between automatic snapshots of a document")
    history: int = Field(default=1000, ge=0, description="versions of each document kept for diffs and conflict checks")
    max_doc_bytes: int = Field(default=16 * 1024 * 1024, ge=1, description="largest document, as JSON")
    max_patch_bytes: int = Field(default=1024 * 1024, ge=1, description="largest patch, as JSON")
    max_subscriptions: int = Field(default=1024, ge=1, description="subscriptions open at once per connection")
    inline_commit_ms: float = Field(default=1.0, ge=0, description="commit a patch that arrives alone on the event "
                                    "loop (no thread hop) while commits average at most this many ms; the loop "
                                    "waits that long; 0: every commit on the store's thread")
    accept_loss: bool = Field(default=False, description="open a database that holds less than its marker says was "
                              "acknowledged (a lost or damaged -wal, an emptied file) as it is, recording the loss; "
                              "set it for one start, not for good")

    @field_validator("backend")
    @classmethod
    def _backend(cls, value: str) -> str:
        from bridge.redis_url import SCHEMES

        if value != "embedded" and not value.startswith(SCHEMES):
            raise ValueError(f"backend is 'embedded' or a URL starting with {', '.join(SCHEMES)}")
        return value


def default_path(app_name: str) -> Path:
    from platformdirs import user_data_path

    return user_data_path(app_name, appauthor=False) / "state.sqlite3"


@asynccontextmanager
async def lifespan(plugin: Plugin) -> AsyncIterator[Documents]:
    """Open the documents once, with their writer in a task group of this lifetime; at the end,
    write what is pending, fold the WAL in and close the store.

    Whichever starts first opens them: collab, mounted before this plugin, enters this lifespan
    itself and leaves the documents in ``plugin.state``; then this one yields those (their owner,
    entered first, is left last)."""
    opened: Documents | None = plugin.state
    if opened is not None:
        yield opened
        return
    tasks = anyio.create_task_group()  # entered after the opening, so an error is the plugin's, not a group's
    docs = await _open(plugin, tasks.start_soon)  # the writer starts with the first patch, inside the group
    async with tasks:
        try:
            yield docs
        finally:
            with anyio.CancelScope(shield=True):
                await docs.close()
                log.info("state: every acknowledged patch is written; the store is closed")
        tasks.cancel_scope.cancel()


plugin = Plugin("state", __version__, description="Versioned JSON documents with RFC 6902 patches, durable.",
                settings=StateSettings, lifespan=lifespan)


async def _open(plugin: Plugin, start_soon: StartSoon) -> Documents:
    settings = plugin.settings or StateSettings()
    limits = Limits(settings.max_doc_bytes, settings.max_patch_bytes, settings.history, settings.snapshot_every,
                    settings.max_subscriptions, settings.inline_commit_ms / 1000)
    if settings.memory:
        log.warning("state: memory only (settings.memory): nothing survives the host")
        return await Documents.open(None, start_soon, limits)
    if settings.backend != "embedded":
        return await _open_redis(settings, start_soon, limits)
    path = Path(settings.path) if settings.path else default_path(plugin.app.name if plugin.app else "bridge")
    try:
        docs = await Documents.open(path, start_soon, limits, settings.synchronous, settings.accept_loss)
    except StoreError as exc:
        if not settings.memory_if_unavailable:
            raise
        log.warning("state: %s; running in memory only (memory_if_unavailable): nothing survives the host", exc)
        return await Documents.open(None, start_soon, limits)
    if docs.store.loss is not None:
        _record_loss(path, docs.store.loss)
    return docs


async def _open_redis(settings: StateSettings, start_soon: StartSoon, limits: Limits) -> Documents:
    from .redis_backend import RedisDocuments
    from bridge.redis_url import RedisOptions

    options = RedisOptions(settings.backend, settings.redis_prefix, settings.redis_timeout, settings.wait_replicas,
                           settings.wait_timeout, settings.idempotency_ttl)
    try:
        return await RedisDocuments.open_redis(options, start_soon, limits)
    except StoreError as exc:
        if not settings.memory_if_unavailable:
            raise
        log.warning("state: %s; running in memory only (memory_if_unavailable): nothing survives the host "
                    "and no other host sees these documents", exc)
        return await Documents.open(None, start_soon, limits)


def _record_loss(path: Path, loss: HistoryLost) -> None:
    """A loss accepted with ``accept_loss``: a warning and an audit entry, never silent."""
    log.warning("state: database %s opened as it is (accept_loss) although %s", path, loss.problem)
    audit = getattr(plugin.app, "audit", None)  # bridge/audit.py, where the app has it
    if audit is not None:
        expected = loss.expected
        audit.record("state.recovered", participant=None, database=str(path), accepted_loss=True,
                     expected_doc=expected.doc if expected else None, expected_version=expected.version if expected
                     else None, found_version=loss.found_version, reason=loss.problem)


def _docs() -> Documents:
    docs: Documents | None = plugin.state
    if docs is None:
        raise BridgeError(INTERNAL_ERROR, "state is not running", {"plugin": "state"})
    return docs


@plugin.method("get", idempotent=True)
async def get(doc: str, ctx: Context) -> dict[str, Any]:
    """``{doc, version, value}``: the document now (version 0 and ``{}`` if it was never written)."""
    docs = _docs()
    await docs.refresh(doc)
    found = docs.get(doc, ctx.participant)
    return {"doc": doc, "version": found.version, "value": found.value}


@plugin.method("patch")
async def patch(doc: str, ops: list[dict[str, Any]], ctx: Context, base_version: int | None = None,
                idempotency_key: str | None = None) -> dict[str, Any]:
    """Apply an RFC 6902 patch atomically; ``{doc, version}`` once it is on disk.

    With ``base_version``, a patch whose paths someone else changed since is a conflict
    (4501, the current version in ``data``); one that touches only other paths is applied
    on top. Without it, the patch applies to whatever the document is now. With an
    ``idempotency_key`` (the caller's, per participant and document), a patch sent again
    with the same key is not applied again: the reply has the version it got.
    """
    if idempotency_key is not None and not 0 < len(idempotency_key) <= 256:
        raise BridgeError(INVALID_PARAMS, "idempotency_key is 1 to 256 characters")
    version = await _docs().patch(doc, ops, base_version, ctx.participant, idempotency_key)
    return {"doc": doc, "version": version}


@plugin.method("set")
async def set_(doc: str, value: Any, ctx: Context, base_version: int | None = None,
               idempotency_key: str | None = None) -> dict[str, Any]:
    """Replace the whole document (a patch of one ``add`` at the root)."""
    return await patch(doc, [{"op": "add", "path": "", "value": value}], ctx, base_version, idempotency_key)


@plugin.method("subscribe")
async def subscribe(doc: str, ctx: Context, since_version: int | None = None, compact: bool = True) -> dict[str, Any]:
    """Catch up and follow ``doc``: the reply has the ops from ``since_version`` to now, or the
    full value (``full: true`` with the reason) when that version is no longer kept or, with
    ``compact``, when the value is smaller than the ops. Every later change arrives as
    ``state.changed {doc, from, to, ops, author}``."""
    docs = _docs()
    await docs.refresh(doc)
    return docs.subscribe(doc, since_version, ctx.participant, ctx.connection, compact)


@plugin.method("unsubscribe")
async def unsubscribe(subscription: str, ctx: Context) -> bool:
    """Stop a subscription; false if there was none of the caller's by that id."""
    return _docs().unsubscribe(subscription, ctx.participant)


@plugin.method("list", idempotent=True)
async def list_() -> list[dict[str, Any]]:
    """``[{doc, version}]`` of every document."""
    return await _docs().listing()


@plugin.method("delete")
async def delete(doc: str, ctx: Context) -> bool:
    """Delete a document and its history; subscribers get ``state.reset`` with ``deleted``."""
    return await _docs().delete(doc, ctx.participant)


@plugin.method("checkpoint")
async def checkpoint(ctx: Context) -> dict[str, Any]:
    """Snapshot every document now (start-up replays only what follows) and fold the WAL in."""
    taken = await _docs().checkpoint()
    ctx.app.audit.record("state.checkpoint", participant=ctx.participant, docs=taken)
    return {"docs": taken}
