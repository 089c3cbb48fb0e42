"""Error codes and the exception handlers raise: the one place every code is listed.

JSON-RPC reserves -32768..-32000. The spec's own codes and the LSP codes bridge
speaks live there; an application uses any other integer (see docs/protocol.md).
"""

from __future__ import annotations

from typing import Any

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

# Implementation-defined server errors (-32099..-32000).
REQUEST_TIMEOUT = -32001
MESSAGE_TOO_LARGE = -32002
RATE_LIMITED = -32003
CIRCUIT_OPEN = -32004
SERVER_BUSY = -32005

# LSP codes, so vscode-jsonrpc clients recognise them.
REQUEST_CANCELLED = -32800
SERVER_CANCELLED = -32802

MESSAGES: dict[int, str] = {
    PARSE_ERROR: "Parse error",
    INVALID_REQUEST: "Invalid Request",
    METHOD_NOT_FOUND: "Method not found",
    INVALID_PARAMS: "Invalid params",
    INTERNAL_ERROR: "Internal error",
    REQUEST_TIMEOUT: "Request timed out",
    MESSAGE_TOO_LARGE: "Message too large",
    RATE_LIMITED: "Rate limited",
    CIRCUIT_OPEN: "Circuit open",
    SERVER_BUSY: "Server busy",
    REQUEST_CANCELLED: "Request cancelled",
    SERVER_CANCELLED: "Server cancelled the request",
}

RESERVED = range(-32768, -31999)


class BridgeError(Exception):
    """An error a handler raises to send the caller a JSON-RPC error object.

    Application codes are any integer outside -32768..-32000; the reserved
    range is open only to the codes bridge defines (for example INVALID_PARAMS).
    """

    def __init__(self, code: int, message: str | None = None, data: Any = None) -> None:
        if type(code) is not int:
            raise TypeError(f"error code must be an int, got {type(code).__name__}")
        if code in RESERVED and code not in MESSAGES:
            raise ValueError(
                f"error code {code} is reserved by JSON-RPC; use one outside -32768..-32000"
            )
        message = message if message is not None else MESSAGES.get(code, "Error")
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_dict(self) -> dict[str, Any]:
        """The JSON-RPC error object."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error

    def __repr__(self) -> str:
        return f"BridgeError({self.code}, {self.message!r}, data={self.data!r})"


def error_object(code: int, message: str | None = None, data: Any = None) -> dict[str, Any]:
    """A JSON-RPC error object for one of the codes above."""
    error: dict[str, Any] = {"code": code, "message": message or MESSAGES[code]}
    if data is not None:
        error["data"] = data
    return error
