"""Import an app by name, as ``bridge serve``, ``discover``, ``types`` and ``bundle`` do.

``module:attribute`` (attribute defaults to ``app``; a callable is called: an app factory),
or a file path: ``app.py``, ``./src/app.py:api``. A failure is an ``AppLoadError`` whose
message is one line saying what to fix; ``BRIDGE_DEBUG=1`` keeps the original traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import Bridge


class AppLoadError(ValueError):
    """The app named cannot be loaded; the message says why, in one line."""


def load_app(spec: str) -> Bridge:
    """The ``Bridge`` app ``spec`` names, imported from the working directory (or its file)."""
    from .app import Bridge

    where, colon, attr = spec.rpartition(":") if _has_attribute(spec) else (spec, "", "")
    attr = attr or "app"
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    module_name = _module_for_path(where) if _is_path(where) else where
    if not module_name or not all(part.isidentifier() for part in module_name.split(".")):
        raise AppLoadError(f"{spec!r} does not name an app: write module:attribute (myapp:app) or a file (app.py)")
    module = _import(module_name, spec)
    app = getattr(module, attr, None)
    if app is None:
        found = sorted(name for name, value in vars(module).items() if isinstance(value, Bridge))
        hint = f"; it has {', '.join(f'{module_name}:{n}' for n in found)}" if found else "; it defines no Bridge app"
        raise AppLoadError(f"{module_name} ({_file(module)}) has no attribute {attr!r}{hint}")
    if callable(app) and not isinstance(app, Bridge):
        app = app()
    if not isinstance(app, Bridge):
        raise AppLoadError(f"{module_name}:{attr} is a {type(app).__name__}, not a Bridge app")
    return app


def _has_attribute(spec: str) -> bool:
    """Whether ``spec`` ends in ``:attribute`` (a Windows drive's colon does not count)."""
    head, colon, tail = spec.rpartition(":")
    return bool(colon) and tail.isidentifier() and not (len(head) == 1 and head.isalpha())


def _is_path(where: str) -> bool:
    return where.endswith(".py") or "/" in where or os.sep in where


def _module_for_path(where: str) -> str:
    """The dotted name of the file ``where``, its package root put on ``sys.path`` (so the
    app's relative imports work)."""
    from pathlib import Path  # here, not at import: `serve module:app` never needs it (start-up)

    path = Path(where)
    if path.suffix != ".py":
        path = path.with_suffix(".py")
    if not path.is_file():
        raise AppLoadError(f"no such file: {where}")
    path = path.resolve()
    parts = [path.stem]
    folder = path.parent
    while (folder / "__init__.py").is_file():  # inside a package: import it as the package's module
        parts.insert(0, folder.name)
        folder = folder.parent
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    return ".".join(parts)


def _import(module_name: str, spec: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if _debug():
            raise
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise AppLoadError(f"no module named {missing!r} (for {spec!r}): run bridge from the folder that holds it, "
                               "set PYTHONPATH, or name the file (bridge serve path/to/app.py)") from None
        raise AppLoadError(f"importing {module_name} failed: {exc} ({_origin(exc)}); is it installed "
                           "in this Python?") from None
    except SyntaxError as exc:
        if _debug():
            raise
        raise AppLoadError(f"syntax error in {exc.filename}, line {exc.lineno}: {exc.msg}") from None
    except Exception as exc:
        if _debug():
            raise
        raise AppLoadError(f"importing {module_name} raised {type(exc).__name__}: {exc} ({_origin(exc)}); "
                           "BRIDGE_DEBUG=1 shows the traceback") from None


def _origin(exc: BaseException) -> str:
    """Where in the app's own code ``exc`` came from: the last frame outside importlib."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "importlib" not in f.filename]
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "during import"


def _file(module: Any) -> str:
    return getattr(module, "__file__", None) or "a namespace package"


def _debug() -> bool:
    return os.environ.get("BRIDGE_DEBUG", "").lower() in ("1", "true", "yes")
