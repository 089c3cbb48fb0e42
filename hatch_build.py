"""The wheel's build hook: with ``BRIDGE_COMPILE=1``, the hot path (``HOT_PATH``; bridge/hot_path.py
does the compiling) is compiled by mypyc into extension modules and the wheel becomes a platform
wheel. The ``.py`` files stay in it: Python imports an extension module before a source file of
the same name, and the sources are what tracebacks and ``inspect`` read. Without the variable
(and always for the editable install) the wheel is pure Python, as before. docs/design.md,
"Compiled", says what it buys.

Not hatch-mypyc: it takes ``[tool.hatch.build.targets.wheel] sources`` (our ``handlers`` →
``bridge/builtins`` mapping) for the package root and compiles into the source tree, where the
extensions would shadow the sources being edited. This builds in a temporary folder instead.

``python hatch_build.py OUT`` compiles into ``OUT`` (the test suite's compiled run uses it).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any


def _hot_path() -> Any:
    """bridge/hot_path.py, loaded by its path: importing the package would need its dependencies,
    which a build environment does not have."""
    path = Path(__file__).resolve().parent / "bridge" / "hot_path.py"
    spec = importlib.util.spec_from_file_location("_bridge_hot_path", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module  # type: ignore[union-attr]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


_compiler = _hot_path()
COMPILER: tuple[str, ...] = _compiler.COMPILER
compile_hot_path = _compiler.compile_hot_path


try:
    from hatchling.builders.hooks.plugin.interface import BuildHookInterface
except ImportError:  # run as a script, outside a build
    BuildHookInterface = object  # type: ignore[assignment,misc]


class CompileHook(BuildHookInterface):  # type: ignore[misc,valid-type]
    """Adds the compiled hot path to a wheel when ``BRIDGE_COMPILE=1``."""

    PLUGIN_NAME = "custom"

    def _compiling(self, version: str) -> bool:
        return self.target_name == "wheel" and version != "editable" and os.environ.get("BRIDGE_COMPILE") == "1"

    def dependencies(self) -> list[str]:
        return list(COMPILER) if os.environ.get("BRIDGE_COMPILE") == "1" else []

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if not self._compiling(version):
            return
        self._out = Path(tempfile.mkdtemp(prefix="bridge-compiled-"))
        for path in compile_hot_path(Path(self.root), self._out):
            build_data["force_include"][str(path)] = str(path.relative_to(self._out))
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        out = getattr(self, "_out", None)
        if out is not None:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    for built in compile_hot_path(Path(__file__).resolve().parent, Path(sys.argv[1]).resolve()):
        print(built)
