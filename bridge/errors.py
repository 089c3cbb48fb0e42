"""Error codes and the exception handlers raise: the one place every code is listed.

JSON-RPC reserves -32768..-32000. The spec's own codes and the LSP codes bridge
speaks live there; an application uses any other integer (see docs/protocol.md).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

class ErrorCode(IntEnum):
    """Every code bridge speaks, with its standard message: ``ErrorCode.INVALID_PARAMS.message``.

    The JS client's ``ErrorCodes`` lists the same names (CamelCase) and numbers (tested).
    """

    message: str

    def __new__(cls, code: int, message: str) -> ErrorCode:
        member = int.__new__(cls, code)
        member._value_ = code
        member.message = message
        return member

    PARSE_ERROR = -32700, "Parse error"
    INVALID_REQUEST = -32600, "Invalid Request"
    METHOD_NOT_FOUND = -32601, "Method not found"
    INVALID_PARAMS = -32602, "Invalid params"
    INTERNAL_ERROR = -32603, "Internal error"
    # Implementation-defined server errors (-32099..-32000).
    REQUEST_TIMEOUT = -32001, "Request timed out"
    MESSAGE_TOO_LARGE = -32002, "Message too large"
    RATE_LIMITED = -32003, "Rate limited"
    CIRCUIT_OPEN = -32004, "Circuit open"
    SERVER_BUSY = -32005, "Server busy"
    # LSP codes, so vscode-jsonrpc clients recognise them.
    REQUEST_CANCELLED = -32800, "Request cancelled"
    SERVER_CANCELLED = -32802, "Server cancelled the request"


# The codes as plain ints, for ``from bridge.errors import INVALID_PARAMS`` and the hot path
# (in the enum's order; tests/test_errors.py checks each name against its member).
(PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, INTERNAL_ERROR, REQUEST_TIMEOUT, MESSAGE_TOO_LARGE,
 RATE_LIMITED, CIRCUIT_OPEN, SERVER_BUSY, REQUEST_CANCELLED, SERVER_CANCELLED) = (code.value for code in ErrorCode)

MESSAGES: dict[int, str] = {code.value: code.message for code in ErrorCode}

RESERVED = range(-32768, -31999)


class BridgeError(Exception):
    """An error a handler raises to send the caller a JSON-RPC error object.

    Application codes are any integer outside -32768..-32000; the reserved
    range is open only to the codes bridge defines (for example INVALID_PARAMS).
    """

    def __init__(self, code: int, message: str | None = None, data: Any = None) -> None:
        if type(code) is not int:
            if not isinstance(code, int) or isinstance(code, bool):
                raise TypeError(f"error code must be an int, got {type(code).__name__}")
            code = int(code)  # an ErrorCode member: sent and compared as the plain number
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
