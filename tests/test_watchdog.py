"""bridge/watchdog.py: naming the method that holds the loop from the loop thread's stack alone
(the connection may run compiled, without frames of its own)."""

from __future__ import annotations

import functools
import threading
from typing import Any

from bridge.methods import Method
from bridge.watchdog import LoopWatchdog


def watching(methods: dict[str, Method]) -> LoopWatchdog:
    dog = LoopWatchdog(0.1, methods)
    dog._loop_thread = threading.get_ident()  # this thread plays the loop's
    return dog


def logged(func: Any) -> Any:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return func(*args, **kwargs)

    return wrapper


def test_the_handler_on_the_stack_is_named_through_its_decorators() -> None:
    seen: dict[str, Any] = {}

    def helper() -> None:
        seen["culprit"] = dog._culprit()

    @logged
    def hog() -> None:
        helper()

    def other() -> None: ...

    dog = watching({"hog": Method(hog, "hog"), "other": Method(other, "other")})
    hog()
    assert seen["culprit"][0] == "hog"


def test_a_frame_holding_the_method_names_it_when_its_handler_is_not_running() -> None:
    def handler() -> None: ...

    served = Method(handler, "served")
    dog = watching({"served": served})

    def middleware(method: Method) -> tuple[str, str]:  # blocks before calling the handler
        return dog._culprit()

    assert middleware(served)[0] == "served"


def test_code_outside_any_call_is_said_so() -> None:
    def handler() -> None: ...

    assert watching({"m": Method(handler, "m")})._culprit()[0] == "code outside any call"
