"""bridge/cli.py: the ``bridge`` command requires an app to serve or describe."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest
from harness import DEMO_APP, ROOT, python


def _bridge(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "BRIDGE_APP"}
    return subprocess.run([python(), "-m", "bridge", *args], cwd=ROOT, env={**clean, **env}, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=30, check=False)


@pytest.mark.parametrize("command", ["serve", "discover"])
def test_no_app_exits_2_and_names_the_demo(command: str) -> None:
    done = _bridge(command, "--no-plugins")
    assert done.returncode == 2, done.stderr
    assert f"bridge {command}: error: no app given" in done.stderr
    assert f"`bridge {command} bridge.builtins.demo:app`" in done.stderr
    assert done.stdout == ""


def test_bridge_app_names_the_app() -> None:
    done = _bridge("discover", "--no-plugins", BRIDGE_APP=DEMO_APP)
    assert done.returncode == 0, done.stderr
    assert "demo.add" in {m["name"] for m in orjson.loads(done.stdout)["methods"]}


def test_bundle_plans_without_the_command_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """``bridge bundle`` loads the app through bridge/loading.py, not through the command module."""
    from bridge.bundle import inputs

    monkeypatch.setitem(sys.modules, "bridge.cli", None)  # importing it now raises ImportError
    monkeypatch.chdir(ROOT)
    assert inputs.plan("examples.app:app", plugins=[], triple="x86_64-unknown-linux-gnu").module == "examples.app"
