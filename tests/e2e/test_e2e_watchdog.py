"""Through the real host: a blocked event loop is named, and junk input is logged within bounds."""

from __future__ import annotations

from harness import Host

APP = "tests.e2e_app:app"


def test_a_handler_blocking_the_loop_is_named_and_counted() -> None:
    with Host(APP, "--loop-block-warning", "0.1") as host:
        assert host.call("hog", {"seconds": 0.5}, id=1)["result"] == "done"
        host.wait_stderr(b"event loop blocked for over")
        assert b"by hog at " in host.stderr and b"write a plain `def`" in host.stderr
        loop = host.call("rpc.metrics", id=2)["result"]["loop"]
        assert loop["blocked"] == 1 and loop["byMethod"] == {"hog": 1} and loop["maxBlockedMs"] >= 100


def test_the_watchdog_can_be_turned_off() -> None:
    with Host(APP, "--loop-block-warning", "0") as host:
        assert host.call("hog", {"seconds": 0.3}, id=1)["result"] == "done"
        assert "loop" not in host.call("rpc.metrics", id=2)["result"]
        assert b"event loop blocked" not in host.stderr


def test_demo_count_is_bounded() -> None:
    with Host() as host:
        reply = host.call("demo.count", {"n": 3_000_000}, id=1)
        assert reply["error"]["code"] == -32602


def test_bad_input_is_answered_every_time_but_logged_a_few_times_then_summarised() -> None:
    with Host(APP) as host:
        host.send_raw(b"".join(b"{not json %d\n" % i for i in range(200)))
        host.send_raw(b'1\n' * 50)
        assert host.recv()["method"] == "$/ready"
        errors = [host.recv() for _ in range(250)]
        assert [e["error"]["code"] for e in errors] == [-32700] * 200 + [-32600] * 50
        counts = host.call("rpc.metrics", id=1)["result"]["badInput"]
        assert counts == {"parse": 200, "request": 50}
        host.close_stdin()
        assert host.wait() == 0
        lines = [line for line in host.stderr.decode().splitlines() if "bad input" in line]
        assert len([line for line in lines if "bad input (parse)" in line]) == 5
        assert len([line for line in lines if "bad input (request)" in line]) == 5
        assert any("195 parse" in line and "45 request" in line for line in lines), lines
        assert len(lines) == 11
