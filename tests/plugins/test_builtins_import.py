"""The built-in plugins are imported as ``bridge.builtins`` (their sources live in the
repository's ``handlers/`` folder): an app's own ``handlers`` or ``state`` cannot shadow them.

The installed wheel and the frozen bundle are tested in test_package.py and test_bundle.py;
this file covers the checkout (editable install) and what bridge itself imports.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import harness
from bridge.plugins import BUILTIN
from harness import Host

ROOT = harness.ROOT
APP = '''
from bridge import Bridge

import handlers
import state

app = Bridge("own-app")
app.add_method(handlers.hello, "own.hello")


@app.method("own.state")
def own_state() -> str:
    return state.WHO
'''


def _app_folder(path: Path) -> Path:
    """An app with a ``handlers.py`` and a ``state/`` package of its own."""
    (path / "handlers.py").write_text("def hello(name: str) -> str:\n    return f'hello {name}'\n")
    (path / "state").mkdir()
    (path / "state" / "__init__.py").write_text("WHO = 'the app'\n")
    (path / "myapp.py").write_text(APP)
    (path / "files").mkdir()
    (path / "files" / "a.txt").write_text("A")
    config = path / "bridge.toml"
    config.write_text(f"[plugins.fs]\nroots = [{str(path / 'files')!r}]\n")
    return config


def _call(host: Host, id: int, method: str, params: Any = None) -> Any:
    reply = host.call(method, params, id=id)
    assert "result" in reply, (method, reply, host.stderr.decode(errors="replace")[-3000:])
    return reply["result"]


def test_an_app_with_its_own_handlers_and_state_serves_every_builtin(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    config = _app_folder(tmp_path)
    monkeypatch.setattr(harness, "ROOT", tmp_path)  # ``python -m bridge serve`` in the app's folder
    plugins = [arg for name in BUILTIN for arg in ("--plugin", name)]
    with Host("myapp:app", *plugins, "--config", str(config), "--no-ready",
              env={"BRIDGE_STATE_MEMORY": "1", "BRIDGE_AUDIT_DIR": str(tmp_path / "audit")}) as host:
        assert _call(host, 1, "own.hello", {"name": "Ada"}) == "hello Ada"
        assert _call(host, 2, "own.state") == "the app"
        assert _call(host, 3, "system.ping") == "pong"
        assert [e["name"] for e in _call(host, 4, "fs.list", {"path": str(tmp_path / "files")})] == ["a.txt"]
        assert _call(host, 5, "services.list") == []
        _call(host, 6, "state.set", {"doc": "notes", "value": {"n": 1}})
        assert _call(host, 7, "state.get", {"doc": "notes"})["value"] == {"n": 1}
        assert _call(host, 8, "collab.create_session", {"id": "s1", "docs": ["notes"]})["id"] == "s1"
        health = _call(host, 9, "system.health")
        assert health["failed"] == [] and {p["name"] for p in health["plugins"]} == set(BUILTIN)
        host.close_stdin()
        assert host.wait() == 0


def test_the_builtins_import_without_the_name_handlers() -> None:
    """In a fresh interpreter, from a folder that is not the checkout: every built-in module
    comes from ``handlers/`` under the name ``bridge.builtins``, and no ``handlers`` is imported."""
    code = ("import importlib, sys\n"
            "from bridge.plugins import BUILTIN\n"
            "for spec in BUILTIN.values():\n"
            "    importlib.import_module(spec.partition(':')[0])\n"
            "importlib.import_module('bridge.builtins.demo')\n"
            "print([m for m in sys.modules if m == 'handlers' or m.startswith('handlers.')])\n"
            "print(sys.modules['bridge.builtins.state.plugin'].__file__)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT / "client_js", capture_output=True, text=True,
                          timeout=60, check=True)
    leaked, state_file = done.stdout.splitlines()
    assert leaked == "[]"
    import bridge

    if Path(bridge.__file__).parent == ROOT / "bridge":  # the checkout (editable install): the sources in place
        assert Path(state_file) == ROOT / "handlers" / "state" / "plugin.py"


def test_nothing_names_the_old_import_name() -> None:
    """Code, examples and docs import the built-ins as ``bridge.builtins`` (``handlers/`` is a folder)."""
    old = re.compile(r"^\s*(from|import)\s+handlers\b|(?<![\w.])handlers\.(demo|system|fs|services|state|collab)\b",
                     re.MULTILINE)
    offenders = []
    for folder in ("bridge", "handlers", "examples", "tests", "scripts", "docs", "client_js/test", "client_js/src"):
        for dirpath, dirs, files in os.walk(ROOT / folder):
            dirs[:] = [d for d in dirs if d not in ("node_modules", "__pycache__")]
            for name in files:
                path = Path(dirpath) / name
                if path == Path(__file__):  # its app imports a handlers module of its own
                    continue
                if path.suffix in (".py", ".mjs", ".js", ".sh", ".json", ".md") and old.search(path.read_text()):
                    offenders.append(str(path.relative_to(ROOT)))
    if old.search((ROOT / "README.md").read_text()):
        offenders.append("README.md")
    assert offenders == []
