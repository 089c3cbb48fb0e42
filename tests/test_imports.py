"""Every module of bridge (and of the built-in plugins) imports alone in a fresh interpreter:
no import cycle that only works in one order."""

from __future__ import annotations

import subprocess

from harness import ROOT, python

SKIP = {"bridge.__main__", "bridge.bundle.frozen"}  # run the CLI when imported


def _modules() -> list[str]:
    names = []
    for path in sorted((ROOT / "bridge").rglob("*.py")):
        if "hooks" in path.parts:
            continue
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names.append(".".join(parts))
    for path in sorted((ROOT / "handlers").rglob("*.py")):
        parts = list(path.relative_to(ROOT / "handlers").with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names.append(".".join(["bridge.builtins", *parts]))
    return [name for name in names if name not in SKIP]


def test_every_module_imports_alone() -> None:
    script = (
        "import importlib, subprocess, sys\n"
        "failed = []\n"
        "for name in sys.argv[1:]:\n"
        "    r = subprocess.run([sys.executable, '-c', f'import {name}'], capture_output=True, text=True)\n"
        "    if r.returncode: failed.append((name, r.stderr.strip().splitlines()[-1:]))\n"
        "print(failed)\n"
        "sys.exit(1 if failed else 0)\n"
    )
    names = _modules()
    assert len(names) > 40
    proc = subprocess.run([python(), "-c", script, *names], cwd=ROOT, capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, proc.stdout
