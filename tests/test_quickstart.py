"""docs/quickstart.md, followed as a new user would: every ``sh`` block run in order in a fresh
project folder (the packages built from this checkout and installed from files, a real venv and
npm project), every named block written as that file, and each ``text`` block after a command
checked against what the command printed. The page is the test's script: if it goes stale, this fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PAGE = REPO / "docs" / "quickstart.md"
BLOCK = re.compile(r"^```(\w+)(?: ([\w./-]+))?\n(.*?)^```\n", re.S | re.M)


def blocks() -> list[tuple[str, str | None, str]]:
    return [(m.group(1), m.group(2), m.group(3)) for m in BLOCK.finditer(PAGE.read_text())]


def test_the_page_has_the_steps_it_promises() -> None:
    found = blocks()
    names = {name for _, name, _ in found if name}
    assert {"app.py", "main.ts", "tsconfig.json", "test_app.py"} <= names
    commands = "\n".join(body for lang, _, body in found if lang == "sh")
    for step in ("scripts/package.sh", "pip install", "npm install", "bridge types", "tsc", "pytest"):
        assert step in commands, step


@pytest.mark.skipif(shutil.which("npm") is None or shutil.which("node") is None, reason="needs node and npm")
def test_following_the_quick_start_from_a_clean_folder(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    env = {**os.environ, "BRIDGE": str(REPO), "npm_config_prefer_offline": "true", "npm_config_audit": "false",
           "npm_config_fund": "false", "npm_config_update_notifier": "false", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    for key in ("VIRTUAL_ENV", "PYTHONPATH", "BRIDGE_APP"):
        env.pop(key, None)
    last_output = ""
    for lang, name, body in blocks():
        if name is not None:
            (project / name).write_text(body)
        elif lang == "sh":
            cwd = REPO if "scripts/package.sh" in body else project
            done = subprocess.run(["bash", "-euo", "pipefail", "-c", body], cwd=cwd, env=env, capture_output=True,
                                  text=True, timeout=600)
            assert done.returncode == 0, f"{body}\nexited {done.returncode}:\n{done.stdout}\n{done.stderr}"
            last_output = done.stdout
        elif lang == "text" and "/path/to/" not in body:
            printed = iter(last_output.splitlines())
            for expected in body.strip().splitlines():  # in order, each line the start of one printed
                assert any(line.startswith(expected) for line in printed), f"{expected!r} not in:\n{last_output}"
    api = (project / "bridge-api.d.ts").read_text()
    assert "export interface Note" in api and ("'notes.saved'" in api or '"notes.saved"' in api)

    # A wrong param type is a compile error, as the page says.
    (project / "main.ts").write_text((project / "main.ts").read_text().replace("title: 'first'", "title: 1"))
    failed = subprocess.run(["npx", "tsc"], cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert failed.returncode != 0 and "main.ts" in failed.stdout and "error TS2322" in failed.stdout, failed.stdout
