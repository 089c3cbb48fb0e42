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


def test_bridge_plugins_lists_the_built_ins_too() -> None:
    done = _bridge("plugins")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "built-in (mount with --plugin NAME):"
    for name in ("system", "fs", "services", "state", "collab"):
        assert any(line.startswith(f"  {name} ") and "(built-in)" in line and f"{name}." in line for line in lines), name
    assert any(line.startswith("installed (") for line in lines)


def test_every_argument_of_every_command_has_help() -> None:
    import argparse

    from bridge.cli import _parser

    def check(parser: argparse.ArgumentParser, where: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    assert any(c.dest == name and c.help for c in action._choices_actions), f"{where} {name}"
                    check(sub, f"{where} {name}")
            elif not isinstance(action, argparse._HelpAction):
                assert action.help, f"{where}: {action.option_strings or action.dest} has no help"

    check(_parser(), "bridge")


def test_sizes_take_units_on_the_command_line_and_in_the_environment() -> None:
    done = _bridge("serve", DEMO_APP, "--max-message-bytes", "1KiB", "--framing", "ndjson", "--no-ready")
    assert done.returncode == 0, done.stderr  # stdin was empty: it served and stopped
    bad = _bridge("serve", DEMO_APP, "--cache-size", "lots")
    assert bad.returncode == 2 and "'lots' is not a size" in bad.stderr
    env = _bridge("serve", DEMO_APP, BRIDGE_MAX_MESSAGE_BYTES="2 XB")
    assert env.returncode == 2 and "BRIDGE_MAX_MESSAGE_BYTES='2 XB'" in env.stderr


def test_a_size_limit_given_with_a_unit_is_the_limit_the_host_applies() -> None:
    from harness import Host

    with Host(DEMO_APP, "--max-message-bytes", "1KiB") as host:
        host.recv()
        assert host.call("demo.echo", {"value": "x" * 900}, id=1)["result"] == "x" * 900
        host.send({"jsonrpc": "2.0", "id": 2, "method": "demo.echo", "params": {"value": "x" * 1100}})
        error = host.recv()["error"]
        assert error["code"] == -32002 and error["data"]["limit"] == 1024


def test_the_bundle_help_figures_are_bench_readmes() -> None:
    """`--onedir`, `--onefile`, `--compress` quote start-up ratios: those bench/README.md measured."""
    import re
    from pathlib import Path

    from bridge.cli import _parser

    bench = (Path(ROOT) / "bench" / "README.md").read_text()

    def measured(row: str) -> tuple[float, float]:
        line = next(line for line in bench.splitlines() if line.startswith(f"| {row} |"))
        low, high = re.search(r"(\d+\.\d+)-(\d+\.\d+)x", line).groups()
        return float(low), float(high)

    bundle = next(a for a in _parser()._actions if hasattr(a, "choices") and a.choices and "bundle" in a.choices)
    helps = {a.option_strings[0]: a.help for a in bundle.choices["bundle"]._actions if a.option_strings}
    quoted = {flag: float(re.search(r"~(\d+\.\d+)x", helps[flag]).group(1)) for flag in ("--onedir", "--onefile", "--compress")}
    for flag, row in (("--onedir", "bundle, `--onedir` (the default)"), ("--onefile", "bundle, `--onefile` (archive stored)"),
                      ("--compress", "bundle, `--onefile --compress`")):
        low, high = measured(row)
        assert low - 0.05 <= quoted[flag] <= high + 0.05, f"{flag} says ~{quoted[flag]}x, bench/README.md {low}-{high}x"
