"""The per-call context a handler asks for by annotating a parameter with ``Context``."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .identity import participant_id

if TYPE_CHECKING:
    from .app import Bridge
    from .connection import Call, Connection
    from .host import Host
    from .kv import KeyValue

#: A JSON-RPC request id: string, number, or null (None for a notification's context).
RequestId = str | int | float | None


class CallView:
    """What a handler (``Context``) and a middleware (``Request``) both see of a call."""

    __slots__ = ("_call", "_conn")

    _call: Call
    _conn: Connection

    @property
    def caller(self) -> Any:
        """Who is calling: the transport's ``$caller`` if it asserted one, else the params'
        ``$meta.caller`` (None if neither)."""
        return self._call.caller

    @property
    def cancelled(self) -> bool:
        """True once the caller cancelled the call, its timeout passed, or the host is stopping."""
        return self._call.cancel_code is not None

    @property
    def cancel_code(self) -> int | None:
        """Why the call was cancelled (REQUEST_CANCELLED, REQUEST_TIMEOUT, SERVER_CANCELLED), or None."""
        return self._call.cancel_code

    @property
    def participant(self) -> str:
        """The caller's participant id (see ``bridge.identity``): its declared id, its window,
        or its connection's when it declared nothing."""
        return participant_id(self._call.caller, self._conn.serial)

    @property
    def host(self) -> Host:
        """The host serving the call: calls in flight, metrics, events, back-pressure, stop."""
        return self._conn.host

    @property
    def connection(self) -> Connection:
        """The connection the call came on (private API: prefer ``host``)."""
        return self._conn

    @property
    def app(self) -> Bridge:
        """The app being served (its plugins, its methods)."""
        return self._conn.app

    @property
    def cache(self) -> KeyValue:
        """A key/value store (``get``/``set``/``delete`` with a TTL) on the host's cache store."""
        from .kv import KeyValue

        return KeyValue(self._conn)


class Context(CallView):
    """What a handler may know and do about the call it is serving.

    ``notify`` and ``progress`` are plain calls, safe from async handlers and from
    the worker threads sync handlers run in.
    """

    __slots__ = ("id", "method", "progress_token", "total")

    def __init__(
        self,
        conn: Connection,
        method: str,
        id: RequestId,
        call: Call,
        progress_token: Any = None,
    ) -> None:
        self.id = id
        self.method = method
        self.progress_token = progress_token if progress_token is not None else id
        self._conn = conn
        self._call = call
        #: A streaming handler that knows how many items it will yield sets this; each
        #: ``$/stream`` chunk then carries it as ``total``.
        self.total: int | None = None

    @property
    def logger(self) -> logging.Logger:
        """A logger named for the method; it writes to stderr, never to the protocol."""
        return logging.getLogger(f"bridge.handler.{self.method}")

    def notify(self, method: str, params: Any = None) -> None:
        """Send the client a notification (an event) now."""
        self._conn.notify(method, params)

    def progress(self, value: Any = None, /, **fields: Any) -> None:
        """Report progress as LSP does: ``$/progress`` with ``{token, value}``.

        The token is the caller's ``$meta.progressToken``, or the request id.
        ``ctx.progress(done=3, total=10)`` sends ``value = {"done": 3, "total": 10}``.
        """
        self.notify("$/progress", {"token": self.progress_token, "value": fields if value is None else value})

    def __repr__(self) -> str:
        return f"Context(method={self.method!r}, id={self.id!r})"
