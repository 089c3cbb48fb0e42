"""Import an app by its ``module:attribute`` name, as ``bridge serve`` and ``bridge bundle`` do."""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .app import Bridge


def load_app(spec: str) -> Bridge:
    """Import ``module:attribute`` (attribute defaults to ``app``) from the working directory."""
    from .app import Bridge

    module_name, _, attr = spec.partition(":")
    if module_name.endswith(".py"):
        module_name = module_name[:-3].replace("/", ".").replace(os.sep, ".")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    app = getattr(module, attr or "app", None)
    if callable(app) and not isinstance(app, Bridge):
        app = app()
    if not isinstance(app, Bridge):
        raise SystemExit(f"bridge: {spec} is not a Bridge app (got {type(app).__name__})")
    return app
