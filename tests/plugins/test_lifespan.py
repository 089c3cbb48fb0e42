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
        error = host.call("broken.ping", id=1)["error"]
        assert error["data"] == {"plugin": "broken", "error": "RuntimeError: no database"}
        assert host.call("greeting", id=2)["result"] == "hello"
        assert host.call("ticker.ticks", id=3)["result"] >= 1


def test_an_app_whose_lifespan_fails_does_not_start() -> None:
    with Host("tests.lifespan_app:failing", env={"BREAK_PLUGIN": "1"}) as host:
        assert host.wait() == 1
        host.wait_stderr(b"no database")
