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

    __slots__ = ("reason", "too_large")

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
        self._parts: list[bytes] = []  # the start of a line still missing its newline
        self._size = 0
        self._discarding = False

    def feed(self, data: bytes) -> list[bytes | FrameError]:
        out: list[bytes | FrameError] = []
        start = 0
        find = data.find
        while (nl := find(b"\n", start)) >= 0:
            if self._discarding:
                self._discarding = False
            else:
                if self._parts:
                    self._parts.append(data[start:nl])
                    line = b"".join(self._parts)
                    self._parts.clear()
                    self._size = 0
                else:
                    line = data[start:nl]
                if len(line) > self.max_bytes:
                    out.append(_too_large(self.max_bytes))
                elif line and not line.isspace():
                    out.append(line)
            start = nl + 1
        if start < len(data) and not self._discarding:
            self._parts.append(data[start:] if start else data)
            self._size += len(data) - start
            if self._size > self.max_bytes:
                self._parts.clear()
                self._size = 0
                self._discarding = True
                out.append(_too_large(self.max_bytes))
        return out


class LspDecoder:
    """``Content-Length: N`` headers, a blank line, then N bytes of body.

    After a broken header block the decoder skips to the next ``Content-Length``.
    """

    framing: Framing = "lsp"

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._head = bytearray()  # an incomplete header block, or the tail kept while resyncing
        self._parts: list[bytes] = []  # an incomplete body
        self._have = 0
        self._need = -1  # body bytes awaited; -1 while reading headers
        self._skip = 0  # bytes of an over-size body still to drop
        self._resyncing = False

    def feed(self, data: bytes) -> list[bytes | FrameError]:
        out: list[bytes | FrameError] = []
        pos = 0
        while pos < len(data):
            if self._need >= 0:
                take = min(self._need - self._have, len(data) - pos)
                self._parts.append(data[pos : pos + take] if take != len(data) else data)
                self._have += take
                pos += take
                if self._have == self._need:
                    parts = self._parts
                    out.append(parts[0] if len(parts) == 1 else b"".join(parts))
                    parts.clear()
                    self._have = 0
                    self._need = -1
            elif self._skip:
                dropped = min(self._skip, len(data) - pos)
                self._skip -= dropped
                pos += dropped
            elif self._resyncing:
                data, pos = self._resync(data, pos)
            elif not self._head and data.startswith(b"Content-Length: ", pos):
                # The usual case, one header and often the whole body in this chunk.
                end = data.find(b"\r\n\r\n", pos + 16)
                digits = data[pos + 16 : end]
                if end < 0 or not digits.isdigit() or int(digits) > self.max_bytes:
                    data, pos = self._read_header(data, pos, out)
                    continue
                length = int(digits)
                pos = end + 4
                if pos + length <= len(data):
                    out.append(data[pos : pos + length])
                    pos += length
                elif length:
                    self._need = length
                else:
                    out.append(b"")
            else:
                data, pos = self._read_header(data, pos, out)
        return out

    def _read_header(self, data: bytes, pos: int, out: list[bytes | FrameError]) -> tuple[bytes, int]:
        """Consume one header block, or keep a partial one; return where reading goes on."""
        head = self._head
        if head:
            head += data[pos:]
            end = head.find(b"\r\n\r\n")
            if end < 0:
                self._bound_head(out)
                return data, len(data)
            block = bytes(head[:end])
            data, pos = bytes(head[end + 4 :]), 0
            head.clear()
        else:
            end = data.find(b"\r\n\r\n", pos)
            if end < 0:
                head += data[pos:]
                self._bound_head(out)
                return data, len(data)
            block = data[pos:end]
            pos = end + 4
        if block[:16] == b"Content-Length: " and block[16:].isdigit():  # the usual, single header
            length = int(block[16:])
        else:
            match = _CONTENT_LENGTH.search(block)
            if match is None or not match.group(1).isdigit():
                return self._bad_header(block, data, pos, out)
            length = int(match.group(1))
        if length > self.max_bytes:
            out.append(_too_large(self.max_bytes))
            self._skip = length
        elif length == 0:
            out.append(b"")
        else:
            self._need = length
        return data, pos

    def _bad_header(self, block: bytes, data: bytes, pos: int, out: list[bytes | FrameError]) -> tuple[bytes, int]:
        """Report a header block with no usable length; go on at the next header."""
        out.append(FrameError("LSP header without a valid Content-Length"))
        later = _HEADER_START.search(block, 1)
        if later:  # junk before a real header (a body that lied about its length)
            return block[later.start() :] + b"\r\n\r\n" + data[pos:], 0
        self._resyncing = True
        return data, pos

    def _resync(self, data: bytes, pos: int) -> tuple[bytes, int]:
        """Skip to the next ``Content-Length``, keeping a tail that may hold half of one."""
        if self._head:
            data, pos = bytes(self._head) + data[pos:], 0
            self._head.clear()
        match = _HEADER_START.search(data, pos)
        if match:
            self._resyncing = False
            return data, match.start()
        self._head += data[max(pos, len(data) - 16) :]
        return data, len(data)

    def _bound_head(self, out: list[bytes | FrameError]) -> None:
        """A header block that never ends is junk: report it and skip to the next header."""
        head = self._head
        while len(head) > MAX_HEADER_BYTES:
            out.append(FrameError("LSP header block too long"))
            match = _HEADER_START.search(head, 1)
            if match is None:
                del head[:-16]
                self._resyncing = True
                return
            del head[: match.start()]


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
