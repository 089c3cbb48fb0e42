"""The app bench/terminal.mjs serves: the terminal plugin, allowed to run this Python."""

import sys

from bridge import Bridge
from bridge.builtins.terminal.plugin import plugin

app = Bridge("bench-terminal")
app.include(plugin, settings={"commands": [sys.executable]})
