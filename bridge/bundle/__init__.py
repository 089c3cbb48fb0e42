"""``bridge bundle``: freeze an app into one executable with PyInstaller, named for Tauri.

The executable is ``python -m bridge serve APP`` with the app baked in: it takes every
``serve`` flag and ``BRIDGE_*`` variable. Its name carries the host's target triple
(``notes-x86_64-unknown-linux-gnu``), as Tauri's ``bundle.externalBin`` requires.

``frozen`` is what the executable runs on every start, so this package imports only it;
``inputs`` (what goes in), ``builder`` (PyInstaller, the cache) and ``config`` (the snippets
to paste) load when a build asks for them.
"""

from __future__ import annotations

from typing import Any

from .frozen import frozen_argv, frozen_main
from .triple import target_triple

_LAZY = {
    "DEFAULT_MODE": "inputs", "DEFAULT_EXCLUDES": "inputs", "Mode": "inputs", "Plan": "inputs", "plan": "inputs",
    "Result": "builder", "build": "builder", "snippets": "config",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'bridge.bundle' has no attribute {name!r}")


__all__ = ["DEFAULT_MODE", "Plan", "Result", "build", "frozen_argv", "frozen_main", "plan", "snippets",
           "target_triple"]
