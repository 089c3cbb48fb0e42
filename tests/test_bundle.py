"""bridge/bundle.py: target triples, the frozen entry's arguments, what a build includes, and
end to end, the frozen examples/app.py in both modes behaving like ``python -m bridge serve``.

The builds are cached under ``$BRIDGE_TEST_BUNDLE_CACHE`` (default ``.build/bundle-cache`` in
the checkout: scripts/test.sh points the compiled run's copy there too), keyed by a hash of
every input, so only the first run after a change pays for PyInstaller. ``python
tests/test_bundle.py onefile`` builds (or finds) one and prints its JSON: the Node tests use the
same builds that way.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bridge import bundle
from bridge.bundle import builder
from bridge.plugins import BUILTIN
from harness import gone

REPO = Path(__file__).resolve().parent.parent
APP = "examples.app:app"
CACHE = Path(os.environ.get("BRIDGE_TEST_BUNDLE_CACHE", REPO / ".build" / "bundle-cache")).expanduser()


# ---------------------------------------------------------------- without building

@pytest.mark.parametrize(("system", "machine", "libc", "triple"), [
    ("Linux", "x86_64", "glibc", "x86_64-unknown-linux-gnu"),
    ("Linux", "aarch64", "glibc", "aarch64-unknown-linux-gnu"),
    ("Linux", "x86_64", "musl", "x86_64-unknown-linux-musl"),
    ("Linux", "armv7l", "glibc", "armv7-unknown-linux-gnueabihf"),
    ("Darwin", "arm64", "", "aarch64-apple-darwin"),
    ("Darwin", "x86_64", "", "x86_64-apple-darwin"),
    ("Windows", "AMD64", "", "x86_64-pc-windows-msvc"),
    ("Windows", "ARM64", "", "aarch64-pc-windows-msvc"),
])
def test_target_triples(system: str, machine: str, libc: str, triple: str) -> None:
    assert bundle.target_triple(system, machine, libc) == triple


def test_unknown_machines_ask_for_a_triple() -> None:
    with pytest.raises(ValueError, match="--target-triple"):
        bundle.target_triple("Linux", "mips", "glibc")
    with pytest.raises(ValueError, match="--target-triple"):
        bundle.target_triple("Haiku", "x86_64", "")


@pytest.mark.parametrize(("argv", "expected"), [
    ([], ["serve", APP]),
    (["--debug", "--max-inflight", "4"], ["serve", APP, "--debug", "--max-inflight", "4"]),
    (["serve"], ["serve", APP]),  # what a Tauri capability written for `bridge-host serve` passes
    (["serve", "--framing", "lsp"], ["serve", APP, "--framing", "lsp"]),
    (["discover", "--no-plugins"], ["discover", APP, "--no-plugins"]),
    (["plugins"], ["plugins"]),
    (["--version"], ["--version"]),
])
def test_the_bundle_is_serve_with_the_app_baked_in(argv: list[str], expected: list[str]) -> None:
    assert bundle.frozen_argv(APP, argv) == expected


def test_names_and_paths_follow_tauri(tmp_path: Path) -> None:
    plan = bundle.Plan(app=APP, module="examples.app", name="notes", triple="x86_64-pc-windows-msvc", mode="onefile")
    assert plan.filename == "notes-x86_64-pc-windows-msvc.exe"
    assert plan.executable(tmp_path) == tmp_path / "notes-x86_64-pc-windows-msvc.exe"
    plan = bundle.Plan(app=APP, module="examples.app", name="notes", triple="aarch64-apple-darwin", mode="onedir")
    assert plan.artifact(tmp_path) == tmp_path / "notes-aarch64-apple-darwin"
    assert plan.executable(tmp_path) == tmp_path / "notes-aarch64-apple-darwin" / "notes-aarch64-apple-darwin"
    assert "frozen_main('examples.app:app', onefile=False)" in plan.entry_script()


def _fake_plugin_site(root: Path) -> Path:
    """examples/plugin_package "installed" in ``root``: its package and a dist-info with the entry point."""
    shutil.copytree(REPO / "examples" / "plugin_package" / "bridge_hello", root / "bridge_hello", dirs_exist_ok=True)
    info = root / "bridge_hello-1.2.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: bridge-hello\nVersion: 1.2.0\n")
    (info / "entry_points.txt").write_text("[bridge.plugins]\nhello = bridge_hello:plugin\n")
    return root


def test_a_plan_names_what_bridge_imports_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    monkeypatch.chdir(REPO)
    monkeypatch.syspath_prepend(str(_fake_plugin_site(tmp_path)))
    importlib.invalidate_caches()
    plan = bundle.plan(APP, mode="onefile", triple="x86_64-unknown-linux-gnu")
    assert plan.name == "notes-example"
    assert plan.app == APP
    for module in ("examples.app", "bridge.server", "bridge.middleware.cache", "bridge.builtins.system",
                   "bridge.builtins.fs.plugin", "anyio._backends._asyncio", "uvloop", "bridge_hello"):
        assert module in plan.hidden_imports
    assert not [m for m in plan.hidden_imports if m.startswith("bridge.compat")]  # only if the app imports it
    assert plan.plugins == ["hello"]
    assert plan.collect == ["bridge_hello"]
    assert plan.metadata == ["bridge-sidecar", "bridge-hello"]  # entry points need the dist-info
    assert "hypothesis" in plan.excludes
    args = plan.pyinstaller_args(Path("entry.py"), tmp_path, tmp_path / "dist")
    assert args[args.index("--name") + 1] == "notes-example-x86_64-unknown-linux-gnu"
    assert "--onefile" in args and args[-1] == "entry.py"
    assert args[args.index("--copy-metadata") + 1] == "bridge-sidecar"

    none = bundle.plan(APP, plugins=[], triple="x86_64-unknown-linux-gnu")
    assert none.plugins == [] and "bridge_hello" not in none.hidden_imports and none.mode == bundle.DEFAULT_MODE
    with pytest.raises(ValueError, match="dashes"):
        bundle.plan(APP, name="notes.host")


def test_the_cache_key_follows_the_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    app = tmp_path / "keyapp.py"
    app.write_text("from bridge import Bridge\napp = Bridge('key')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    first = bundle.plan("keyapp:app", mode="onefile").cache_key()
    assert bundle.plan("keyapp:app", mode="onefile").cache_key() == first
    assert bundle.plan("keyapp:app", mode="onedir").cache_key() != first
    assert bundle.plan("keyapp:app", mode="onefile", compress=True).cache_key() != first
    (tmp_path / "helper.py").write_text("X = 1\n")  # a module beside the app may be imported by it
    assert bundle.plan("keyapp:app", mode="onefile").cache_key() != first


def test_a_cache_keeps_the_builds_used_last(tmp_path: Path) -> None:
    for age, key in enumerate(["a" * 20, "b" * 20, "c" * 20]):
        (tmp_path / key).mkdir()
        os.utime(tmp_path / key, (1000 + age, 1000 + age))
    (tmp_path / "plugin-site").mkdir()
    builder._prune(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b" * 20, "c" * 20, "plugin-site"]


def test_a_build_is_reused_while_its_inputs_are_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    (tmp_path / "src").mkdir()
    app = tmp_path / "src" / "cacheapp.py"
    app.write_text("from bridge import Bridge\napp = Bridge('cached')\n")
    monkeypatch.chdir(tmp_path / "src")
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    importlib.invalidate_caches()
    runs: list[str] = []

    def fake_pyinstaller(plan: bundle.Plan, dist: Path, log: Any) -> None:
        runs.append(plan.mode)
        dist.mkdir(parents=True, exist_ok=True)
        plan.artifact(dist).write_bytes(b"#!frozen " + app.read_bytes())

    monkeypatch.setattr(builder, "_run_pyinstaller", fake_pyinstaller)
    plan = bundle.plan("cacheapp:app", mode="onefile", triple="x86_64-unknown-linux-gnu")
    first = bundle.build(plan, tmp_path / "out", tmp_path / "cache")
    assert (first.cached, runs) == (False, ["onefile"])
    assert first.executable == tmp_path / "out" / "cached-x86_64-unknown-linux-gnu"
    assert first.executable.read_bytes().startswith(b"#!frozen")
    again = bundle.build(bundle.plan("cacheapp:app", mode="onefile", triple="x86_64-unknown-linux-gnu"),
                         None, tmp_path / "cache")
    assert (again.cached, again.key, runs) == (True, first.key, ["onefile"])
    assert again.executable.parent == tmp_path / "cache" / first.key
    app.write_text("from bridge import Bridge\napp = Bridge('cached', '2.0')\n")
    changed = bundle.build(bundle.plan("cacheapp:app", mode="onefile", triple="x86_64-unknown-linux-gnu"),
                           None, tmp_path / "cache")
    assert (changed.cached, runs) == (False, ["onefile", "onefile"]) and changed.key != first.key


def test_snippets_for_tauri_and_electron(tmp_path: Path) -> None:
    plan = bundle.Plan(app=APP, module="examples.app", name="notes", triple="x86_64-unknown-linux-gnu", mode="onefile")
    out = tmp_path / "src-tauri" / "binaries"
    result = bundle.Result(plan, plan.artifact(out), plan.executable(out), 3 << 20, 12.0, False)
    text = bundle.snippets(result, out)
    assert '"externalBin": [\n      "binaries/notes"' in text
    assert '"name": "binaries/notes",\n          "sidecar": true' in text
    assert "process.resourcesPath, 'notes-x86_64-unknown-linux-gnu')" in text
    plan.mode = "onedir"
    text = bundle.snippets(bundle.Result(plan, plan.artifact(out), plan.executable(out), 1, 1.0, True), out)
    assert "build with --onefile for Tauri" in text
    assert ("process.resourcesPath, 'notes-x86_64-unknown-linux-gnu', 'notes-x86_64-unknown-linux-gnu')" in text)


def test_the_command_refuses_a_name_tauri_would_mangle() -> None:
    done = subprocess.run([sys.executable, "-m", "bridge", "bundle", APP, "--name", "notes.host", "--cache", "/nonexistent"],
                          cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert "bridge bundle: sidecar name 'notes.host'" in done.stderr and "Traceback" not in done.stderr


def test_serve_does_not_import_the_bundler() -> None:
    code = ("import atexit, sys\n"
            "atexit.register(lambda: sys.stderr.write('LOADED=%s\\n' % ('bridge.bundle' in sys.modules)))\n"
            "from bridge.cli import main\n"
            "sys.exit(main(['serve', 'examples.app:app', '--framing', 'ndjson']))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=60, env={**os.environ, "BRIDGE_LOG_LEVEL": "warning"}, check=False)
    assert done.returncode == 0, done.stderr
    assert b"LOADED=False" in done.stderr


# ---------------------------------------------------------------- building

def build(mode: str, *options: str) -> dict[str, Any]:
    """The frozen examples/app.py (with the example plugin installed), from the cache if its
    inputs are unchanged. Fails when PyInstaller is missing under CI, skips otherwise."""
    try:
        import PyInstaller  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("PyInstaller is not installed (pip install -e '.[test]'), and CI must build the bundle")
        pytest.skip("PyInstaller is not installed")
    site = _fake_plugin_site(CACHE / "plugin-site")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in [str(site), os.environ.get("PYTHONPATH")] if p)}
    done = subprocess.run([sys.executable, "-m", "bridge", "bundle", APP, f"--{mode}", *options, "--cache", str(CACHE),
                           "--json"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.fixture(scope="session", params=["onefile", "onedir"])
def built(request: pytest.FixtureRequest) -> dict[str, Any]:
    return build(request.param)


class Sidecar:
    """The bundle spawned the way an app spawns it, from a directory without the sources."""

    def __init__(self, exe: str, *args: str, env: dict[str, str] | None = None, cwd: str = "/") -> None:
        full = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONUNBUFFERED")}
        full.update({"BRIDGE_LOG_LEVEL": "warning", **(env or {})})
        self.proc = subprocess.Popen([exe, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=full, cwd=cwd)
        self.buffer = b""

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def read(self, timeout: float = 30.0) -> dict[str, Any]:
        """The next message, read as it is written: the host must not hold it in a buffer."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError(f"no message within {timeout} s; stderr: {self.stderr()}")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise EOFError(f"stdout closed; stderr: {self.stderr()}")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        message: dict[str, Any] = json.loads(line)
        return message

    def call(self, id: int, method: str, params: Any = None) -> dict[str, Any]:
        self.send({"jsonrpc": "2.0", "id": id, "method": method, "params": params or {}})
        while True:
            message = self.read()
            if message.get("id") == id:
                return message

    def stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return "(running)"
        return self.proc.stderr.read().decode(errors="replace")[-2000:]

    def close(self, timeout: float = 30.0) -> int:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return self.proc.wait(timeout)


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc and POSIX signals")


def test_the_build_is_named_and_cached(built: dict[str, Any]) -> None:
    assert built["triple"] == bundle.target_triple()
    assert Path(built["executable"]).name == f"notes-example-{built['triple']}"
    assert built["plugins"] == ["hello"]
    assert Path(built["artifact"]).parent.parent == CACHE
    assert Path(built["artifact"]).parent.name == built["key"]
    if built["mode"] == "onefile":  # its archive is stored, not zlib-compressed: pydantic_core's own strings show
        assert b"PydanticSerializationUnexpectedValue" in Path(built["executable"]).read_bytes()
    again = build(built["mode"])
    if again["key"] == built["key"]:  # (unless a source changed meanwhile)
        assert again["cached"] is True and again["executable"] == built["executable"]


@linux_only
def test_serves_like_the_module(built: dict[str, Any]) -> None:
    host = Sidecar(built["executable"], "serve", "--plugin", "hello", "--plugin", "system",
                   env={"BRIDGE_FRAMING": "ndjson", "BRIDGE_LOOP": "uvloop"})  # uvloop must be in the bundle
    ready = host.read()
    assert ready["method"] == "$/ready" and ready["params"]["name"] == "notes-example"
    assert ready["params"]["framing"] == "ndjson"
    # Built in the suite's compiled run (scripts/test.sh), the bundle carries the compiled hot path.
    assert ready["params"]["compiled"] is (os.environ.get("BRIDGE_EXPECT_COMPILED") == "1")
    if built["mode"] == "onedir":
        assert ready["params"]["pid"] == host.proc.pid  # the executable is the interpreter
    assert host.call(1, "math.add", {"a": "2", "b": 3})["result"] == 5  # converted by pydantic_core's engine alone
    assert host.call(2, "hello.greet", {"name": "Ada"})["result"] == "Hello, Ada!"  # found by its entry point
    assert host.call(3, "system.ping")["result"] == "pong"
    bad = host.call(4, "notes.create", {"note": {"title": ""}})
    assert bad["error"]["code"] == -32602  # pydantic validation, frozen
    methods = {m["name"] for m in host.call(5, "rpc.discover")["result"]["methods"]}
    assert {"notes.export", "hello.greet", "system.ping"} <= methods
    assert host.close() == 0


@linux_only
def test_compiled_on_request() -> None:
    """``--compiled`` from a pure bridge: mypyc compiles a copy of it (cached beside the builds)
    and the bundle freezes that copy; in the suite's compiled run bridge already is, and the
    option changes nothing."""
    from bridge.hot_path import HOT_PATH, missing_compiler

    missing = missing_compiler()
    if missing is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must build a compiled bundle, which needs {missing}")
        pytest.skip(f"compiling needs {missing}")
    built = build("onedir", "--compiled")
    folder = Path(built["artifact"]) / "_internal"
    for path in HOT_PATH:
        assert list(folder.glob(path.removesuffix(".py") + ".*.so")), path
    version = subprocess.run([built["executable"], "--version"], capture_output=True, text=True, timeout=60, check=True)
    assert version.stdout.strip().endswith(" (compiled)"), version.stdout
    host = Sidecar(built["executable"], "serve", "--plugin", "hello", "--plugin", "system",
                   env={"BRIDGE_FRAMING": "ndjson"})
    assert host.read()["params"]["compiled"] is True
    assert host.call(1, "math.add", {"a": "2", "b": 3})["result"] == 5
    assert host.call(2, "hello.greet", {"name": "Ada"})["result"] == "Hello, Ada!"
    assert host.call(3, "system.ping")["result"] == "pong"
    assert host.close() == 0


def test_compiled_says_what_compiling_lacks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from bridge import hot_path

    monkeypatch.setenv("CC", "/nonexistent/cc -O2")
    with pytest.raises(SystemExit, match=r"--compiled needs a C compiler: /nonexistent/cc is not on PATH"):
        builder.build_compiled(["bundle", APP, "--compiled"], tmp_path)
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mypyc" else real(name, *a))
    assert hot_path.missing_compiler() == "mypy and setuptools: pip install 'bridge-sidecar[compile]'"
    assert not list(tmp_path.iterdir())  # nothing compiled, nothing cached


@linux_only
def test_files_in_the_working_directory_do_not_shadow_the_bundle(built: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "__init__.py").write_text("")
    (tmp_path / "examples" / "app.py").write_text("raise SystemExit('the checkout was imported')\n")
    (tmp_path / "anyio.py").write_text("raise SystemExit('a stray anyio.py was imported')\n")
    (tmp_path / "handlers.py").write_text("raise SystemExit('a stray handlers.py was imported')\n")
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "__init__.py").write_text("raise SystemExit('a stray state package was imported')\n")
    builtins = [arg for name in BUILTIN for arg in ("--plugin", name)]
    host = Sidecar(built["executable"], "serve", *builtins, cwd=str(tmp_path),
                   env={"BRIDGE_FRAMING": "ndjson", "BRIDGE_STATE_MEMORY": "1", "BRIDGE_AUDIT_DIR": str(tmp_path)})
    assert host.read()["params"]["name"] == "notes-example"
    assert host.call(1, "notes.list")["result"][0]["title"] == "Welcome"
    health = host.call(2, "system.health")["result"]
    assert health["failed"] == [] and {p["name"] for p in health["plugins"]} == set(BUILTIN)
    assert host.call(3, "state.set", {"doc": "d", "value": 1})["result"]["version"] == 1
    assert host.call(4, "services.list")["result"] == []
    assert host.close() == 0


@linux_only
def test_auto_framing_and_lsp(built: dict[str, Any]) -> None:
    host = Sidecar(built["executable"])
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "math.add", "params": [1, 2]}).encode()
    assert host.proc.stdin is not None and host.proc.stdout is not None
    host.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    host.proc.stdin.flush()
    host.proc.stdin.close()
    out = host.proc.stdout.read()
    assert host.proc.wait(30) == 0
    assert out.startswith(b"Content-Length: ") and b'"result":3' in out and b"$/ready" in out


@linux_only
def test_sigterm_lets_calls_finish_and_exits_0(built: dict[str, Any]) -> None:
    host = Sidecar(built["executable"], env={"BRIDGE_FRAMING": "ndjson"})
    host.read()
    host.send({"jsonrpc": "2.0", "id": 1, "method": "notes.sync", "params": {"seconds": 0.5}})
    assert host.call(2, "math.add", [1, 1])["result"] == 2  # read in order: the sync is running
    host.proc.send_signal(signal.SIGTERM)  # to the bootloader in onefile mode, which passes it on
    assert host.read()["result"] == "synced"
    assert host.proc.wait(30) == 0


@linux_only
def test_a_killed_onefile_bootloader_leaves_no_process(built: dict[str, Any]) -> None:
    host = Sidecar(built["executable"], env={"BRIDGE_FRAMING": "ndjson"})
    python_pid = host.read()["params"]["pid"]
    host.proc.kill()  # SIGKILL cannot be forwarded; stdin stays open, so only the death signal stops it
    host.proc.wait(30)
    assert wait_gone(python_pid), f"pid {python_pid} outlived its bootloader"


@linux_only
def test_version_and_discover(built: dict[str, Any]) -> None:
    from bridge import __version__

    done = subprocess.run([built["executable"], "--version"], capture_output=True, text=True, timeout=60, cwd="/",
                          check=True)
    compiled = " (compiled)" if os.environ.get("BRIDGE_EXPECT_COMPILED") == "1" else ""
    assert done.stdout.strip() == f"bridge {__version__}{compiled}"
    done = subprocess.run([built["executable"], "discover", "--no-plugins"], capture_output=True, text=True,
                          timeout=60, cwd="/", check=True)
    names = {m["name"] for m in json.loads(done.stdout)["methods"]}
    assert "notes.export" in names and "hello.greet" not in names


if __name__ == "__main__":
    try:
        print(json.dumps(build(sys.argv[1] if len(sys.argv) > 1 else "onefile")))
    except pytest.skip.Exception as skipped:  # exit 3: the Node tests skip too (outside CI)
        print(skipped, file=sys.stderr)
        sys.exit(3)
