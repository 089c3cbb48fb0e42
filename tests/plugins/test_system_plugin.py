"""handlers/system.py: ping, health, info and metrics of a real host."""

from __future__ import annotations

import os

from harness import Host


def test_system_methods_on_the_builtin_app():
    with Host() as host:
        host.recv()
        assert host.call("system.ping")["result"] == "pong"
        health = host.call("system.health", id=2)["result"]
        assert health["status"] == "ok" and health["inflight"] >= 1  # this very call is in flight
        assert health["memory"]["rss"] > 10 * 1024 * 1024
        assert [p["name"] for p in health["plugins"]] == ["system"]
        info = host.call("system.info", id=3)["result"]
        assert info["pid"] == host.proc.pid and info["cpus"] == os.cpu_count()
        assert info["plugins"] == {"system": info["bridge"]} and info["python"].startswith("3.")
        host.call("demo.add", [1, 2], id=4)
        metrics = host.call("system.metrics", id=5)["result"]
        assert metrics["methods"]["demo.add"]["calls"] == 1


def test_any_app_can_mount_the_system_plugin_by_name():
    with Host("tests.e2e_app:spec_app", "--plugin", "system") as host:
        host.recv()
        assert host.call("system.health")["result"]["status"] == "ok"
        assert host.call("subtract", [3, 1], id=2)["result"] == 2
