"""The built-in ``system`` plugin: health and information, cheap enough to poll every second."""

from __future__ import annotations

import os
import platform
import sys
import time
from typing import Any

from bridge import INVALID_PARAMS, BridgeError, Context, Plugin, __version__
from bridge.audit import MAX_RECENT

plugin = Plugin("system", __version__, description="Health, information and metrics of the host.")

_STARTED = time.monotonic()


@plugin.method("ping", idempotent=True)
async def ping() -> str:
    """Answer "pong": a liveness check."""
    return "pong"


@plugin.method("health", idempotent=True)
async def health(ctx: Context) -> dict[str, Any]:
    """``ok``, or ``degraded`` while a plugin has failed; uptime, calls in flight, memory, plugins."""
    app = ctx.app
    plugins = [status.to_dict() for status in app.plugins.values()]
    failed = [p["name"] for p in plugins if p["status"] != "ok"]
    return {
        "status": "degraded" if failed else "ok",
        "failed": failed,
        "uptimeSeconds": round(time.monotonic() - _STARTED, 3),
        "inflight": ctx.host.inflight,
        "memory": _memory(),
        "plugins": plugins,
    }


@plugin.method("info", idempotent=True)
async def info(ctx: Context) -> dict[str, Any]:
    """Versions (Python, bridge, the app, plugins), pid, platform, CPUs and load, memory."""
    app = ctx.app
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "app": {"name": app.name, "version": app.version},
        "bridge": __version__,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": {"system": platform.system(), "release": platform.release(), "machine": platform.machine()},
        "pid": os.getpid(),
        "executable": sys.executable,
        "cpus": os.cpu_count(),
        "loadAverage": [round(x, 2) for x in load] if load else None,
        "memory": _memory(),
        "plugins": {status.name: status.version for status in app.plugins.values()},
    }


@plugin.method("metrics", idempotent=True)
async def metrics(ctx: Context) -> dict[str, Any]:
    """The host's metrics (the same document as ``rpc.metrics``)."""
    return ctx.host.metrics()


@plugin.method("audit", idempotent=True)
def audit(ctx: Context, limit: int = 100) -> list[dict[str, Any]]:
    """The newest ``limit`` (1 to 1000) entries of the audit log, oldest first; [] while it is
    off. A plain ``def``: it reads files, so it runs in a worker thread."""
    if not 1 <= limit <= MAX_RECENT:
        raise BridgeError(INVALID_PARAMS, f"limit must be 1 to {MAX_RECENT}", {"field": "limit", "max": MAX_RECENT})
    return ctx.app.audit.recent(limit)


def _memory() -> dict[str, int | None]:
    """Resident and peak memory in bytes, from /proc where there is one, else getrusage.
    (The standard library, not psutil: psutil costs more to import than this whole plugin.)"""
    rss = peak = None
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) * 1024
    except OSError:
        try:
            import resource

            usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            peak = usage if sys.platform == "darwin" else usage * 1024
        except (ImportError, OSError):
            pass
    return {"rss": rss, "peak": peak}
