"""bridge/framing.py: garbage between valid frames costs only itself, whatever it is and however it is split."""

from __future__ import annotations

import re

import orjson
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bridge.framing import FrameError, LspDecoder, NdjsonDecoder

LIMIT = 1000
# Random cut points, or every chunk a few bytes long (which splits every header somewhere).
cuts = st.lists(st.integers(min_value=0), max_size=40) | st.integers(min_value=1, max_value=7)
bodies = st.lists(st.text(max_size=20), min_size=1, max_size=6).map(
    lambda texts: [orjson.dumps({"valid": i, "text": t}) for i, t in enumerate(texts)]
)
resync_settings = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def split(data: bytes, points: list[int] | int) -> list[bytes]:
    if isinstance(points, int):
        return [data[i : i + points] for i in range(0, len(data), points)]
    at = sorted({p % (len(data) + 1) for p in points})
    return [data[a:b] for a, b in zip([0, *at], [*at, len(data)])]


def delivered_in_order(valid: list[bytes], out: list[bytes | FrameError]) -> bool:
    """Every valid body is among the outputs, in order (junk bodies and errors may come between)."""
    rest = iter(o for o in out if not isinstance(o, FrameError))
    return all(any(o == body for o in rest) for body in valid)


# --- LSP -------------------------------------------------------------------------------------

eol = st.sampled_from([b"\r\n", b"\n"])


@st.composite
def lsp_frames(draw, body: bytes) -> bytes:
    """A valid frame, written any way a lenient reader accepts: name case, spacing, CRLF or LF, other headers."""
    name = draw(st.sampled_from([b"Content-Length", b"content-length", b"CONTENT-LENGTH"]))
    space = draw(st.sampled_from([b" ", b"", b"  ", b"\t"]))
    length = name + b":" + space + b"%d" % len(body) + draw(eol)
    content_type = b"Content-Type: application/vscode-jsonrpc; charset=utf-8" + draw(eol)
    where = draw(st.sampled_from(["none", "before", "after"]))
    headers = {"none": length, "before": content_type + length, "after": length + content_type}[where]
    return headers + draw(eol) + body


over_limit = st.sampled_from([LIMIT + 1, 99999999999999, 10**40]).map(lambda n: b"%d" % n) | st.just(b"9" * 5000)
lsp_garbage_pieces = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([b"\r", b"\n", b"\r\n", b"\r\n\r\n", b"\n\n", b"\n\r\n", b"\r\r\n"]),
    st.sampled_from([b"C", b"Content-Len", b"Content-Length", b"Content-Length:", b"content-length: "]),
    st.sampled_from([b"Content-Type: x", b"Content-Length: 1x", b"Content-Length: -5", b"Content-Length: 0x10"]),
    st.tuples(st.sampled_from([b"Content-Length: ", b"content-length:"]), st.binary(max_size=8)).map(b"".join),
    st.tuples(st.just(b"Content-Length: "), over_limit, eol).map(b"".join),  # refused at the header, never skipped
    st.integers(0, 2 * LIMIT).map(lambda n: b"Content-Length: %d" % n),  # a length with no line end: junk
    st.sampled_from([b"x" * 9000, b"Content-Length:" * 700, b"Content-Length: abc" + b" " * 9000]),
)
# A well-formed header line of acceptable length legitimately claims the bytes after it: not garbage.
_CLAIMS = re.compile(rb"(?i)content-length[ \t]*:[ \t]*(\d+)[ \t]*\r?\n")


def claims_bytes(garbage: bytes) -> bool:
    return any(int(m.group(1)) <= LIMIT for m in _CLAIMS.finditer(garbage) if len(m.group(1)) < 4000)


@resync_settings
@given(st.data(), bodies, cuts)
def test_lsp_garbage_between_frames_loses_no_frame_after_it(data, valid, points):
    frames = [data.draw(lsp_frames(body)) for body in valid]
    garbage = [b"".join(data.draw(st.lists(lsp_garbage_pieces, max_size=8))) for _ in valid]
    assume(not any(claims_bytes(g) for g in garbage))
    stream = b"".join(g + f for g, f in zip(garbage, frames))
    decoder = LspDecoder(LIMIT)
    out = [o for chunk in split(stream, points) for o in decoder.feed(chunk)]
    assert delivered_in_order(valid, out)


# --- NDJSON ----------------------------------------------------------------------------------

NDJSON_LIMIT = 200
ndjson_garbage_lines = st.one_of(
    st.binary(max_size=60).map(lambda b: b.replace(b"\n", b"") + b"\n"),
    st.binary(min_size=NDJSON_LIMIT + 1, max_size=3 * NDJSON_LIMIT).map(lambda b: b.replace(b"\n", b"x") + b"\n"),
    st.sampled_from([b"\n", b"\r\n", b" \n", b"{\n", b'{"jsonrpc":\n']),
)


@resync_settings
@given(st.data(), bodies, cuts)
def test_ndjson_garbage_between_lines_loses_no_line_after_it(data, valid, points):
    garbage = [b"".join(data.draw(st.lists(ndjson_garbage_lines, max_size=6))) for _ in valid]
    stream = b"".join(g + body + b"\n" for g, body in zip(garbage, valid))
    decoder = NdjsonDecoder(NDJSON_LIMIT)
    out = [o for chunk in split(stream, points) for o in decoder.feed(chunk)]
    assert delivered_in_order(valid, out)
