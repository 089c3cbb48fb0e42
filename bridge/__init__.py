"""bridge: the Python side of an Electron or Tauri app, served as a JSON-RPC 2.0 sidecar.

What an app may import is all here; every other module is free to change.
"""

from .app import Bridge
from .context import Context
from .errors import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    MESSAGE_TOO_LARGE,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    REQUEST_CANCELLED,
    REQUEST_TIMEOUT,
    SERVER_CANCELLED,
    BridgeError,
)
from .settings import Settings

__version__ = "0.1.0"

__all__ = [
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "MESSAGE_TOO_LARGE",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "REQUEST_CANCELLED",
    "REQUEST_TIMEOUT",
    "SERVER_CANCELLED",
    "Bridge",
    "BridgeError",
    "Context",
    "Settings",
    "__version__",
]
