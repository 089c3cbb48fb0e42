"""``CircuitBreaker``: stop calling a method that keeps failing, try again after a cool-down."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ..errors import CIRCUIT_OPEN, INTERNAL_ERROR, REQUEST_TIMEOUT, BridgeError
from . import Request, Step

debug = logging.getLogger("bridge.debug")  # with --debug: a line per circuit decision but "closed, pass"

#: Errors that count as the method failing (not the caller's fault).
FAILURE_CODES = frozenset({INTERNAL_ERROR, REQUEST_TIMEOUT})


class CircuitBreaker(Step):
    """Closed: calls pass. After ``failures`` failures in a row: open, and calls fail fast
    with CIRCUIT_OPEN (``data.retry_after``). After ``reset_after`` seconds: half-open, one
    trial call passes; ``success_threshold`` trials in a row succeeding (one by default)
    close the circuit, one failing opens it again.

    Failures are exceptions other than BridgeError, calls that time out, and BridgeErrors
    with the codes in ``failure_codes`` (internal error and timeout by default; add an app's
    own, e.g. ``FAILURE_CODES | {5003}``). Every other BridgeError (the caller's: invalid
    params or request, rate limited; and the app's own codes, most often about the caller's
    input) and a cancelled call count as neither failure nor success: they leave the count
    alone, and a half-open trial that ends so lets the next call be the trial. So a caller
    can neither keep a failing method's circuit closed nor open a healthy one's. One
    instance used as an app default keeps a circuit per method. ``clock`` (seconds, monotonic)
    is for tests.
    """

    def __init__(self, failures: int = 5, reset_after: float = 30.0, *,
                 failure_codes: frozenset[int] = FAILURE_CODES, success_threshold: int = 1,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if failures < 1 or reset_after <= 0 or success_threshold < 1:
            raise ValueError("failures and success_threshold must be at least 1 and reset_after positive")
        self.failures = failures
        self.success_threshold = success_threshold
        self.reset_after = reset_after
        self.failure_codes = failure_codes
        self._clock = clock
        self._circuits: dict[str, _Circuit] = {}

    def state(self, method: str) -> str:
        """"closed", "open" or "half-open"."""
        circuit = self._circuits.get(method)
        return circuit.state(self.reset_after, self._clock()) if circuit else "closed"

    def before(self, request: Request) -> None:
        circuit = self._circuits.get(request.method.name)
        if circuit is None:
            circuit = self._circuits[request.name] = _Circuit()
        if not circuit.opened:
            return
        state = circuit.state(self.reset_after, self._clock())
        if state == "open" or circuit.trial is not None:
            retry = max(0.0, circuit.opened + self.reset_after - self._clock())
            if _debugging(request):
                debug.debug("circuit %s id=%r: %s, refused, retry after %.3f s", request.name, request.id,
                            state if circuit.trial is None else "half-open (trial running)", retry)
            raise BridgeError(CIRCUIT_OPEN, None, {"retry_after": round(retry, 3), "method": request.name})
        circuit.trial = request  # half-open: this call is the trial
        if _debugging(request):
            debug.debug("circuit %s id=%r: half-open, this call is the trial (open %.3f s)", request.name, request.id,
                        self._clock() - circuit.opened)

    def after(self, request: Request, error: BaseException | None) -> None:
        circuit = self._circuits[request.method.name]
        opened = circuit.opened
        if error is None and not opened and not circuit.count:
            return  # closed and stays so: the usual case
        if error is None:
            circuit.succeeded(self.success_threshold)
        elif isinstance(error, BridgeError) and error.code not in self.failure_codes:
            circuit.neither(request)
        elif isinstance(error, Exception) or request.cancel_code == REQUEST_TIMEOUT:
            self._failed(circuit)
        else:  # cancelled by the caller or the host's shutdown
            circuit.neither(request)
        if circuit.opened != opened and _debugging(request):  # it opened, opened again, or closed
            if circuit.opened:
                debug.debug("circuit %s id=%r: opened after %d failure(s) in a row, for %.3f s", request.name,
                            request.id, circuit.count, self.reset_after)
            else:
                debug.debug("circuit %s id=%r: closed after %.3f s open", request.name, request.id,
                            self._clock() - opened)

    def _failed(self, circuit: _Circuit) -> None:
        circuit.trial = None
        circuit.passed = 0
        circuit.count += 1
        if circuit.count >= self.failures or circuit.opened:
            circuit.opened = self._clock()


class _Circuit:
    __slots__ = ("count", "opened", "passed", "trial")

    def __init__(self) -> None:
        self.count = 0
        self.passed = 0  # half-open trials that succeeded in a row
        self.opened = 0.0  # when it last opened; 0 while closed
        self.trial: Request | None = None  # the half-open trial call running

    def state(self, reset_after: float, now: float) -> str:
        if not self.opened:
            return "closed"
        return "open" if now - self.opened < reset_after else "half-open"

    def succeeded(self, threshold: int) -> None:
        if self.opened:  # a half-open trial passed: closed once enough have in a row
            self.trial = None
            self.passed += 1
            if self.passed < threshold:
                return
        if self.count or self.opened:
            self.count = 0
            self.opened = 0.0
            self.passed = 0
            self.trial = None

    def neither(self, request: Request) -> None:
        """A call that says nothing of the method's health ended: if it was the trial, the
        next call may be."""
        if self.trial is request:
            self.trial = None


def _debugging(request: Request) -> bool:
    """Debug mode (``--debug``) with the debug logger on: the decision gets a log line."""
    return debug.isEnabledFor(logging.DEBUG) and bool(request.connection.settings.debug)
