"""The built-in ``services`` plugin: start the app's own child processes with the host, keep
them running by their restart policy, stream their output, stop them all when the host stops.

Only the app says what runs: the services of its settings. ``services.register`` (a caller
adding a service at run time) is off unless ``allow_register``, and then runs only the
executables of ``register_executables``, compared by resolved path. Every refusal, start and
state change goes to the audit log.

The plugin's state is what its lifespan yields (``Services``): the services are started there,
and every task they need belongs to the manager's task group, opened there; leaving it (when
the host stops) stops every service, then ends what is left.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from pydantic import BaseModel, Field

from bridge import BridgeError, Context, Plugin, __version__

from ..executables import allowed_paths, resolve as _resolve
from .supervisor import Service, ServiceManager, TooMany

#: Application error codes of this plugin.
NO_SUCH_SERVICE = 4401
SERVICE_EXISTS = 4402
SERVICE_REFUSED = 4403
TOO_MANY_SERVICES = 4404


class ServicesSettings(BaseModel):
    services: list[Service] = Field(default_factory=list, description="the app's services: started with the host "
                                    "(unless autostart=false); with their health checks, the only commands that run "
                                    "unless allow_register")
    allow_register: bool = Field(default=False, description="services.register may add services at run time")
    register_executables: list[str] = Field(default_factory=list, description="what a registered service or its "
                                            "health check may run: names looked up on PATH or paths, compared by "
                                            "resolved path")
    register_env: list[str] = Field(default_factory=list, description="environment variables a registered service "
                                    "may set")
    max_registered: int = Field(default=16, ge=0, description="services registered at run time, at most")
    max_concurrent_services: int = Field(default=0, ge=0, description="services running at once, at most (0: no "
                                         "limit); past it services.start is refused and autostart stops there")


@dataclass
class Services:
    """What the plugin holds while the host runs: the manager of its services, and the names of
    those callers registered (counted against ``max_registered``)."""

    manager: ServiceManager
    registered: set[str] = field(default_factory=set)


@asynccontextmanager
async def lifespan(plugin: Plugin) -> AsyncIterator[Services]:
    """Start the app's services (a duplicate name fails the plugin); when the host stops, stop
    them all (SIGTERM to each group, its ``shutdown_timeout``, SIGKILL), then end every task."""
    settings = plugin.settings or ServicesSettings()
    manager = ServiceManager(
        max_running=settings.max_concurrent_services,
        on_state=_state,
        on_restart=lambda name, attempt, delay: _notify("services.restarted",
                                                       {"name": name, "attempt": attempt, "delay": delay}),
        on_spawn=lambda name, pid, argv: _audit("services.started", name=name, pid=pid, command=argv))
    for service in settings.services:
        manager.add(service)  # before any task group: its ValueError is what the plugin failed of
    async with anyio.create_task_group() as tasks:
        manager.on_critical = lambda name: tasks.start_soon(_stop_host, name, name=f"stop the host: {name} failed")
        async with manager:
            manager.start_all()
            yield Services(manager)
        tasks.cancel_scope.cancel()  # a stop of the host still waiting for it to serve


plugin = Plugin("services", __version__, description="Supervised child processes: restart, health, logs.",
                settings=ServicesSettings, lifespan=lifespan)


_audit = plugin.audit


def _state(name: str, state: str, info: dict[str, Any]) -> None:
    _audit("services.state", name=name, state=state, pid=info.get("pid"), exitCode=info.get("exitCode"),
           restarts=info.get("restarts"), error=info.get("error"))
    _notify("services.state_changed", info)


def _notify(method: str, params: dict[str, Any]) -> None:
    app = plugin.app
    if app is None or app.connection is None:
        return  # no client yet (start-up) or any more (shutdown): services.list tells the state
    app.notify(method, params)


#: The host's exit status when a critical service failed for good.
CRITICAL_EXIT = 3


async def _stop_host(service: str) -> None:
    """A critical service failed for good: stop the host as SIGTERM would (calls in flight finish),
    exiting CRITICAL_EXIT with the reason on stderr. During start-up the host is not serving yet:
    look again every 50 ms until it is."""
    app = plugin.app
    while app is None or app.connection is None:
        await anyio.sleep(0.05)
    app.connection.host.stop(f"critical service {service} failed for good", CRITICAL_EXIT)


def _manager() -> ServiceManager:
    services: Services = plugin.state
    return services.manager


def _known(name: str) -> ServiceManager:
    manager = _manager()
    if name not in manager:
        raise BridgeError(NO_SUCH_SERVICE, f"no service {name!r}", {"name": name, "known": manager.names()})
    return manager


@plugin.method("list", idempotent=True)
async def list_services() -> list[dict[str, Any]]:
    """Every service: name, state, pid, restarts, last exit code and error."""
    return _manager().statuses()


@plugin.method("status", idempotent=True)
async def status(name: str) -> dict[str, Any]:
    """The state of service ``name``."""
    return _known(name).status(name)


@plugin.method("start")
async def start(ctx: Context, name: str) -> dict[str, Any]:
    """Start service ``name`` (nothing if it is running) with a fresh restart budget."""
    return await _control(ctx, name, "start")


@plugin.method("stop")
async def stop(ctx: Context, name: str) -> dict[str, Any]:
    """Stop service ``name``: SIGTERM to its process group, SIGKILL after its shutdown_timeout."""
    return await _control(ctx, name, "stop")


@plugin.method("restart")
async def restart(ctx: Context, name: str) -> dict[str, Any]:
    """Stop service ``name``, then start it again."""
    return await _control(ctx, name, "restart")


async def _control(ctx: Context, name: str, action: str) -> dict[str, Any]:
    """A caller's start, stop or restart: audited, then done; the service's status after."""
    manager = _known(name)
    _audit("services.control", ctx.participant, action=action, name=name)
    try:
        done = getattr(manager, action)(name)
        if done is not None:  # stop and restart wait for the process; start does not
            await done
    except TooMany as exc:
        raise _too_many(exc) from None
    return manager.status(name)


def _too_many(exc: TooMany) -> BridgeError:
    limit = (plugin.settings or ServicesSettings()).max_concurrent_services
    return BridgeError(TOO_MANY_SERVICES, str(exc), {"limit": limit})


@plugin.method("register")
async def register(ctx: Context, definition: Service, start: bool = True) -> dict[str, Any]:
    """Add a service at run time (and start it, unless ``start`` is false). Off unless the app
    allows it (``allow_register``), and then only for ``register_executables``: else 4403."""
    services: Services = plugin.state
    manager = services.manager
    definition = _vetted(definition, ctx.participant, len(services.registered))
    if definition.name in manager:
        raise BridgeError(SERVICE_EXISTS, f"a service named {definition.name!r} already exists",
                          {"name": definition.name})
    manager.add(definition)
    services.registered.add(definition.name)
    _audit("services.registered", ctx.participant, name=definition.name,
           command=[definition.command, *definition.args], cwd=definition.cwd, env=sorted(definition.env),
           health=definition.health.command if definition.health.kind == "command" else definition.health.kind)
    if start:
        try:
            manager.start(definition.name)
        except TooMany as exc:
            raise _too_many(exc) from None
    return manager.status(definition.name)


def _vetted(definition: Service, participant: str, registered: int) -> Service:
    """``definition`` with its executables resolved to the allowed paths it will run, or a
    4403 refusal (audited) naming what is not allowed."""
    settings = plugin.settings or ServicesSettings()
    argv = [definition.command, *definition.args]

    def refuse(reason: str, message: str, **data: Any) -> BridgeError:
        _audit("services.refused", participant, reason=reason, name=definition.name, command=argv, **data)
        return BridgeError(SERVICE_REFUSED, message, {"name": definition.name, "reason": reason, **data})

    if not settings.allow_register:
        raise refuse("register_off", "services.register is off: only the app's own services run "
                     "(setting allow_register)")
    if registered >= settings.max_registered:
        raise refuse("too_many", f"at most {settings.max_registered} services may be registered "
                     "(setting max_registered)")
    allowed = allowed_paths(settings.register_executables)
    command = _resolve(definition.command, allowed)
    if command is None:
        raise refuse("executable", f"{definition.command!r} is not an allowed executable "
                     "(setting register_executables)", executable=definition.command)
    health = definition.health
    if health.kind == "command" and health.command:
        check = _resolve(health.command[0], allowed)
        if check is None:
            raise refuse("health_executable", f"health check {health.command[0]!r} is not an allowed executable "
                         "(setting register_executables)", executable=health.command[0])
        health = health.model_copy(update={"command": [check, *health.command[1:]]})
    env = sorted(set(definition.env) - set(settings.register_env))
    if env:
        raise refuse("env", f"a registered service may not set {', '.join(env)} (setting register_env)", env=env)
    return definition.model_copy(update={"command": command, "health": health})


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
