"""bridge/settings.py and bridge/cli.py: defaults, environment variables, flags."""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from harness import ROOT, python

from bridge import Settings
from bridge.loading import AppLoadError, load_app


def test_defaults() -> None:
    s = Settings.from_env({})
    assert (s.framing, s.max_inflight, s.ready, s.max_message_bytes) == ("auto", 256, True, 32 * 1024 * 1024)


def test_environment_then_overrides() -> None:
    env = {"BRIDGE_FRAMING": "lsp", "BRIDGE_MAX_INFLIGHT": "7", "BRIDGE_READY": "0", "BRIDGE_SHUTDOWN_GRACE": "0.5"}
    s = Settings.from_env(env, max_inflight=None, framing="ndjson")
    assert (s.framing, s.max_inflight, s.ready, s.shutdown_grace) == ("ndjson", 7, False, 0.5)


@pytest.mark.parametrize("env", [
    {"BRIDGE_MAX_INFLIGHT": "lots"},
    {"BRIDGE_MAX_INFLIGHT": "0"},
    {"BRIDGE_READY": "maybe"},
    {"BRIDGE_FRAMING": "xml"},
    {"BRIDGE_LOG_LEVEL": "loud"},
])
def test_bad_values_are_clear_errors(env) -> None:
    with pytest.raises(ValueError):
        Settings.from_env(env)


def test_every_setting_has_an_environment_variable_and_a_flag() -> None:
    help_text = subprocess.run([python(), "-m", "bridge", "serve", "--help"], check=False, cwd=ROOT, capture_output=True, text=True).stdout
    flags = {"ready": "--no-ready", "audit": "--no-audit"}
    for name, env in Settings.env_names().items():
        assert env in help_text
        assert flags.get(name, f"--{name.replace('_', '-')}") in help_text


def test_bad_flag_value_exits_2_with_a_message() -> None:
    proc = subprocess.run(
        [python(), "-m", "bridge", "serve", "bridge.builtins.demo:app", "--max-inflight", "0"],
        check=False, cwd=ROOT, capture_output=True, text=True, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2 and "max_inflight" in proc.stderr


def test_load_app_forms() -> None:
    assert load_app("bridge.builtins.demo:app").name == "bridge-builtins"
    assert load_app("bridge.builtins.demo").name == "bridge-builtins"
    assert load_app("tests/e2e_app.py:spec_app").methods.keys() >= {"subtract"}
    with pytest.raises(AppLoadError, match="is a int, not a Bridge app"):
        load_app("bridge.builtins.demo:DEMO_FAILURE")


def test_version() -> None:
    out = subprocess.run([python(), "-m", "bridge", "--version"], check=False, cwd=ROOT, capture_output=True, text=True).stdout
    assert out.startswith("bridge 0.")


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=10**6),
       st.sampled_from([("", 1), ("B", 1), ("k", 1024), ("KiB", 1024), ("kB", 1000), ("KB", 1000), ("M", 1024**2),
                        ("MiB", 1024**2), ("MB", 1000**2), ("GiB", 1024**3), ("GB", 1000**3), ("mib", 1024**2)]),
       st.sampled_from(["", " "]))
def test_sizes_read_with_or_without_a_unit(number: int, unit: tuple[str, int], space: str) -> None:
    from bridge.settings import parse_size

    assert parse_size(f"{number}{space}{unit[0]}") == number * unit[1]


@pytest.mark.parametrize("text", ["", "MiB", "1 2", "-1MiB", "1XB", "1.5.2k", "0x10"])
def test_what_is_not_a_size_is_refused(text: str) -> None:
    from bridge.settings import parse_size

    with pytest.raises(ValueError, match="is not a size"):
        parse_size(text)
