"""bridge/framing.py: any payload, split at any byte, comes back whole; junk is skipped."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.framing import (
    MAX_HEADER_BYTES,
    AutoDecoder,
    FrameError,
    LspDecoder,
    NdjsonDecoder,
    encode_lsp,
    encode_ndjson,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
bodies = st.lists(json_values.map(orjson.dumps), min_size=1, max_size=8)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]


def feed_all(decoder, chunks: list[bytes]) -> list:
    out = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    return out


@settings(max_examples=300)
@given(bodies, st.lists(st.integers(min_value=0), max_size=12))
def test_ndjson_round_trip_at_any_split(messages, cuts):
    stream = b"".join(encode_ndjson(m) for m in messages)
    assert feed_all(NdjsonDecoder(1 << 20), split(stream, cuts)) == messages


@settings(max_examples=300)
@given(bodies, st.lists(st.integers(min_value=0), max_size=12))
def test_lsp_round_trip_at_any_split(messages, cuts):
    stream = b"".join(encode_lsp(m) for m in messages)
    assert feed_all(LspDecoder(1 << 20), split(stream, cuts)) == messages


@given(bodies, st.sampled_from(["ndjson", "lsp"]), st.lists(st.integers(min_value=0), max_size=6))
def test_auto_detects_either_framing(messages, framing, cuts):
    encode = encode_lsp if framing == "lsp" else encode_ndjson
    stream = b"\r\n  " + b"".join(encode(m) for m in messages)
    decoder = AutoDecoder(1 << 20)
    assert feed_all(decoder, split(stream, cuts)) == messages
    assert decoder.framing == framing


def test_every_byte_split_of_multibyte_utf8():
    message = orjson.dumps({"text": "héllo → 世界 🎉"})
    stream = encode_ndjson(message) * 2
    for cut in range(len(stream) + 1):
        assert feed_all(NdjsonDecoder(1024), [stream[:cut], stream[cut:]]) == [message, message]


def test_ndjson_blank_lines_and_crlf():
    assert NdjsonDecoder(100).feed(b'\n  \n{"a":1}\r\n\n') == [b'{"a":1}\r']


def test_ndjson_oversize_line_is_skipped_and_reported_once():
    decoder = NdjsonDecoder(10)
    out = feed_all(decoder, [b'{"x":"' + b"a" * 30, b"b" * 30, b'"}\n{"ok":1}\n'])
    assert len(out) == 2
    assert isinstance(out[0], FrameError) and out[0].too_large
    assert out[1] == b'{"ok":1}'
    assert decoder._parts == [] and decoder._size == 0


def test_ndjson_oversize_complete_line():
    out = NdjsonDecoder(5).feed(b'{"x":12345}\n{}\n')
    assert isinstance(out[0], FrameError) and out[0].too_large and out[1] == b"{}"


def test_lsp_oversize_length_is_refused_at_the_header_without_buffering():
    decoder = LspDecoder(10)
    body = b'{"x":"' + b"a" * 1000 + b'"}'
    out = decoder.feed(b"Content-Length: %d\r\n\r\n" % len(body) + body[:100])
    assert len(out) == 1 and out[0].too_large
    assert not decoder._parts and len(decoder._head) < 16  # at most the start of a next header
    out = feed_all(decoder, [body[100:], encode_lsp(b"{}")])
    assert out == [b"{}"]


def test_lsp_huge_length_is_refused_and_the_next_frame_read():
    """99999999999999 is not a promise to skip that many bytes: the next header is read."""
    decoder = LspDecoder(1000)
    stream = b"Content-Length: 99999999999999\r\n\r\n" + encode_lsp(b"[5]") + encode_lsp(b"[6]")
    for cut in range(len(stream) + 1):
        out = feed_all(LspDecoder(1000), [stream[:cut], stream[cut:]])
        assert len(out) == 3 and out[0].too_large and out[1:] == [b"[5]", b"[6]"], cut
    out = decoder.feed(b"Content-Length: " + b"9" * 5000 + b"\r\n\r\n" + encode_lsp(b"[7]"))
    assert len(out) == 2 and out[0].too_large and out[1] == b"[7]"


def test_lsp_huge_length_line_ahead_of_a_real_header():
    stream = b"Content-Length: 99999999999999\r\n" + encode_lsp(b"[8]")
    out = LspDecoder(1000).feed(stream)
    assert len(out) == 2 and out[0].too_large and out[1] == b"[8]"


def test_lsp_header_lines_may_end_in_bare_lf():
    """The block ends at the first empty line, CRLF or LF: ``\\n\\n`` costs nothing."""
    streams = [
        b"Content-Length: 3\n\n[1]",
        b"Content-Length: 3\r\n\n[1]",
        b"Content-Length: 3\n\r\n[1]",
        b"Content-Type: x\nContent-Length: 3\r\n\n[1]",
        b"content-length:3\n\n[1]",
    ]
    for head in streams:
        stream = head + encode_lsp(b"[2]") + b"Content-Length: 3\n\n[3]" + encode_lsp(b"[4]")
        for cut in range(len(stream) + 1):
            assert feed_all(LspDecoder(100), [stream[:cut], stream[cut:]]) == [b"[1]", b"[2]", b"[3]", b"[4]"], head


def test_lsp_blank_lines_between_frames_are_ignored():
    stream = b"\r\n\n" + encode_lsp(b"[1]") + b"\r\n" + encode_lsp(b"[2]") + b"\n\n\r"
    assert LspDecoder(100).feed(stream) == [b"[1]", b"[2]"]


def test_lsp_malformed_block_costs_only_itself():
    """A bad block ended by ``\\n\\n`` is one error; the frames after it all arrive."""
    stream = b"Content-Length: x\n\n" + encode_lsp(b"[1]") + encode_lsp(b"[2]")
    out = LspDecoder(100).feed(stream)
    assert len(out) == 3 and isinstance(out[0], FrameError) and out[1:] == [b"[1]", b"[2]"]


def test_lsp_resync_keeps_little_while_scanning_junk():
    decoder = LspDecoder(100)
    decoder.feed(b"Content-Length: 99999999999999\r\n\r\n")
    for _ in range(64):
        assert decoder.feed(b"y" * 65536 + b" \t") == []
        assert len(decoder._head) <= 16
    assert decoder.feed(b"Content-Len") == []
    assert decoder.feed(b"gth: 2\r\n\r\n{}") == [b"{}"]


def test_lsp_header_without_content_length_resyncs():
    out = LspDecoder(100).feed(b"Content-Type: x\r\n\r\n{junk}" + encode_lsp(b"[1]"))
    assert isinstance(out[0], FrameError)
    assert out[1:] == [b"[1]"]


def test_lsp_non_numeric_length_resyncs():
    out = LspDecoder(100).feed(b"Content-Length: -5\r\n\r\n" + encode_lsp(b"[2]"))
    assert isinstance(out[0], FrameError) and out[1:] == [b"[2]"]


def test_lsp_header_flood_is_bounded():
    decoder = LspDecoder(100)
    out = feed_all(decoder, [b"X" * 4096] * 4 + [encode_lsp(b"[3]")])
    assert any(isinstance(o, FrameError) for o in out)
    assert out[-1] == b"[3]"
    assert len(decoder._head) <= MAX_HEADER_BYTES


def test_lsp_lying_short_length_then_recovers():
    body = b'{"jsonrpc":"2.0"}'
    out = LspDecoder(100).feed(b"Content-Length: 5\r\n\r\n" + body + encode_lsp(b"[4]"))
    assert out[0] == body[:5]
    assert out[-1] == b"[4]"


def test_lsp_header_names_are_case_insensitive_and_content_type_allowed():
    stream = b"content-length: 2\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n{}"
    assert LspDecoder(100).feed(stream) == [b"{}"]


def test_lsp_one_bad_header_block_is_one_error():
    out = LspDecoder(100).feed(b"X: y\r\n\r\n")
    assert len(out) == 1 and isinstance(out[0], FrameError)


@given(st.binary(max_size=300), st.lists(st.integers(min_value=0), max_size=8))
def test_lsp_recovers_after_any_garbage(garbage, cuts):
    decoder = LspDecoder(1000)
    stream = garbage + b"\r\n\r\n" + encode_lsp(b'{"after":1}')
    out = feed_all(decoder, split(stream, cuts))
    assert out[-1] == b'{"after":1}' or garbage.lower().count(b"content-length")


@given(st.binary(max_size=300))
def test_ndjson_never_yields_more_than_the_limit(garbage):
    out = NdjsonDecoder(16).feed(garbage + b"\n")
    assert all(isinstance(o, FrameError) or len(o) <= 16 for o in out)


@settings(max_examples=500)
@given(
    st.lists(st.sampled_from([b"\n", b"\r\n", b" ", b"\t", b"{}", b"[1,2]", b"x" * 7, b'"abc"', b"\r", b"y" * 700]),
             max_size=40),
    st.lists(st.integers(min_value=0), max_size=10),
    st.integers(min_value=1, max_value=4096),
)
def test_ndjson_split_fast_path_matches_the_checked_loop(pieces, cuts, limit):
    """Chunks of short lines that cannot hold a too-long one are split in C; the frames, errors and what is kept
    for the next chunk are the same as the line-by-line loop's, at any split and any limit."""
    same_frames(NdjsonDecoder(limit), NdjsonDecoder(limit, fast=False), split(b"".join(pieces), cuts),
                lambda d: (b"".join(d._parts), d._size, d._discarding))


def same_frames(fast, general, chunks: list[bytes], kept) -> None:
    """Both decoders fed the same chunks give the same frames and errors for each, and keep the
    same for the next (``kept(decoder)``)."""
    for chunk in chunks:
        got, want = fast.feed(chunk), general.feed(chunk)
        assert [o if isinstance(o, bytes) else o.reason for o in got] == \
               [o if isinstance(o, bytes) else o.reason for o in want]
        assert kept(fast) == kept(general)


@settings(max_examples=500)
@given(
    st.lists(st.sampled_from([
        encode_lsp(b'{"a":1}'), encode_lsp(b""), encode_lsp(b"x" * 50), b"Content-Length: 3\r\nContent-Type: x\r\n\r\nabc",
        b"Content-Length: 99999\r\n\r\n", b"Content-Length: abc\r\n\r\n", b"junk\r\n", b"\r\n",
        b"content-length: 2\r\n\r\n{}", b"Content-Length:  4\r\n\r\n1234", b"Content-Length: 5\n\n12345",
        # bodies holding a header's text, a whole frame, or its start; a length with leading zeros
        encode_lsp(b'"Content-Length: 3\r\n\r\nabc"'), encode_lsp(encode_lsp(b"[1]")), encode_lsp(b"Content-Length: "),
        encode_lsp(b"x Content-Length: 12"), b"Content-Length: 0003\r\n\r\nabc",
    ]), max_size=12),
    st.lists(st.integers(min_value=0), max_size=8),
    st.sampled_from([10, 40, 1 << 20]),
)
def test_lsp_whole_frame_loop_matches_the_general_one(pieces, cuts, limit):
    """Chunks of whole frames with bare headers are taken in one tight loop; frames, errors and
    what is kept for the next chunk are the same as the general loop's, at any split and limit."""
    same_frames(LspDecoder(limit), LspDecoder(limit, fast=False), split(b"".join(pieces), cuts),
                lambda d: (b"".join(d._parts), d._need, d._have, bytes(d._head), d._resyncing))


def test_lsp_header_after_a_long_junk_run_survives_a_chunk_split():
    for junk in (b"x" * (MAX_HEADER_BYTES + 100), b"Content-Length:" * 700):
        for cut in (3, 11, 15, 19):
            stream = junk + encode_lsp(b"[9]")
            at = len(junk) + cut
            out = feed_all(LspDecoder(100), [stream[:at], stream[at:]])
            assert out[-1] == b"[9]" and 1 <= sum(isinstance(o, FrameError) for o in out) <= 2, (junk[:20], cut)


def test_the_header_bound_is_a_setting() -> None:
    from bridge.framing import LspDecoder

    long_header = b"X-Padding: " + b"p" * 200 + b"\r\nContent-Length: 2\r\n\r\n{}"
    assert LspDecoder(1024).feed(long_header) == [b"{}"]  # within the default 8 KiB
    out = LspDecoder(1024, max_header_bytes=64).feed(long_header + b"Content-Length: 2\r\n\r\n[]")
    assert out[-1] == b"[]" and any(isinstance(o, FrameError) for o in out)


@given(st.lists(st.integers(min_value=0, max_value=9000) | st.integers(min_value=8185, max_value=8200), max_size=20))
def test_lsp_headers_state_each_body_length(sizes):
    """Headers of small bodies are kept once made: each frame still names its own length."""
    for size in sizes:
        body = b"x" * size
        assert encode_lsp(body) == b"Content-Length: " + str(size).encode() + b"\r\n\r\n" + body


def test_the_first_chunk_of_a_large_lsp_frame_is_copied_once() -> None:
    """A chunk that starts a frame it does not finish is kept as it is read (one copy), not cut
    into pieces first: the whole-frames path would copy it twice more before giving up on it."""
    import tracemalloc

    body = b"[" + b"1," * (1 << 19) + b"1]"
    chunk = (b"Content-Length: %d\r\n\r\n" % len(body) + body)[: 1 << 18]
    decoder = LspDecoder(1 << 24)
    tracemalloc.start()
    try:
        assert decoder.feed(chunk) == []
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1.5 * len(chunk), peak
    assert decoder._need == len(body) and decoder._have == len(chunk) - chunk.index(b"\r\n\r\n") - 4
