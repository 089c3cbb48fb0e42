"""bridge/routing.py lifespans, through the real host: entered at start, state while serving,
left in reverse at shutdown; a plugin whose lifespan fails fails alone."""

from __future__ import annotations

from harness import Host


def test_state_comes_from_the_lifespans_and_they_are_left_in_reverse() -> None:
    with Host("tests.lifespan_app:app") as host:
        assert host.recv()["method"] == "$/ready"
        assert host.call("greeting", id=1)["result"] == "hello"
        assert host.call("ticker.ticks", id=2)["result"] >= 1
        assert host.call("broken.ping", id=3)["result"] == "pong"
        host.close_stdin()
        assert host.wait() == 0
        lines = [line for line in host.stderr.decode().splitlines() if line.startswith(("enter", "leave"))]
        assert lines == ["enter app", "enter ticker", "leave ticker", "leave app"]


def test_a_plugin_whose_lifespan_fails_fails_alone() -> None:
    with Host("tests.lifespan_app:app", env={"BREAK_PLUGIN": "1"}) as host:
        for id, params in enumerate((None, {"word": "hi"}, ["hi"]), 1):  # by name, its handler is called by position
            error = host.call("broken.ping", params, id=id)["error"]
            assert error["data"] == {"plugin": "broken", "error": "RuntimeError: no database"}, params
        assert host.call("greeting", id=4)["result"] == "hello"
        assert host.call("ticker.ticks", id=5)["result"] >= 1


def test_an_app_whose_lifespan_fails_does_not_start() -> None:
    with Host("tests.lifespan_app:failing", env={"BREAK_PLUGIN": "1"}) as host:
        assert host.wait() == 1
        host.wait_stderr(b"no database")


def test_a_lifespan_that_never_stops_is_cancelled_after_the_grace_period() -> None:
    """Nothing blocks forever: the host leaves its lifespans within shutdown_grace."""
    import time

    with Host("tests.lifespan_app:app", "--shutdown-grace", "0.5", env={"HANG_PLUGIN": "1"}) as host:
        assert host.call("greeting", id=1)["result"] == "hello"
        host.close_stdin()
        started = time.monotonic()
        assert host.wait(timeout=10) == 0
        assert time.monotonic() - started < 5
        host.wait_stderr(b"plugins still stopping after 0.5s were cancelled")
