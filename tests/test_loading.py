"""bridge/loading.py: an app named by module:attribute or by file, and one clear line when it cannot be."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from bridge.loading import AppLoadError, load_app


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory of its own, its modules forgotten afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    monkeypatch.setattr(sys, "modules", dict(sys.modules))
    monkeypatch.delenv("BRIDGE_DEBUG", raising=False)
    return tmp_path


def module(folder: Path, source: str, name: str | None = None) -> str:
    name = name or f"m_{uuid.uuid4().hex[:8]}"
    (folder / f"{name}.py").write_text(source)
    return name


GOOD = "from bridge import Bridge\napi = Bridge('named')\n"


def test_module_attribute_a_file_path_and_a_package_file(folder: Path) -> None:
    name = module(folder, GOOD)
    assert load_app(f"{name}:api").name == "named"
    assert load_app(f"{name}.py:api").name == "named"
    assert load_app(f"./{name}.py:api").name == "named"
    (folder / "pkg").mkdir()
    (folder / "pkg" / "__init__.py").write_text("")
    (folder / "pkg" / "helper.py").write_text("TITLE = 'from a sibling'\n")
    (folder / "pkg" / "main.py").write_text("from bridge import Bridge\nfrom .helper import TITLE\napp = Bridge(TITLE)\n")
    assert load_app("pkg/main.py").name == "from a sibling"  # relative imports work: imported as pkg.main
    assert load_app(str(folder / "pkg" / "main.py")).name == "from a sibling"


@pytest.mark.parametrize(("make", "spec", "expected"), [
    (None, "nosuch_module_xyz:app", "no module named 'nosuch_module_xyz'"),
    (GOOD, "{m}:nosuch", "has no attribute 'nosuch'; it has {m}:api"),
    (GOOD, "{m}", "has no attribute 'app'; it has {m}:api"),
    ("x = 1\n", "{m}:x", "{m}:x is a int, not a Bridge app"),
    ("def f(:\n    pass\n", "{m}", "syntax error in {folder}/{m}.py, line 1"),
    ("import nosuch_dependency_xyz\n", "{m}", "importing {m} failed: No module named 'nosuch_dependency_xyz' ({folder}/{m}.py:1)"),
    ("x = 1\nraise RuntimeError('boom')\n", "{m}", "importing {m} raised RuntimeError: boom ({folder}/{m}.py:2)"),
    (None, "missing_file.py", "no such file: missing_file.py"),
    (None, "not a name", "does not name an app"),
])
def test_each_failure_is_one_line_saying_what_to_fix(folder: Path, make: str | None, spec: str, expected: str) -> None:
    name = module(folder, make) if make else "unused"
    with pytest.raises(AppLoadError) as caught:
        load_app(spec.format(m=name))
    message = str(caught.value)
    assert "\n" not in message
    assert expected.format(m=name, folder=folder.resolve()) in message


def test_the_cli_prints_the_line_not_a_traceback(folder: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "bridge", "serve", "nosuch_module_xyz:app"],
                          capture_output=True, text=True, timeout=30, cwd=folder)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "bridge: no module named 'nosuch_module_xyz' (for 'nosuch_module_xyz:app'): run bridge from the folder "
        "that holds it, set PYTHONPATH, or name the file (bridge serve path/to/app.py)"]


def test_bridge_debug_keeps_the_traceback(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = module(folder, "raise KeyError('k')\n")
    monkeypatch.setenv("BRIDGE_DEBUG", "1")
    with pytest.raises(KeyError):
        load_app(name)
