"""The built-in ``services`` plugin: start the app's own child processes with the host, keep
them running by their restart policy, stream their output, stop them all when the host stops."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from bridge import BridgeError, Plugin, __version__

from .supervisor import Service, ServiceManager

if TYPE_CHECKING:
    from bridge import Bridge

#: Application error codes of this plugin.
NO_SUCH_SERVICE = 4401
SERVICE_EXISTS = 4402


class ServicesSettings(BaseModel):
    services: list[Service] = Field(default_factory=list, description="started with the host (unless autostart=false)")


plugin = Plugin("services", __version__, description="Supervised child processes: restart, health, logs.",
                settings=ServicesSettings)
_managers: list[ServiceManager] = []


def _app() -> Bridge | None:
    """The app to send events through: the one this plugin is mounted on."""
    return plugin.app


def _notify(method: str, params: dict[str, Any]) -> None:
    app = _app()
    if app is None or app.connection is None:
        return  # no client yet (start-up) or any more (shutdown): services.list tells the state
    app.notify(method, params)


def _critical(name: str, waited: float = 0.0) -> None:
    """A critical service failed for good: stop the host as SIGTERM would (calls in flight finish).
    During start-up the host is not serving yet: look again shortly."""
    app = _app()
    if app is not None and app.connection is not None:
        app.connection.stop()
    elif waited < 1.0:
        asyncio.get_running_loop().call_later(0.05, _critical, name, waited + 0.05)
    else:  # the app was never told to us (no call yet): the host's own way to stop
        os.kill(os.getpid(), signal.SIGTERM)


def _manager() -> ServiceManager:
    if not _managers:
        _managers.append(ServiceManager(
            on_state=lambda name, state, info: _notify("services.state_changed", info),
            on_restart=lambda name, attempt, delay: _notify("services.restarted",
                                                           {"name": name, "attempt": attempt, "delay": delay}),
            on_critical=_critical))
    return _managers[0]


def _known(name: str) -> ServiceManager:
    manager = _manager()
    if name not in manager:
        raise BridgeError(NO_SUCH_SERVICE, f"no service {name!r}", {"name": name, "known": manager.names()})
    return manager


@plugin.on_startup
async def _start() -> None:
    """Start the configured services; a duplicate name fails the plugin at start-up."""
    _managers.clear()
    manager = _manager()
    for service in (plugin.settings or ServicesSettings()).services:
        manager.add(service)
    manager.start_all()


@plugin.on_shutdown
async def _stop_all() -> None:
    if _managers:
        await _managers[0].aclose()


@plugin.method("list", idempotent=True)
async def list_services() -> list[dict[str, Any]]:
    """Every service: name, state, pid, restarts, last exit code and error."""
    return _manager().statuses()


@plugin.method("status", idempotent=True)
async def status(name: str) -> dict[str, Any]:
    """The state of service ``name``."""
    return _known(name).status(name)


@plugin.method("start")
async def start(name: str) -> dict[str, Any]:
    """Start service ``name`` (nothing if it is running) with a fresh restart budget."""
    manager = _known(name)
    manager.start(name)
    return manager.status(name)


@plugin.method("stop")
async def stop(name: str) -> dict[str, Any]:
    """Stop service ``name``: SIGTERM to its process group, SIGKILL after its shutdown_timeout."""
    manager = _known(name)
    await manager.stop(name)
    return manager.status(name)


@plugin.method("restart")
async def restart(name: str) -> dict[str, Any]:
    """Stop service ``name``, then start it again."""
    manager = _known(name)
    await manager.restart(name)
    return manager.status(name)


@plugin.method("register")
async def register(definition: Service, start: bool = True) -> dict[str, Any]:
    """Add a service at run time (and start it, unless ``start`` is false)."""
    manager = _manager()
    if definition.name in manager:
        raise BridgeError(SERVICE_EXISTS, f"a service named {definition.name!r} already exists",
                          {"name": definition.name})
    manager.add(definition)
    if start:
        manager.start(definition.name)
    return manager.status(definition.name)


@plugin.method("logs", idempotent=True)
async def logs(name: str, tail: int = Field(100, ge=0), follow: bool = True) -> AsyncIterator[dict[str, Any]]:
    """Stream ``{t, stream, line}``: the last ``tail`` output lines of ``name``, then (with
    ``follow``) each new line until the call is cancelled."""
    manager = _known(name)
    if not follow:
        for entry in manager.logs(name, tail):
            yield entry
        return
    async for entry in manager.follow(name, tail):
        yield entry
