"""The wheel's build hook: with ``BRIDGE_COMPILE=1``, the hot path (``HOT_PATH``) is compiled by
mypyc into extension modules and the wheel becomes a platform wheel. The ``.py`` files stay in
it: Python imports an extension module before a source file of the same name, and the sources
are what tracebacks and ``inspect`` read. Without the variable (and always for the editable
install) the wheel is pure Python, as before. docs/design.md, "Compiled", says what it buys.

Not hatch-mypyc: it takes ``[tool.hatch.build.targets.wheel] sources`` (our ``handlers`` →
``bridge/builtins`` mapping) for the package root and compiles into the source tree, where the
extensions would shadow the sources being edited. This builds in a temporary folder instead.

``python hatch_build.py OUT`` compiles into ``OUT`` (the test suite's compiled run uses it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

#: The modules every message goes through, compiled when asked.
HOT_PATH = (
    "bridge/connection.py", "bridge/framing.py", "bridge/methods.py", "bridge/metrics.py", "bridge/context.py",
    "bridge/middleware/__init__.py", "bridge/middleware/ratelimit.py", "bridge/middleware/circuit.py",
    "bridge/middleware/validation.py",
)
#: What the compiler needs, installed into the build environment only when compiling.
COMPILER = ("mypy>=1.11", "setuptools>=70")

_SETUP = """
import sys
from setuptools import setup
from mypyc.build import mypycify

setup(name="bridge-hot-path", script_args=sys.argv[1:], ext_modules=mypycify(
    [*%r, "--ignore-missing-imports", "--follow-imports=silent"], opt_level="3"))
"""


def compile_hot_path(root: Path, out: Path) -> list[Path]:
    """Compile ``HOT_PATH`` of the checkout at ``root``; the extension modules go to ``out`` in
    their package layout (``out/bridge/connection.<tag>.so`` and mypyc's shared library beside
    ``out/bridge``). Returns their paths. Raises ``RuntimeError`` with the compiler's output."""
    with tempfile.TemporaryDirectory(prefix="bridge-mypyc-") as temp:
        work = Path(temp)
        # A copy of the package alone: setuptools would read the checkout's pyproject.toml (and
        # refuse its PEP 639 license), and mypy must see the package, not the editable install.
        shutil.copytree(root / "bridge", work / "bridge", ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyd"))
        (work / "setup.py").write_text(_SETUP % (list(HOT_PATH),))
        result = subprocess.run(
            [sys.executable, "setup.py", "build_ext", "--build-lib", str(out), "--build-temp", str(work / "temp")],
            cwd=work, capture_output=True, text=True,
        )
        if result.returncode:
            raise RuntimeError(f"mypyc failed:\n{result.stdout}\n{result.stderr}")
    suffixes = (".so", ".pyd")
    return sorted(path for path in out.rglob("*") if path.suffix in suffixes)


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
