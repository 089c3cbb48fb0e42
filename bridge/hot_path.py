"""The hot path: the modules every message goes through, and their compilation by mypyc.

Three users: the wheel's build hook (hatch_build.py, ``BRIDGE_COMPILE=1``), which loads this
file by its path (a build environment has none of bridge's dependencies, so this module imports
only the standard library); the test suite's compiled run (scripts/compiled_tree.py); and
``bridge bundle --compiled``, which freezes a compiled copy of the running bridge
(``compiled_copy``). docs/design.md, "Compiled", says what compiling buys and asks of the code.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

#: The modules every message goes through, relative to the folder holding the ``bridge`` package.
HOT_PATH = (
    "bridge/connection.py", "bridge/framing.py", "bridge/methods.py", "bridge/metrics.py", "bridge/context.py",
    "bridge/middleware/__init__.py", "bridge/middleware/ratelimit.py", "bridge/middleware/circuit.py",
    "bridge/middleware/validation.py",
)
#: What the compiler needs (the ``compile`` extra; installed into a wheel's build environment
#: only when compiling), besides a C compiler.
COMPILER = ("mypy>=1.11", "setuptools>=70")
#: Compiled copies ``compiled_copy`` keeps in its cache, the most recently used.
COPIES_KEPT = 2

_SETUP = """
import sys
from setuptools import setup
from mypyc.build import mypycify

setup(name="bridge-hot-path", script_args=sys.argv[1:], ext_modules=mypycify(
    [*%r, "--ignore-missing-imports", "--follow-imports=silent"], opt_level="3"))
"""
_SKIPPED = shutil.ignore_patterns("__pycache__", "*.so", "*.pyd")


def compile_hot_path(root: Path, out: Path) -> list[Path]:
    """Compile ``HOT_PATH`` of the ``bridge`` package in ``root``; the extension modules go to
    ``out`` in their package layout (``out/bridge/connection.<tag>.so``, and mypyc's shared
    library beside ``out/bridge``). Returns their paths. RuntimeError with the compiler's output."""
    with tempfile.TemporaryDirectory(prefix="bridge-mypyc-") as temp:
        work = Path(temp)
        # A copy of the package alone: setuptools would read a checkout's pyproject.toml (and
        # refuse its PEP 639 license), and mypy must see the package, not the editable install.
        shutil.copytree(root / "bridge", work / "bridge", ignore=_SKIPPED)
        (work / "setup.py").write_text(_SETUP % (list(HOT_PATH),))
        result = subprocess.run(
            [sys.executable, "setup.py", "build_ext", "--build-lib", str(out), "--build-temp", str(work / "temp")],
            cwd=work, capture_output=True, text=True, check=False,
        )
        if result.returncode:
            raise RuntimeError(f"mypyc failed:\n{result.stdout}\n{result.stderr}")
    return sorted(path for path in out.rglob("*") if path.suffix in (".so", ".pyd"))


def missing_compiler() -> str | None:
    """What compiling lacks on this machine (mypyc and setuptools, or a C compiler), or None.
    The C compiler is looked for where Python's build configuration names one (not Windows)."""
    import importlib.util
    import sysconfig

    if importlib.util.find_spec("mypyc") is None or importlib.util.find_spec("setuptools") is None:
        return "mypy and setuptools: pip install 'bridge-sidecar[compile]'"
    compiler = os.environ.get("CC") or sysconfig.get_config_var("CC")
    if compiler and shutil.which(compiler.split()[0]) is None:
        return f"a C compiler: {compiler.split()[0]} is not on PATH"
    return None


def compiled_copy(package: Path, builtins: Sequence[Path], cache: Path) -> Path:
    """A folder to put first on the path: a copy of the ``bridge`` package in ``package`` with
    its hot path compiled beside the sources, and the modules of the ``builtins`` folders (a
    checkout's ``handlers/``) in ``bridge/builtins``, where a wheel installs them. Kept in
    ``cache`` by the copy's contents, the Python and mypy, so only a change compiles again
    (about 25 s). RuntimeError when compiling fails."""
    import mypy.version

    digest = hashlib.sha256(f"{sys.version}\0{mypy.version.__version__}\0{HOT_PATH}".encode())
    files = staged(package, builtins)
    for source, target in sorted(files, key=lambda pair: str(pair[1])):
        digest.update(str(target).encode() + b"\0" + source.read_bytes() + b"\0")
    copy = cache / f"mypyc-{digest.hexdigest()[:20]}"
    if not copy.is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f"{copy.name}.partial-", dir=cache))  # one per build: two may race
        try:
            for source, target in files:
                (partial / target).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, partial / target)
            compile_hot_path(partial, partial)
            try:
                partial.rename(copy)
            except OSError:  # another build of the same copy finished first
                if not copy.is_dir():
                    raise
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    os.utime(copy)
    copies = sorted((p for p in cache.glob("mypyc-*") if ".partial-" not in p.name), key=lambda p: p.stat().st_mtime,
                    reverse=True)
    for old in copies[COPIES_KEPT:]:
        shutil.rmtree(old, ignore_errors=True)
    return copy


def staged(package: Path, builtins: Sequence[Path]) -> list[tuple[Path, Path]]:
    """(source, where it goes in the copy) of every file ``compiled_copy`` copies: the package's
    as ``bridge/...``, and the ``builtins`` folders' as ``bridge/builtins/...``; no caches and no
    compiled modules."""
    files = _files(package, Path("bridge"))
    for folder in builtins:
        files += _files(folder, Path("bridge", "builtins"))
    return files


def _files(folder: Path, into: Path) -> list[tuple[Path, Path]]:
    """(source, where it goes under ``into``) of every file in ``folder`` but caches and
    compiled modules."""
    found = []
    for directory, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if not name.endswith((".so", ".pyd", ".pyc")):
                source = Path(directory, name)
                found.append((source, into / source.relative_to(folder)))
    return found
