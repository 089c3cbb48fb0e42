"""The apps bench/middleware.mjs serves: the same echo bare, through middleware, cached, streamed.

App middleware wraps every method of its app, so the full pipeline lives in its own app (its
own process): ``plain`` has no app middleware, ``piped`` has one that only awaits call_next.
``plain.echo_chain`` has the same four links with the middleware given per method, so the
bare echo and a full chain can also be compared within one process.
"""

from collections.abc import AsyncIterator
from typing import Any

from bridge import Bridge
from bridge.middleware import Next, Request
from bridge.middleware.cache import Cache
from bridge.middleware.circuit import CircuitBreaker
from bridge.middleware.ratelimit import RateLimit
from bridge.middleware.stream import Stream

# Stream items: 1,024 distinct 100-character strings, item i is ROWS[i % 1024]. The driver
# builds the same list to check the chunks it samples.
ROWS = [f"{n:04d}" + "abcdefghij" * 9 + "klmnop" for n in range(1024)]
CHUNK = 1000


def no_objection(kwargs: dict[str, Any]) -> None:
    """A validator that accepts everything: the cost of the step, not of a check."""


async def passthrough(request: Request, call_next: Next) -> Any:
    """A middleware that only passes the call on."""
    return await call_next(request)


plain = Bridge("bench-middleware-plain")


@plain.method
async def echo(value: Any = None) -> Any:
    return value


@plain.method(validator=no_objection)
async def echo_validator(value: Any = None) -> Any:
    return value


@plain.method(rate_limit=RateLimit(10**9, per=1))
async def echo_ratelimit(value: Any = None) -> Any:
    return value


@plain.method(circuit=CircuitBreaker())
async def echo_circuit(value: Any = None) -> Any:
    return value


@plain.method(
    middleware=[passthrough], rate_limit=RateLimit(10**9, per=1), circuit=CircuitBreaker(), validator=no_objection
)
async def echo_chain(value: Any = None) -> Any:
    """The full pipeline, its middleware given per method."""
    return value


@plain.method(cache=Cache(ttl=3600))
async def echo_cached(value: Any = None) -> Any:
    return value


@plain.method(stream=Stream(chunk_size=CHUNK))
async def rows(count: int) -> AsyncIterator[str]:
    """``count`` 100-byte strings."""
    n = len(ROWS)
    for i in range(count):
        yield ROWS[i % n]


piped = Bridge("bench-middleware-piped")
piped.add_middleware(passthrough)


@piped.method("echo", rate_limit=RateLimit(10**9, per=1), circuit=CircuitBreaker(), validator=no_objection)
async def piped_echo(value: Any = None) -> Any:
    return value


@piped.method
async def echo_appmw(value: Any = None) -> Any:
    """Only the app middleware."""
    return value
