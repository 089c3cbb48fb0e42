"""A terminal app for client_js's tests only: the built-in terminal plugin, allowed to run bash."""

from __future__ import annotations

from bridge import Bridge
from bridge.builtins.terminal.plugin import plugin

app = Bridge("terminal-test")
app.include(plugin, settings={"commands": ["bash"]})
