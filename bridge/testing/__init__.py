"""Testing an app without a process: a client that drives the real host in memory, and a
middleware (or a handler's ``Request``) on its own.

``TestClient(app)`` (sync) and ``AsyncTestClient(app)`` (async) serve ``app`` as ``bridge
serve`` does (startup hooks and lifespans entered on ``with``, left on leaving it) through a
real ``Connection`` fed over an in-memory pipe, so validation, middleware, caches, rate
limits, cancellation and streams behave as they do for the JS client::

    with TestClient(app, caller={"window": 3}) as client:
        assert client.call("math.add", {"a": 1, "b": 2}) == 3
        for row in client.stream("data.export", {"query": "x"}):
            ...

Every wait has a timeout (the client's ``timeout``, 5 s by default): a broken test fails
with ``TimeoutError`` rather than hanging.

``request_for(app, "db.search", {"query": "x"}, caller="alice")`` is the ``Request`` the host
would build for that call: validated params, caller identity, context. A middleware is then
an ordinary coroutine to await: ``await RateLimit(1, per=60)(request, call_next)``.
"""

from .blocking import BlockingCall, BlockingStream, TestClient
from .client import AsyncStream, AsyncTestClient, Event, PendingCall
from .middleware import Harness, request_for

__all__ = ["AsyncStream", "AsyncTestClient", "BlockingCall", "BlockingStream", "Event", "Harness", "PendingCall",
           "TestClient", "request_for"]
