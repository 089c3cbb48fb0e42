"""The persistent reply cache outlives restarts but not code changes: replies are keyed by the
app's version and the handler's code; ``bridge cache clear`` empties it. Real hosts, real disk."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from harness import Host

APP = """
import os
from bridge import Bridge
from bridge.middleware.cache import Cache

app = Bridge("generations", {version!r})

{padding}
@app.method(cache=Cache())
def answer(key: str) -> list:
    return [{body!r}, os.getpid()]
"""


def serve_once(folder: Path, cache: Path, version: str, body: str, padding: str = "") -> tuple[list, bool]:
    (folder / "genapp.py").write_text(APP.format(version=version, body=body, padding=padding))
    env = {"BRIDGE_CACHE_DIR": str(cache), "PYTHONPATH": str(folder), "PYTHONDONTWRITEBYTECODE": "1"}
    with Host("genapp:app", env=env) as host:
        host.recv()
        host.send({"jsonrpc": "2.0", "id": 1, "method": "answer", "params": {"key": "k", "$meta": {"info": True}}})
        reply = host.reply(1)
        host.close_stdin()
        assert host.wait() == 0
    return reply["result"], reply["$meta"]["cached"]


def test_a_changed_handler_or_a_new_version_is_never_answered_from_the_old_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first, cached = serve_once(tmp_path, cache, "1.0", "old")
    assert first[0] == "old" and cached is False
    again, cached = serve_once(tmp_path, cache, "1.0", "old", padding="# an edit elsewhere moves the handler\n\n\n")
    assert again == first and cached is True  # same code, same version: from disk, lines moved or not
    changed, cached = serve_once(tmp_path, cache, "1.0", "new")
    assert changed[0] == "new" and cached is False  # the handler's code changed
    bumped, cached = serve_once(tmp_path, cache, "1.1", "new")
    assert bumped[1] != changed[1] and cached is False  # the app's version changed


def test_bridge_cache_clear_empties_the_apps_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    serve_once(tmp_path, cache, "1.0", "kept")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}

    def bridge(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "bridge", "cache", *args], capture_output=True, text=True,
                              env=env, timeout=60, check=False)

    assert bridge("where", "genapp:app", "--cache-dir", str(cache)).stdout.strip() == str(cache)
    done = bridge("clear", "genapp:app", "--cache-dir", str(cache))
    assert done.returncode == 0 and done.stdout.strip() == f"cleared 1 cached reply from {cache}", done.stderr
    _, cached = serve_once(tmp_path, cache, "1.0", "kept")
    assert cached is False
    default = bridge("where", "genapp:app")
    assert default.returncode == 0 and default.stdout.strip().endswith(os.path.join("bridge", "generations"))
    assert "nothing cached" in bridge("clear", "--cache-dir", str(tmp_path / "none")).stdout
