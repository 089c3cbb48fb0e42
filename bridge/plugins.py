"""Plugins: groups of handlers with a namespace, settings and lifecycle, mounted on an app.

A plugin is written like an app (``@plugin.method`` takes every option ``@app.method``
does; ``plugin.event`` declares an event) and mounted with ``app.include(plugin)``:
``@plugin.method("watch")`` on ``Plugin("fs")`` becomes ``fs.watch``, and its events are
prefixed the same way. Installed packages offer plugins through the
``bridge.plugins`` entry-point group; ``discover_plugins`` finds them.
"""

from __future__ import annotations

import inspect
import logging
import os
from contextlib import AsyncExitStack
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .routing import Hook, Lifespan, Router

if TYPE_CHECKING:
    from .app import Bridge

log = logging.getLogger("bridge.plugins")

ENTRY_POINT_GROUP = "bridge.plugins"
#: Plugins that ship with bridge (``bridge.builtins``, from ``handlers/``): mounted by name with ``--plugin``.
BUILTIN = {
    "system": "bridge.builtins.system:plugin",
    "fs": "bridge.builtins.fs.plugin:plugin",
    "services": "bridge.builtins.services.plugin:plugin",
    "state": "bridge.builtins.state.plugin:plugin",
    "collab": "bridge.builtins.collab.plugin:plugin",
    "terminal": "bridge.builtins.terminal.plugin:plugin",
}


class PluginConflict(ValueError):
    """Two plugins (or a plugin and the app) claim one method name: a start-up error."""


class Plugin(Router):
    """Handlers under one namespace, with settings and start-up/shutdown hooks.

    ``settings`` is a pydantic model; the mounted plugin's ``plugin.settings`` is filled
    from the model's defaults, then ``BRIDGE_<NAME>_<FIELD>`` environment variables, then a
    config file's ``[plugins.<name>]`` table, then what the app passes to ``include``.
    ``metrics``, if given, is called for ``rpc.metrics``: its dict (None: nothing to say yet)
    appears under ``plugins.<name>``.
    """

    def __init__(self, name: str, version: str = "0.0.0", *, description: str | None = None,
                 settings: type[Any] | None = None, lifespan: Lifespan | None = None,
                 metrics: Callable[[], dict[str, Any] | None] | None = None) -> None:
        if not name or "." in name or name.startswith(("rpc", "$")):
            raise ValueError(f"plugin name {name!r} must be a non-empty word, not 'rpc' or '$...'")
        super().__init__(lifespan)
        self.name = name
        self.version = version
        self.description = description
        self.settings_model = settings
        self.metrics = metrics
        self.settings: Any = None
        self.app: Bridge | None = None  # the app it is mounted on (for events outside a call)
        self.entries: list[tuple[Callable[..., Any], str, dict[str, Any]]] = []

    def add_method(self, func: Callable[..., Any], name: str | None = None, **options: Any) -> None:
        """Keep ``func`` to be mounted as ``<namespace>.<name>`` (default: the function's name)."""
        self.entries.append((func, name or func.__name__, options))

    def audit(self, event: str, participant: str | None = None, **fields: Any) -> None:
        """Write to the audit log of the app this plugin is mounted on (not mounted: nothing)."""
        app = self.app
        if app is not None:
            app.audit.record(event, participant=participant, **fields)

    def __repr__(self) -> str:
        return f"Plugin({self.name!r}, {self.version!r})"


@dataclass
class PluginStatus:
    """How a plugin fared: ``ok``, or ``failed`` with the error (import or start-up)."""

    name: str
    version: str = "?"
    status: str = "ok"
    error: str | None = None
    methods: list[str] = field(default_factory=list)
    source: str = "app"  # "app" (included by code) or the entry point that provided it

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def include(app: Bridge, plugin: Plugin, prefix: str | None = None, settings: Any = None,
            config: dict[str, Any] | None = None, source: str = "app") -> PluginStatus:
    """Mount ``plugin`` on ``app`` (what ``Bridge.include`` does)."""
    prefix = plugin.name if prefix is None else prefix
    if prefix in app.plugins:
        raise PluginConflict(f"a plugin is already mounted as {prefix!r} ({app.plugins[prefix].source})")
    plugin.settings = _settings(plugin, settings, config)
    plugin.app = app
    if plugin.metrics is not None:
        app.plugin_metrics[prefix] = plugin.metrics
    status = PluginStatus(prefix, plugin.version, source=source)
    names = [f"{prefix}.{name}" if prefix else name for _, name, _ in plugin.entries]
    for full in names:
        owner = app.method_owners.get(full)
        if owner is not None or full in app.methods:
            raise PluginConflict(f"method {full!r} is claimed by both {owner or 'the app'} and plugin {prefix!r}")
    events = {f"{prefix}.{name}" if prefix else name: event for name, event in plugin.events.items()}
    for full in events:
        if full in app.events:
            raise PluginConflict(f"event {full!r} is declared twice: already mounted, and by plugin {prefix!r}")
    for (func, _, options), full in zip(plugin.entries, names):
        app.add_method(func, full, **options)
        app.method_owners[full] = f"plugin {prefix!r}"
    for full, event in events.items():
        app.events[full] = event._replace(name=full)
    status.methods = names
    app.plugins[prefix] = status
    app.startup_hooks.extend(_guarded(app, status, hook) for hook in plugin.startup_hooks)
    app.lifespans.append((plugin, status))
    app.shutdown_hooks.extend(plugin.shutdown_hooks)
    return status


def _guarded(app: Bridge, status: PluginStatus, hook: Hook) -> Hook:
    """A plugin's start-up hook whose failure fails only that plugin: its methods answer an error."""

    async def run() -> None:
        try:
            result = hook()
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            _fail(app, status, exc)

    return run


async def enter_lifespans(app: Bridge, stack: AsyncExitStack) -> None:
    """Enter the app's lifespan, then each plugin's in mount order, on ``stack`` (left in reverse).
    A plugin whose lifespan fails is failed alone; the app's own failing stops the start."""
    for owner, status in app.lifespans:
        if owner.lifespan is None or (status is not None and status.status == "failed"):
            continue
        try:
            owner.state = await stack.enter_async_context(owner.lifespan(owner))
        except Exception as exc:
            if status is None:
                raise
            _fail(app, status, exc)
            continue
        stack.callback(setattr, owner, "state", None)


def _fail(app: Bridge, status: PluginStatus, exc: Exception) -> None:
    log.error("plugin %s failed to start: %s", status.name, exc, exc_info=exc)
    status.status, status.error = "failed", f"{type(exc).__name__}: {exc}"
    for name in status.methods:
        app.methods[name].func = _failed(status)
        app.methods[name].is_async = True


def _failed(status: PluginStatus) -> Callable[..., Any]:
    from .errors import INTERNAL_ERROR, BridgeError

    async def unavailable(*_: Any, **__: Any) -> None:
        raise BridgeError(INTERNAL_ERROR, f"plugin {status.name} failed to start", {"plugin": status.name,
                                                                                    "error": status.error})

    return unavailable


def _settings(plugin: Plugin, given: Any, config: dict[str, Any] | None) -> Any:
    model = plugin.settings_model
    if model is None:
        return given
    if isinstance(given, model):
        return given
    values: dict[str, Any] = {}
    prefix = f"BRIDGE_{plugin.name.upper()}_"
    for field_name in model.model_fields:
        raw = os.environ.get(prefix + field_name.upper())
        if raw is not None:
            values[field_name] = _env_value(raw)
    values.update(config or {})
    values.update(given or {})
    return model.model_validate(values)


def _any_declared() -> bool:
    """Whether any installed distribution declares a ``bridge.plugins`` entry point: a quick look
    at the entry_points.txt files on sys.path, so that a host without plugins is spared
    importing importlib.metadata (~10 ms of a ~70 ms start-up)."""
    import sys

    marker = f"[{ENTRY_POINT_GROUP}]"
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.endswith((".dist-info", ".egg-info")):
                try:
                    with open(os.path.join(entry or ".", name, "entry_points.txt"), encoding="utf-8") as file:
                        if marker in file.read():
                            return True
                except OSError:
                    continue
    return False


def _env_value(raw: str) -> Any:
    """A list or table setting comes as JSON (``BRIDGE_FS_ROOTS='["/data"]'``); the rest as text."""
    if raw.lstrip()[:1] in ("[", "{"):
        import json

        try:
            return json.loads(raw)
        except ValueError:
            pass
    return raw


def discover_plugins() -> list[tuple[str, str, Any]]:
    """Installed plugins: (entry point name, distribution version, the loaded Plugin or the error)."""
    if not _any_declared():
        return []
    from importlib.metadata import entry_points

    found: list[tuple[str, str, Any]] = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name):
        version = ep.dist.version if ep.dist is not None else "?"
        try:
            loaded = ep.load()
            plugin = loaded() if callable(loaded) and not isinstance(loaded, Plugin) else loaded
            if not isinstance(plugin, Plugin):
                raise TypeError(f"{ep.value} is not a bridge Plugin (got {type(plugin).__name__})")
        except Exception as exc:
            found.append((ep.name, version, exc))
            continue
        found.append((ep.name, version, plugin))
    return found


def mount_installed(app: Bridge, only: list[str] | None = None,
                    config: dict[str, dict[str, Any]] | None = None) -> None:
    """Mount the installed plugins (or those named in ``only``) on ``app``. One that fails to
    import or mount is logged and listed as failed; the rest are served."""
    for name, version, plugin in discover_plugins():
        if only is not None and name not in only:
            continue
        if name in app.plugins:
            continue  # the app mounted it itself
        if isinstance(plugin, Exception):
            log.error("plugin %s failed to load: %s", name, plugin)
            app.plugins[name] = PluginStatus(name, version, "failed", f"{type(plugin).__name__}: {plugin}",
                                             source=f"entry point {name}")
            continue
        try:
            include(app, plugin, name, None, (config or {}).get(name), source=f"entry point {name}")
        except PluginConflict:
            raise
        except Exception as exc:
            log.error("plugin %s could not be mounted: %s", name, exc)
            app.plugins[name] = PluginStatus(name, version, "failed", f"{type(exc).__name__}: {exc}",
                                             source=f"entry point {name}")
    for name in dict.fromkeys(only or ()):  # in the order given: lifespans are entered in mount order
        if name in BUILTIN and name not in app.plugins:
            import importlib

            module, _, attr = BUILTIN[name].partition(":")
            include(app, getattr(importlib.import_module(module), attr), name, None, (config or {}).get(name),
                    source="built-in")
    missing = set(only or ()) - set(app.plugins)
    for name in sorted(missing):
        log.error("plugin %s is not installed", name)
        app.plugins[name] = PluginStatus(name, "?", "failed", "not installed", source="--plugin")
