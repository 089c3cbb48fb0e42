"""bridge: the Python side of an Electron or Tauri app, served as a JSON-RPC 2.0 sidecar.

What an app may import is all here; every other module is free to change.
"""

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .app import Bridge
from .context import Context
from .discovery import ErrorData
from .host import Host
from .errors import (
    CIRCUIT_OPEN,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    MESSAGE_TOO_LARGE,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    RATE_LIMITED,
    REQUEST_CANCELLED,
    REQUEST_TIMEOUT,
    SERVER_BUSY,
    SERVER_CANCELLED,
    BridgeError,
    ErrorCode,
)
from .middleware import Middleware, Request
from .plugins import Plugin
from .settings import Settings

if TYPE_CHECKING:
    from .middleware.batch import Batch
    from .middleware.cache import Cache
    from .middleware.circuit import CircuitBreaker
    from .middleware.ratelimit import RateLimit
    from .middleware.stream import Stream

# The built-in middleware is imported on first use, to keep the host's start-up short.
_LAZY = {
    "Batch": "batch",
    "Cache": "cache",
    "CircuitBreaker": "circuit",
    "RateLimit": "ratelimit",
    "Stream": "stream",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".middleware.{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'bridge' has no attribute {name!r}")


__all__ = [
    "Batch",
    "Bridge",
    "BridgeError",
    "CIRCUIT_OPEN",
    "Cache",
    "CircuitBreaker",
    "Context",
    "ErrorCode",
    "ErrorData",
    "Host",
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "MESSAGE_TOO_LARGE",
    "METHOD_NOT_FOUND",
    "Middleware",
    "PARSE_ERROR",
    "Plugin",
    "RATE_LIMITED",
    "REQUEST_CANCELLED",
    "REQUEST_TIMEOUT",
    "RateLimit",
    "Request",
    "SERVER_BUSY",
    "SERVER_CANCELLED",
    "Settings",
    "Stream",
    "__version__",
]
