"""The real host over LSP framing: a bad or lenient header block costs at most itself."""

from __future__ import annotations

import orjson

from tests.harness import Host


def request(id: object, value: object) -> bytes:
    return orjson.dumps({"jsonrpc": "2.0", "id": id, "method": "demo.echo", "params": [value]})


def frame(body: bytes, end: bytes = b"\r\n\r\n") -> bytes:
    return b"Content-Length: %d%b%b" % (len(body), end, body)


def test_header_block_ended_by_bare_lf_is_read_and_the_next_requests_answered():
    with Host(framing="lsp") as host:
        host.recv()  # $/ready
        host.send_raw(frame(request("lf", 0), b"\n\n") + frame(request(1, 1)) + frame(request(2, 2)))
        assert host.reply("lf", timeout=5)["result"] == 0
        assert host.reply(1, timeout=5)["result"] == 1
        assert host.reply(2, timeout=5)["result"] == 2


def test_declared_length_over_the_limit_is_refused_and_the_next_request_answered():
    with Host(framing="lsp", env={"BRIDGE_MAX_MESSAGE_BYTES": "4096"}) as host:
        host.recv()
        for i, digits in enumerate([b"99999999999999", b"9" * 5000]):
            host.send_raw(b"Content-Length: " + digits + b"\r\n\r\n" + frame(request(i, i)))
            reply, before = host.recv_until(lambda m: m.get("id") == i, timeout=5)
            assert reply["result"] == i
            assert [e["error"]["code"] for e in before] == [-32002]
            assert before[0]["id"] is None and before[0]["error"]["data"]["limit"] == 4096
        host.close_stdin()
        assert host.wait() == 0
