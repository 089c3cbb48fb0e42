"""The built-in ``terminal`` plugin: programs on real pseudo-terminals (POSIX), their output a
credit-paced stream to any number of watchers, each first given a restore of the screen.

Only the app says what runs: ``commands`` lists the allowed executables (none by default: every
``terminal.create`` is refused, 4701, and audited). Every terminal's session is killed when the
host stops; on Linux a killed host takes each program with it (PR_SET_PDEATHSIG), and the pty's
hang-up the rest of its foreground job.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import logging
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import anyio
from pydantic import BaseModel, Field

from bridge import INVALID_PARAMS, BridgeError, Context, Plugin, __version__
from bridge.middleware.stream import Stream

from ..executables import allowed_paths, resolve
from .screen import ParseBudget
from .session import Terminal

log = logging.getLogger("bridge.terminal")

#: Application error codes of this plugin.
NOT_ALLOWED = 4701
NO_SUCH_TERMINAL = 4702
EXITED = 4703
TOO_MANY = 4704

SIGNALS = {"interrupt": signal.SIGINT, "terminate": signal.SIGTERM, "kill": signal.SIGKILL,
           "hangup": signal.SIGHUP}


class TerminalSettings(BaseModel):
    commands: list[str] = Field(default_factory=list, description="allowed executables: names looked up on PATH "
                                "or paths, compared by resolved path; none: every terminal.create is refused")
    max_terminals: int = Field(default=64, ge=1, description="running terminals, at most")
    scrollback_bytes: int = Field(default=1 << 20, ge=0, description="scrollback kept per terminal (rendered "
                                  "lines, UTF-8 bytes) for a restore")
    coalesce_ms: float = Field(default=5, ge=0, description="output gathered this long into one stream item")
    chunk_bytes: int = Field(default=64 * 1024, ge=256, description="one stream item's output, at most; a block "
                             "watcher holding this much unread stops the reading of the pty")
    env: list[str] = Field(default_factory=lambda: ["TERM", "LANG", "LC_ALL", "COLORTERM"],
                           description="environment variables a caller may set")
    screen_chars_per_second: int = Field(default=256 * 1024, ge=0, description="characters the screen models "
                                         "of all terminals parse in a second; past it a terminal's screen is "
                                         "rebuilt from its scrollback tail at its next restore")


class Terminals:
    """What the plugin holds while the host runs: the terminals by id and the task group of their exit watches."""

    def __init__(self, settings: TerminalSettings, tasks: Any) -> None:
        self.settings = settings
        self.tasks = tasks
        self.by_id: dict[str, Terminal] = {}
        self.ids = itertools.count(1)
        self.budget = ParseBudget(settings.screen_chars_per_second)
        self.created = 0  # terminals started since the host did

    def running(self) -> int:
        return sum(t.running for t in self.by_id.values())

    def forget_exited(self) -> None:
        """Keep at most ``max_terminals`` exited terminals listed (the oldest go first)."""
        exited = [t for t in self.by_id.values() if not t.running and t.closed]
        for t in exited[:max(0, len(exited) - self.settings.max_terminals)]:
            del self.by_id[t.id]


@asynccontextmanager
async def lifespan(plugin: Plugin) -> AsyncIterator[Terminals]:
    """Own the terminals: when the host stops, every terminal's session is killed and reaped."""
    if os.name == "nt":
        try:
            import winpty  # noqa: F401
        except ImportError:
            raise RuntimeError("the terminal plugin needs pywinpty on Windows (pip install pywinpty)") from None
    settings = plugin.settings or TerminalSettings()
    async with anyio.create_task_group() as tasks:
        state = Terminals(settings, tasks)
        try:
            yield state
        finally:
            live = [t for t in state.by_id.values() if t.running]
            for t in live:
                t.kill()
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                for t in live:
                    await t.exited.wait()
            if live:
                log.info("terminal: killed %d terminal(s)", len(live))
            tasks.cancel_scope.cancel()
            for t in state.by_id.values():
                if not t.closed:
                    t.close()


def metrics() -> dict[str, Any] | None:
    """For ``rpc.metrics`` (``plugins.terminal``): the terminals kept now (running, and exited
    ones still listed), their watchers and counters, and the screen models' parse budget."""
    state: Terminals | None = plugin.state
    if state is None:
        return None
    kept = list(state.by_id.values())
    return {
        "running": sum(t.running for t in kept), "exited": sum(not t.running for t in kept),
        "created": state.created, "watchers": sum(len(t.watchers) for t in kept),
        "paused": sum(t.paused for t in kept), "reading": sum(t.reading for t in kept),
        "bytesIn": sum(t.bytes_in for t in kept), "bytesOut": sum(t.bytes_out for t in kept),
        "dropped": sum(t.dropped for t in kept), "staleScreens": sum(t.model.stale for t in kept),
        "screenRebuilds": sum(t.model.rebuilds for t in kept),
        "parseBudget": {"charsPerSecond": state.budget.chars_per_second, "spent": state.budget.spent},
    }


plugin = Plugin("terminal", __version__, description="Programs on pseudo-terminals, streamed to watchers.",
                settings=TerminalSettings, lifespan=lifespan, metrics=metrics)


_audit = plugin.audit


def _exited(t: Terminal) -> None:
    _audit("terminal.exited", id=t.id, pid=t.pid, exit_code=t.exit_code, signal=t.signal)
    app = plugin.app
    if app is not None and app.connection is not None:
        params: dict[str, Any] = {"id": t.id, "exit_code": t.exit_code, "signal": t.signal}
        audience = t.audience()
        if audience is not None:
            params["$meta"] = {"to": audience}
        app.notify("terminal.exited", params)


def _state() -> Terminals:
    state: Terminals | None = plugin.state
    if state is None:
        raise BridgeError(INVALID_PARAMS, "the terminal plugin is not running")
    return state


def _get(id: str, ctx: Context, *, running: bool = False) -> Terminal:
    """Terminal ``id`` if the caller may use it: another's is answered as no terminal at all (as
    the fs plugin answers another's watch), so its existence is not told either."""
    t = _state().by_id.get(id)
    if t is None or not t.allows(ctx.participant):
        raise BridgeError(NO_SUCH_TERMINAL, f"no terminal {id!r}", {"id": id})
    if running and not t.running:
        raise BridgeError(EXITED, f"terminal {id!r} has exited", {"id": id, "exit_code": t.exit_code,
                                                                  "signal": t.signal})
    return t


@plugin.method("create")
async def create(ctx: Context, command: str, args: list[str] = Field(default_factory=list), cwd: str | None = None,
                 env: dict[str, str] = Field(default_factory=dict), rows: int = Field(24, ge=1, le=1000),
                 cols: int = Field(80, ge=1, le=1000), name: str | None = None,
                 overflow: Literal["block", "drop"] = "block", paused: bool = False,
                 share_with: list[str] = Field(default_factory=list, max_length=64)) -> dict[str, Any]:
    """Start ``command`` on a new pty (only an allowed executable: else 4701); its id and pid.
    ``paused``: the pty is not read until ``terminal.resume``, so a watcher attached before it
    gets every byte from the first (else output before the attach reaches it as the restore).
    The terminal is the caller's: other participants see and use it only if ``share_with``
    names them (``"*"``: every caller)."""
    state = _state()
    settings = state.settings
    argv = [command, *args]

    def refuse(reason: str, message: str, **data: Any) -> BridgeError:
        _audit("terminal.refused", ctx.participant, reason=reason, command=argv, **data)
        return BridgeError(NOT_ALLOWED, message, {"reason": reason, "command": command, **data})

    path = resolve(os.path.expanduser(command), allowed_paths(settings.commands))
    if path is None:
        raise refuse("not_allowed", f"{command!r} is not an allowed command (setting commands)")
    extra = sorted(set(env) - set(settings.env))
    if extra:
        raise refuse("env", f"a terminal may not set {', '.join(extra)} (setting env)", env=extra)
    if state.running() >= settings.max_terminals:
        raise BridgeError(TOO_MANY, f"at most {settings.max_terminals} terminals may run (setting max_terminals)",
                          {"limit": settings.max_terminals})
    directory = os.path.abspath(os.path.expanduser(cwd or "~"))
    if not os.path.isdir(directory):
        raise BridgeError(INVALID_PARAMS, f"cwd {directory!r} is not a directory", {"cwd": directory})
    id = f"t{next(state.ids)}"
    t = Terminal(id, name or id, [path, *args], directory, rows, cols, overflow,
                 scrollback_bytes=settings.scrollback_bytes, coalesce_ms=settings.coalesce_ms,
                 chunk_bytes=settings.chunk_bytes, on_exit=_exited, budget=state.budget)
    t.paused = paused
    t.owner, t.shared = ctx.participant, frozenset(share_with) - {ctx.participant}
    try:
        await t.spawn({**os.environ, "TERM": "xterm-256color", **env})
    except OSError as exc:
        raise BridgeError(INVALID_PARAMS, f"could not start {command!r}: {exc}", {"command": command}) from None
    state.forget_exited()
    state.by_id[id] = t
    state.created += 1
    state.tasks.start_soon(t.watch_exit, name=f"terminal {id}")
    _audit("terminal.created", ctx.participant, id=id, pid=t.pid, command=t.argv, cwd=directory, env=sorted(env),
           shared=sorted(t.shared))
    return {"id": id, "pid": t.pid, "command": path, "rows": rows, "cols": cols, "name": t.name}


def _payload(data: str | None, data_base64: str | None) -> bytes:
    if (data is None) == (data_base64 is None):
        raise BridgeError(INVALID_PARAMS, "give one of data or data_base64")
    if data is not None:
        return data.encode("utf-8", "surrogateescape")
    try:
        return base64.b64decode(data_base64 or "", validate=True)
    except (binascii.Error, ValueError):
        raise BridgeError(INVALID_PARAMS, "data_base64 is not base64") from None


@plugin.method("write")
async def write(ctx: Context, id: str, data: str | None = None, data_base64: str | None = None) -> bool:
    """Write keystrokes (``data``, text) or bytes (``data_base64``) to the terminal's pty."""
    payload = _payload(data, data_base64)
    await _get(id, ctx, running=True).write(payload)
    return True


@plugin.method("resize")
async def resize(ctx: Context, id: str, rows: int = Field(ge=1, le=1000), cols: int = Field(ge=1, le=1000)) -> bool:
    """Set the pty's size (the program gets SIGWINCH) and the screen model's."""
    _get(id, ctx, running=True).resize(rows, cols)
    return True


@plugin.method("signal")
async def send_signal(ctx: Context, id: str, signal: Literal["interrupt", "terminate", "kill", "hangup"]) -> bool:
    """Send ``signal`` to the terminal's foreground process group, as the keyboard would."""
    t = _get(id, ctx, running=True)
    _audit("terminal.signal", ctx.participant, id=id, signal=signal)
    t.send_signal(SIGNALS[signal])
    return True


@plugin.method("kill")
async def kill(ctx: Context, id: str) -> bool:
    """Kill every process group of the terminal's session (nothing to do once it has exited)."""
    t = _get(id, ctx)
    if t.running:
        _audit("terminal.killed", ctx.participant, id=id, pid=t.pid)
        t.kill()
    return True


@plugin.method("pause")
async def pause(ctx: Context, id: str) -> bool:
    """Stop reading the terminal's pty: the program blocks once the pty's buffer is full."""
    return _set_paused(_get(id, ctx, running=True), True)


@plugin.method("resume")
async def resume(ctx: Context, id: str) -> bool:
    """Read the terminal's pty again."""
    return _set_paused(_get(id, ctx, running=True), False)


def _set_paused(t: Terminal, paused: bool) -> bool:
    t.paused = paused
    t.update_reading()
    return True


@plugin.method("attach", stream=Stream(chunk_size=1))
async def attach(ctx: Context, id: str, raw: bool = False) -> AsyncIterator[dict[str, Any]]:
    """Stream ``{restore: {data, rows, cols}}``, then ``{data}`` (``{data_base64}`` if raw) items of
    live output, and ``{dropped: n}`` when a drop terminal lost output; ends when the terminal has
    exited and its output is read."""
    t = _get(id, ctx)
    async for item in t.attach(raw):
        yield item


@plugin.method("list")
async def list_terminals(ctx: Context, ids: list[str] | None = None) -> list[dict[str, Any]]:
    """The caller's terminals and those shared with it (or those of ``ids``; an unknown id, or
    another's, is 4702): state, counters, watchers."""
    if ids is None:
        return [t.info() for t in _state().by_id.values() if t.allows(ctx.participant)]
    return [_get(id, ctx).info() for id in ids]


class Operation(BaseModel):
    op: Literal["write", "resize", "signal", "kill", "pause", "resume"]
    id: str
    model_config = {"extra": "allow"}


@plugin.method("batch")
async def batch(ctx: Context, operations: list[Operation] = Field(max_length=1000)) -> dict[str, Any]:
    """Run several operations in order; each one's outcome (one failing does not stop the rest)."""
    began = time.perf_counter()
    results: list[dict[str, Any]] = []
    for operation in operations:
        params = {**(operation.model_extra or {}), "id": operation.id}
        try:
            await _one(ctx, operation.op, params)
        except BridgeError as exc:
            results.append({"ok": False, "error": {"code": exc.code, "message": exc.message}})
        except (TypeError, ValueError, KeyError) as exc:
            results.append({"ok": False, "error": {"code": INVALID_PARAMS, "message": f"{operation.op}: {exc}"}})
        else:
            results.append({"ok": True})
    ok = sum(r["ok"] for r in results)
    return {"total": len(results), "successful": ok, "failed": len(results) - ok,
            "duration_ms": round((time.perf_counter() - began) * 1e3, 3), "results": results}


async def _one(ctx: Context, op: str, p: dict[str, Any]) -> None:
    id = p["id"]
    if op == "write":
        await write(ctx, id, p.get("data"), p.get("data_base64"))
    elif op == "resize":
        rows, cols = p["rows"], p["cols"]
        if not (isinstance(rows, int) and isinstance(cols, int) and 1 <= rows <= 1000 and 1 <= cols <= 1000):
            raise ValueError("rows and cols must be integers from 1 to 1000")
        await resize(ctx, id, rows, cols)
    elif op == "signal":
        if p.get("signal") not in SIGNALS:
            raise ValueError(f"signal must be one of {', '.join(SIGNALS)}")
        await send_signal(ctx, id, p["signal"])
    elif op == "kill":
        await kill(ctx, id)
    elif op == "pause":
        await pause(ctx, id)
    else:
        await resume(ctx, id)
