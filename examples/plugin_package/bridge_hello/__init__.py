"""An example plugin package: ``pip install examples/plugin_package`` and the host serves ``hello.*``."""

from __future__ import annotations

from pydantic import BaseModel

from bridge import Context, Plugin


class HelloSettings(BaseModel):
    greeting: str = "Hello"
    punctuation: str = "!"


plugin = Plugin("hello", "1.2.0", description="Greets people.", settings=HelloSettings)
started = {"count": 0}


@plugin.on_startup
def start() -> None:
    started["count"] += 1


@plugin.method("greet", idempotent=True)
async def greet(name: str, ctx: Context) -> str:
    """Greet ``name`` with the configured greeting."""
    return f"{plugin.settings.greeting}, {name}{plugin.settings.punctuation}"


@plugin.method
async def starts() -> int:
    """How many times the plugin's start-up hook ran."""
    return started["count"]
