"""``bridge bundle``: freeze an app into one executable with PyInstaller, named for Tauri.

The executable is ``python -m bridge serve APP`` with the app baked in: it takes every
``serve`` flag and ``BRIDGE_*`` variable. Its name carries the host's target triple
(``notes-x86_64-unknown-linux-gnu``), as Tauri's ``bundle.externalBin`` requires.

The frozen entry point imports this module for ``frozen_main`` on every start, so only what
bridge already imports (``os``, ``sys``, ``dataclasses``, ``typing``) is imported at the top.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

Mode = Literal["onefile", "onedir"]
#: onedir starts in ~1.2x the time of ``python -m bridge serve``; onefile, which unpacks itself
#: to a temporary directory on every start, in ~2.2x (docs/shipping.md).
DEFAULT_MODE: Mode = "onedir"
#: Never wanted in a sidecar, and pulled in by analysis through optional imports (pydantic's
#: hypothesis plugin, PyInstaller's own hooks).
DEFAULT_EXCLUDES = ("tkinter", "hypothesis", "pytest", "_pytest", "PyInstaller", "mypy", "IPython")
#: Imported by name at run time, where PyInstaller's analysis cannot see them.
RUNTIME_IMPORTS = ("anyio._backends._asyncio", "uvloop", "orjson", "pydantic_core")
#: Parts of bridge an app brings in by importing them (PyInstaller then finds them itself).
OPTIONAL_PACKAGES = ("bridge.compat",)
CACHE_FORMAT = 1
#: Builds a cache keeps, the most recently used (onefile and onedir of two versions).
CACHE_KEEP = 4

_ARCH = {"amd64": "x86_64", "x86_64": "x86_64", "x64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64",
         "i386": "i686", "i686": "i686", "x86": "i686", "armv7l": "armv7", "riscv64": "riscv64gc",
         "ppc64le": "powerpc64le", "s390x": "s390x"}


def target_triple(system: str | None = None, machine: str | None = None, libc: str | None = None) -> str:
    """Rust's name for this host (what ``rustc -vV`` prints as ``host``), which Tauri appends
    to a sidecar's name: ``x86_64-unknown-linux-gnu``, ``aarch64-apple-darwin``,
    ``x86_64-pc-windows-msvc``."""
    import platform

    system = (system or platform.system()).lower()
    raw = (machine or platform.machine()).lower()
    arch = _ARCH.get(raw)
    if arch is None:
        raise ValueError(f"no target triple known for machine {raw!r}; pass --target-triple")
    if system == "darwin":
        return f"{arch}-apple-darwin"
    if system == "windows":
        return f"{arch}-pc-windows-msvc"
    if system == "linux":
        if libc is None:
            libc = platform.libc_ver()[0] or "glibc"
        env = "musl" if "musl" in libc.lower() else "gnu"
        if arch == "armv7":
            return f"armv7-unknown-linux-{env}eabihf"
        return f"{arch}-unknown-linux-{env}"
    raise ValueError(f"no target triple known for system {system!r}; pass --target-triple")


# ---------------------------------------------------------------- run time (frozen)

def frozen_main(app: str, argv: list[str] | None = None, *, onefile: bool = False) -> int:
    """The bundle's entry point: ``serve APP`` plus the flags given; ``serve`` itself may be
    given first (``bridge-host serve --debug``). ``discover``, ``plugins`` and ``--version``
    work as with the ``bridge`` command."""
    from .cli import main

    if onefile:
        _exit_with_bootloader()
    # `serve` puts the working directory first on sys.path to find the app; frozen, files there
    # would shadow the bundled modules (PyInstaller's finder is a sys.path hook), the app's own
    # too if its package is a namespace package. So the app is imported before, and the
    # working directory goes last: a fallback only.
    import importlib

    importlib.import_module(app.partition(":")[0])
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    return main(frozen_argv(app, sys.argv[1:] if argv is None else argv))


def frozen_argv(app: str, argv: list[str]) -> list[str]:
    """The ``bridge`` command line the bundle's own arguments stand for."""
    if argv[:1] == ["serve"]:
        argv = argv[1:]
    elif argv[:1] == ["discover"]:
        return ["discover", app, *argv[1:]]
    elif argv[:1] == ["plugins"] or argv[:1] == ["--version"]:
        return argv
    return ["serve", app, *argv]


def _exit_with_bootloader() -> None:
    """A onefile bundle runs as a child of PyInstaller's bootloader, which forwards signals
    but cannot forward SIGKILL. On Linux, ask for SIGTERM when the bootloader dies, so a
    killed sidecar never leaves this process behind."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    try:
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
        parent = os.readlink(f"/proc/{os.getppid()}/exe")
    except (OSError, AttributeError):
        return
    if os.path.realpath(parent) != os.path.realpath(sys.executable):  # it died before prctl took effect
        raise SystemExit(1)


# ---------------------------------------------------------------- build time

@dataclass
class Plan:
    """Everything one PyInstaller build needs, decided before it runs."""

    app: str
    module: str
    name: str
    triple: str
    mode: Mode
    hidden_imports: list[str] = field(default_factory=list)
    collect: list[str] = field(default_factory=list)
    metadata: list[str] = field(default_factory=list)
    excludes: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    plugins: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    extra_args: list[str] = field(default_factory=list)

    @property
    def stem(self) -> str:
        """``name-triple``: the file (onefile) or folder and file (onedir) PyInstaller writes."""
        return f"{self.name}-{self.triple}"

    @property
    def windows(self) -> bool:
        return "windows" in self.triple

    @property
    def filename(self) -> str:
        return self.stem + (".exe" if self.windows else "")

    def artifact(self, out: Path) -> Path:
        """The file or folder to ship."""
        return out / (self.filename if self.mode == "onefile" else self.stem)

    def executable(self, out: Path) -> Path:
        return out / self.filename if self.mode == "onefile" else out / self.stem / self.filename

    def entry_script(self) -> str:
        return (f'"""The frozen bridge host: ``bridge serve {self.app}``, generated by ``bridge bundle``."""\n\n'
                "import sys\n\nfrom bridge.bundle import frozen_main\n\n"
                f"sys.exit(frozen_main({self.app!r}, onefile={self.mode == 'onefile'}))\n")

    def pyinstaller_args(self, entry: Path, work: Path, dist: Path) -> list[str]:
        args = ["--noconfirm", "--log-level", "WARN", f"--{self.mode}", "--name", self.stem,
                "--distpath", str(dist), "--workpath", str(work / "build"), "--specpath", str(work)]
        if sys.platform.startswith("linux"):
            args.append("--strip")  # debug symbols are half the size; macOS signing dislikes strip
        for path in self.paths:
            args += ["--paths", path]
        for module in self.hidden_imports:
            args += ["--hidden-import", module]
        for package in self.collect:
            args += ["--collect-submodules", package]
        for dist_name in self.metadata:
            args += ["--copy-metadata", dist_name]
        for module in self.excludes:
            args += ["--exclude-module", module]
        return [*args, *self.extra_args, str(entry)]

    def cache_key(self) -> str:
        """A hash of everything that goes into the build: options, sources, installed versions."""
        import hashlib
        import importlib.metadata
        import json
        import platform

        digest = hashlib.sha256()
        options = {k: v for k, v in self.__dict__.items() if k not in ("sources", "paths")}
        versions = sorted(f"{d.metadata['Name']}=={d.version}" for d in importlib.metadata.distributions())
        digest.update(json.dumps([CACHE_FORMAT, options, versions, sys.version, platform.platform()]).encode())
        for source in sorted(set(self.sources)):
            digest.update(source.encode() + b"\0")
            with open(source, "rb") as file:
                digest.update(hashlib.sha256(file.read()).digest())
        return digest.hexdigest()[:20]


def _module_name(spec: str) -> tuple[str, str]:
    module, _, attr = spec.partition(":")
    if module.endswith(".py"):
        module = module[:-3].replace("/", ".").replace(os.sep, ".")
    return module, attr or "app"


def _package_modules(package: str, root: str, skip: tuple[str, ...] = ()) -> tuple[list[str], list[str]]:
    """Every module under a package directory (by walking files: nothing is imported) and its sources."""
    modules: list[str] = []
    sources: list[str] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__" and os.path.exists(os.path.join(folder, d, "__init__.py")))
        rel = os.path.relpath(folder, root)
        prefix = package if rel == "." else package + "." + rel.replace(os.sep, ".")
        if prefix.startswith(skip):
            dirs[:] = []
            continue
        for file in sorted(files):
            if file.endswith(".py"):
                sources.append(os.path.join(folder, file))
                name = prefix if file == "__init__.py" else f"{prefix}.{file[:-3]}"
                if not name.startswith(skip):
                    modules.append(name)
    return modules, sources


def _sources_of(module_name: str) -> list[str]:
    """The files the app's own code lives in: its package, or its module and sibling modules."""
    import importlib.util

    top = module_name.split(".")[0]
    spec = importlib.util.find_spec(top)
    if spec is None or spec.origin is None:
        return []
    if spec.submodule_search_locations:
        return _package_modules(top, next(iter(spec.submodule_search_locations)))[1]
    folder = os.path.dirname(spec.origin)
    return [os.path.join(folder, f) for f in sorted(os.listdir(folder)) if f.endswith(".py")]


def plan(app: str, *, name: str | None = None, triple: str | None = None, mode: Mode = DEFAULT_MODE,
         plugins: Sequence[str] | None = None, hidden_imports: Sequence[str] = (), collect: Sequence[str] = (),
         excludes: Sequence[str] = (), extra_args: Sequence[str] = ()) -> Plan:
    """Decide a build: import the app (to fail before a minute of PyInstaller, not after) and
    find what bridge would import by name at run time: built-in plugins (``handlers``), the
    installed plugins' entry points (``plugins``: None for all, [] for none) with their
    distributions' metadata, which PyInstaller does not copy by itself."""
    from .cli import load_app

    loaded = load_app(app)
    module, attr = _module_name(app)
    import bridge
    import handlers

    result = Plan(app=f"{module}:{attr}", module=module, name=name or _slug(loaded.name),
                  triple=triple or target_triple(), mode=mode, paths=[os.getcwd()])
    if "." in result.name or "/" in result.name or "\\" in result.name:
        raise ValueError(f"sidecar name {result.name!r}: use letters, digits and dashes (Tauri replaces "
                         "what follows a dot with .exe on Windows)")
    bridge_modules, bridge_sources = _package_modules("bridge", os.path.dirname(bridge.__file__), OPTIONAL_PACKAGES)
    handler_modules, handler_sources = _package_modules("handlers", os.path.dirname(handlers.__file__))
    result.hidden_imports = [module, *RUNTIME_IMPORTS, *bridge_modules, *handler_modules]
    result.sources = [*bridge_sources, *handler_sources, *_sources_of(module)]
    result.metadata = [dist for dist in ("bridge-sidecar",) if _installed(dist)]
    for ep_name, dist_name, ep_module in _entry_points():
        if plugins is not None and ep_name not in plugins:
            continue
        top = ep_module.split(".")[0]
        result.plugins.append(ep_name)
        result.hidden_imports.append(ep_module)
        result.collect.append(top)
        result.sources += _sources_of(top)
        if dist_name and dist_name not in result.metadata:
            result.metadata.append(dist_name)
    result.hidden_imports += list(hidden_imports)
    result.collect += list(collect)
    result.excludes = [m for m in DEFAULT_EXCLUDES if m not in result.hidden_imports] + list(excludes)
    result.extra_args = list(extra_args)
    return result


def _slug(text: str) -> str:
    import re

    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "bridge-host"


def _installed(dist: str) -> bool:
    import importlib.metadata

    try:
        importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _entry_points() -> list[tuple[str, str | None, str]]:
    """(name, distribution, module) of each ``bridge.plugins`` entry point installed."""
    from importlib.metadata import entry_points

    from .plugins import ENTRY_POINT_GROUP

    return sorted((ep.name, ep.dist.metadata["Name"] if ep.dist is not None else None, ep.module)
                  for ep in entry_points(group=ENTRY_POINT_GROUP))


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
        command = [sys.executable, "-m", "PyInstaller", *the_plan.pyinstaller_args(entry, work, staging)]
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


# ---------------------------------------------------------------- what to paste

def snippets(result: Result, out: Path | None) -> str:
    """The tauri.conf.json, capability and Electron extraResources entries for this build."""
    import json

    the_plan = result.plan
    external = _external_bin(the_plan, out)
    how = "from the cache" if result.cached else f"{result.seconds:.0f} s"
    lines = [f"built {result.artifact} ({result.bytes / 2**20:.1f} MiB, {the_plan.mode}, {how})", ""]
    if the_plan.mode == "onefile":
        lines += ["Tauri: src-tauri/tauri.conf.json",
                  json.dumps({"bundle": {"externalBin": [external]}}, indent=2), "",
                  "and a capability (src-tauri/capabilities/default.json) that lets the window spawn it:",
                  json.dumps({"permissions": [{"identifier": "shell:allow-spawn",
                                               "allow": [{"name": external, "sidecar": True, "args": ["serve"]}]},
                                              "shell:allow-stdin-write", "shell:allow-kill"]}, indent=2),
                  f"then createTauriSidecar({{ Command, program: '{external}', args: ['serve'] }})", ""]
    else:
        lines += ["Tauri's externalBin takes a single file: build with --onefile for Tauri.", ""]
    resource = the_plan.filename if the_plan.mode == "onefile" else the_plan.stem
    source = str(result.artifact)
    lines += ["Electron (electron-builder): package.json > build",
              json.dumps({"extraResources": [{"from": source, "to": resource}]}, indent=2),
              "then in the main process:",
              "spawnSidecar({ command: path.join(process.resourcesPath, "
              + ", ".join(repr(p) for p in ([resource] if the_plan.mode == "onefile" else [resource, the_plan.filename]))
              + ") })"]
    return "\n".join(lines)


def _external_bin(the_plan: Plan, out: Path | None) -> str:
    """The externalBin entry: the path from src-tauri/ to the binary, without the triple."""
    if out is not None:
        parts = os.path.abspath(out).split(os.sep)
        if "src-tauri" in parts:
            rel = parts[len(parts) - parts[::-1].index("src-tauri"):]
            return "/".join([*rel, the_plan.name])
    return f"binaries/{the_plan.name}"
