"""handlers/fs/plugin.py through a real host: watching with compressed events, reading, roots."""

from __future__ import annotations

import json
import os

import pytest
from harness import Host


def fs_host(root, tmp_path) -> Host:
    config = tmp_path / "bridge.toml"
    config.write_text(f"[plugins.fs]\nroots = [{json.dumps(str(root))}]\ncompress_over = 100\n")
    return Host("--plugin", "fs", "--config", str(config))


def test_ten_thousand_new_files_arrive_as_a_few_compressed_events(tmp_path):
    root = tmp_path / "tree"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    with fs_host(root, tmp_path) as host:
        host.recv()
        sub = host.call("fs.watch", {"paths": [str(root)], "debounce_ms": 200})["result"]
        for i in range(10_000):
            (root / ("a" if i % 2 else "b") / f"f{i:05d}.txt").write_text("x")
        created: dict[str, int] = {}
        notifications = 0
        while sum(created.values()) < 10_000:
            event, _ = host.recv_until(lambda m: m.get("method") == "fs.changed", timeout=30)
            params = event["params"]
            assert params["subscription"] == sub and params["dropped"] == 0
            notifications += 1
            if params["compressed"]:
                for summary in params["changes"]:
                    created[summary["dir"]] = created.get(summary["dir"], 0) + summary["created"]
            else:
                for change in params["changes"]:
                    directory = os.path.dirname(change["path"])
                    created[directory] = created.get(directory, 0) + (change["kind"] == "created")
        assert created == {str(root / "a"): 5000, str(root / "b"): 5000}
        assert notifications <= 50
        assert host.call("fs.unwatch", {"subscription": sub}, id="u")["result"] is True


def test_reading_and_the_roots(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "note.txt").write_text("hello\nworld\n")
    outside = tmp_path / "secret.txt"
    outside.write_text("no")
    os.symlink(outside, root / "escape")
    with fs_host(root, tmp_path) as host:
        host.recv()
        assert host.call("fs.read_text", {"path": str(root / "note.txt")})["result"] == "hello\nworld\n"
        assert host.call("fs.stat", {"path": str(root / "note.txt")}, id=2)["result"]["size"] == 12
        names = [e["name"] for e in host.call("fs.list", {"path": str(root)}, id=3)["result"]]
        assert names == ["escape", "note.txt"] or names == ["note.txt"]
        for bad, reason in ((str(outside), "outside"), (str(root / "escape"), "symlink"),
                            (str(root / ".." / "secret.txt"), "dotdot"), (str(root / "nope"), "missing")):
            error = host.call("fs.read_text", {"path": bad}, id=bad)["error"]
            assert error["code"] == 4301 and error["data"]["reason"] == reason, (bad, error)
        host.send({"jsonrpc": "2.0", "id": "s", "method": "fs.read_lines", "params": {"path": str(root / "note.txt")}})
        reply, chunks = host.recv_until(lambda m: m.get("id") == "s")
        assert [line for c in chunks for line in c["params"]["items"]] == ["hello", "world"]
        assert reply["result"] == {"items": 2, "chunks": 1}


def test_a_path_added_and_deleted_in_one_raw_batch_ends_as_the_disk_says(tmp_path):
    from bridge.builtins.fs.plugin import settle

    here, gone = tmp_path / "here", tmp_path / "gone"
    here.write_text("x")
    raw = {(1, str(here)), (3, str(here)), (1, str(gone)), (3, str(gone)), (1, str(tmp_path / "new")),
           (2, str(tmp_path / "new"))}
    assert settle(raw) == [("created", str(gone)), ("deleted", str(gone)), ("created", str(here)),
                           ("created", str(tmp_path / "new")), ("modified", str(tmp_path / "new"))]


def test_a_file_created_and_deleted_inside_one_window_nets_to_nothing(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "old.txt").write_text("x")
    with fs_host(root, tmp_path) as host:
        host.recv()
        sub = host.call("fs.watch", {"paths": [str(root)], "debounce_ms": 300})["result"]
        (root / "scratch.tmp").write_text("gone at once")
        (root / "scratch.tmp").unlink()
        (root / "old.txt").unlink()
        (root / "kept.txt").write_text("x")
        seen: dict[str, str] = {}
        while "kept.txt" not in seen or "old.txt" not in seen:  # the same window as the scratch file
            event, _ = host.recv_until(lambda m: m.get("method") == "fs.changed", timeout=30)
            assert event["params"]["subscription"] == sub
            seen.update({os.path.basename(c["path"]): c["kind"] for c in event["params"]["changes"]})
        assert seen == {"kept.txt": "created", "old.txt": "deleted"}  # scratch.tmp: nothing


def test_watches_running_at_eof_are_stopped_before_the_host_exits(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    with fs_host(root, tmp_path) as host:
        host.recv()
        for i in range(2):
            host.call("fs.watch", {"paths": [str(root)], "debounce_ms": 20}, id=i)
        (root / "one.txt").write_text("x")
        host.recv_until(lambda m: m.get("method") == "fs.changed")
        host.close_stdin()
        assert host.wait(timeout=10) == 0
        log = host.stderr.decode()
        assert "fs: stopped 2 watch(es)" in log and "Traceback" not in log, log
        assert log.index("fs: stopped") > log.index("bridge: stopped")  # the lifespan is left last


@pytest.mark.anyio
async def test_the_lifespan_owns_every_watch_task(tmp_path, monkeypatch):
    import asyncio
    from types import SimpleNamespace

    import anyio

    from bridge import BridgeError
    from bridge.builtins.fs.plugin import FsSettings, plugin, unwatch, watch

    events: list[dict] = []
    seen = anyio.Event()

    def notify(method: str, params: dict) -> None:
        events.append(params)
        seen.set()

    ctx = SimpleNamespace(participant="me", notify=notify)
    monkeypatch.setattr(plugin, "settings", FsSettings(roots=[str(tmp_path)]))
    before = asyncio.all_tasks()
    with anyio.fail_after(10):
        async with plugin.lifespan(plugin) as state:
            monkeypatch.setattr(plugin, "state", state)
            kept = await watch([str(tmp_path)], ctx, debounce_ms=10)
            gone = await watch([str(tmp_path)], ctx, debounce_ms=10)
            assert await unwatch(gone, ctx) is True and list(state.by_id) == [kept]
            (tmp_path / "one.txt").write_text("x")
            await seen.wait()
            assert events[0]["subscription"] == kept
            assert len(asyncio.all_tasks() - before) == 1  # the remaining watch's task
        assert state.by_id == {} and asyncio.all_tasks() == before
        with pytest.raises(BridgeError) as refused:  # stopped: no new watch
            await watch([str(tmp_path)], ctx)
    assert refused.value.code == -32603
