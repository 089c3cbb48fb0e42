"""Collab events to the windows they concern: once per connection, ``$meta.to`` naming them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def send(event: str, params: dict[str, Any], to: Iterable[tuple[Any, str]] | None, default: Any) -> None:
    """Send ``event`` to each ``(connection, participant)`` of ``to`` once per connection (a
    participant without one is the host's ``default`` client's), naming them in ``$meta.to``;
    ``to`` None: to ``default`` alone, naming no one."""
    if to is None:
        if default is not None and not default.closed:
            default.notify(event, params)
        return
    by_conn: dict[int, tuple[Any, list[str]]] = {}
    for conn, participant in to:
        conn = conn or default
        if conn is not None and not conn.closed:
            by_conn.setdefault(id(conn), (conn, []))[1].append(participant)
    for conn, ids in by_conn.values():
        conn.notify(event, {**params, "$meta": {"to": ids}})
