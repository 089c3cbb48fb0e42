"""The Python package as users get it: the wheel and sdist build, the wheel installs into a
fresh venv with its dependencies (from the package index pip is configured with), and the
installed ``bridge`` command serves.

The venv is a real one (``python -m venv``, then ``pip install`` of the wheel), not the dev
venv's packages reused: that is what catches a module or a dependency missing from the wheel.
It takes ~5 s here, most of it pip resolving the dependencies.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest
from parts import require

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
VERSION = PYPROJECT["project"]["version"]
JUNK = (".venv/", "node_modules/", "__pycache__/", ".pyc", ".spec", "/build/", "/dist/", ".pytest_cache/")


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The wheel and sdist, built offline with the hatchling the test extra installs."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(out)], cwd=REPO, check=True, capture_output=True, timeout=300)
    sdist = "import sys; from hatchling.build import build_sdist; print(build_sdist(sys.argv[1]))"
    subprocess.run([sys.executable, "-c", sdist, str(out)], cwd=REPO, check=True, capture_output=True, timeout=300)
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


@pytest.fixture(scope="module")
def compiled_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel with ``BRIDGE_COMPILE=1``: the hot path compiled by mypyc (hatch_build.py), ~25 s."""
    require("gcc")
    out = tmp_path_factory.mktemp("compiled")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(out)], cwd=REPO, env={**os.environ, "BRIDGE_COMPILE": "1"},
                           capture_output=True, text=True, timeout=600, check=False)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = out.glob("*.whl")
    return wheel


def test_a_compiled_wheel_is_the_pure_one_plus_the_extensions(compiled_wheel: Path, dists: dict[str, Path]) -> None:
    from bridge.hot_path import HOT_PATH

    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    assert compiled_wheel.name.startswith(f"bridge_sidecar-{VERSION}-{tag}-{tag}-")  # a platform wheel
    with zipfile.ZipFile(compiled_wheel) as compiled, zipfile.ZipFile(dists["wheel"]) as pure:
        names, pure_names = set(compiled.namelist()), set(pure.namelist())
    extensions = {name for name in names if name.endswith((".so", ".pyd"))}
    for path in HOT_PATH:  # each compiled, its source kept beside it (tracebacks, inspect)
        assert [e for e in extensions if e.startswith(path.removesuffix(".py") + ".")], path
        assert path in names
    assert [e for e in extensions if "__mypyc" in e and "/" not in e]  # mypyc's shared library
    assert {n for n in names - extensions if ".dist-info/" not in n} == {n for n in pure_names if ".dist-info/" not in n}


def test_the_wheel_holds_the_host_and_its_entry_point(dists: dict[str, Path]) -> None:
    assert dists["wheel"].name == f"bridge_sidecar-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(dists["wheel"]) as wheel:
        names = wheel.namelist()
        info = f"bridge_sidecar-{VERSION}.dist-info"
        entry_points = wheel.read(f"{info}/entry_points.txt").decode()
        metadata = wheel.read(f"{info}/METADATA").decode()
    for module in ("bridge/__init__.py", "bridge/cli.py", "bridge/bundle/__init__.py", "bridge/bundle/frozen.py",
                   "bridge/py.typed", "bridge/builtins/__init__.py", "bridge/builtins/demo.py",
                   "bridge/builtins/system.py", "bridge/builtins/state/plugin.py", "bridge/builtins/services/shim.py",
                   "bridge/bundle/hooks/pre_safe_import_module/hook-bridge.builtins.py"):
        assert module in names
    assert not [n for n in names if n.startswith(("tests/", "client_js/", "examples/")) or n.endswith(".pyc")]
    assert not [n for n in names if n.startswith("handlers/")]  # the built-ins claim no top-level name
    assert "bridge = bridge.cli:main" in entry_points
    assert f"Version: {VERSION}" in metadata
    assert "Provides-Extra: bundle" in metadata
    assert "Requires-Dist: pyinstaller>=6; extra == 'bundle'" in metadata


def test_the_sdist_builds_the_same_wheel(dists: dict[str, Path], tmp_path: Path) -> None:
    assert dists["sdist"].name == f"bridge_sidecar-{VERSION}.tar.gz"
    with tarfile.open(dists["sdist"]) as sdist:
        names = [n.split("/", 1)[1] for n in sdist.getnames() if "/" in n]
    for required in ("pyproject.toml", "README.md", "LICENSE", "bridge/server.py", "handlers/demo.py"):
        assert required in names
    assert not [n for n in names if any(junk in f"/{n}" for junk in JUNK)]
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(dists["sdist"]), "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path)], check=True, capture_output=True, timeout=300)
    (rebuilt,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(rebuilt) as a, zipfile.ZipFile(dists["wheel"]) as b:
        assert sorted(a.namelist()) == sorted(b.namelist())


def test_the_editable_wheel_puts_the_checkout_on_the_path(tmp_path: Path) -> None:
    """``pip install -e .``: the checkout itself, where bridge/builtins/__init__.py finds handlers/
    (hatchling's per-package mapping cannot rename handlers/ to bridge/builtins/)."""
    editable = "import sys; from hatchling.build import build_editable; print(build_editable(sys.argv[1]))"
    subprocess.run([sys.executable, "-c", editable, str(tmp_path)], cwd=REPO, check=True, capture_output=True,
                   timeout=300)
    (wheel,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        (pth,) = [n for n in archive.namelist() if n.endswith(".pth")]
        assert archive.read(pth).decode().split() == [str(REPO)]
        assert not [n for n in archive.namelist() if n.endswith(".py")]  # no copies to go stale


@pytest.mark.parametrize("kind", ["pure", "compiled"])
def test_the_wheel_installs_into_a_fresh_venv_and_serves(
    kind: str, dists: dict[str, Path], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    wheel = dists["wheel"] if kind == "pure" else request.getfixturevalue("compiled_wheel")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    installed = subprocess.run([str(bindir / "python"), "-m", "pip", "install", "-q", str(wheel)],
                               env=env, capture_output=True, text=True, timeout=600, check=False)
    assert installed.returncode == 0, installed.stderr[-3000:]

    where = subprocess.run([str(bindir / "python"), "-c", "import bridge; print(bridge.__file__)"], cwd=tmp_path,
                           env=env, capture_output=True, text=True, check=True)
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout  # not the checkout

    (tmp_path / "handlers.py").write_text("raise SystemExit('an app handlers.py was imported')\n")
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "__init__.py").write_text("raise SystemExit('an app state package was imported')\n")
    host = subprocess.Popen([str(bindir / "bridge"), "serve", "bridge.builtins.demo:app", "--framing", "ndjson",
                             "--log-level", "warning", "--plugin", "system", "--plugin", "state"],
                            cwd=tmp_path, env={**env, "BRIDGE_STATE_MEMORY": "1"}, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert host.stdin is not None and host.stdout is not None
    try:
        ready = json.loads(host.stdout.readline())
        assert ready["method"] == "$/ready" and ready["params"]["version"] == VERSION
        assert ready["params"]["compiled"] is (kind == "compiled")
        host.stdin.write(b'{"jsonrpc":"2.0","id":1,"method":"demo.add","params":{"a":2,"b":40}}\n'
                         b'{"jsonrpc":"2.0","id":2,"method":"system.ping"}\n'
                         b'{"jsonrpc":"2.0","id":3,"method":"state.set","params":{"doc":"d","value":1}}\n')
        host.stdin.flush()
        assert json.loads(host.stdout.readline()) == {"jsonrpc": "2.0", "id": 1, "result": 42}
        assert json.loads(host.stdout.readline()) == {"jsonrpc": "2.0", "id": 2, "result": "pong"}
        assert json.loads(host.stdout.readline())["result"]["version"] == 1
        host.stdin.close()
        assert host.wait(30) == 0
    finally:
        if host.poll() is None:
            host.kill()
            host.wait()
