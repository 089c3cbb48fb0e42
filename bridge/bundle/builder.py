"""Running PyInstaller, and the cache of builds keyed by their inputs."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .inputs import CACHE_KEEP, Plan

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path


#: PyInstaller, with the onefile archive stored rather than zlib-compressed: a onefile bundle
#: unpacks itself on every start, and inflating ~30 MiB is most of its start-up cost (2.2x the
#: module's against 1.5x stored). The app's installer (NSIS, MSI, dmg, AppImage) compresses
#: the download anyway. ``cdict`` is the archive's per-type compression table (PKG in
#: PyInstaller.building.api); if a release drops it, the build fails loudly rather than
#: silently compressing.
UNCOMPRESSED_RUNNER = """
import inspect, sys
from PyInstaller.building import api
init = api.PKG.__init__
if "cdict" not in inspect.signature(init).parameters:
    sys.exit("bridge bundle: this PyInstaller has no PKG(cdict=...); build with --compress")
def stored(self, *args, cdict=None, **kwargs):
    if cdict is None:
        cdict = dict.fromkeys(("EXTENSION", "DATA", "BINARY", "EXECUTABLE", "PYSOURCE", "PYMODULE",
                               "SPLASH", "DEPENDENCY", "PYZ", "SYMLINK"), False)
    init(self, *args, cdict=cdict, **kwargs)
api.PKG.__init__ = stored
from PyInstaller.__main__ import run
run(sys.argv[1:])
"""


@dataclass
class Result:
    """A finished (or reused) build."""

    plan: Plan
    artifact: Path
    executable: Path
    bytes: int
    seconds: float
    cached: bool
    key: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"app": self.plan.app, "name": self.plan.name, "triple": self.plan.triple, "mode": self.plan.mode,
                "artifact": str(self.artifact), "executable": str(self.executable), "bytes": self.bytes,
                "seconds": round(self.seconds, 1), "cached": self.cached, "key": self.key, "plugins": self.plan.plugins}


def build(the_plan: Plan, out: Path | None, cache: Path | None = None, log: Any = None) -> Result:
    """Run PyInstaller (or reuse the cache's build of the same inputs) and put the artifact in
    ``out``; with only ``cache``, the artifact stays there."""
    import shutil
    import tempfile
    import time
    from pathlib import Path

    if out is None and cache is None:
        raise ValueError("give an output directory, a cache directory, or both")
    started = time.monotonic()
    cached = False
    key = None
    if cache is not None:
        key = the_plan.cache_key()
        entry = Path(cache) / key
        with _locked(Path(cache)):
            cached = the_plan.artifact(entry).exists()
            if not cached:
                _run_pyinstaller(the_plan, entry, log)
            os.utime(entry)
            _prune(Path(cache), keep=CACHE_KEEP)
        source = the_plan.artifact(entry)
    else:
        assert out is not None
        staging = Path(tempfile.mkdtemp(prefix="bridge-bundle-"))
        try:
            _run_pyinstaller(the_plan, staging / "dist", log)
            _replace(the_plan.artifact(staging / "dist"), the_plan.artifact(Path(out)))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        source = the_plan.artifact(Path(out))
    if cache is not None and out is not None:
        _replace(source, the_plan.artifact(Path(out)), copy=True)
        source = the_plan.artifact(Path(out))
    where = source.parent
    return Result(the_plan, source, the_plan.executable(where), _size(source), time.monotonic() - started, cached,
                  key)


def build_compiled(argv: Sequence[str], cache: Path | None) -> int:
    """``bridge bundle --compiled`` run by a pure bridge: make (or find in ``cache``, else the
    user's cache folder) a copy of it with the hot path compiled (``hot_path.compiled_copy``),
    then run the same command again with that copy first on the path, so the build freezes it."""
    import subprocess
    from pathlib import Path

    import bridge
    import bridge.builtins

    from .. import hot_path

    if os.environ.get(_COMPILED_RUN):
        raise SystemExit("bridge bundle --compiled: the compiled copy of bridge did not load")
    missing = hot_path.missing_compiler()
    if missing is not None:
        raise SystemExit(f"bridge bundle --compiled needs {missing}")
    if cache is None:
        from platformdirs import user_cache_path

        cache = user_cache_path("bridge-sidecar")
    try:  # a checkout's built-in plugins (handlers/) are reached through __path__: see bridge/builtins
        folder = hot_path.compiled_copy(Path(bridge.__file__).parent, [Path(p) for p in bridge.builtins.__path__[1:]],
                                        cache / "compiled")
    except RuntimeError as exc:
        raise SystemExit(f"bridge bundle --compiled: {exc}") from None
    # First on this command's path (before the working directory, which may hold a checkout's
    # bridge) and on PyInstaller's (its hooks import bridge too).
    code = "import sys; sys.path.insert(0, sys.argv.pop(1)); from bridge.cli import main; sys.exit(main())"
    path = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH")) if p)
    return subprocess.call([sys.executable, "-c", code, str(folder), *argv],
                           env={**os.environ, "PYTHONPATH": path, _COMPILED_RUN: "1"})


_COMPILED_RUN = "BRIDGE_BUNDLE_COMPILED_RUN"  # set in the command run again by build_compiled


def _run_pyinstaller(the_plan: Plan, dist: Path, log: Any) -> None:
    import shutil
    import subprocess
    import tempfile
    from pathlib import Path

    try:
        import PyInstaller  # noqa: F401
    except ImportError:
        raise SystemExit("bridge bundle: PyInstaller is not installed; pip install 'bridge-sidecar[bundle]'") from None
    work = Path(tempfile.mkdtemp(prefix="bridge-bundle-work-"))
    try:
        entry = work / "bridge_entry.py"
        entry.write_text(the_plan.entry_script(), encoding="utf-8")
        staging = work / "dist"
        runner = ["-m", "PyInstaller"] if the_plan.compress else ["-c", UNCOMPRESSED_RUNNER]
        command = [sys.executable, *runner, *the_plan.pyinstaller_args(entry, work, staging)]
        done = subprocess.run(command, stdout=log or subprocess.DEVNULL, stderr=log or subprocess.PIPE,
                              cwd=work, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"bridge bundle: PyInstaller failed (exit {done.returncode})\n{done.stderr or ''}")
        # Staged beside the target, then renamed: a build cut short never looks finished.
        final = the_plan.artifact(dist)
        partial = final.with_name(final.name + ".partial")
        _replace(the_plan.artifact(staging), partial)
        _replace(partial, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _replace(source: Path, target: Path, copy: bool = False) -> None:
    """Put ``source`` at ``target`` (a file or a folder), replacing what was there."""
    import shutil

    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    elif target.exists():
        target.unlink()
    if copy:
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, target)  # type: ignore[operator]
    else:
        shutil.move(str(source), str(target))


def _prune(cache: Path, keep: int) -> None:
    """Drop all but the ``keep`` most recently used builds from a cache."""
    import re
    import shutil

    builds = [p for p in cache.iterdir() if p.is_dir() and re.fullmatch(r"[0-9a-f]{20}", p.name)]
    for old in sorted(builds, key=lambda p: p.stat().st_mtime, reverse=True)[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


class _locked:
    """An exclusive lock on a cache directory, so concurrent test runs build once."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.file: Any = None

    def __enter__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.file = open(self.folder / ".lock", "w")
        try:
            import fcntl

            fcntl.flock(self.file, fcntl.LOCK_EX)
        except ImportError:  # Windows: no lock; a second build of one key overwrites the first
            pass

    def __exit__(self, *exc: object) -> None:
        self.file.close()
