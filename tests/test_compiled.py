"""The compiled hot path (hatch_build.py): scripts/test.sh runs the whole suite a second time in
.build/compiled with ``BRIDGE_EXPECT_COMPILED=1``; these tests make sure each run is what it says,
and that a ``BRIDGE_COMPILE=1`` wheel carries the extensions."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest
from harness import Host

from bridge.hot_path import HOT_PATH

EXPECT_COMPILED = os.environ.get("BRIDGE_EXPECT_COMPILED") == "1"


@pytest.mark.parametrize("path", HOT_PATH)
def test_the_hot_path_runs_compiled_exactly_in_the_compiled_run(path: str) -> None:
    module = importlib.import_module(path.removesuffix(".py").removesuffix("/__init__").replace("/", "."))
    assert module.__file__ is not None
    assert module.__file__.endswith(".py") is not EXPECT_COMPILED, module.__file__


def test_a_spawned_host_says_in_ready_whether_it_runs_compiled() -> None:
    with Host() as host:
        assert host.recv()["params"]["compiled"] is EXPECT_COMPILED


def test_the_version_says_compiled_when_it_is() -> None:
    done = subprocess.run([sys.executable, "-m", "bridge", "--version"], capture_output=True, text=True, check=True)
    assert done.stdout.strip().endswith(" (compiled)") is EXPECT_COMPILED, done.stdout


def test_the_compile_extra_is_what_the_compiler_needs() -> None:
    """``pip install 'bridge-sidecar[compile]'`` (what ``bridge bundle --compiled`` asks for)
    installs what the wheel's build hook installs to compile."""
    import tomllib
    from pathlib import Path

    from bridge.hot_path import COMPILER

    project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]
    assert tuple(project["optional-dependencies"]["compile"]) == COMPILER


def test_a_compiled_copy_holds_the_package_with_the_builtins_where_a_wheel_has_them(tmp_path) -> None:
    """What ``bridge bundle --compiled`` copies before compiling: from a checkout, bridge/ and
    handlers/ (as bridge/builtins/); from an installed wheel, the package as it is. Never caches
    or compiled modules (the copy is compiled afresh)."""
    from pathlib import Path

    import bridge
    import bridge.builtins
    from bridge.hot_path import HOT_PATH, staged

    files = {str(target) for _, target in staged(Path(bridge.__file__).parent,
                                                 [Path(p) for p in bridge.builtins.__path__[1:]])}
    assert set(HOT_PATH) <= files
    assert {"bridge/builtins/__init__.py", "bridge/builtins/system.py", "bridge/builtins/state/store.py"} <= files
    assert not [f for f in files if "__pycache__" in f or f.endswith((".so", ".pyd", ".pyc"))]

    wheel = tmp_path / "site" / "bridge"
    for name in ("__init__.py", "connection.py", "connection.cpython-311-x86_64-linux-gnu.so",
                 "__pycache__/connection.cpython-311.pyc", "builtins/__init__.py", "builtins/system.py"):
        (wheel / name).parent.mkdir(parents=True, exist_ok=True)
        (wheel / name).write_text("")
    assert sorted(str(target) for _, target in staged(wheel, [])) == [
        "bridge/__init__.py", "bridge/builtins/__init__.py", "bridge/builtins/system.py", "bridge/connection.py"]
