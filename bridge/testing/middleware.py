"""One middleware (or a handler's ``Request``) on its own: no process, no pipe, no loop."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from ..connection import Call, Connection
from ..middleware import Request
from ..settings import Settings

if TYPE_CHECKING:
    from ..app import Bridge


class _Recorder:
    """Stands in for the output pipe: keeps what the host would have written."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.frames.append(data)

    async def drain(self) -> None:
        return None

    def is_closing(self) -> bool:
        return False


class _NoInput:
    def attach(self, conn: Connection) -> None: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...


class Harness:
    """A connection to ``app`` that never reads: for building requests and reading what was sent."""

    def __init__(self, app: Bridge, **settings: Any) -> None:
        self._out = _Recorder()
        options = {"ready": False, "framing": "ndjson", "loop_block_warning": 0.0, **settings}
        self.connection = Connection(app, Settings(**options), _NoInput(), self._out)

    def request(self, method: str, params: dict[str, Any] | list[Any] | None = None, *, id: Any = 1,
                caller: Any = None) -> Request:
        """The ``Request`` for a call of ``method`` (a registered name), from ``caller`` if given."""
        return Request(self.connection._methods[method], id, params, self.connection, Call(caller))

    def sent(self) -> list[Any]:
        """The messages the host sent so far (notifications, progress), parsed."""
        return [orjson.loads(line) for frame in self._out.frames for line in frame.splitlines() if line]


def request_for(app: Bridge, method: str, params: dict[str, Any] | list[Any] | None = None, *, id: Any = 1,
                caller: Any = None) -> Request:
    """The ``Request`` the host would build for one call (see ``Harness`` to also read what it sends)."""
    return Harness(app).request(method, params, id=id, caller=caller)
