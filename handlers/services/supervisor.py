"""Run, watch and restart child processes: ``Service`` says what to run, ``ServiceManager`` runs it.

Each service, and each run of a health-check command, starts under a small shim
(``shim.py``) that leads its own process group: stopping it signals the whole group, and when
the host dies, even by ``kill -9``, the shim hears it (Linux: ``PR_SET_PDEATHSIG``; elsewhere it
polls its parent) and kills every descendant before it goes. Where there is no Python to run
the shim (a frozen bundle) or no POSIX, the command runs directly in its own group with a
parent-death signal on Linux: its own children can then outlive a killed host.

Every task (each service's supervision loop, its two output readers, its health check) belongs
to the task group of the ``ServiceManager``, opened by ``async with``: none outlives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any, Literal, Self

import anyio
from anyio.abc import TaskGroup
from pydantic import BaseModel, Field, model_validator

from .policy import RestartBudget, RestartPolicy, next_delay

log = logging.getLogger("bridge.services")

State = Literal["starting", "running", "unhealthy", "restarting", "stopped", "failed"]


class TooMany(RuntimeError):
    """A service was not started: ``max_running`` services run already."""


class HealthCheck(BaseModel):
    """``process``: alive is healthy (the default). ``tcp``: ``port`` accepts a connection.
    ``command``: ``command`` exits 0. Checked every ``interval`` seconds; an unhealthy
    service is reported (``unhealthy``), and with ``restart_after`` N it is also stopped after
    N failed checks in a row, its restart policy then deciding what follows (as for a crash)."""

    kind: Literal["process", "tcp", "command"] = "process"
    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=1, le=65535)
    command: list[str] | None = None
    interval: float = Field(default=5.0, gt=0)
    timeout: float = Field(default=2.0, gt=0)
    restart_after: int | None = Field(default=None, ge=1, description="failed checks in a row before the "
                                      "service is stopped and its restart policy applies; none: only reported")

    @model_validator(mode="after")
    def _needs_its_target(self) -> HealthCheck:
        if self.kind == "tcp" and self.port is None:
            raise ValueError("a tcp health check needs a port")
        if self.kind == "command" and not self.command:
            raise ValueError("a command health check needs a command")
        return self


class Service(BaseModel):
    """One process to supervise."""

    name: str = Field(min_length=1)
    command: str
    args: list[str] = Field(default_factory=list)
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict, description="added to the host's environment")
    restart: RestartPolicy = Field(default_factory=lambda: RestartPolicy())
    shutdown_timeout: float = Field(default=5.0, ge=0, description="seconds between SIGTERM and SIGKILL")
    critical: bool = Field(default=False, description="when it fails for good, the host stops")
    health: HealthCheck = Field(default_factory=lambda: HealthCheck())
    autostart: bool = True
    log_lines: int = Field(default=1000, ge=1, description="output lines kept")


StateCallback = Callable[[str, str, dict[str, Any]], None]
RestartCallback = Callable[[str, int, float], None]
SpawnCallback = Callable[[str, int, list[str]], None]

SHIM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shim.py")
_USE_SHIM = os.name == "posix" and bool(sys.executable) and not getattr(sys, "frozen", False) and os.path.exists(SHIM)


def _pdeathsig() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGKILL the child when its parent dies (only without the shim)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)  # loaded here, in the parent: the child only calls it
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


class _Runner:
    """One service's process, state, output and restart loop."""

    def __init__(self, service: Service, manager: ServiceManager) -> None:
        self.service = service
        self.manager = manager
        self.state: str = "stopped"
        self.proc: asyncio.subprocess.Process | None = None  # the shim: its pid is the group's
        self.child_pid: int | None = None  # the command's own pid
        self.logs: deque[dict[str, Any]] = deque(maxlen=service.log_lines)
        self.followers: set[asyncio.Queue[dict[str, Any]]] = set()
        self.budget = RestartBudget(service.restart.cap, service.restart.window, manager.clock)
        self.restarts = 0
        self.exit_code: int | None = None
        self.error: str | None = None
        self.scope: anyio.CancelScope | None = None  # the supervision loop's, while it runs
        self.done: anyio.Event | None = None  # set when that loop has ended
        self.stopping = False

    def info(self) -> dict[str, Any]:
        s = self.service
        return {"name": s.name, "state": self.state, "pid": self.pid, "restarts": self.restarts,
                "exitCode": self.exit_code, "error": self.error, "critical": s.critical,
                "command": [s.command, *s.args]}

    @property
    def pid(self) -> int | None:
        return self.child_pid if self.proc is not None and self.proc.returncode is None else None

    def set_state(self, state: str, **extra: Any) -> None:
        if state == self.state and not extra:
            return
        self.state = state
        self.manager._state_changed(self, extra)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        if self.done is not None and not self.done.is_set():
            return
        scope, done = anyio.CancelScope(), anyio.Event()
        self.manager._start_soon(self._supervised, scope, done, name=f"service {self.service.name}")
        self.scope, self.done = scope, done  # the loop runs from the next await on
        self.stopping = False
        self.error = None
        self.budget.reset()
        self.set_state("starting")

    async def stop(self) -> None:
        self.stopping = True
        if self.proc is not None and self.proc.returncode is None:
            await self._terminate()
            self.exit_code = self.proc.returncode
        scope, done, self.scope, self.done = self.scope, self.done, None, None
        if scope is not None and done is not None and not done.is_set():
            scope.cancel()
            await done.wait()
        if self.state != "stopped":
            self.set_state("stopped", exitCode=self.exit_code)

    async def _terminate(self) -> None:
        """SIGTERM to the group, ``shutdown_timeout`` to exit, then SIGKILL."""
        proc = self.proc
        assert proc is not None
        _killpg(proc.pid, signal.SIGTERM)
        with anyio.move_on_after(self.service.shutdown_timeout) as waited:
            await proc.wait()
        if waited.cancelled_caught:
            log.warning("service %s ignored SIGTERM for %.1fs: killing it", self.service.name,
                        self.service.shutdown_timeout)
            _killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
        _killpg(proc.pid, signal.SIGKILL)  # whatever it left behind in its group

    async def _supervised(self, scope: anyio.CancelScope, done: anyio.Event) -> None:
        """The supervision loop in its own cancel scope (``stop`` cancels it). A bug in it fails
        this service alone, not the manager's other services."""
        try:
            with scope:
                await self._supervise()
        except Exception as exc:
            log.exception("supervising service %s failed", self.service.name)
            self.error = f"{type(exc).__name__}: {exc}"
            self._give_up("failed")
        finally:
            done.set()

    async def _supervise(self) -> None:
        s = self.service
        while True:
            code = await self._run_once()
            if self.stopping:
                return
            delay = next_delay(s.restart, self.budget.used)
            if delay is None:
                self._give_up("stopped" if code == 0 else "failed")
                return
            if not self.budget.take():
                self.error = f"restarted {s.restart.cap} times within {s.restart.window:g}s"
                self._give_up("failed")
                return
            self.restarts += 1
            self.set_state("restarting", attempt=self.restarts, delay=delay, exitCode=code)
            self.manager._restarting(self, self.restarts, delay)
            await asyncio.sleep(delay)
            self.set_state("starting")

    def _give_up(self, state: str) -> None:
        self.set_state(state, exitCode=self.exit_code)
        if state == "failed" and self.service.critical:
            self.manager._critical_failed(self)

    async def _run_once(self) -> int | None:
        """Start the process and wait for it to exit; its exit code (None if it could not start)."""
        s = self.service
        argv = [s.command, *s.args]
        try:
            self.child_pid = None
            self.proc, started = await _spawn(argv, cwd=s.cwd, env={**os.environ, **s.env},
                                              stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            self.child_pid = await _started(self.proc, started, s.command)
        except (OSError, ValueError) as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            self.exit_code = None
            log.error("service %s could not start: %s", s.name, self.error)
            return None
        proc = self.proc
        self.error = None
        self.manager._spawned(self, argv)
        async with anyio.create_task_group() as readers:
            readers.start_soon(self._read, proc.stdout, "stdout")
            readers.start_soon(self._read, proc.stderr, "stderr")
            code = await self._wait(proc)
            _killpg(proc.pid, signal.SIGKILL)  # the leader is gone: so goes the rest of its group
            # The output still in the pipes is read, for at most 1 s, even when ``stop`` cancels.
            readers.cancel_scope.shield = True
            readers.cancel_scope.deadline = anyio.current_time() + 1.0
        self.exit_code = code
        log.info("service %s exited with %s", s.name, code)
        return code

    async def _wait(self, proc: asyncio.subprocess.Process) -> int:
        """Wait for the process to exit, checking its health meanwhile."""
        if self.service.health.kind == "process":
            self.set_state("running", pid=self.child_pid)
            return await proc.wait()
        async with anyio.create_task_group() as health:
            health.start_soon(self._check_health)
            code = await proc.wait()
            health.cancel_scope.cancel()
        return code

    async def _read(self, stream: asyncio.StreamReader | None, name: str) -> None:
        if stream is None:
            return
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # a line longer than the stream's limit: take what is there
                raw = await stream.read(1 << 16)
            if not raw:
                return
            entry = {"t": time.time(), "stream": name, "line": raw.decode(errors="replace").rstrip("\r\n")}
            self.logs.append(entry)
            for queue in self.followers:
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(entry)

    async def _check_health(self) -> None:
        h = self.service.health
        failed = 0
        while True:
            healthy = await _probe(h)
            failed = 0 if healthy else failed + 1
            if healthy and self.state != "running":
                self.set_state("running", pid=self.pid)
            elif not healthy and self.state == "running":
                self.set_state("unhealthy", pid=self.pid)
            if h.restart_after is not None and failed >= h.restart_after and self.proc is not None:
                log.warning("service %s failed %d health checks in a row: stopping it", self.service.name, failed)
                self.error = f"unhealthy: {failed} failed health checks in a row"
                await self._terminate()  # its exit goes to the restart policy, as a crash would
                return
            await asyncio.sleep(h.interval)


async def _probe(h: HealthCheck) -> bool:
    try:
        if h.kind == "tcp":
            with anyio.fail_after(h.timeout):
                _, writer = await asyncio.open_connection(h.host, h.port)
            writer.close()
            return True
        if h.kind == "command" and h.command:
            proc, started = await _spawn(h.command, cwd=None, env=None, stdout=asyncio.subprocess.DEVNULL,
                                         stderr=asyncio.subprocess.DEVNULL)
            try:
                with anyio.fail_after(h.timeout):
                    await _started(proc, started, h.command[0])
                    return await proc.wait() == 0
            finally:  # timed out, or the service stopped meanwhile: the check's whole group goes
                if proc.returncode is None:
                    _killpg(proc.pid, signal.SIGKILL)
    except (OSError, TimeoutError):
        return False
    return True


async def _spawn(argv: list[str], *, cwd: str | None, env: dict[str, str] | None, stdout: int,
                 stderr: int) -> tuple[asyncio.subprocess.Process, asyncio.Future[bytes]]:
    """Start ``argv`` in a new process group, under the shim where there is one. Returns the
    process (the shim) and what the shim reports on its status pipe (see ``_started``)."""
    loop = asyncio.get_running_loop()
    report: asyncio.Future[bytes] = loop.create_future()
    if not _USE_SHIM:
        proc = await asyncio.create_subprocess_exec(*argv, cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=stdout, stderr=stderr, start_new_session=True,
                                                    preexec_fn=_PREEXEC)
        report.set_result(b"pid %d" % proc.pid)
        return proc, report
    read_fd, write_fd = os.pipe()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-I", "-S", SHIM, str(os.getpid()), str(write_fd), "--", *argv,
            cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=stdout, stderr=stderr,
            start_new_session=True, pass_fds=(write_fd,))
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    try:
        await loop.connect_read_pipe(lambda: _Report(report), os.fdopen(read_fd, "rb", 0))
    except BaseException:
        _killpg(proc.pid, signal.SIGKILL)
        raise
    return proc, report


class _Report(asyncio.Protocol):
    """Collects the shim's status line; done at EOF."""

    def __init__(self, done: asyncio.Future[bytes]) -> None:
        self.done = done
        self.data = bytearray()

    def data_received(self, data: bytes) -> None:
        if len(self.data) < 64:
            self.data += data

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(bytes(self.data))


async def _started(proc: asyncio.subprocess.Process, report: asyncio.Future[bytes], command: str) -> int:
    """The command's pid once the shim has started it; the OSError exec raised if it could not."""
    words = (await report).split()
    if words[:1] == [b"pid"] and len(words) == 2:
        return int(words[1])
    await proc.wait()
    if words[:1] == [b"error"] and len(words) == 2:
        code = int(words[1])
        raise OSError(code, os.strerror(code), command)
    raise OSError(f"the services shim exited with {proc.returncode} before starting the command")


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


_PREEXEC = None if _USE_SHIM else _pdeathsig()


class ServiceManager:
    """The services of one host: add, start, stop, restart, watch. Start services inside
    ``async with manager:``, whose task group owns every task they need; leaving it stops them
    all (as ``aclose`` does), then ends what is left.

    ``on_state(name, state, info)`` hears every state change; ``on_restart(name, attempt,
    delay)`` every scheduled restart; ``on_critical(name)`` a critical service failing for good;
    ``on_spawn(name, pid, argv)`` every process started.
    """

    def __init__(self, *, on_state: StateCallback | None = None, on_restart: RestartCallback | None = None,
                 on_critical: Callable[[str], None] | None = None, on_spawn: SpawnCallback | None = None,
                 clock: Callable[[], float] = time.monotonic, max_running: int = 0) -> None:
        #: Services running (or starting, restarting, unhealthy) at once, at most; 0: no limit.
        self.max_running = max_running
        self.on_state = on_state
        self.on_restart = on_restart
        self.on_critical = on_critical
        self.on_spawn = on_spawn
        self.clock = clock
        self._runners: dict[str, _Runner] = {}
        self._tasks: TaskGroup | None = None
        self._exit = AsyncExitStack()

    async def __aenter__(self) -> Self:
        self._tasks = await self._exit.enter_async_context(anyio.create_task_group())
        self._exit.callback(setattr, self, "_tasks", None)
        return self

    async def __aexit__(self, *exc: Any) -> bool | None:
        assert self._tasks is not None
        with anyio.CancelScope(shield=True):  # nothing of a service outlives this block
            await self.aclose()
        self._tasks.cancel_scope.cancel()  # what the stops left: nothing, unless one failed
        return await self._exit.__aexit__(*exc)

    def _start_soon(self, func: Callable[..., Awaitable[Any]], *args: Any, name: str) -> None:
        if self._tasks is None:
            raise RuntimeError("start services inside `async with ServiceManager() as manager:`")
        self._tasks.start_soon(func, *args, name=name)

    def _get(self, name: str) -> _Runner:
        try:
            return self._runners[name]
        except KeyError:
            raise KeyError(name) from None

    def __contains__(self, name: str) -> bool:
        return name in self._runners

    def add(self, service: Service) -> None:
        if service.name in self._runners:
            raise ValueError(f"a service named {service.name!r} already exists")
        self._runners[service.name] = _Runner(service, self)

    def names(self) -> list[str]:
        return list(self._runners)

    def service(self, name: str) -> Service:
        return self._get(name).service

    def status(self, name: str) -> dict[str, Any]:
        return self._get(name).info()

    def statuses(self) -> list[dict[str, Any]]:
        return [r.info() for r in self._runners.values()]

    def running(self) -> int:
        """Services under supervision now (starting, running, unhealthy or restarting)."""
        return sum(1 for r in self._runners.values() if r.done is not None and not r.done.is_set())

    def start(self, name: str) -> None:
        """Start ``name`` (nothing if it is already running); a new restart budget. TooMany if
        ``max_running`` services run already."""
        runner = self._get(name)
        if runner.done is not None and not runner.done.is_set():
            return
        if self.max_running and self.running() >= self.max_running:
            raise TooMany(f"{self.max_running} services run already (max_concurrent_services); {name} not started")
        runner.start()

    async def stop(self, name: str) -> None:
        await self._get(name).stop()

    async def restart(self, name: str) -> None:
        runner = self._get(name)
        await runner.stop()
        runner.start()

    def start_all(self) -> None:
        """Start every autostart service, in order, up to ``max_running`` (the rest stay stopped, logged)."""
        for runner in self._runners.values():
            if runner.service.autostart:
                try:
                    self.start(runner.service.name)
                except TooMany as exc:
                    log.warning("%s", exc)

    async def aclose(self) -> None:
        """Stop every service, all at once."""
        async with anyio.create_task_group() as stopping:
            for runner in self._runners.values():
                stopping.start_soon(self._stop_logged, runner)

    @staticmethod
    async def _stop_logged(runner: _Runner) -> None:
        try:
            await runner.stop()
        except Exception:
            log.exception("service %s did not stop cleanly", runner.service.name)

    def logs(self, name: str, tail: int = 100) -> list[dict[str, Any]]:
        """The last ``tail`` output lines kept: ``{t, stream, line}``."""
        logs = self._get(name).logs
        return list(logs)[-tail:] if tail > 0 else []

    async def follow(self, name: str, tail: int = 100, buffer: int = 10_000) -> AsyncIterator[dict[str, Any]]:
        """The last ``tail`` lines, then each new line as it comes, until the caller stops
        iterating. A follower more than ``buffer`` lines behind loses the newest."""
        runner = self._get(name)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(buffer)
        backlog = self.logs(name, tail)  # taken together with subscribing: no line missed or doubled
        runner.followers.add(queue)
        try:
            for entry in backlog:
                yield entry
            while True:
                yield await queue.get()
        finally:
            runner.followers.discard(queue)

    # -- callbacks from runners --------------------------------------------------------------

    def _state_changed(self, runner: _Runner, extra: dict[str, Any]) -> None:
        log.debug("service %s: %s", runner.service.name, runner.state)
        if self.on_state is not None:
            self._safely(self.on_state, runner.service.name, runner.state, {**runner.info(), **extra})

    def _spawned(self, runner: _Runner, argv: list[str]) -> None:
        log.info("service %s started: pid %s", runner.service.name, runner.child_pid)
        if self.on_spawn is not None:
            self._safely(self.on_spawn, runner.service.name, runner.child_pid, argv)

    def _restarting(self, runner: _Runner, attempt: int, delay: float) -> None:
        log.warning("service %s exited (%s): restart %d in %.2fs", runner.service.name, runner.exit_code,
                    attempt, delay)
        if self.on_restart is not None:
            self._safely(self.on_restart, runner.service.name, attempt, delay)

    def _critical_failed(self, runner: _Runner) -> None:
        log.error("critical service %s failed: %s", runner.service.name, runner.error or runner.exit_code)
        if self.on_critical is not None:
            self._safely(self.on_critical, runner.service.name)

    @staticmethod
    def _safely(callback: Callable[..., Any], *args: Any) -> None:
        try:
            callback(*args)
        except Exception:
            log.exception("a services callback failed")
