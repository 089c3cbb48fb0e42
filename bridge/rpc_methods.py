"""The methods every host answers besides the app's: ``rpc.ping``, ``rpc.metrics`` and
``rpc.discover``. Plain Python functions, so ``Method`` reads their signatures as it reads a
handler's wherever the connection itself runs compiled (see docs/design.md, "Compiled")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .methods import Method

if TYPE_CHECKING:
    from .app import Bridge
    from .connection import Connection


async def _pong() -> str:
    """Answer "pong": every host has it, for health checks."""
    return "pong"


def ping_method() -> Method:
    """``rpc.ping``: answered at once, however busy the host is (the connection sees to that)."""
    return Method(_pong, "rpc.ping", idempotent=True)


def metrics_method(conn: Connection) -> Method:
    """``rpc.metrics`` of ``conn``."""

    async def metrics() -> dict[str, Any]:
        """Calls, errors, latency percentiles and more, per method; message rates; uptime."""
        return conn.metrics_snapshot()

    return Method(metrics, "rpc.metrics")


def discover_method(app: Bridge) -> Method:
    """``rpc.discover`` of ``app``."""

    async def discover() -> dict[str, Any]:
        """The OpenRPC document of this service."""
        from .discovery import openrpc

        return openrpc(app)

    return Method(discover, "rpc.discover")
