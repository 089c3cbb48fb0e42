"""bridge/plugins.py: namespaces, settings, hooks, conflicts, failures, entry-point discovery."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import BaseModel

from bridge import Bridge, Plugin
from bridge.plugins import PluginConflict
from harness import ROOT, Host, exchange, lines, python

pytestmark = pytest.mark.anyio


class Settings(BaseModel):
    size: int = 1
    label: str = "x"


def make_plugin(name: str = "tools", fail: bool = False) -> Plugin:
    plugin = Plugin(name, "2.0.0", settings=Settings)

    @plugin.on_startup
    def start() -> None:
        if fail:
            raise RuntimeError("no backend")

    @plugin.method("size")
    async def size() -> int:
        return plugin.settings.size

    @plugin.method
    async def label() -> str:
        return plugin.settings.label

    return plugin


async def test_methods_are_namespaced_and_settings_filled(monkeypatch) -> None:
    monkeypatch.setenv("BRIDGE_TOOLS_LABEL", "from-env")
    app = Bridge()
    app.include(make_plugin(), settings={"size": 5})
    assert {"tools.size", "tools.label"} <= set(app.methods)
    out = {r["id"]: r["result"] for r in await exchange(app, lines(
        {"jsonrpc": "2.0", "id": 1, "method": "tools.size"}, {"jsonrpc": "2.0", "id": 2, "method": "tools.label"}))}
    assert out == {1: 5, 2: "from-env"}


async def test_prefix_and_discovery() -> None:
    app = Bridge()
    app.include(make_plugin(), prefix="kit")
    [reply] = await exchange(app, lines({"jsonrpc": "2.0", "id": 1, "method": "rpc.discover"}))
    assert reply["result"]["info"]["x-plugins"] == [
        {"name": "kit", "version": "2.0.0", "status": "ok", "methods": ["kit.size", "kit.label"], "source": "app"}]


def test_two_claims_on_one_name_is_an_error_naming_both() -> None:
    app = Bridge()
    app.include(make_plugin("a"), prefix="same")
    with pytest.raises(PluginConflict, match="already mounted"):
        app.include(make_plugin("b"), prefix="same")
    other = Plugin("c")

    @other.method("same.size")
    async def clash() -> None: ...

    with pytest.raises(PluginConflict, match="claimed by both plugin 'same'"):
        app.include(other, prefix="")


async def test_a_plugin_that_fails_to_start_fails_alone() -> None:
    app = Bridge()
    app.include(make_plugin("broken", fail=True))
    app.include(make_plugin("fine"))

    @app.method
    async def own() -> str:
        return "app"

    from bridge.app import run_hooks

    await run_hooks(app.startup_hooks)
    out = {r["id"]: r for r in await exchange(app, lines(
        {"jsonrpc": "2.0", "id": 1, "method": "broken.size"},
        {"jsonrpc": "2.0", "id": 2, "method": "fine.size"},
        {"jsonrpc": "2.0", "id": 3, "method": "own"},
    ))}
    assert out[1]["error"]["data"] == {"plugin": "broken", "error": "RuntimeError: no backend"}
    assert out[2]["result"] == 1 and out[3]["result"] == "app"
    assert app.plugins["broken"].status == "failed" and app.plugins["fine"].status == "ok"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> str:
    """The example plugin package, pip-installed into a folder put on PYTHONPATH."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(ROOT / "examples" / "plugin_package")],
        check=True, capture_output=True,
    )
    return str(target)


def _env(site: str, **extra: str) -> dict[str, str]:
    return {"PYTHONPATH": os.pathsep.join([site, str(ROOT)]), **extra}


def test_an_installed_plugin_is_discovered_and_served(installed) -> None:
    with Host(env=_env(installed, BRIDGE_HELLO_GREETING="Hi")) as host:
        host.recv()
        assert host.call("hello.greet", {"name": "Ada"})["result"] == "Hi, Ada!"
        assert host.call("hello.starts", id=2)["result"] == 1
        assert host.call("demo.add", [1, 2], id=3)["result"] == 3  # the app's own methods too


def test_the_cli_chooses_plugins(installed, tmp_path) -> None:
    with Host("--no-plugins", env=_env(installed)) as host:
        host.recv()
        assert host.call("hello.greet", {"name": "x"})["error"]["code"] == -32601
    config = tmp_path / "bridge.toml"
    config.write_text('[plugins.hello]\npunctuation = "?"\n')
    with Host("--plugin", "hello", "--config", str(config), env=_env(installed)) as host:
        host.recv()
        assert host.call("hello.greet", {"name": "Bo"})["result"] == "Hello, Bo?"
    with Host("--plugin", "missing", env=_env(installed)) as host:
        host.recv()
        doc = host.call("rpc.discover", id="d")["result"]
        statuses = {p["name"]: p for p in doc["info"]["x-plugins"]}
        assert statuses["missing"]["status"] == "failed" and statuses["missing"]["error"] == "not installed"
    assert b"plugin missing is not installed" in host.stderr


def test_bridge_plugins_lists_what_is_installed(installed) -> None:
    out = subprocess.run([python(), "-m", "bridge", "plugins"], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, **_env(installed)}, check=True).stdout
    assert "hello 1.2.0" in out and "hello.greet" in out


@pytest.mark.anyio
async def test_a_plugins_metrics_appear_in_rpc_metrics_and_a_failing_one_costs_nothing_else():
    from bridge.testing import AsyncTestClient

    counted = Plugin("counted", metrics=lambda: {"things": 3})
    quiet = Plugin("quiet", metrics=lambda: None)  # nothing to say yet: left out
    broken = Plugin("broken", metrics=lambda: 1 / 0)
    app = Bridge("metrics-app")
    for plugin in (counted, quiet, broken):
        app.include(plugin)
    async with AsyncTestClient(app) as client:
        metrics = await client.call("rpc.metrics")
    assert metrics["plugins"] == {"counted": {"things": 3}}
    assert "methods" in metrics
