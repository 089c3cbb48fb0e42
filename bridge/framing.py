"""Bytes to message bodies and back: newline-delimited JSON and the LSP base protocol.

Decoders are sans-IO: ``feed(chunk)`` returns the complete bodies found so far,
with a ``FrameError`` in place of anything that cannot be a message. Nothing
is ever buffered past ``max_bytes``: an over-size NDJSON line is skipped as it
streams by and reported once; an over-size LSP length is refused at its header.
"""

from __future__ import annotations

import re
from typing import Literal, Protocol

Framing = Literal["ndjson", "lsp"]

#: Longest LSP header block accepted before the decoder resynchronises (the default of the
#: ``max_header_bytes`` setting).
MAX_HEADER_BYTES = 8192

_LENGTH = rb"content-length[ \t]*:[ \t]*(\d+)[ \t]*\r?$"
_LENGTH_LINE = re.compile(rb"(?im)^" + _LENGTH)  # the first usable length line in a block decides
_LENGTH_HERE = re.compile(rb"(?im)" + _LENGTH)
_HEADER_START = re.compile(rb"(?i)content-length[ \t]*:")
_BLOCK_END = re.compile(rb"\n\r?\n")  # the first empty line, after CRLF or bare LF line ends
_BLANK_LINES = re.compile(rb"[\r\n]*")


class FrameError:
    """Something in the byte stream that is not a message; the decoder has moved past it."""

    __slots__ = ("reason", "too_large")

    def __init__(self, reason: str, *, too_large: bool = False) -> None:
        self.reason = reason
        self.too_large = too_large

    def __repr__(self) -> str:
        return f"FrameError({self.reason!r})"


class Decoder(Protocol):
    @property
    def framing(self) -> Framing | None: ...

    def feed(self, data: bytes) -> list[bytes | FrameError]: ...


#: A chunk whose first line is shorter than this is split in one go; else read line by line.
SPLIT_BELOW = 1024


class NdjsonDecoder:
    """One JSON text per line; blank lines are ignored, a trailing ``\\r`` is allowed."""

    framing: Framing = "ndjson"

    def __init__(self, max_bytes: int, *, fast: bool = True) -> None:
        self.max_bytes = max_bytes
        self._fast = fast  # False: every chunk line by line (what tests hold the fast path to)
        self._parts: list[bytes] = []  # the start of a line still missing its newline
        self._size = 0
        self._discarding = False

    def feed(self, data: bytes) -> list[bytes | FrameError]:
        size = self._size + len(data)
        first = data.find(b"\n")
        if not 0 <= first < SPLIT_BELOW or size > self.max_bytes or self._discarding or not self._fast:
            return self._feed_checked(data, first)
        # Short lines, none too long (the common case): split in C, then the usual filter. (split
        # looks at each byte where find uses memchr: a chunk of one long line goes the other way.)
        lines = data.split(b"\n")
        tail = lines.pop()
        parts = self._parts
        if lines:
            if parts:
                parts.append(lines[0])
                lines[0] = b"".join(parts)
                parts.clear()
            size = len(tail)
        if tail:
            parts.append(tail)
        self._size = size
        return [line for line in lines if line and not line.isspace()]  # type: ignore[misc]

    def _feed_checked(self, data: bytes, nl: int | None = None) -> list[bytes | FrameError]:
        """``feed``, line by line, with each line's size checked (and a too-long one skipped);
        ``nl``: where the first newline is, if known."""
        out: list[bytes | FrameError] = []
        start = 0
        find = data.find
        if nl is None:
            nl = find(b"\n")
        while nl >= 0:
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
            nl = find(b"\n", start)
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
    """``Content-Length: N`` headers, an empty line, then N bytes of body.

    Header lines may end in CRLF or a bare LF; the block ends at the first empty line,
    and its first ``Content-Length`` line with digits decides. A block without one, or
    whose length is over ``max_bytes``, is reported and the decoder goes on at the next
    ``Content-Length``: it never skips bytes on the word of a header it refused.
    """

    framing: Framing = "lsp"

    def __init__(self, max_bytes: int, max_header_bytes: int = MAX_HEADER_BYTES, *, fast: bool = True) -> None:
        self.max_bytes = max_bytes
        self.max_header_bytes = max_header_bytes
        self._fast = fast  # False: no tight loop for whole frames (what tests hold it to)
        self._digits = len(str(max_bytes))
        self._head = bytearray()  # an incomplete header block, or the tail kept while resyncing
        self._parts: list[bytes] = []  # an incomplete body
        self._have = 0
        self._need = -1  # body bytes awaited; -1 while reading headers
        self._resyncing = False
        self._flooding = False  # a header block that never ends has been reported

    def feed(self, data: bytes) -> list[bytes | FrameError]:
        out: list[bytes | FrameError] = []
        pos = 0 if self._need >= 0 or self._resyncing or self._head or not self._fast else self._whole_frames(data, out)
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
            elif self._resyncing:
                data, pos = self._resync(data, pos)
            elif not self._head and data.startswith(b"Content-Length: ", pos):
                # The usual case, one header and often the whole body in this chunk. Digits
                # only up to the CRLFCRLF means no earlier empty line; the search is bounded.
                end = data.find(b"\r\n\r\n", pos + 16, pos + 40)
                digits = data[pos + 16 : end] if end >= 0 else b""  # (no negative slice ends: mypyc)
                length = int(digits) if digits.isdigit() else -1
                if length < 0 or length > self.max_bytes:
                    data, pos = self._read_header(data, pos, out)
                    continue
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

    def _whole_frames(self, data: bytes, out: list[bytes | FrameError]) -> int:
        """The usual chunk: frames that each start with a bare ``Content-Length: N`` header and
        end inside it, cut in C at every header and each checked (its length all digits, its body
        exactly that long); where the first that is not such a frame starts (``feed`` goes on from
        there): a frame the chunk ends in, another header, or a body that holds a header's text.
        A piece that checks out is a frame: its body ends where the next header was found, so
        none of it was cut off (against a loop of ``find``s: 310 -> 220 ns a frame, 211 -> 171 compiled)."""
        if not data.startswith(b"Content-Length: "):
            return 0
        end = data.find(b"\r\n\r\n", 16, 40)
        digits = data[16:end] if end >= 0 else b""
        if not digits.isdigit() or end + 4 + int(digits) > len(data):
            return 0  # the first frame does not end here (a large one, mostly): no copies of it to make
        append, most, max_bytes = out.append, self._digits, self.max_bytes
        pos = 0
        for piece in data.split(b"Content-Length: ")[1:]:
            digits, blank, body = piece.partition(b"\r\n\r\n")
            if not blank or len(digits) > most or not digits.isdigit() or len(body) != int(digits) \
                    or len(body) > max_bytes:
                break
            append(body)
            pos += 16 + len(piece)
        return pos

    def _read_header(self, data: bytes, pos: int, out: list[bytes | FrameError]) -> tuple[bytes, int]:
        """Consume one header block, or keep a partial one; return where reading goes on."""
        head = self._head
        if head:
            searched = len(head) - 2
            head += data[pos:]
            end = _BLOCK_END.search(head, max(searched, 0))
            if end is None:
                self._bound_head(out)
                return data, len(data)
            data, pos = bytes(head), 0
            head.clear()
        else:
            pos = _BLANK_LINES.match(data, pos).end()  # type: ignore[union-attr]
            end = _BLOCK_END.search(data, pos)
            if end is None:
                head += data[pos:]
                self._bound_head(out)
                return data, len(data)
        self._flooding = False
        block = data[pos : end.start()]
        # A refused block may hide the next header: junk (say a body that lied about its
        # length) ran into it, or a refused length line came first. Each try starts at a
        # later Content-Length, so a block is read in linear time whatever it holds.
        errors: list[FrameError] = []  # one of each kind per block
        start = 0
        if len(block) > self.max_header_bytes:
            errors.append(FrameError("LSP header block too long"))
            out.append(errors[0])
            later = _HEADER_START.search(block, len(block) - self.max_header_bytes)
            if later is None:
                self._resyncing = True
                return data, end.end()
            start = later.start()
        first = _LENGTH_LINE.search(block, start)  # the first length line at a line start
        while True:
            line = (_LENGTH_HERE.match(block, start) if start else None) or first
            length = self._length(line)
            if not isinstance(length, FrameError):
                if length:
                    self._need = length
                else:
                    out.append(b"")
                return data, end.end()
            if not any(e.too_large == length.too_large for e in errors):
                errors.append(length)
                out.append(length)
            later = _HEADER_START.search(block, (line.start() if line else start) + 1)
            if later is None:
                self._resyncing = True
                return data, end.end()
            start = later.start()
            if first is not None and first.start() < start:
                first = _LENGTH_LINE.search(block, start)

    def _length(self, line: re.Match[bytes] | None) -> int | FrameError:
        """The declared length, or why there is none."""
        if line is None:
            return FrameError("LSP header without a valid Content-Length")
        digits = line.group(1).lstrip(b"0") or b"0"
        if len(digits) > self._digits or int(digits) > self.max_bytes:
            return _too_large(self.max_bytes)
        return int(digits)

    def _resync(self, data: bytes, pos: int) -> tuple[bytes, int]:
        """Skip to the next ``Content-Length``, keeping a tail that may hold the start of one."""
        if self._head:
            data, pos = bytes(self._head) + data[pos:], 0
            self._head.clear()
        match = _HEADER_START.search(data, pos)
        if match:
            self._resyncing = False
            return data, match.start()
        self._head += data[_tail_start(data, pos, self.max_header_bytes) :]
        return data, len(data)

    def _bound_head(self, out: list[bytes | FrameError]) -> None:
        """A header block that never ends is junk: report it and go on at a later header."""
        head = self._head
        if len(head) <= self.max_header_bytes:
            return
        if not self._flooding:
            self._flooding = True
            out.append(FrameError("LSP header block too long"))
        # A header that can still start a block within the bound lies in the last max_header_bytes.
        match = _HEADER_START.search(head, len(head) - self.max_header_bytes)
        if match:
            del head[: match.start()]
        else:
            del head[: _tail_start(head, 0, self.max_header_bytes)]
            self._resyncing = True


class AutoDecoder:
    """Picks NDJSON or LSP from the first non-blank byte, then delegates to ``inner`` (which
    its owner may call directly from then on, as the connection does)."""

    def __init__(self, max_bytes: int, max_header_bytes: int = MAX_HEADER_BYTES) -> None:
        self.max_bytes = max_bytes
        self.max_header_bytes = max_header_bytes
        self.framing: Framing | None = None
        #: The decoder of the framing picked, once there is one.
        self.inner: NdjsonDecoder | LspDecoder | None = None

    def feed(self, data: bytes) -> list[bytes | FrameError]:
        inner = self.inner
        if inner is None:
            stripped = data.lstrip()
            if not stripped:
                return []
            inner = self.inner = LspDecoder(self.max_bytes, self.max_header_bytes) \
                if stripped[:1] in b"Cc" else NdjsonDecoder(self.max_bytes)
            self.framing = inner.framing
            data = stripped
        return inner.feed(data)


def decoder(
    framing: Framing | Literal["auto"], max_bytes: int, max_header_bytes: int = MAX_HEADER_BYTES
) -> Decoder:
    """A decoder for ``framing``."""
    if framing == "ndjson":
        return NdjsonDecoder(max_bytes)
    if framing == "lsp":
        return LspDecoder(max_bytes, max_header_bytes)
    if framing == "auto":
        return AutoDecoder(max_bytes, max_header_bytes)
    raise ValueError(f"unknown framing {framing!r}")


def encode_ndjson(body: bytes) -> bytes:
    """One line; the JSON encoder never emits a raw newline."""
    return body + b"\n"


#: The headers of bodies under this size are kept once made (at most ~0.5 MiB): looking one up
#: costs 40 ns a reply less than formatting it (a reply usually comes in a few sizes).
_LSP_HEADS_CACHED = 4096
_LSP_HEADS: dict[int, bytes] = {}


def encode_lsp(body: bytes) -> bytes:
    size = len(body)
    head = _LSP_HEADS.get(size)
    if head is None:
        head = b"Content-Length: %d\r\n\r\n" % size
        if size < _LSP_HEADS_CACHED:
            _LSP_HEADS[size] = head
    return head + body


ENCODERS = {"ndjson": encode_ndjson, "lsp": encode_lsp}


def _tail_start(buf: bytes | bytearray, lo: int, max_header_bytes: int) -> int:
    """Where the part of ``buf`` that may be the start of a ``Content-Length:`` begins."""
    spaces = len(buf) - len(buf.rstrip(b" \t"))  # "content-length" may be followed by blanks
    return max(lo, len(buf) - spaces - 14, len(buf) - max_header_bytes)


def _too_large(limit: int) -> FrameError:
    return FrameError(f"message larger than {limit} bytes", too_large=True)
