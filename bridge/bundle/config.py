"""What to paste into the desktop app's configuration after a build: Tauri and Electron."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from .builder import Result
    from .inputs import Plan


def snippets(result: Result, out: Path | None) -> str:
    """The tauri.conf.json, capability and Electron extraResources entries for this build."""
    import json

    the_plan = result.plan
    external = _external_bin(the_plan, out)
    how = "from the cache" if result.cached else f"{result.seconds:.0f} s"
    lines = [f"built {result.artifact} ({result.bytes / 2**20:.1f} MiB, {the_plan.mode}, {how})", ""]
    if the_plan.mode == "onefile":
        lines += ["Tauri: src-tauri/tauri.conf.json",
                  json.dumps({"bundle": {"externalBin": [external]}}, indent=2), "",
                  "and a capability (src-tauri/capabilities/default.json) that lets the window spawn it:",
                  json.dumps({"permissions": [{"identifier": "shell:allow-spawn",
                                               "allow": [{"name": external, "sidecar": True, "args": ["serve"]}]},
                                              "shell:allow-stdin-write", "shell:allow-kill"]}, indent=2),
                  f"then createTauriSidecar({{ Command, program: '{external}', args: ['serve'] }})", ""]
    else:
        lines += ["Tauri's externalBin takes a single file: build with --onefile for Tauri.", ""]
    resource = the_plan.filename if the_plan.mode == "onefile" else the_plan.stem
    source = str(result.artifact)
    lines += ["Electron (electron-builder): package.json > build",
              json.dumps({"extraResources": [{"from": source, "to": resource}]}, indent=2),
              "then in the main process:",
              "spawnSidecar({ command: path.join(process.resourcesPath, "
              + ", ".join(repr(p) for p in ([resource] if the_plan.mode == "onefile" else [resource, the_plan.filename]))
              + ") })"]
    return "\n".join(lines)


def _external_bin(the_plan: Plan, out: Path | None) -> str:
    """The externalBin entry: the path from src-tauri/ to the binary, without the triple."""
    if out is not None:
        parts = os.path.abspath(out).split(os.sep)
        if "src-tauri" in parts:
            rel = parts[len(parts) - parts[::-1].index("src-tauri"):]
            return "/".join([*rel, the_plan.name])
    return f"binaries/{the_plan.name}"
