"""Bytes to message bodies and back: newline-delimited JSON and the LSP base protocol.

Decoders are sans-IO: ``feed(chunk)`` returns the complete bodies found so far,
with a ``FrameError`` in place of anything that cannot be a message. Nothing
is ever buffered past ``max_bytes``: an over-size message is skipped as it
streams by and reported once.
"""

from __future__ import annotations

import re
from typing import Literal, Protocol

Framing = Literal["ndjson", "lsp"]

#: Longest LSP header block accepted before the decoder resynchronises.
MAX_HEADER_BYTES = 8192

_CONTENT_LENGTH = re.compile(rb"(?im)^content-length[ \t]*:[ \t]*(\S*)[ \t]*\r?$")
_HEADER_START = re.compile(rb"(?i)content-length[ \t]*:")


class FrameError:
    """Something in the byte stream that is not a message; the decoder has moved past it."""

    __slots__ = ("too_large", "reason")

    def __init__(self, reason: str, *, too_large: bool = False) -> None:
        self.reason = reason
        self.too_large = too_large

    def __repr__(self) -> str:
        return f"FrameError({self.reason!r})"


class Decoder(Protocol):
    framing: Framing | None

    def feed(self, data: bytes) -> list[bytes | FrameError]: ...


class NdjsonDecoder:
    """One JSON text per line; blank lines are ignored, a trailing ``\\r`` is allowed."""

    framing: Framing = "ndjson"

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._buf = bytearray()
        self._discarding = False

    def feed(self, data: bytes) -> list[bytes | FrameError]:
        out: list[bytes | FrameError] = []
        start = 0
        find = data.find
        while (nl := find(b"\n", start)) >= 0:
            if self._discarding:
                self._discarding = False
            else:
                if self._buf:
                    self._buf += data[start:nl]
                    line = bytes(self._buf)
                    self._buf.clear()
                else:
                    line = data[start:nl]
                if len(line) > self.max_bytes:
                    out.append(_too_large(self.max_bytes))
                elif line and not line.isspace():
                    out.append(line)
            start = nl + 1
        if start < len(data) and not self._discarding:
            self._buf += data[start:]
            if len(self._buf) > self.max_bytes:
                self._buf.clear()
                self._discarding = True
                out.append(_too_large(self.max_bytes))
        return out


class LspDecoder:
    """``Content-Length: N`` headers, a blank line, then N bytes of body."""

    framing: Framing = "lsp"

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._buf = bytearray()
        self._need = -1  # body bytes awaited; -1 while reading headers
        self._skip = 0  # bytes of an over-size body still to drop

    def feed(self, data: bytes) -> list[bytes | FrameError]:
        out: list[bytes | FrameError] = []
        if self._skip:
            dropped = min(self._skip, len(data))
            self._skip -= dropped
            data = data[dropped:]
        self._buf += data
        buf = self._buf
        pos = 0
        while True:
            if self._skip:
                dropped = min(self._skip, len(buf) - pos)
                self._skip -= dropped
                pos += dropped
                if self._skip:
                    break
            if self._need >= 0:
                if len(buf) - pos < self._need:
                    break
                end = pos + self._need
                with memoryview(buf) as view:
                    out.append(bytes(view[pos:end]))
                pos = end
                self._need = -1
                continue
            end = buf.find(b"\r\n\r\n", pos)
            if end < 0:
                if len(buf) - pos > MAX_HEADER_BYTES:
                    out.append(FrameError("LSP header block too long"))
                    pos = self._resync(buf, pos + 1, pos + 1)
                    continue
                break
            match = _CONTENT_LENGTH.search(bytes(buf[pos:end]))
            if match is None or not match.group(1).isdigit():
                out.append(FrameError("LSP header without a valid Content-Length"))
                pos = self._resync(buf, pos + 1, end + 4)
                continue
            length = int(match.group(1))
            pos = end + 4
            if length > self.max_bytes:
                out.append(_too_large(self.max_bytes))
                self._skip = length
            else:
                self._need = length
        del buf[:pos]
        return out

    @staticmethod
    def _resync(buf: bytearray, start: int, floor: int) -> int:
        """Where the next header block starts after ``start``; failing that, skip to ``floor``
        but keep a tail that could be the start of a split ``Content-Length``."""
        match = _HEADER_START.search(buf, start)
        if match:
            return match.start()
        return max(floor, len(buf) - 16)


class AutoDecoder:
    """Picks NDJSON or LSP from the first non-blank byte, then delegates."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.framing: Framing | None = None
        self._inner: NdjsonDecoder | LspDecoder | None = None

    def feed(self, data: bytes) -> list[bytes | FrameError]:
        if self._inner is None:
            stripped = data.lstrip()
            if not stripped:
                return []
            self._inner = LspDecoder(self.max_bytes) if stripped[:1] in b"Cc" else NdjsonDecoder(self.max_bytes)
            self.framing = self._inner.framing
            self.feed = self._inner.feed  # type: ignore[method-assign]
            data = stripped
        return self._inner.feed(data)


def decoder(framing: Framing | Literal["auto"], max_bytes: int) -> NdjsonDecoder | LspDecoder | AutoDecoder:
    """A decoder for ``framing``."""
    if framing == "ndjson":
        return NdjsonDecoder(max_bytes)
    if framing == "lsp":
        return LspDecoder(max_bytes)
    if framing == "auto":
        return AutoDecoder(max_bytes)
    raise ValueError(f"unknown framing {framing!r}")


def encode_ndjson(body: bytes) -> bytes:
    """One line; the JSON encoder never emits a raw newline."""
    return body + b"\n"


def encode_lsp(body: bytes) -> bytes:
    return b"Content-Length: %d\r\n\r\n%b" % (len(body), body)


ENCODERS = {"ndjson": encode_ndjson, "lsp": encode_lsp}


def _too_large(limit: int) -> FrameError:
    return FrameError(f"message larger than {limit} bytes", too_large=True)
